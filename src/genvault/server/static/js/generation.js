// The generation page: while the record is pending or streaming, follow its UI message stream
// (GET /api/generations/{id}/stream replays from the first chunk, then goes live), then read the
// finished record (GET /api/generations/{id}) and refresh the metadata.

import { MessageAssembler, readSSE, renderParts } from "./uimessage.js";

const page = JSON.parse(document.getElementById("page-data").textContent);
const recordPath = `/api/generations/${encodeURIComponent(page.id)}`;
const output = document.getElementById("output");
const errorBox = document.getElementById("error");
const cancelButton = document.getElementById("cancel");

// The same formats as the server's Jinja filters (routes/pages.py).
const dash = "—";
const time = (iso) => (iso ? `${new Date(iso).toISOString().slice(0, 19).replace("T", " ")} UTC` : dash);
const num = (n) => (n === null || n === undefined ? dash : n.toLocaleString("en-US"));
const seconds = (a, b) => (a && b ? `${((new Date(b) - new Date(a)) / 1000).toFixed(2)} s` : dash);

/** Exact dollars from integer nano-USD, as `fmt_usd`: no floating point on money. */
function usd(nano) {
  if (nano === null || nano === undefined) return "unknown";
  const digits = String(nano).padStart(10, "0");
  const cents = digits.slice(-9).replace(/0+$/, "").padEnd(2, "0");
  return `$${digits.slice(0, -9)}.${cents}`;
}

function setField(name, value) {
  for (const node of document.querySelectorAll(`[data-field="${name}"]`)) {
    node.textContent = value;
    if (node.classList.contains("badge")) node.className = `badge status-${value}`;
  }
}

function fill(record) {
  const u = record.usage ?? {};
  const fields = {
    status: record.status,
    provider: record.provider,
    input_tokens: num(u.input_tokens),
    output_tokens: num(u.output_tokens),
    cached_input_tokens: num(u.cached_input_tokens),
    reasoning_tokens: num(u.reasoning_tokens),
    cost_usd: usd(record.cost_nano_usd),
    created_at: time(record.created_at),
    first_token_at: time(record.first_token_at),
    finished_at: time(record.finished_at),
    ttft: seconds(record.created_at, record.first_token_at),
    duration: seconds(record.created_at, record.finished_at),
    finish_reason: record.finish_reason ?? dash,
    error: record.error ?? dash,
  };
  for (const [name, value] of Object.entries(fields)) setField(name, value);
  errorBox.textContent = record.error ?? "";
  errorBox.hidden = !record.error;
  const final = !["pending", "streaming"].includes(record.status);
  cancelButton.hidden = final;
  return final;
}

async function refresh() {
  const response = await fetch(recordPath);
  return response.ok ? fill(await response.json()) : true;
}

async function follow() {
  const response = await fetch(`${recordPath}/stream`);
  if (!response.ok) return;
  const assembler = new MessageAssembler();
  let started = false;
  let frame = 0;
  const draw = () => {
    frame = 0;
    renderParts(assembler.message.parts, output);
  };
  output.classList.add("live");
  try {
    for await (const chunk of readSSE(response)) {
      if (!started) {
        output.replaceChildren(); // the replay starts at the first chunk: rebuild from nothing
        started = true;
      }
      assembler.feed(chunk);
      if (chunk.type === "text-delta") setField("status", "streaming");
      if (!frame) frame = requestAnimationFrame(draw);
    }
  } finally {
    if (frame) cancelAnimationFrame(frame);
    if (started) draw();
    output.classList.remove("live");
  }
  // The stream ends before the record's last write may be visible: poll briefly until final.
  for (let i = 0; i < 20 && !(await refresh()); i++) await new Promise((r) => setTimeout(r, 250));
}

cancelButton.addEventListener("click", async () => {
  cancelButton.disabled = true;
  const response = await fetch(`${recordPath}/cancel`, { method: "POST" });
  if (response.ok) fill(await response.json());
  cancelButton.disabled = false;
});

if (!page.final && output) follow(); // an embedding record has no text output to follow
