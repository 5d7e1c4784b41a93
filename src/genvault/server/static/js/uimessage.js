// The browser half of the AI SDK v5 UI message stream (docs/aisdk-v5-protocol.md §2):
// read the SSE body, fold chunks into a UIMessage the way useChat does (§2.5), and draw it.
//
// Safety rule for this file and its users: model output reaches the DOM only through
// textContent, attribute setters and checked URLs, never through innerHTML; the one exception,
// an assistant's text drawn as markdown, goes through markdown.js's sanitizer.

import { renderMarkdown } from "./markdown.js";
import { renderFooter } from "./message_footer.js";

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** A 16-character alphanumeric id, like the AI SDK's `generateId()`. */
export function generateId(size = 16) {
  const bytes = crypto.getRandomValues(new Uint8Array(size));
  return Array.from(bytes, (b) => ALPHABET[b % ALPHABET.length]).join("");
}

/**
 * Yields each chunk object of an SSE response body (§2.1): `data:` lines joined per event,
 * comments and other fields ignored, `[DONE]` skipped.
 */
export async function* readSSE(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    for (;;) {
      const match = /\r\n|\r|\n/.exec(buffer);
      // A lone "\r" at the end may be half of a "\r\n" still in flight.
      if (!match || (match[0] === "\r" && match.index === buffer.length - 1)) break;
      const line = buffer.slice(0, match.index);
      buffer = buffer.slice(match.index + match[0].length);
      if (line === "") {
        const text = data.join("\n");
        const had = data.length > 0;
        data = [];
        if (had && text !== "[DONE]") yield JSON.parse(text);
      } else if (line.startsWith("data:")) {
        data.push(line.slice(line.startsWith("data: ") ? 6 : 5));
      }
    }
  }
}

/** Best-effort parse of streamed, unfinished tool input JSON: close open strings and brackets. */
export function parsePartialJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    // fall through to the repair
  }
  const closers = [];
  let inString = false;
  let escaped = false;
  for (const ch of text) {
    if (inString) {
      if (escaped) escaped = false;
      else if (ch === "\\") escaped = true;
      else if (ch === '"') inString = false;
    } else if (ch === '"') inString = true;
    else if (ch === "{") closers.push("}");
    else if (ch === "[") closers.push("]");
    else if (ch === "}" || ch === "]") closers.pop();
  }
  let repaired = escaped ? text.slice(0, -1) : text;
  if (inString) repaired += '"';
  // A dangling `,` or `:` (or a key without its value) cannot be closed; drop it.
  repaired = repaired.replace(/(,\s*|,?\s*"(?:[^"\\]|\\.)*"\s*:\s*)$/, "");
  try {
    return JSON.parse(repaired + closers.reverse().join(""));
  } catch {
    return undefined;
  }
}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** §2.5.6: objects merge recursively, everything else is replaced. */
function mergeMetadata(target, source) {
  if (!isObject(target) || !isObject(source)) return source;
  const out = { ...target };
  for (const [key, value] of Object.entries(source)) {
    if (value === undefined || key === "__proto__" || key === "constructor" || key === "prototype") continue;
    out[key] = isObject(value) && isObject(out[key]) ? mergeMetadata(out[key], value) : value;
  }
  return out;
}

/**
 * Folds UI message stream chunks into one assistant UIMessage (`processUIMessageStream`, §2.5).
 * `message` is where to start; the chat page always starts a new message, as useChat does
 * when the last message is the user's and for every resume (§3.5).
 */
export class MessageAssembler {
  constructor(message) {
    this.message = message ?? { id: generateId(), role: "assistant", parts: [] };
    this.activeText = new Map();
    this.activeReasoning = new Map();
    this.toolInputText = new Map();
    this.finishReason = undefined;
    this.errorText = undefined;
    this.aborted = false;
    this.finished = false;
  }

  stepParts() {
    const parts = this.message.parts;
    for (let i = parts.length - 1; i >= 0; i--) {
      if (parts[i].type === "step-start") return parts.slice(i + 1);
    }
    return parts;
  }

  findTool(toolCallId, wholeMessage) {
    const match = (p) => p.toolCallId === toolCallId && (p.type === "dynamic-tool" || p.type.startsWith("tool-"));
    const inStep = this.stepParts().find(match);
    if (inStep || !wholeMessage) return inStep;
    return [...this.message.parts].reverse().find(match);
  }

  /** Create or update a tool part: the given fields replace state/input/output/errorText. */
  updateTool(chunk, fields) {
    let part = this.findTool(chunk.toolCallId, false);
    if (!part) {
      part = chunk.dynamic
        ? { type: "dynamic-tool", toolName: chunk.toolName, toolCallId: chunk.toolCallId }
        : { type: `tool-${chunk.toolName}`, toolCallId: chunk.toolCallId };
      this.message.parts.push(part);
    }
    for (const key of ["state", "input", "output", "errorText", "rawInput", "preliminary"]) delete part[key];
    Object.assign(part, fields);
    if (chunk.providerExecuted !== undefined) part.providerExecuted = chunk.providerExecuted;
    if (chunk.providerMetadata !== undefined && fields.state === "input-available") {
      part.callProviderMetadata = chunk.providerMetadata;
    }
    return part;
  }

  outputTool(chunk, fields) {
    const part = this.findTool(chunk.toolCallId, true);
    if (!part) throw new Error("tool-output-error must be preceded by a tool-input-available");
    for (const key of ["state", "output", "errorText", "preliminary"]) delete part[key];
    Object.assign(part, fields);
    if (chunk.providerExecuted !== undefined) part.providerExecuted = chunk.providerExecuted;
  }

  streamed(registry, chunk) {
    const part = registry.get(chunk.id);
    if (!part) throw new Error(`${chunk.type} for unknown part ${chunk.id}`);
    if (chunk.providerMetadata !== undefined) part.providerMetadata = chunk.providerMetadata;
    return part;
  }

  feed(chunk) {
    const parts = this.message.parts;
    switch (chunk.type) {
      case "start":
        if (chunk.messageId !== undefined) this.message.id = chunk.messageId;
        this.metadata(chunk.messageMetadata);
        break;
      case "start-step":
        parts.push({ type: "step-start" });
        break;
      case "finish-step":
        this.activeText.clear();
        this.activeReasoning.clear();
        break;
      case "text-start":
      case "reasoning-start": {
        const reasoning = chunk.type === "reasoning-start";
        const part = { type: reasoning ? "reasoning" : "text", text: "", state: "streaming" };
        if (reasoning) part.id = chunk.id;
        if (chunk.providerMetadata !== undefined) part.providerMetadata = chunk.providerMetadata;
        parts.push(part);
        (reasoning ? this.activeReasoning : this.activeText).set(chunk.id, part);
        break;
      }
      case "text-delta":
        this.streamed(this.activeText, chunk).text += chunk.delta;
        break;
      case "reasoning-delta":
        this.streamed(this.activeReasoning, chunk).text += chunk.delta;
        break;
      case "text-end":
        this.streamed(this.activeText, chunk).state = "done";
        this.activeText.delete(chunk.id);
        break;
      case "reasoning-end":
        this.streamed(this.activeReasoning, chunk).state = "done";
        this.activeReasoning.delete(chunk.id);
        break;
      case "tool-input-start":
        this.toolInputText.set(chunk.toolCallId, "");
        this.updateTool(chunk, { state: "input-streaming" });
        break;
      case "tool-input-delta": {
        const text = (this.toolInputText.get(chunk.toolCallId) ?? "") + chunk.inputTextDelta;
        this.toolInputText.set(chunk.toolCallId, text);
        const part = this.findTool(chunk.toolCallId, false);
        if (part) {
          part.state = "input-streaming";
          part.input = parsePartialJson(text);
        }
        break;
      }
      case "tool-input-available":
        this.updateTool(chunk, { state: "input-available", input: chunk.input });
        break;
      case "tool-input-error":
        this.updateTool(
          chunk,
          chunk.dynamic
            ? { state: "output-error", input: chunk.input, errorText: chunk.errorText }
            : { state: "output-error", rawInput: chunk.input, errorText: chunk.errorText },
        );
        break;
      case "tool-output-available": {
        const fields = { state: "output-available", output: chunk.output };
        if (chunk.preliminary !== undefined) fields.preliminary = chunk.preliminary;
        this.outputTool(chunk, fields);
        break;
      }
      case "tool-output-error":
        this.outputTool(chunk, { state: "output-error", errorText: chunk.errorText });
        break;
      case "source-url":
      case "source-document": {
        const { type, sourceId, url, title, mediaType, filename, providerMetadata } = chunk;
        const part = { type, sourceId, url, title, mediaType, filename, providerMetadata };
        for (const key of Object.keys(part)) if (part[key] === undefined) delete part[key];
        parts.push(part);
        break;
      }
      case "file":
        parts.push({ type: "file", mediaType: chunk.mediaType, url: chunk.url });
        break;
      case "message-metadata":
        this.metadata(chunk.messageMetadata);
        break;
      case "finish":
        this.finished = true;
        this.finishReason = chunk.finishReason;
        this.metadata(chunk.messageMetadata);
        break;
      case "error":
        this.errorText = chunk.errorText;
        break;
      case "abort":
        this.aborted = true;
        break;
      default:
        if (typeof chunk.type === "string" && chunk.type.startsWith("data-")) this.data(chunk);
      // Unknown chunk types are ignored here; the AI SDK client would reject them.
    }
  }

  metadata(value) {
    if (value === undefined || value === null) return;
    this.message.metadata = this.message.metadata === undefined ? value : mergeMetadata(this.message.metadata, value);
  }

  data(chunk) {
    if (chunk.transient) return; // transient data never becomes a part (§2.5.5)
    if (chunk.id !== undefined) {
      const existing = this.message.parts.find((p) => p.type === chunk.type && p.id === chunk.id);
      if (existing) {
        existing.data = chunk.data;
        return;
      }
    }
    this.message.parts.push({ ...chunk });
  }
}

// -- drawing ------------------------------------------------------------------------------------

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Only URLs that cannot run script in our origin: http(s), and data:/blob: for media. */
function safeUrl(url, allowInline) {
  try {
    const parsed = new URL(url, location.href);
    if (parsed.protocol === "http:" || parsed.protocol === "https:") return parsed.href;
    if (allowInline && (parsed.protocol === "data:" || parsed.protocol === "blob:")) return parsed.href;
  } catch {
    // not a URL at all
  }
  return null;
}

function json(value) {
  return value === undefined ? "" : JSON.stringify(value, null, 2);
}

function toolName(part) {
  return part.type === "dynamic-tool" ? part.toolName : part.type.slice("tool-".length);
}

// Each drawer builds a part's element once and refills it on every update, so an open
// <details> stays open while the part streams.
const drawers = {
  text: {
    make: () => el("div", "part part-text"),
    fill(node, part, options) {
      // A reply reads as markdown; what a person typed shows exactly as typed (see markdown.js).
      if (options.markdown) renderMarkdown(node, part.text);
      else node.textContent = part.text;
      node.classList.toggle("markdown", Boolean(options.markdown));
      node.classList.toggle("streaming", part.state === "streaming");
    },
  },
  reasoning: {
    make() {
      const node = el("details", "part part-reasoning");
      node.append(el("summary", "", "Reasoning"), el("div", "reasoning-text"));
      return node;
    },
    fill(node, part) {
      node.lastChild.textContent = part.text;
      node.firstChild.textContent = part.state === "streaming" ? "Reasoning…" : "Reasoning";
    },
  },
  tool: {
    make() {
      const node = el("details", "part part-tool");
      const summary = el("summary");
      summary.append(el("span", "tool-name"), el("span", "badge tool-state"));
      node.append(summary, el("pre", "tool-input"), el("pre", "tool-output"));
      return node;
    },
    fill(node, part) {
      node.querySelector(".tool-name").textContent = `Tool: ${toolName(part)}`;
      const state = node.querySelector(".tool-state");
      state.textContent = part.preliminary ? `${part.state} (preliminary)` : part.state;
      state.dataset.state = part.state;
      node.querySelector(".tool-input").textContent = json(part.input ?? part.rawInput);
      const output = node.querySelector(".tool-output");
      output.textContent = part.state === "output-error" ? part.errorText ?? "" : json(part.output);
      output.classList.toggle("error", part.state === "output-error");
      output.hidden = output.textContent === "";
    },
  },
  "source-url": {
    make: () => el("div", "part part-source"),
    fill(node, part) {
      const href = safeUrl(part.url, false);
      const link = el(href ? "a" : "span", "", part.title || part.url);
      if (href) {
        link.href = href;
        link.rel = "noopener noreferrer nofollow";
        link.target = "_blank";
      }
      node.replaceChildren(el("span", "muted", "Source: "), link);
    },
  },
  "source-document": {
    make: () => el("div", "part part-source"),
    fill(node, part) {
      node.textContent = `Document: ${part.title}${part.filename ? ` (${part.filename})` : ""}`;
    },
  },
  file: {
    make: () => el("div", "part part-file"),
    fill(node, part) {
      const href = safeUrl(part.url, true);
      if (node.dataset.url === part.url) return; // do not reload an image on every update
      node.dataset.url = part.url;
      if (href && part.mediaType.startsWith("image/")) {
        const img = el("img");
        img.src = href;
        img.alt = part.filename || part.mediaType;
        node.replaceChildren(img);
      } else if (href) {
        const link = el("a", "", `File: ${part.filename || part.mediaType}`);
        link.href = href;
        link.download = part.filename || "file";
        link.rel = "noopener noreferrer";
        node.replaceChildren(link);
      } else {
        node.textContent = `File: ${part.filename || part.mediaType}`;
      }
    },
  },
  data: {
    make() {
      const node = el("details", "part part-data");
      node.append(el("summary"), el("pre"));
      return node;
    },
    fill(node, part) {
      node.firstChild.textContent = part.type;
      node.lastChild.textContent = json(part.data);
    },
  },
  step: {
    make: () => el("hr", "part part-step"),
    fill() {},
  },
};

function drawerKind(part) {
  if (part.type === "text" || part.type === "reasoning" || part.type === "file") return part.type;
  if (part.type === "dynamic-tool" || part.type.startsWith("tool-")) return "tool";
  if (part.type.startsWith("data-")) return "data";
  if (part.type === "step-start") return "step";
  return drawers[part.type] ? part.type : null;
}

/**
 * Draw `parts` into `container`, reusing the element of each part that is still the same kind.
 * `options.markdown`: text parts are markdown (an assistant's reply), else plain text.
 */
export function renderParts(parts, container, options = {}) {
  const existing = [...container.children];
  const visible = parts.filter((part, i) => drawerKind(part) && !(part.type === "step-start" && i === 0));
  visible.forEach((part, i) => {
    const kind = drawerKind(part);
    let node = existing[i];
    if (!node || node.dataset.kind !== kind) {
      const fresh = drawers[kind].make();
      fresh.dataset.kind = kind;
      if (node) node.replaceWith(fresh);
      else container.append(fresh);
      node = fresh;
    }
    drawers[kind].fill(node, part, options);
  });
  for (const extra of existing.slice(visible.length)) extra.remove();
}

/**
 * An <article> for a whole message; call again with the same element to update it.
 * `options.recordLinks: false` leaves the links to the generation record out of the footer.
 */
export function renderMessage(message, node, options = {}) {
  const article = node ?? el("article");
  article.className = `msg msg-${message.role}`;
  article.dataset.id = message.id;
  if (!article.firstChild) article.append(el("div", "msg-role"), el("div", "msg-body"));
  article.firstChild.textContent = message.role === "user" ? "You" : message.role;
  renderParts(message.parts, article.querySelector(":scope > .msg-body"), { markdown: message.role === "assistant" });
  renderEnding(message, article);
  renderFooter(message, article, options);
  return article;
}

const ENDINGS = { error: "failed", cancelled: "stopped", interrupted: "interrupted" };

/** How a reply that did not complete ended (its `genvault.status` metadata), under the reply. */
function renderEnding(message, article) {
  const status = message.metadata?.genvault?.status;
  let note = article.querySelector(":scope > .msg-ending");
  for (const name of Object.keys(ENDINGS)) article.classList.toggle(`msg-ended-${name}`, status === name);
  if (!ENDINGS[status]) {
    note?.remove();
    return;
  }
  if (!note) {
    note = el("p", "msg-ending small");
    note.setAttribute("role", "note");
    article.querySelector(":scope > .msg-body").after(note);
  }
  note.dataset.status = status;
  const error = message.metadata.genvault.error;
  note.textContent = `Reply ${ENDINGS[status]}${error ? `: ${error}` : ""}`;
}
