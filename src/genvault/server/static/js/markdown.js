// Model replies as markdown: markdown-it (CommonMark + GFM tables and strikethrough) renders,
// highlight.js colours fenced code, DOMPurify sanitizes, and only then does anything reach the
// DOM. All three are vendored under /static/vendor (./scripts/vendor-js refreshes them).
//
// The rules, each enforced in more than one place:
// - No HTML from the model: markdown-it runs with `html: false`, so tags in the text are text.
// - Links only to http(s) and mailto: markdown-it's own link check, then a DOMPurify hook that
//   drops any other href (javascript:, data:, vbscript:, …); every link opens in a new tab with
//   rel="noopener noreferrer".
// - No images from markdown: `![alt](url)` is shown as a link to the url, never loaded, so a
//   reply cannot make the browser fetch an address (a tracking pixel, or data smuggled out in an
//   image URL by a prompt injection). Files the model streams are file parts, shown apart.
// - Only the elements and attributes markdown produces survive the sanitizer, classes only
//   those markdown-it and highlight.js set; no style attributes (the page's CSP refuses them).
// Re-rendered whole on each streamed update (the caller coalesces updates per animation frame),
// so an unclosed code fence or table mid-stream simply draws as far as it has come.

import markdownit from "../vendor/markdown-it/markdown-it.min.js";
import DOMPurify from "../vendor/dompurify/purify.es.js";
import hljs from "../vendor/highlight/highlight.min.js";

const LINK_SCHEMES = new Set(["http:", "https:", "mailto:"]);
const CLASS_OK = /^(?:hljs(?:-[\w-]+)?|language-[\w+#.-]+|align-(?:left|center|right)|[\w-]+_)$/;

function highlight(code, language) {
  if (!language || !hljs.getLanguage(language)) return ""; // markdown-it escapes it as plain code
  try {
    return hljs.highlight(code, { language, ignoreIllegals: true }).value;
  } catch {
    return "";
  }
}

const md = markdownit({ html: false, linkify: true, typographer: false, highlight });
md.disable("image");
md.validateLink = (url) => safeLink(url) !== null;

// GFM column alignment comes as style="text-align:…": a class instead (the CSP forbids inline style).
md.core.ruler.push("align_as_class", (state) => {
  for (const token of state.tokens) {
    if (token.type !== "inline" && token.attrs) {
      const style = token.attrGet("style");
      const align = style && /^text-align:(left|center|right)$/.exec(style);
      if (style) token.attrs = token.attrs.filter(([name]) => name !== "style");
      if (align) token.attrJoin("class", `align-${align[1]}`);
    }
  }
});

/** The absolute URL if it is an http(s) or mailto link, else null. */
export function safeLink(url) {
  try {
    const parsed = new URL(url, location.href);
    return LINK_SCHEMES.has(parsed.protocol) ? parsed.href : null;
  } catch {
    return null;
  }
}

const purifier = DOMPurify(window);
purifier.addHook("uponSanitizeAttribute", (node, data) => {
  if (data.attrName === "class") {
    data.attrValue = data.attrValue
      .split(/\s+/)
      .filter((name) => CLASS_OK.test(name))
      .join(" ");
    if (!data.attrValue) data.keepAttr = false;
  }
});
purifier.addHook("afterSanitizeAttributes", (node) => {
  if (node.nodeName !== "A") return;
  const href = node.hasAttribute("href") ? safeLink(node.getAttribute("href")) : null;
  if (href === null) {
    node.removeAttribute("href");
    return;
  }
  node.setAttribute("href", href);
  node.setAttribute("target", "_blank");
  node.setAttribute("rel", "noopener noreferrer");
});

const SANITIZE = {
  ALLOWED_TAGS: [
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "li", "ol",
    "p", "pre", "s", "span", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
  ],
  ALLOWED_ATTR: ["href", "title", "class", "start"],
  ALLOW_DATA_ATTR: false,
  ALLOW_ARIA_ATTR: false,
  RETURN_DOM_FRAGMENT: true,
};

/** Sanitized DOM for `text` read as markdown. */
export function markdownFragment(text) {
  const fragment = purifier.sanitize(md.render(text), SANITIZE);
  for (const table of fragment.querySelectorAll("table")) {
    const box = document.createElement("div");
    box.className = "md-table";
    box.tabIndex = 0; // a box that scrolls must be reachable by keyboard
    table.replaceWith(box);
    box.append(table);
  }
  for (const pre of fragment.querySelectorAll("pre")) {
    const code = pre.querySelector("code");
    const language = /(?:^|\s)language-([\w+#.-]+)/.exec(code?.className ?? "")?.[1];
    const box = document.createElement("div");
    box.className = "md-code";
    const bar = document.createElement("div");
    bar.className = "md-code-bar";
    const label = document.createElement("span");
    label.textContent = language ?? "code";
    const copy = document.createElement("button");
    copy.type = "button";
    copy.className = "md-copy";
    copy.textContent = "Copy";
    copy.setAttribute("aria-label", `Copy ${language ?? ""} code`.replace("  ", " "));
    bar.append(label, copy);
    pre.tabIndex = 0;
    pre.replaceWith(box);
    box.append(bar, pre);
  }
  return fragment;
}

const drawn = new WeakMap(); // element -> the text it shows, so an unchanged part is not redrawn

/** Draw `text` as markdown into `node`, unless it already shows exactly that text. */
export function renderMarkdown(node, text) {
  if (drawn.get(node) === text) return;
  drawn.set(node, text);
  node.replaceChildren(markdownFragment(text));
}

async function writeClipboard(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  // Plain http on another host: the old way, through a selected hidden textarea.
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.append(area);
  area.select();
  const ok = document.execCommand("copy");
  area.remove();
  if (!ok) throw new Error("copy refused");
}

/** One listener for every code block's Copy button under `root` (blocks are redrawn often). */
export function handleCopyButtons(root) {
  root.addEventListener("click", async (event) => {
    const button = event.target.closest?.(".md-copy");
    if (!button || !root.contains(button)) return;
    const code = button.closest(".md-code")?.querySelector("pre");
    if (!code) return;
    try {
      await writeClipboard(code.textContent);
      button.textContent = "Copied";
    } catch {
      button.textContent = "Copy failed";
    }
    setTimeout(() => {
      button.textContent = "Copy";
    }, 2000);
  });
}
