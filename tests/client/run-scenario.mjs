#!/usr/bin/env node
// Drives the real AI SDK browser client against a running server, as `useChat` would.
//
//   node run-scenario.mjs [version] ['<json spec>']      (or the spec on stdin)
//
// Naming the version first starts loading that package at once, before the spec arrives on
// stdin: a caller can start the process ahead of time (loading `ai` takes about half a second).
// A process whose stdin closes without a spec exits quietly.
//
// The spec: {
//   "version": "ai-5.0.0" | "ai-5" | "ai-latest",   the npm alias in package.json to load
//   "baseUrl": "http://127.0.0.1:8123", "api": "/api/chat", "chatId": "...",
//   "messages": [...],        the UIMessages the client holds before the action
//   "action": "send" | "edit" | "regenerate" | "continue" | "resume",
//   "text"?: "...",           send/edit: the user's text
//   "messageId"?: "...",      edit: the user message to replace; regenerate: the message to regenerate
//   "toolCallId"?, "output"?, continue: answer this client-side tool call with `output`
//   "toolOutputs"?: {name: output}, answer calls of these tools from `onToolCall` (any action)
//   "abortAfterChunks"?: N,   stop() (aborting the POST's fetch) once N chunks arrived
//   "body"?: {...}            extra body fields (DefaultChatTransport `body`), e.g. {"model": ...}
// }
//
// The action runs through the version's own `AbstractChat` (with a `ChatState` that mirrors
// @ai-sdk/react's), so the client's message-list logic, chunk validation and assembly are the
// real ones. Whenever client tools are answered, `sendAutomaticallyWhen:
// lastAssistantMessageIsCompleteWithToolCalls` re-posts, as the AI SDK docs recommend.
//
// Prints one JSON object on stdout: {status, chatStatus, messages, assembled, error?, chunks,
// requests}: `status` is the HTTP status of the last response, `chatStatus` the chat's status at
// the end ("ready", "error"...), `error` every error the chat reported, `messages` its list,
// `assembled` its last assistant message, `chunks` the chunks of the last response as the client
// validated them, `requests` every request made ({method, url, status, body, chunks}).
// While running, every chunk is also reported on stderr as a line `@@chunk <json>`, so a caller
// can act mid-stream (e.g. let a paused model go on once a resume has connected).

const VERSIONS = new Set(["ai-5.0.0", "ai-5", "ai-latest"]);
const SETTLE_TIMEOUT_MS = 30_000;

// The same state @ai-sdk/react keeps (ReactChatState), minus the change callbacks.
class MemoryChatState {
  constructor(messages) {
    this.status = "ready";
    this.error = undefined;
    this._messages = messages;
    this.pushMessage = (message) => {
      this._messages = this._messages.concat(message);
    };
    this.popMessage = () => {
      this._messages = this._messages.slice(0, -1);
    };
    this.replaceMessage = (index, message) => {
      this._messages = [...this._messages.slice(0, index), this.snapshot(message), ...this._messages.slice(index + 1)];
    };
    this.snapshot = (value) => structuredClone(value);
  }

  get messages() {
    return this._messages;
  }

  set messages(messages) {
    this._messages = [...messages];
  }
}

async function readStdin() {
  // Not readFileSync(0): blocking here would stall the package load started meanwhile.
  let raw = "";
  process.stdin.setEncoding("utf8");
  for await (const piece of process.stdin) raw += piece;
  return raw;
}

async function readSpec(preloaded) {
  const raw = (preloaded ? process.argv[3] : process.argv[2]) ?? (await readStdin());
  if (raw.trim() === "") return null;
  const spec = JSON.parse(raw);
  spec.version ??= preloaded;
  if (preloaded != null && spec.version !== preloaded) {
    throw new Error(`this process loaded ${preloaded}, the spec asks for ${spec.version}`);
  }
  if (!VERSIONS.has(spec.version)) {
    throw new Error(`version must be one of ${[...VERSIONS].join(", ")}, not ${JSON.stringify(spec.version)}`);
  }
  for (const key of ["baseUrl", "chatId", "action"]) {
    if (typeof spec[key] !== "string") throw new Error(`spec.${key} must be a string`);
  }
  return spec;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const preloaded = VERSIONS.has(process.argv[2]) ? process.argv[2] : undefined;
  const loading = preloaded == null ? undefined : import(preloaded);
  loading?.catch(() => {}); // a failed load is reported below, once awaited
  const spec = await readSpec(preloaded);
  if (spec == null) return null;
  const ai = await (loading ?? import(spec.version));
  const requests = [];
  let chat;

  // Records each request and its status; the chunks are added by the transport below.
  const recordingFetch = async (url, init = {}) => {
    const entry = {
      method: init.method ?? "GET",
      url: String(url).slice(spec.baseUrl.length),
      status: null,
      body: init.body == null ? undefined : JSON.parse(init.body),
      chunks: [],
    };
    requests.push(entry);
    const response = await fetch(url, init);
    entry.status = response.status;
    return response;
  };

  class RecordingTransport extends ai.DefaultChatTransport {
    processResponseStream(stream) {
      const entry = requests.at(-1);
      const abortAfter = entry.method === "POST" ? spec.abortAfterChunks : undefined;
      return super.processResponseStream(stream).pipeThrough(
        new TransformStream({
          transform(chunk, controller) {
            entry.chunks.push(chunk);
            process.stderr.write(`@@chunk ${JSON.stringify(chunk)}\n`);
            controller.enqueue(chunk);
            if (abortAfter != null && entry.chunks.length === abortAfter) {
              // The user leaves mid-stream: the POST's fetch is aborted (what `stop()` does).
              void chat.stop();
            }
          },
        }),
      );
    }
  }

  const toolOutputs = spec.toolOutputs ?? {};
  const answersTools = Object.keys(toolOutputs).length > 0 || spec.action === "continue";
  const errors = [];
  chat = new ai.AbstractChat({
    id: spec.chatId,
    state: new MemoryChatState(structuredClone(spec.messages ?? [])),
    transport: new RecordingTransport({
      api: spec.baseUrl + (spec.api ?? "/api/chat"),
      body: spec.body,
      fetch: recordingFetch,
    }),
    onError: (error) => errors.push(error.message),
    onToolCall: ({ toolCall }) => {
      if (Object.hasOwn(toolOutputs, toolCall.toolName)) {
        // Not awaited, as the docs say: awaiting inside onToolCall can deadlock the chat.
        void addToolOutput({ toolName: toolCall.toolName, toolCallId: toolCall.toolCallId, output: toolOutputs[toolCall.toolName] });
      }
    },
    sendAutomaticallyWhen: answersTools ? ai.lastAssistantMessageIsCompleteWithToolCalls : undefined,
  });

  // `addToolOutput` since 5.0.89; 5.0.0 only has `addToolResult` (kept later as an alias).
  function addToolOutput({ toolName, toolCallId, output }) {
    const add = chat.addToolOutput ?? chat.addToolResult;
    return add({ tool: toolName, toolCallId, output });
  }

  let thrown;
  try {
    switch (spec.action) {
      case "send":
        await chat.sendMessage({ text: spec.text });
        break;
      case "edit":
        await chat.sendMessage({ text: spec.text, messageId: spec.messageId });
        break;
      case "regenerate":
        await chat.regenerate(spec.messageId == null ? {} : { messageId: spec.messageId });
        break;
      case "continue": {
        const last = chat.messages.at(-1);
        const part = last?.parts.find((p) => p.toolCallId === spec.toolCallId);
        if (part == null) throw new Error(`the last message has no tool call ${spec.toolCallId}`);
        const toolName = part.type === "dynamic-tool" ? part.toolName : part.type.slice("tool-".length);
        const before = requests.length;
        await addToolOutput({ toolName, toolCallId: spec.toolCallId, output: spec.output });
        // The automatic re-post is not awaited by addToolOutput: wait for it to start.
        const deadline = Date.now() + SETTLE_TIMEOUT_MS;
        while (requests.length === before && Date.now() < deadline) await sleep(5);
        if (requests.length === before) throw new Error("the client did not re-post after the tool output");
        break;
      }
      case "resume":
        await chat.resumeStream();
        break;
      default:
        throw new Error(`unknown action ${JSON.stringify(spec.action)}`);
    }
    if (answersTools) {
      // An automatic re-post may still be running: wait until the chat is idle. (Only then: on
      // ai@5.0.0 a 204 resume leaves the status at "submitted" for good.)
      const deadline = Date.now() + SETTLE_TIMEOUT_MS;
      while ((chat.status === "submitted" || chat.status === "streaming") && Date.now() < deadline) await sleep(5);
      if (chat.status === "submitted" || chat.status === "streaming") throw new Error(`the chat is still ${chat.status}`);
    }
  } catch (error) {
    thrown = error;
  }

  const messages = chat.messages;
  const result = {
    status: requests.at(-1)?.status ?? null,
    chatStatus: chat.status,
    messages,
    assembled: messages.findLast((m) => m.role === "assistant") ?? null,
    chunks: requests.at(-1)?.chunks ?? [],
    requests,
  };
  const problems = [...errors];
  if (chat.error != null && !problems.includes(chat.error.message)) problems.push(chat.error.message);
  if (thrown != null) problems.push(String(thrown?.stack ?? thrown));
  if (problems.length > 0) result.error = problems.join("\n");
  return result;
}

main().then(
  (result) => (result == null ? process.exit(0) : process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0))),
  (error) => {
    process.stderr.write(`${error?.stack ?? error}\n`);
    process.exit(2);
  },
);
