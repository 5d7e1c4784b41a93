// The footer under an assistant reply: model, tokens, cost, duration and links to its record,
// all read from the message's metadata (the `finish` chunk's messageMetadata, stored with the
// message): `genvault.{generationId, model, costUsd, durationMs, cachedFrom, usageEstimated}` and
// the AI SDK's `totalUsage`. A reply still streaming has none of it yet, and shows no footer.

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const count = new Intl.NumberFormat("en");

/** "1.2 s", "850 ms", "2 min 5 s". */
export function formatDuration(ms) {
  if (!Number.isFinite(ms) || ms < 0) return null;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

/** Exact dollars from a decimal string, as the server's `money.usd_label`: "$" and its digits, at
 * least to the cent ("$1.50", "$0.00000075"), never rounded and never through a float. Replies
 * stored before the server wrote plain digits may hold an exponent form ("7.50E-7"): it is moved
 * into place as text. Anything else is shown as it is, after a "$". */
export function usdLabel(text) {
  const found = /^(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (!found || !(found[1] || found[2])) return `$${text}`;
  let digits = (found[1] ?? "") + (found[2] ?? "");
  let point = (found[1] ?? "").length + Number(found[3] ?? 0);
  if (point < 0) {
    digits = "0".repeat(-point) + digits;
    point = 0;
  }
  digits = digits.padEnd(point, "0");
  const whole = digits.slice(0, point).replace(/^0+/, "") || "0";
  const fraction = digits.slice(point).replace(/0+$/, "").padEnd(2, "0");
  return `$${whole}.${fraction}`;
}

/** Exact as stored (money is a decimal string); null is "unpriced", never $0. */
export function formatCost(costUsd, cachedFrom) {
  if (cachedFrom) return "$0.00 (cached copy)";
  if (costUsd === null || costUsd === undefined) return "unpriced";
  return usdLabel(String(costUsd));
}

function field(name, text, title) {
  const node = el("span", "msg-meta", text);
  node.dataset.field = name;
  if (title) node.title = title;
  return node;
}

function footerFields(metadata, recordLinks) {
  const genvault = metadata?.genvault;
  const fields = [];
  if (genvault.model) fields.push(field("model", genvault.model));
  const usage = metadata.totalUsage;
  if (usage && (usage.inputTokens !== undefined || usage.outputTokens !== undefined)) {
    const approx = genvault.usageEstimated ? "≈" : "";
    const text = `${approx}${count.format(usage.inputTokens ?? 0)} in · ${approx}${count.format(usage.outputTokens ?? 0)} out`;
    fields.push(field("tokens", text, genvault.usageEstimated ? "estimated: the provider sent no usage" : "tokens"));
  }
  const unpriced = genvault.costUsd === null && !genvault.cachedFrom;
  const cost = field("cost", formatCost(genvault.costUsd, genvault.cachedFrom), unpriced ? "no price is known for this model" : "cost");
  cost.classList.toggle("unpriced", unpriced);
  fields.push(cost);
  const duration = formatDuration(genvault.durationMs);
  if (duration) fields.push(field("duration", duration, "from the request to the last chunk"));
  if (genvault.generationId && recordLinks) {
    const id = encodeURIComponent(genvault.generationId);
    const record = el("a", "msg-meta", "record");
    record.href = `/generate/${id}`;
    record.dataset.field = "record";
    const raw = el("a", "msg-meta", "JSON");
    raw.href = `/api/generations/${id}`;
    raw.dataset.field = "json";
    fields.push(record, raw);
  }
  return fields;
}

/**
 * Add, refresh or remove the footer of `article` for `message`. The record links are left out
 * when `options.recordLinks` is false: a shared chat's reader may not open its owner's records.
 */
export function renderFooter(message, article, options = {}) {
  let footer = article.querySelector(":scope > .msg-footer");
  if (message.role !== "assistant" || !message.metadata?.genvault) {
    footer?.remove();
    return;
  }
  if (!footer) {
    footer = el("footer", "msg-footer small");
    const before = article.querySelector(":scope > .msg-actions");
    if (before) before.before(footer);
    else article.append(footer);
  }
  footer.replaceChildren(...footerFields(message.metadata, options.recordLinks !== false));
}
