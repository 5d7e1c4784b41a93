// One AI SDK Core call (generateText or streamText) through @ai-sdk/openai or @ai-sdk/anthropic
// pointed at genvault's /v1 gateway; prints what the SDK returned as JSON on stdout.
//
//   node tests/client/gateway-scenario.mjs '{"baseUrl":"http://127.0.0.1:8000","api":"responses","call":"stream","model":"offline/test-model","prompt":"Hi"}'
//
// api: "chat" (createOpenAI(...).chat), "responses" (createOpenAI(...)(model), the default) or
// "anthropic" (createAnthropic(...)); call: "generate" or "stream"; tool: optional tool name
// offered to the model (no execute: the call ends at the tool call). call "embed": embedMany
// with createOpenAI(...).embeddingModel(model) over `values`.
import { embedMany, generateText, streamText, tool, jsonSchema } from "ai-latest";
import { createOpenAI } from "@ai-sdk/openai";
import { createAnthropic } from "@ai-sdk/anthropic";

const args = JSON.parse(process.argv[2]);
const apiKey = args.apiKey ?? "unused";
let model;
if (args.api === "anthropic") {
  model = createAnthropic({ baseURL: `${args.baseUrl}/v1`, apiKey })(args.model);
} else {
  const openai = createOpenAI({ baseURL: `${args.baseUrl}/v1`, apiKey });
  model = args.api === "chat" ? openai.chat(args.model) : openai(args.model);
}
const tools = args.tool
  ? { [args.tool]: tool({ description: "a tool", inputSchema: jsonSchema({ type: "object", properties: { city: { type: "string" } } }) }) }
  : undefined;
const options = { model, prompt: args.prompt, tools, maxRetries: 0, providerOptions: { openai: { store: false } } };
const errors = [];
let result;
if (args.call === "embed") {
  const openai = createOpenAI({ baseURL: `${args.baseUrl}/v1`, apiKey });
  const out = await embedMany({ model: openai.embeddingModel(args.model), values: args.values, maxRetries: 0 });
  result = { embeddings: out.embeddings, usage: out.usage, headers: out.responses?.[0]?.headers ?? {} };
} else if (args.call === "stream") {
  const stream = streamText({ ...options, onError: ({ error }) => errors.push(String(error?.message ?? error)) });
  const parts = [];
  for await (const part of stream.fullStream) parts.push(part.type);
  result = {
    text: await stream.text,
    finishReason: await stream.finishReason,
    usage: await stream.usage,
    toolCalls: (await stream.toolCalls).map((c) => ({ toolName: c.toolName, input: c.input })),
    reasoning: await stream.reasoningText,
    headers: (await stream.response).headers ?? {},
    parts,
  };
} else {
  try {
    const out = await generateText(options);
    result = {
      text: out.text,
      finishReason: out.finishReason,
      usage: out.usage,
      toolCalls: out.toolCalls.map((c) => ({ toolName: c.toolName, input: c.input })),
      reasoning: out.reasoningText,
      headers: out.response.headers ?? {},
    };
  } catch (error) {
    errors.push(String(error?.message ?? error));
    result = { name: error?.constructor?.name, statusCode: error?.statusCode };
  }
}
console.log(JSON.stringify({ ...result, errors }));
