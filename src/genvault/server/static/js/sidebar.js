// The chat list beside the chat and home pages: every chat of yours, newest first, a page at a
// time as you scroll (GET /api/chats?cursor=…), filtered by the search box (?q=, the search
// index), with rename (PATCH title), share (PATCH visibility) and delete (DELETE, after a confirm
// dialog). Everything the list shows comes from the JSON API; titles are written as text, never
// as HTML. On phones the list is a panel that the ☰ button opens and Escape closes.

const PAGE = 30;

const sidebar = document.getElementById("sidebar");
const toggle = document.getElementById("sidebar-toggle");
const closeButton = document.getElementById("sidebar-close");
const backdrop = document.getElementById("sidebar-backdrop");
const list = document.getElementById("sidebar-list");
const scroller = document.getElementById("sidebar-scroll");
const more = document.getElementById("sidebar-more");
const empty = document.getElementById("sidebar-empty");
const note = document.getElementById("sidebar-note");
const search = document.getElementById("sidebar-q");
const allResults = document.getElementById("sidebar-all");
const deleteDialog = document.getElementById("delete-dialog");
const shareDialog = document.getElementById("share-dialog");
const shareUrl = document.getElementById("share-url");
const shareStatus = document.getElementById("share-status");

const current = decodeURIComponent(location.pathname.match(/^\/chat\/([^/]+)$/)?.[1] ?? "");
const phone = window.matchMedia("(max-width: 800px)");
const state = { cursor: null, done: false, loading: null, query: "", generation: 0 };
const rows = new Map(); // chat id -> { chat, li }

// -- the API --------------------------------------------------------------------------------------

/** A JSON API call; the error's message is the server's own ({"error": {"message"}}). */
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content;
  if (csrf) headers["X-CSRF-Token"] = csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const error = (await response.json()).error;
      if (error?.message) message = error.message;
    } catch {
      // not JSON: keep the status line
    }
    throw new Error(message);
  }
  return response.status === 204 ? null : response.json();
}

function say(text, isError = false) {
  note.textContent = text;
  note.classList.toggle("error", isError);
}

// -- drawing --------------------------------------------------------------------------------------

const chatPath = (id) => `/api/chats/${encodeURIComponent(id)}`;
const titleOf = (chat) => chat.title || "Untitled chat";
const VISIBILITY = { private: "", link: "shared by link", public: "public" };

function drawRow(chat) {
  const li = document.createElement("li");
  li.className = "chat-item";
  li.dataset.chatId = chat.id;
  const link = document.createElement("a");
  link.className = "chat-link";
  link.href = chat.url;
  link.textContent = titleOf(chat);
  if (chat.id === current) link.setAttribute("aria-current", "page");
  const badge = document.createElement("span");
  badge.className = "chat-shared";
  const menuButton = document.createElement("button");
  menuButton.type = "button";
  menuButton.className = "chat-menu-button";
  menuButton.textContent = "⋯";
  menuButton.setAttribute("aria-expanded", "false");
  const actions = document.createElement("div");
  actions.className = "chat-actions";
  actions.hidden = true;
  actions.id = `chat-actions-${chat.id}`;
  menuButton.setAttribute("aria-controls", actions.id);
  for (const [name, label] of [
    ["rename", "Rename"],
    ["share", "Share"],
    ["delete", "Delete"],
  ]) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = `link small chat-${name}`;
    button.dataset.action = name;
    button.textContent = label;
    actions.append(button);
  }
  li.append(link, badge, menuButton, actions);
  const row = { chat, li };
  fill(row);
  return row;
}

/** Write the chat's current fields into its row. */
function fill(row) {
  const { chat, li } = row;
  li.querySelector(".chat-link").textContent = titleOf(chat);
  const badge = li.querySelector(".chat-shared");
  badge.textContent = VISIBILITY[chat.visibility] ?? chat.visibility;
  badge.hidden = chat.visibility === "private";
  li.querySelector(".chat-menu-button").setAttribute("aria-label", `Actions for “${titleOf(chat)}”`);
}

function append(chats) {
  for (const chat of chats) {
    if (rows.has(chat.id)) continue; // a chat that moved up between pages
    const row = drawRow(chat);
    rows.set(chat.id, row);
    list.append(row.li);
  }
  empty.hidden = rows.size > 0;
  empty.textContent = state.query ? "No chat matches this search." : "No chats yet.";
}

// -- pages ----------------------------------------------------------------------------------------

async function loadMore() {
  if (state.done) return;
  if (state.loading) return state.loading;
  const generation = state.generation;
  const query = new URLSearchParams({ limit: String(PAGE) });
  if (state.cursor) query.set("cursor", state.cursor);
  if (state.query) query.set("q", state.query);
  more.disabled = true;
  state.loading = (async () => {
    try {
      const page = await api("GET", `/api/chats?${query}`);
      if (generation !== state.generation) return; // a new search replaced this list
      append(page.items);
      state.cursor = page.next_cursor;
      state.done = !page.next_cursor;
      if (note.classList.contains("error")) say("");
    } catch (err) {
      if (generation === state.generation) say(`Could not load chats: ${err.message}`, true);
    } finally {
      if (generation === state.generation) {
        state.loading = null;
        more.disabled = false;
        more.hidden = state.done;
      }
    }
  })();
  await state.loading;
  // A short first page leaves the sentinel in view: keep going until the list fills its box.
  if (!state.done && sentinelVisible()) await loadMore();
}

/** Closed (a phone's panel) or collapsed: nothing to fill until it opens. */
function sidebarShown() {
  if (phone.matches) return document.body.classList.contains("sidebar-open");
  return !document.body.classList.contains("sidebar-collapsed");
}

function sentinelVisible() {
  if (more.hidden || !sidebarShown()) return false;
  const box = scroller.getBoundingClientRect();
  const mark = more.getBoundingClientRect();
  return box.height > 0 && mark.top <= box.bottom + 200;
}

function restart() {
  state.generation += 1;
  state.cursor = null;
  state.done = false;
  state.loading = null;
  rows.clear();
  list.replaceChildren();
  more.hidden = true;
  return loadMore();
}

// -- actions --------------------------------------------------------------------------------------

function closeMenus(except) {
  for (const open of list.querySelectorAll(".chat-actions:not([hidden])")) {
    if (open === except) continue;
    open.hidden = true;
    open.parentElement.querySelector(".chat-menu-button").setAttribute("aria-expanded", "false");
  }
}

function rowOf(element) {
  const li = element.closest(".chat-item");
  return li ? rows.get(li.dataset.chatId) : undefined;
}

/** The current chat's heading and tab title follow a rename. */
function retitle(chat) {
  if (chat.id !== current) return;
  const heading = document.getElementById("chat-title");
  if (heading) heading.textContent = titleOf(chat);
  document.title = `${titleOf(chat)} · genvault`;
}

function startRename(row) {
  const link = row.li.querySelector(".chat-link");
  const input = document.createElement("input");
  input.className = "chat-title-input";
  input.value = row.chat.title ?? "";
  input.maxLength = 500;
  input.setAttribute("aria-label", `New title for “${titleOf(row.chat)}”`);
  link.hidden = true;
  link.after(input);
  input.focus();
  input.select();
  let finished = false;
  const finish = async (save) => {
    if (finished) return;
    finished = true;
    const title = input.value.trim();
    input.remove();
    link.hidden = false;
    if (!save || title === (row.chat.title ?? "")) {
      row.li.querySelector(".chat-menu-button").focus();
      return;
    }
    try {
      // An emptied title clears it ("Untitled chat"); the server refuses a blank one.
      row.chat = await api("PATCH", chatPath(row.chat.id), { title: title || null });
      fill(row);
      retitle(row.chat);
      say(`Renamed to “${titleOf(row.chat)}”.`);
    } catch (err) {
      say(`Could not rename: ${err.message}`, true);
    }
    link.focus();
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      finish(true);
    } else if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      finish(false);
    }
  });
  input.addEventListener("blur", () => finish(true));
}

function askDelete(row) {
  document.getElementById("delete-dialog-name").textContent = titleOf(row.chat);
  deleteDialog.returnValue = "";
  deleteDialog.onclose = async () => {
    if (deleteDialog.returnValue !== "delete") {
      row.li.querySelector(".chat-menu-button").focus();
      return;
    }
    try {
      await api("DELETE", chatPath(row.chat.id));
    } catch (err) {
      say(`Could not delete: ${err.message}`, true);
      return;
    }
    const next = row.li.nextElementSibling ?? row.li.previousElementSibling;
    rows.delete(row.chat.id);
    row.li.remove();
    empty.hidden = rows.size > 0;
    say(`Deleted “${titleOf(row.chat)}”.`);
    if (row.chat.id === current) {
      location.assign("/");
      return;
    }
    (next?.querySelector(".chat-link") ?? search).focus();
  };
  deleteDialog.showModal();
}

function openShare(row) {
  const link = new URL(row.chat.url, location.origin).href;
  document.getElementById("share-dialog-name").textContent = titleOf(row.chat);
  shareUrl.value = link;
  shareStatus.textContent = "";
  for (const radio of shareDialog.querySelectorAll('input[name="visibility"]')) {
    radio.checked = radio.value === row.chat.visibility;
    radio.onchange = async () => {
      if (!radio.checked) return;
      shareStatus.textContent = "Saving…";
      try {
        row.chat = await api("PATCH", chatPath(row.chat.id), { visibility: radio.value });
        fill(row);
        shareStatus.textContent =
          row.chat.visibility === "private" ? "Private: only you can open it." : "Saved: anyone with the link can read it.";
      } catch (err) {
        shareStatus.textContent = `Could not change sharing: ${err.message}`;
        for (const r of shareDialog.querySelectorAll('input[name="visibility"]')) r.checked = r.value === row.chat.visibility;
      }
    };
  }
  shareDialog.onclose = () => row.li.querySelector(".chat-menu-button").focus();
  shareDialog.showModal();
}

async function copyLink() {
  try {
    await navigator.clipboard.writeText(shareUrl.value);
  } catch {
    // No clipboard permission (or not a secure context): select it and copy the old way.
    shareUrl.select();
    if (!document.execCommand("copy")) {
      shareStatus.textContent = "Select the link and copy it (Ctrl+C).";
      return;
    }
  }
  shareStatus.textContent = "Link copied.";
}

// -- the panel on phones --------------------------------------------------------------------------

function setOpen(open) {
  document.body.classList.toggle("sidebar-open", open);
  // The panel is modal on a phone: what is behind it takes no focus and no clicks.
  for (const behind of document.querySelectorAll("body > header, main")) behind.inert = open;
  toggle.setAttribute("aria-expanded", String(open));
  backdrop.hidden = !open;
  if (open) {
    search.focus();
    if (!state.done && sentinelVisible()) loadMore();
  }
}

function toggleSidebar() {
  if (phone.matches) {
    setOpen(!document.body.classList.contains("sidebar-open"));
  } else {
    const collapsed = document.body.classList.toggle("sidebar-collapsed");
    toggle.setAttribute("aria-expanded", String(!collapsed));
    localStorage.setItem("genvault.sidebar", collapsed ? "collapsed" : "open");
    if (!collapsed && sentinelVisible()) loadMore();
  }
}

function syncToggle() {
  if (phone.matches) {
    toggle.setAttribute("aria-expanded", String(document.body.classList.contains("sidebar-open")));
  } else {
    setOpen(false);
    toggle.setAttribute("aria-expanded", String(!document.body.classList.contains("sidebar-collapsed")));
  }
}

// -- wiring ---------------------------------------------------------------------------------------

list.addEventListener("click", (event) => {
  const button = event.target.closest("button");
  const row = button && rowOf(button);
  if (!row) return;
  if (button.classList.contains("chat-menu-button")) {
    const actions = row.li.querySelector(".chat-actions");
    closeMenus(actions);
    actions.hidden = !actions.hidden;
    button.setAttribute("aria-expanded", String(!actions.hidden));
    if (!actions.hidden) actions.querySelector("button").focus();
    return;
  }
  closeMenus();
  if (button.dataset.action === "rename") startRename(row);
  else if (button.dataset.action === "share") openShare(row);
  else if (button.dataset.action === "delete") askDelete(row);
});

sidebar.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  const open = list.querySelector(".chat-actions:not([hidden])");
  if (open) {
    closeMenus();
    open.parentElement.querySelector(".chat-menu-button").focus();
  } else if (phone.matches && document.body.classList.contains("sidebar-open")) {
    setOpen(false);
    toggle.focus();
  }
});

let typing = 0;
search.addEventListener("input", () => {
  clearTimeout(typing);
  typing = setTimeout(() => {
    state.query = search.value.trim();
    allResults.hidden = !state.query;
    allResults.querySelector("a").href = `/search?${new URLSearchParams({ q: state.query })}`;
    restart();
  }, 250);
});

more.addEventListener("click", () => loadMore());
new IntersectionObserver((entries) => {
  if (sidebarShown() && entries.some((entry) => entry.isIntersecting)) loadMore();
}, { root: scroller, rootMargin: "0px 0px 200px 0px" }).observe(more);

toggle.addEventListener("click", toggleSidebar);
closeButton.addEventListener("click", () => {
  setOpen(false);
  toggle.focus();
});
backdrop.addEventListener("click", () => setOpen(false));
document.getElementById("share-copy").addEventListener("click", copyLink);
phone.addEventListener("change", syncToggle);

// The chat page announces a turn it sent: the chat (new, or retitled) moves to the top.
document.addEventListener("genvault:chat-updated", async (event) => {
  if (state.query) return;
  try {
    const { chat } = await api("GET", `${chatPath(event.detail.chatId)}?limit=1`);
    const row = rows.get(chat.id) ?? drawRow(chat);
    row.chat = { ...chat };
    rows.set(chat.id, row);
    fill(row);
    list.prepend(row.li);
    empty.hidden = true;
  } catch {
    // the list stays as it was; a reload shows the chat
  }
});

if (localStorage.getItem("genvault.sidebar") === "collapsed") document.body.classList.add("sidebar-collapsed");
syncToggle();
restart();
