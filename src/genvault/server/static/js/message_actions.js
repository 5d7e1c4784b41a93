// The buttons under a message (edit, regenerate, retry) and the in-place editor of a user
// message. Which actions a message gets, and what they send, is chat.js's to decide; this module
// only draws them and reports clicks, so the chat page's turn logic stays in one place.

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const LABELS = {
  edit: "Edit",
  regenerate: "Regenerate",
  retry: "Retry",
};

const HINTS = {
  edit: "Edit this message and send it again: the replies after it are replaced",
  regenerate: "Ask for this reply again: it is replaced",
  retry: "Try this turn again",
};

/** Set the action buttons of `article` to `actions` (names from LABELS), disabled while `busy`. */
export function renderActions(article, actions, busy) {
  let bar = article.querySelector(":scope > .msg-actions");
  if (!actions.length) {
    bar?.remove();
    return;
  }
  if (!bar) {
    bar = el("div", "msg-actions");
    article.append(bar);
  }
  const wanted = actions.join(" ");
  if (bar.dataset.actions !== wanted) {
    bar.dataset.actions = wanted;
    bar.replaceChildren(
      ...actions.map((action) => {
        const button = el("button", "link small", LABELS[action]);
        button.type = "button";
        button.dataset.action = action;
        button.title = HINTS[action];
        return button;
      }),
    );
  }
  for (const button of bar.children) button.disabled = busy;
}

/** Calls `handler(action, messageId)` for a click on any action button under `root`. */
export function onAction(root, handler) {
  root.addEventListener("click", (event) => {
    const button = event.target.closest?.(".msg-actions button[data-action]");
    const article = button?.closest("article.msg");
    if (!button || !article || !root.contains(article) || button.disabled) return;
    handler(button.dataset.action, article.dataset.id);
  });
}

/**
 * Replace the body of a user message's `article` with an editor holding `text`. Resolves with
 * the edited text (Send, or Enter), or null (Cancel, or Escape); the body shows again either way.
 */
export function editInPlace(article, text) {
  const body = article.querySelector(":scope > .msg-body");
  const form = el("form", "msg-editor");
  const area = el("textarea");
  area.name = "text";
  area.rows = Math.min(12, Math.max(2, text.split("\n").length));
  area.value = text;
  area.setAttribute("aria-label", "Edited message");
  const bar = el("div", "msg-editor-bar");
  const cancel = el("button", "", "Cancel");
  cancel.type = "button";
  const save = el("button", "primary", "Send");
  save.type = "submit";
  bar.append(cancel, save);
  form.append(area, bar);
  body.hidden = true;
  article.querySelector(":scope > .msg-actions")?.setAttribute("hidden", "");
  body.after(form);
  area.focus();
  area.setSelectionRange(area.value.length, area.value.length);
  return new Promise((resolve) => {
    const done = (value) => {
      form.remove();
      body.hidden = false;
      article.querySelector(":scope > .msg-actions")?.removeAttribute("hidden");
      resolve(value);
    };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const edited = area.value.trim();
      if (edited) done(edited);
    });
    cancel.addEventListener("click", () => done(null));
    area.addEventListener("keydown", (event) => {
      if (event.key === "Escape") done(null);
      else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
  });
}
