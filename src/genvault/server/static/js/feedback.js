// Thumbs up / down, with an optional comment, under each assistant message of a chat you own and
// on a generation's record page. Kept apart from chat.js: it only watches the message list for
// `article.msg-assistant[data-id]` and adds a bar to each, so the chat script can change freely.
// Clicking the chosen thumb again removes the rating.

const data = JSON.parse(document.getElementById("page-data")?.textContent ?? "{}");

function bar(load, save, clear) {
  const node = document.createElement("div");
  node.className = "feedback small";
  node.innerHTML =
    '<button type="button" class="thumb" data-rating="1" aria-pressed="false" title="Good answer">👍</button>' +
    '<button type="button" class="thumb" data-rating="-1" aria-pressed="false" title="Bad answer">👎</button>' +
    '<input class="feedback-comment" maxlength="2000" placeholder="Why? (optional, Enter saves)" hidden>' +
    '<span class="feedback-note muted" role="status"></span>';
  const [up, down] = node.querySelectorAll(".thumb");
  const comment = node.querySelector(".feedback-comment");
  const note = node.querySelector(".feedback-note");
  let rating = 0;
  const show = (value, text) => {
    rating = value;
    node.dataset.rating = String(value);
    up.setAttribute("aria-pressed", String(value === 1));
    down.setAttribute("aria-pressed", String(value === -1));
    comment.hidden = value === 0;
    if (text !== undefined) comment.value = text ?? "";
  };
  const send = async (value) => {
    note.textContent = "";
    const response = value === 0 ? await clear() : await save(value, comment.value.trim() || null);
    if (!response.ok) {
      const body = await response.json().catch(() => null);
      note.textContent = body?.error?.message ?? `not saved (${response.status})`;
      return;
    }
    show(value, value === 0 ? "" : undefined);
    note.textContent = value === 0 ? "rating removed" : "saved";
  };
  for (const button of [up, down]) {
    button.addEventListener("click", () => {
      const value = Number(button.dataset.rating);
      send(rating === value ? 0 : value);
    });
  }
  comment.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && rating !== 0) {
      event.preventDefault();
      send(rating);
    }
  });
  show(0);
  load().then((found) => found && show(found.rating, found.comment));
  return node;
}

const json = { "Content-Type": "application/json" };
const put = (url, rating, comment) =>
  fetch(url, { method: "PUT", headers: json, body: JSON.stringify({ rating, comment }) });

function chatPage(chatId) {
  const base = `/api/chats/${encodeURIComponent(chatId)}`;
  let ratings = null; // message id → rating, loaded once
  const loadAll = async () => {
    if (ratings === null) {
      const response = await fetch(`${base}/feedback`);
      ratings = response.ok ? Object.fromEntries((await response.json()).map((r) => [r.message_id, r])) : {};
    }
    return ratings;
  };
  const attach = () => {
    for (const article of document.querySelectorAll("#messages article.msg-assistant[data-id]")) {
      if (article.querySelector(":scope > .feedback")) continue;
      const id = article.dataset.id;
      const url = `${base}/messages/${encodeURIComponent(id)}/feedback`;
      article.append(
        bar(
          async () => (await loadAll())[id],
          (rating, comment) => put(url, rating, comment),
          () => fetch(url, { method: "DELETE" }),
        ),
      );
    }
  };
  const list = document.getElementById("messages");
  if (!list) return;
  new MutationObserver(attach).observe(list, { childList: true, subtree: true });
  attach();
}

function recordPage(generationId) {
  const output = document.getElementById("output");
  if (!output) return;
  const url = `/api/generations/${encodeURIComponent(generationId)}/feedback`;
  output.after(
    bar(
      async () => {
        const response = await fetch(`/api/generations/${encodeURIComponent(generationId)}`);
        return response.ok ? (await response.json()).feedback : null;
      },
      (rating, comment) => put(url, rating, comment),
      () => fetch(url, { method: "DELETE" }),
    ),
  );
}

if (data.chatId && data.exists !== false && !data.readonly) chatPage(data.chatId);
else if (data.id && !data.chatId) recordPage(data.id);
