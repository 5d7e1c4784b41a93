// The chat page: what useChat + DefaultChatTransport do (docs/aisdk-v5-protocol.md §3), by hand.
// Send: POST /api/chat {id, messages, trigger}. Stop: POST /api/chat/{id}/cancel (an explicit
// stop; closing the tab is not one, and the reply carries on). Load: GET /api/chat/{id}/stream
// picks up a running reply from its first chunk, so a reload mid-reply shows it continue.
// Edit, regenerate and retry send what useChat's sendMessage({messageId}) and regenerate() send
// (§3.1); the server truncates the stored chat the same way (genvault.chat_turns).

import { handleCopyButtons } from "./markdown.js";
import { editInPlace, onAction, renderActions } from "./message_actions.js";
import { MessageAssembler, generateId, readSSE, renderMessage } from "./uimessage.js";

const page = JSON.parse(document.getElementById("page-data").textContent);
const chatPath = `/api/chat/${encodeURIComponent(page.chatId)}`;
const chatsPath = `/api/chats/${encodeURIComponent(page.chatId)}`;

const list = document.getElementById("messages");
const emptyNote = list.querySelector(".empty-chat");
const errorBox = document.getElementById("error");
const earlier = document.getElementById("earlier");
const form = document.getElementById("composer"); // absent on a read-only shared chat
const input = document.getElementById("input");
const attachInput = document.getElementById("attach");
const modelInput = document.getElementById("model");
const sendButton = document.getElementById("send");
const stopButton = document.getElementById("stop");
const statusLine = document.getElementById("status");

const state = { messages: page.messages, status: "ready", hasBefore: page.hasBefore };
const elements = new Map(); // message object -> its <article>
// How a reply ended when it did not complete (its stored `genvault.status`): offered a retry.
const ENDED_BADLY = new Set(["error", "cancelled", "interrupted"]);

// -- drawing --------------------------------------------------------------------------------------

function draw(message) {
  let node = elements.get(message);
  const fresh = !node;
  node = renderMessage(message, node, { recordLinks: !page.readonly });
  elements.set(message, node);
  return fresh ? node : null;
}

function drawAll() {
  elements.clear();
  list.replaceChildren(emptyNote, ...state.messages.map((m) => draw(m)));
  emptyNote.hidden = state.messages.length > 0;
  earlier.hidden = !state.hasBefore;
  updateActions();
}

function busy() {
  return state.status === "submitted" || state.status === "streaming";
}

/** Edit on each user message; on the last message, regenerate its reply or retry its turn. */
function updateActions() {
  if (!form) return; // a shared chat is read only
  const last = state.messages.at(-1);
  for (const message of state.messages) {
    const node = elements.get(message);
    if (!node) continue;
    const actions = message.role === "user" ? ["edit"] : [];
    if (message === last && message.role === "assistant") {
      actions.push(ENDED_BADLY.has(message.metadata?.genvault?.status) ? "retry" : "regenerate");
    } else if (message === last && message.role === "user" && !busy() && !page.active) {
      actions.push("retry"); // its reply never came (the request failed before any answer)
    }
    renderActions(node, actions, busy());
  }
}

/** Drop the messages from `index` on, from the list and the page. */
function truncateFrom(index) {
  for (const message of state.messages.splice(index)) {
    elements.get(message)?.remove();
    elements.delete(message);
  }
  emptyNote.hidden = state.messages.length > 0;
}

function scrollToEnd() {
  window.scrollTo({ top: document.body.scrollHeight });
}

/** useChat's list rule (§2.5.7): the same id as the last message replaces it, else append. */
function upsert(message) {
  const last = state.messages.at(-1);
  if (last && last !== message && last.id === message.id) {
    elements.get(last)?.remove();
    elements.delete(last);
    state.messages[state.messages.length - 1] = message;
  } else if (last !== message) {
    state.messages.push(message);
  }
  const node = draw(message);
  if (node) list.append(node);
  emptyNote.hidden = true;
  updateActions();
}

function setStatus(status, note = "") {
  state.status = status;
  if (!form) return;
  const busy = status === "submitted" || status === "streaming";
  sendButton.disabled = busy;
  stopButton.hidden = !busy;
  statusLine.dataset.status = status;
  statusLine.textContent = note || { submitted: "Sending…", streaming: "Replying…", ready: "", error: "" }[status];
  updateActions();
}

function showError(text) {
  errorBox.textContent = text;
  errorBox.hidden = !text;
}

// -- streams --------------------------------------------------------------------------------------

/**
 * Fold one UI message stream into a new assistant message and show it as it grows. The first
 * draw waits for the first chunk, so a `start` whose messageId is the last message's replaces
 * that message instead of adding a duplicate.
 */
async function consume(response) {
  const assembler = new MessageAssembler();
  let seen = false;
  let frame = 0;
  const update = () => {
    frame = 0;
    upsert(assembler.message);
    scrollToEnd();
  };
  try {
    for await (const chunk of readSSE(response)) {
      assembler.feed(chunk);
      seen = true;
      if (state.status === "submitted" && chunk.type !== "start") setStatus("streaming");
      if (chunk.type === "error") showError(chunk.errorText);
      // Coalesce many small deltas into one draw per animation frame.
      if (!frame) frame = requestAnimationFrame(update);
    }
  } catch (err) {
    showError(`The reply stream broke off: ${err.message}. Reload to pick it up again.`);
    setStatus("error");
    return;
  } finally {
    if (frame) cancelAnimationFrame(frame);
    if (seen) update();
  }
  setStatus(assembler.errorText ? "error" : "ready", assembler.aborted ? "Stopped." : "");
}

// Attachments travel as `data:` URLs in file parts, as useChat sends them; the server stores
// them in its blob store and keeps only their permanent URLs.
function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function fileParts(files) {
  const parts = [];
  for (const file of files) {
    const url = await readAsDataUrl(file);
    parts.push({ type: "file", mediaType: file.type || "application/octet-stream", filename: file.name, url });
  }
  return parts;
}

async function send(text, files = []) {
  showError("");
  let attached;
  try {
    attached = await fileParts(files);
  } catch (err) {
    showError(`Could not read the attached file: ${err.message}`);
    return;
  }
  const message = { id: generateId(), role: "user", parts: [{ type: "text", text }, ...attached] };
  upsert(message);
  scrollToEnd();
  // The default DefaultChatTransport body: the whole list; the server keeps only the new message.
  await turn({ id: page.chatId, messages: state.messages, trigger: "submit-message" }, () => {
    // The server titled a new chat after its first message: show the same title at once.
    if (!document.title.startsWith("New chat")) return;
    const title = text.length > 80 ? `${text.slice(0, 79)}…` : text;
    document.getElementById("chat-title").textContent = title;
    document.title = `${title} · genvault`;
  });
}

/** The model the composer names, if any (the picker may be an input or a select). */
function chosenModel() {
  const model = (modelInput?.value ?? "").trim();
  return model || undefined;
}

/**
 * POST one turn and stream its reply into the page; `accepted` runs once the server took it.
 * False when the request failed before any reply (shown as the error; the last message then
 * offers a retry), else true once the reply ended.
 */
async function turn(body, accepted = () => {}) {
  showError("");
  setStatus("submitted");
  const model = chosenModel();
  if (model) body.model = model;
  let response;
  try {
    response = await fetch("/api/chat", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  } catch (err) {
    showError(`Could not reach the server: ${err.message}`);
    setStatus("error");
    return false;
  }
  if (!response.ok) {
    // Errors before the stream are a text body (what useChat shows as error.message).
    showError((await response.text()) || `${response.status} ${response.statusText}`);
    setStatus("error");
    return false;
  }
  page.exists = true;
  accepted();
  // The chat list (sidebar.js) moves this chat to the top, or adds it when it is new.
  document.dispatchEvent(new CustomEvent("genvault:chat-updated", { detail: { chatId: page.chatId } }));
  await consume(response);
  return true;
}

/** useChat's sendMessage({text, messageId}): the user message keeps its id, what followed it goes. */
async function edit(message) {
  const node = elements.get(message);
  const text = message.parts
    .filter((p) => p.type === "text")
    .map((p) => p.text)
    .join("\n");
  const edited = await editInPlace(node, text);
  if (edited === null || busy() || !state.messages.includes(message)) return;
  // The first text part takes the new text, in its place; attached files stay as they were.
  const parts = [];
  for (const part of message.parts) {
    if (part.type !== "text") parts.push(part);
    else if (!parts.some((p) => p.type === "text")) parts.push({ type: "text", text: edited });
  }
  if (!parts.some((p) => p.type === "text")) parts.push({ type: "text", text: edited });
  const replacement = { id: message.id, role: "user", parts };
  truncateFrom(state.messages.indexOf(message));
  upsert(replacement);
  scrollToEnd();
  const body = { id: page.chatId, messages: state.messages, trigger: "submit-message", messageId: message.id };
  await turn(body);
}

/** useChat's regenerate({messageId}) for the last reply: it goes, and a new one is streamed. */
async function regenerate(message) {
  truncateFrom(state.messages.indexOf(message));
  await turn({ id: page.chatId, messages: state.messages, trigger: "regenerate-message", messageId: message.id });
}

/** Again, the turn that did not complete: a failed reply is regenerated; a user message whose
 * reply never came is sent again under its own id (the server replaces it if it kept it). */
async function retry(message) {
  if (message.role === "assistant") {
    await regenerate(message);
    return;
  }
  await turn({ id: page.chatId, messages: state.messages, trigger: "submit-message", messageId: message.id });
}

async function act(action, messageId) {
  const message = state.messages.find((m) => m.id === messageId);
  if (!message || busy()) return;
  if (action === "edit") await edit(message);
  else if (action === "regenerate") await regenerate(message);
  else if (action === "retry") await retry(message);
}

/** Pick up a reply that is running (after a reload, or one started elsewhere). */
async function resume() {
  try {
    await follow();
  } finally {
    page.active = false; // from now on, the page's own status says whether a reply runs
    updateActions();
  }
}

async function follow() {
  if (!page.exists) return;
  let response;
  try {
    response = await fetch(`${chatPath}/stream`);
  } catch {
    return;
  }
  if (response.status === 204) {
    // Nothing runs now. If something ran when the page was drawn, it finished in between:
    // fetch the history again so its reply shows.
    if (page.active) await reloadHistory();
    return;
  }
  if (!response.ok) {
    showError(await response.text());
    return;
  }
  setStatus("streaming");
  await consume(response);
}

async function reloadHistory() {
  const response = await fetch(`${chatsPath}?limit=${page.pageSize}`);
  if (!response.ok) return;
  const body = await response.json();
  state.messages = body.messages;
  state.hasBefore = body.has_before;
  drawAll();
}

let loadingEarlier = null;

/** The page before the first message shown; one request at a time (scroll and click may both ask). */
function loadEarlier() {
  loadingEarlier ??= fetchEarlier().finally(() => {
    loadingEarlier = null;
  });
  return loadingEarlier;
}

async function fetchEarlier() {
  const first = state.messages[0];
  if (!first) return;
  const query = new URLSearchParams({ before: first.id, limit: String(page.pageSize) });
  const response = await fetch(`${chatsPath}/messages?${query}`);
  if (!response.ok) {
    showError(`Could not load earlier messages (${response.status}).`);
    return;
  }
  const body = await response.json();
  state.messages = [...body.messages, ...state.messages];
  state.hasBefore = body.has_before;
  const height = document.body.scrollHeight;
  const nodes = body.messages.map((m) => draw(m));
  emptyNote.after(...nodes);
  earlier.hidden = !state.hasBefore;
  window.scrollBy(0, document.body.scrollHeight - height); // keep the reader's place
  updateActions();
}

async function stop() {
  stopButton.disabled = true;
  try {
    const response = await fetch(`${chatPath}/cancel`, { method: "POST" });
    // 409: nothing is running any more; the stream is ending on its own.
    if (!response.ok && response.status !== 409) showError(await response.text());
  } finally {
    stopButton.disabled = false;
  }
}

// -- wiring ---------------------------------------------------------------------------------------

drawAll();
handleCopyButtons(list);
onAction(list, act);
earlier.addEventListener("click", loadEarlier);
// Older messages load as the reader scrolls up to the top (the button stays, for keyboards).
new IntersectionObserver(
  (entries) => {
    if (entries.some((entry) => entry.isIntersecting) && state.hasBefore) loadEarlier();
  },
  { rootMargin: "300px 0px 0px 0px" },
).observe(earlier);
if (form) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || state.status === "submitted" || state.status === "streaming") return;
    input.value = "";
    const files = attachInput ? [...attachInput.files] : [];
    if (attachInput) attachInput.value = "";
    send(text, files);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  stopButton.addEventListener("click", stop);
  setStatus("ready");
  input.focus();
}
/** A search result links here as /chat/{id}?message={message id}: load earlier pages until
 * that message is in the list, then scroll it into view and mark it. */
async function focusMessage(id) {
  while (!state.messages.some((m) => m.id === id) && state.hasBefore) {
    const before = state.messages.length;
    await loadEarlier();
    if (state.messages.length === before) break; // the page did not load: stop, shown as an error
  }
  const message = state.messages.find((m) => m.id === id);
  const node = message && elements.get(message);
  if (!node) {
    showError("That message is no longer in this chat.");
    scrollToEnd();
    return;
  }
  node.classList.add("msg-found");
  node.scrollIntoView({ block: "center" });
}

const wanted = new URLSearchParams(location.search).get("message");
if (wanted) focusMessage(wanted);
else scrollToEnd();
resume();
