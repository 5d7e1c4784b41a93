// The model picker: every <select data-model-picker> is filled from GET /api/models (the
// models this server is configured for, with prices per million tokens where known). The model
// the page was drawn with stays selected (on the chat page: the chat's last model), even if the
// list does not hold it, so a chat keeps its model. The chosen value travels as the `model` field
// of the turn the page sends.

const pickers = document.querySelectorAll("select[data-model-picker]");

function price(model) {
  if (!model.price) return "price unknown";
  const { input_mtok: input, output_mtok: output } = model.price;
  if (Number(input) === 0 && Number(output) === 0) return "free";
  return `$${input} in · $${output} out per 1M tokens`;
}

function option(id, label) {
  const node = document.createElement("option");
  node.value = id;
  node.textContent = label;
  return node;
}

function fill(select, body) {
  const kind = select.dataset.kind || "text";
  const chosen = select.value;
  const models = body.models.filter((m) => m.kind === kind);
  const byProvider = new Map();
  for (const model of models) {
    if (!byProvider.has(model.provider)) byProvider.set(model.provider, []);
    byProvider.get(model.provider).push(model);
  }
  const groups = [];
  for (const [provider, members] of byProvider) {
    const group = document.createElement("optgroup");
    group.label = provider;
    for (const model of members) group.append(option(model.id, `${model.id} · ${price(model)}`));
    groups.push(group);
  }
  select.replaceChildren(...groups);
  if (chosen && !models.some((m) => m.id === chosen)) {
    // A model the list does not name (an OpenAI-compatible server's, say): keep offering it.
    select.prepend(option(chosen, `${chosen} · not listed`));
  }
  select.value = chosen || body.default_model;
  select.title = select.selectedOptions[0]?.textContent ?? "";
  select.addEventListener("change", () => {
    select.title = select.selectedOptions[0]?.textContent ?? "";
  });
  select.dataset.loaded = "true";
}

if (pickers.length) {
  try {
    const response = await fetch("/api/models", { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
    const body = await response.json();
    for (const select of pickers) fill(select, body);
  } catch (err) {
    // The picker keeps the one model it was drawn with; sending still works.
    for (const select of pickers) select.title = `Could not list the models: ${err.message}`;
  }
}
