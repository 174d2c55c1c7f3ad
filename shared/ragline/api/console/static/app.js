// The ragline console (issue 19): a page that calls the public HTTP API with the user's key.
// Every value from the API is untrusted text: it reaches the page through textContent and
// DOM APIs only (h() below), never as markup. No inline script or style anywhere.

const KEY = "ragline.apiKey";
const state = { config: { api: {} }, rate: null, timers: [] };

// --- DOM ----------------------------------------------------------------------------------

/** h("tag.class", {attr: v, on: {click: fn}}, ...children): strings become text nodes. */
function h(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split(".");
  const el = document.createElement(tag);
  if (classes.length) el.className = classes.join(" ");
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "on") {
      for (const [event, fn] of Object.entries(value)) el.addEventListener(event, fn);
    } else if (name === "text") {
      el.textContent = value;
    } else if (value === true) {
      el.setAttribute(name, "");
    } else if (value !== false && value !== null && value !== undefined) {
      el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) el.setAttribute(name, String(value));
  if (text !== undefined) el.textContent = text;
  return el;
}

const view = () => document.getElementById("view");
const fmtTime = (t) => (t ? new Date(t).toLocaleString() : "–");
const short = (id) => (id ? String(id).slice(0, 8) : "–");
const statusBadge = (st) => h(`span.status.${String(st).replace(/[^a-z]/g, "")}`, {}, st);
let uid = 0;
const nextId = (prefix) => `${prefix}-${++uid}`;

function field(label, control, grow) {
  if (!control.id) control.id = nextId("f");
  return h(grow ? "div.field.grow" : "div.field", {}, h("label", { for: control.id }, label), control);
}

function select(name, options, value) {
  return h("select", { name }, options.map(([v, label]) =>
    h("option", { value: v, selected: v === value }, label)));
}

function notice(message, kind) {
  const box = document.getElementById("notice");
  box.className = kind || "";
  box.replaceChildren(...(message ? [message] : []));
}

function showError(err) {
  if (err instanceof ApiError) {
    notice(`${err.status} ${err.code}: ${err.message}` + (err.requestId ? ` (request ${err.requestId})` : ""));
  } else {
    notice(String(err && err.message ? err.message : err));
  }
}

// --- API ----------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code || "http_error";
    this.requestId = err.request_id || null;
    this.details = err.details;
  }
}

function randomId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** One call to an API function; the same error model as the API (ApiError). */
async function api(fn, path, opts = {}) {
  const base = state.config.api[fn];
  if (!base) throw new Error(`the console has no URL for the ${fn} function (config.json)`);
  const key = sessionStorage.getItem(KEY);
  if (!key) throw new Error("paste an API key first");
  const url = new URL(path || "", base);
  for (const [k, v] of Object.entries(opts.query || {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  }
  const method = opts.method || "GET";
  const headers = { Authorization: `Bearer ${key}` };
  let body;
  if (opts.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(opts.json);
  } else if (opts.raw !== undefined) {
    headers["Content-Type"] = opts.contentType;
    body = opts.raw;
  }
  if (method !== "GET") headers["Idempotency-Key"] = randomId();
  let resp;
  for (let attempt = 1; ; attempt++) {
    resp = await fetch(url, {
      method, headers, body, cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer",
    });
    // A busy instance (429 overloaded) or a rate limit says when to come back: a GET, or a
    // write under its Idempotency-Key, is safe to send again (three tries, 5 s at most).
    const wait = +(resp.headers.get("Retry-After") || 0);
    if (resp.status !== 429 || attempt >= 3 || !(wait > 0 && wait <= 5)) break;
    await new Promise((done) => setTimeout(done, wait * 1000));
  }
  const limit = resp.headers.get("RateLimit-Limit");
  if (limit) {
    state.rate = { fn, limit: +limit, remaining: +resp.headers.get("RateLimit-Remaining"),
      reset: +resp.headers.get("RateLimit-Reset") };
  }
  const text = await resp.text();
  let data = {};
  try { data = text ? JSON.parse(text) : {}; } catch { data = {}; }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

async function allPages(fn, field, query, maxPages) {
  const items = [];
  let cursor = null;
  for (let i = 0; i < maxPages; i++) {
    const page = await api(fn, "", { query: { ...query, limit: 200, cursor } });
    items.push(...page[field]);
    cursor = page.next_cursor;
    if (!cursor) return { items, complete: true };
  }
  return { items, complete: false };
}

// --- charts (plain SVG) ------------------------------------------------------------------

function barChart(title, rows, opts = {}) {
  const width = 360, barH = 18, gap = 6, labelW = 110;
  const height = Math.max(1, rows.length) * (barH + gap) + 4;
  const max = Math.max(1, ...rows.map((r) => r.value));
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, width: "100%",
    role: "img", "aria-label": `${title}: ` + rows.map((r) => `${r.label} ${r.value}`).join(", ") });
  rows.forEach((r, i) => {
    const y = i * (barH + gap) + 2;
    const w = Math.round(((width - labelW - 40) * r.value) / max);
    svg.append(s("text", { x: 0, y: y + barH - 5 }, r.label));
    svg.append(s("rect", { class: `bar ${r.cls || ""}`, x: labelW, y, width: Math.max(w, 1), height: barH, rx: 3 }));
    svg.append(s("text", { x: labelW + w + 4, y: y + barH - 5 }, String(r.value)));
  });
  if (!rows.length) svg.append(s("text", { x: 0, y: 14 }, opts.empty || "nothing yet"));
  return h("figure", {}, h("figcaption", {}, title), svg);
}

function columnChart(title, rows) {
  const width = 360, height = 140, base = 120;
  const max = Math.max(1, ...rows.map((r) => r.value));
  const colW = rows.length ? Math.min(28, (width - 10) / rows.length - 4) : 0;
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, width: "100%",
    role: "img", "aria-label": `${title}: ` + rows.map((r) => `${r.label} ${r.value}`).join(", ") });
  rows.forEach((r, i) => {
    const x = 5 + i * (colW + 4);
    const hgt = Math.round(((base - 16) * r.value) / max);
    svg.append(s("rect", { class: "bar", x, y: base - hgt, width: colW, height: Math.max(hgt, 1), rx: 2 }));
    svg.append(s("text", { x, y: base - hgt - 3 }, String(r.value)));
    svg.append(s("text", { x, y: base + 13 }, r.label));
  });
  if (!rows.length) svg.append(s("text", { x: 0, y: 14 }, "nothing yet"));
  return h("figure", {}, h("figcaption", {}, title), svg);
}

function countBy(items, keyFn) {
  const counts = new Map();
  for (const item of items) {
    const k = keyFn(item);
    counts.set(k, (counts.get(k) || 0) + 1);
  }
  return counts;
}

function perDay(items, days) {
  const counts = countBy(items, (x) => String(x.created_at).slice(0, 10));
  const rows = [];
  for (let i = days - 1; i >= 0; i--) {
    const d = new Date(Date.now() - i * 86400000).toISOString().slice(0, 10);
    rows.push({ label: d.slice(5), value: counts.get(d) || 0 });
  }
  return rows;
}

// --- pages --------------------------------------------------------------------------------

const DOC_STATUSES = ["pending", "parsing", "chunking", "embedding", "ready", "failed"];

async function overviewPage(root) {
  root.append(h("h1", {}, "Overview"));
  const [docs, runs] = await Promise.all([
    allPages("documents", "documents", {}, 5),
    allPages("runs", "runs", {}, 2),
  ]);
  const byStatus = countBy(docs.items, (d) => d.status);
  const chunks = docs.items.reduce((n, d) => n + (d.chunk_count || 0), 0);
  const failed = docs.items.filter((d) => d.status === "failed");
  const more = docs.complete ? "" : "+";
  root.append(h("div.cards", {},
    h("div.card", {}, h("div.big", {}, `${docs.items.length}${more}`), "documents"),
    h("div.card", {}, h("div.big", {}, String(byStatus.get("ready") || 0)), "ready"),
    h("div.card", {}, h("div.big", {}, String(chunks)), "chunks"),
    h("div.card", {}, h("div.big", {}, String(failed.length)), "failed"),
    h("div.card", {}, h("div.big", {}, `${runs.items.length}${runs.complete ? "" : "+"}`), "recent runs"),
  ));
  const statusRows = DOC_STATUSES.filter((st) => byStatus.get(st))
    .map((st) => ({ label: st, value: byStatus.get(st), cls: st }));
  const runRows = [...countBy(runs.items, (r) => `${r.kind} ${r.status}`)]
    .sort((a, b) => b[1] - a[1]).slice(0, 8).map(([label, value]) => ({ label, value }));
  const finished = runs.items.filter((r) => r.kind === "ingest" && r.finished_at);
  root.append(h("h2", {}, "Charts"), h("div.charts", {},
    barChart("Documents by status", statusRows),
    columnChart("Documents added per day (14 days)", perDay(docs.items, 14)),
    columnChart("Ingest runs finished per day (14 days)",
      perDay(finished.map((r) => ({ created_at: r.finished_at })), 14)),
    barChart("Runs by kind and status", runRows),
  ));
  root.append(h("h2", {}, "Rate limit"));
  if (state.rate) {
    const used = state.rate.limit - state.rate.remaining;
    const meter = h("span");
    meter.style.width = `${Math.min(100, (100 * used) / Math.max(1, state.rate.limit))}%`;
    root.append(h("div.row", {},
      h("div.meter", { role: "img", "aria-label": `${used} of ${state.rate.limit} used` }, meter),
      h("span", {}, `${used} of ${state.rate.limit} requests this minute (last call: ${state.rate.fn})`)));
  } else {
    root.append(h("p.muted", {}, "no rate-limit headers seen yet"));
  }
  root.append(h("h2", {}, "Failures"));
  if (!failed.length) root.append(h("p.muted", {}, "No failed documents."));
  else root.append(failureTable(failed));
}

function failureTable(failed) {
  return h("table", {}, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Document"),
    h("th", { scope: "col" }, "Reason"), h("th", { scope: "col" }, "Error"), h("th", { scope: "col" }, "Updated"))),
  h("tbody", {}, failed.map((d) => h("tr", {}, h("td", {}, d.title), h("td", {}, d.failure_reason || "–"),
    h("td", {}, d.error || "–"), h("td", {}, fmtTime(d.updated_at))))));
}

const FILE_TYPES = {
  pdf: "application/pdf", html: "text/html", htm: "text/html", md: "text/markdown",
  markdown: "text/markdown", txt: "text/plain", text: "text/plain",
  docx: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
};

async function documentsPage(root, params) {
  const status = params.get("status") || "";
  root.append(h("h1", {}, "Documents"));
  const input = h("input", { type: "file", multiple: true, accept: Object.keys(FILE_TYPES).map((e) => `.${e}`).join(",") });
  const uploads = h("ul", { "aria-live": "polite", class: "uploads" });
  const drop = h("div.drop", {},
    h("p", {}, "Drop PDF, HTML, DOCX, Markdown or text files here, or "),
    field("Choose files to ingest", input), uploads);
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault(); drop.classList.remove("over");
    ingestFiles([...e.dataTransfer.files], uploads);
  });
  input.addEventListener("change", () => ingestFiles([...input.files], uploads));
  const statusSel = select("status", [["", "any"], ...DOC_STATUSES.filter((x) => x !== "parsing").map((x) => [x, x])], status);
  statusSel.addEventListener("change", () => go(`#/documents${statusSel.value ? `?status=${statusSel.value}` : ""}`));
  const refresh = h("button", { type: "button", on: { click: () => render() } }, "Refresh");
  root.append(drop, h("div.row", {}, field("Status", statusSel), refresh));
  const list = await api("documents", "", { query: { status, limit: 100 } });
  const detail = h("section", { "aria-live": "polite", id: "doc-detail" });
  const rows = new Map();
  const tbody = h("tbody", {}, list.documents.map((d) => {
    const row = docRow(d, detail);
    rows.set(d.id, row);
    return row.tr;
  }));
  if (!list.documents.length) root.append(h("p.muted", {}, "No documents yet: choose or drop a file above."));
  else {
    root.append(h("table", { "aria-label": "Documents" }, h("thead", {}, h("tr", {},
      ["Title", "Kind", "Status", "Chunks", "Failure", "Created", "Actions"].map((c) => h("th", { scope: "col" }, c)))), tbody));
    if (list.next_cursor) root.append(h("p.muted", {}, "Showing the newest 100."));
  }
  root.append(detail);
  // Live progress: poll the documents still in the pipeline until they are ready or failed.
  const poll = async () => {
    const busy = [...rows.values()].filter((r) => !["ready", "failed"].includes(r.doc.status));
    for (const r of busy) {
      try { r.update(await api("documents", r.doc.id)); } catch (err) { showError(err); return; }
    }
  };
  state.timers.push(setInterval(poll, 1500));
}

function docRow(doc, detail) {
  const row = { doc, tr: h("tr", { "data-id": doc.id }) };
  row.update = (d) => {
    row.doc = { ...row.doc, ...d };
    const x = row.doc;
    let chunks = x.chunk_count ?? "–";
    if (x.chunks && !["ready", "failed"].includes(x.status)) {
      chunks = h("progress", { max: Math.max(1, x.chunks.total), value: x.chunks.embedded,
        "aria-label": `${x.chunks.embedded} of ${x.chunks.total} chunks embedded` });
    } else if (x.chunks) chunks = String(x.chunks.total);
    const actions = h("td", {},
      h("button.link", { type: "button", on: { click: () => showDoc(x.id, detail) } }, "Details"),
      x.status === "failed" ? h("button.link", { type: "button", on: { click: () => retryDoc(x.id, row) } }, "Retry") : null,
      h("button.link.danger", { type: "button", "aria-label": `Delete ${x.title}`, on: { click: () => deleteDoc(x, row) } }, "Delete"));
    row.tr.replaceChildren(h("td", {}, x.title), h("td", {}, x.kind), h("td", {}, statusBadge(x.status)),
      h("td.num", {}, chunks), h("td", {}, x.failure_reason ? `${x.failure_reason}: ${x.error || ""}` : "–"),
      h("td", {}, fmtTime(x.created_at)), actions);
  };
  row.update({});
  return row;
}

async function showDoc(id, detail) {
  try {
    const d = await api("documents", id);
    detail.replaceChildren(h("h2", {}, d.title), h("dl.facts", {},
      ...facts({ id: d.id, status: d.status, kind: d.kind, source: d.source_uri, "content hash": d.content_hash,
        chunks: d.chunks ? `${d.chunks.embedded} embedded of ${d.chunks.total}` : "–",
        failure: d.failure_reason, error: d.error, created: fmtTime(d.created_at), updated: fmtTime(d.updated_at) })),
    h("h2", {}, "Timings"), h("pre", {}, JSON.stringify(d.timings || {}, null, 2)),
    d.source ? h("pre", {}, JSON.stringify(d.source, null, 2)) : null,
    h("h2", {}, "Metadata"), h("pre", {}, JSON.stringify(d.metadata || {}, null, 2)));
    detail.querySelector("h2").setAttribute("tabindex", "-1");
    detail.querySelector("h2").focus();
  } catch (err) { showError(err); }
}

function facts(obj) {
  return Object.entries(obj).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v === null || v === undefined || v === "" ? "–" : String(v))]);
}

async function retryDoc(id, row) {
  try { const r = await api("documents", `${id}/retry`, { method: "POST" }); row.update({ status: r.status, failure_reason: null, error: null }); notice(`retrying from ${r.from_stage}`, "info"); }
  catch (err) { showError(err); }
}

async function deleteDoc(doc, row) {
  if (!confirm(`Delete “${doc.title}”?`)) return;
  try { await api("documents", doc.id, { method: "DELETE" }); row.tr.remove(); notice("deleted", "info"); }
  catch (err) { showError(err); }
}

async function ingestFiles(files, list) {
  for (const file of files) {
    const ext = (file.name.split(".").pop() || "").toLowerCase();
    const type = FILE_TYPES[ext] || file.type;
    const item = h("li", {}, `${file.name}: sending…`);
    list.append(item);
    try {
      const r = await api("ingest", "", { method: "POST", raw: file, contentType: type,
        query: { title: file.name, source_uri: `console:${file.name}` } });
      item.textContent = `${file.name}: ${r.created ? "accepted" : "already there"} (${r.status})`;
    } catch (err) {
      item.textContent = `${file.name}: ${err instanceof ApiError ? `${err.status} ${err.code}: ${err.message}` : err.message}`;
    }
  }
  setTimeout(render, 300);
}

function searchForm(onSubmit, params) {
  const query = h("input", { name: "query", type: "search", required: true, value: params.get("q") || "" });
  const mode = select("mode", [["hybrid", "hybrid"], ["vector", "vector"], ["text", "text"]], "hybrid");
  const topK = h("input", { name: "top_k", type: "number", min: 1, max: 100, value: 5 });
  const kind = h("input", { name: "kind", placeholder: "any" });
  const metadata = h("input", { name: "metadata", placeholder: '{"team": "docs"}' });
  const compare = h("input", { type: "checkbox", name: "compare" });
  const modeB = select("mode_b", [["vector", "vector"], ["text", "text"], ["hybrid", "hybrid"]], "vector");
  const form = h("form.row", { role: "search" },
    field("Query", query, true), field("Mode", mode), field("Top k", topK), field("Kind filter", kind),
    field("Metadata filter (JSON)", metadata),
    h("div.field", {}, h("label", {}, compare, " Compare"), null), field("Second mode", modeB),
    h("button.primary", { type: "submit" }, "Search"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    let meta = null;
    if (metadata.value.trim()) {
      try { meta = JSON.parse(metadata.value); } catch { notice("the metadata filter is not JSON"); return; }
    }
    const filters = kind.value || meta ? { kind: kind.value || null, metadata: meta } : null;
    onSubmit({ query: query.value, top_k: +topK.value || 5, filters }, mode.value, compare.checked ? modeB.value : null);
  });
  return form;
}

function hitList(hits) {
  if (!hits.length) return h("p.muted", {}, "No results.");
  return h("ol.hits", {}, hits.map((x, i) => h("li.hit", {},
    h("div", {}, h("strong", {}, `${i + 1}. ${x.title}`), x.section_label ? h("span.muted", {}, ` — ${x.section_label}`) : null),
    h("div.meta", {}, h("span", {}, `score ${Number(x.score).toFixed(4)}`),
      h("span", {}, `vector rank ${x.vector_rank ?? "–"}`), h("span", {}, `text rank ${x.text_rank ?? "–"}`),
      h("span", {}, `page ${x.page ?? "–"}`), h("span", {}, `chars ${x.start}–${x.end}`)),
    h("p.text", {}, x.text.length > 700 ? `${x.text.slice(0, 700)}…` : x.text))));
}

async function searchPage(root, params) {
  root.append(h("h1", {}, "Search playground"));
  const out = h("div", { "aria-live": "polite", id: "search-results" });
  root.append(searchForm(async (body, mode, modeB) => {
    notice("");
    out.replaceChildren(h("p.muted", {}, "searching…"));
    try {
      const modes = modeB ? [mode, modeB] : [mode];
      const results = await Promise.all(modes.map((m) => api("search", "", { method: "POST", json: { ...body, mode: m } })));
      const cols = results.map((r, i) => h("section", { "aria-label": `${modes[i]} results` },
        h("h2", {}, `${modes[i]} — ${r.results.length} results, ${Math.round(r.took_ms)} ms${r.complete ? "" : " (incomplete)"}`),
        hitList(r.results)));
      out.replaceChildren(modeB ? h("div.compare", {}, cols) : cols[0]);
    } catch (err) { out.replaceChildren(); showError(err); }
  }, params), out);
}

async function askPage(root, params) {
  root.append(h("h1", {}, "Ask"));
  const question = h("input", { name: "question", type: "text", required: true, value: params.get("q") || "" });
  const topK = h("input", { name: "top_k", type: "number", min: 1, max: 50, value: 5 });
  const mode = select("mode", [["", "default"], ["hybrid", "hybrid"], ["vector", "vector"], ["text", "text"]], "");
  const generator = select("generator", [["auto", "auto"], ["extractive", "extractive"], ["llm", "llm"]], "auto");
  const out = h("div", { id: "answer-out" });
  const form = h("form.row", {}, field("Question", question, true), field("Top k", topK), field("Search mode", mode),
    field("Generator", generator), h("button.primary", { type: "submit" }, "Ask"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    notice("");
    out.replaceChildren(h("p.muted", {}, "thinking…"));
    const params = { generator: generator.value };
    if (mode.value) params.mode = mode.value;
    try {
      const r = await api("answer", "", { method: "POST", json: { question: question.value, top_k: +topK.value || 5, params } });
      out.replaceChildren(answerView(r));
    } catch (err) { out.replaceChildren(); showError(err); }
  });
  root.append(form, out);
}

function answerView(r) {
  const panel = h("section.citation-panel", { "aria-live": "polite", id: "citation", hidden: true, tabindex: "-1" });
  const byRef = new Map(r.citations.map((c) => [c.ref, c]));
  const open = (c) => {
    panel.hidden = false;
    panel.replaceChildren(h("h2", {}, `[${c.ref}] ${c.title}`),
      h("p.muted", {}, [c.section_label, c.page ? `page ${c.page}` : null, `characters ${c.start}–${c.end}`].filter(Boolean).join(" · ")),
      h("blockquote", {}, c.quote),
      h("p", {}, h("a", { href: `#/documents?focus=${c.document_id}` }, "document "), h("code", {}, short(c.document_id))));
    panel.focus();
  };
  const cite = (c) => h("button.link.cite", { type: "button", "aria-label": `Citation ${c.ref}: ${c.title}`, on: { click: () => open(c) } }, `[${c.ref}]`);
  // The answer is text with [n] markers: split it into text nodes and citation buttons.
  const parts = [];
  let last = 0;
  for (const m of r.answer.matchAll(/\[(\d+)\]/g)) {
    const c = byRef.get(+m[1]);
    if (!c) continue;
    parts.push(r.answer.slice(last, m.index), cite(c));
    last = m.index + m[0].length;
  }
  parts.push(r.answer.slice(last));
  return h("div", {},
    h("p.answer", {}, parts),
    h("p.muted", {}, `mode ${r.mode} · `, h("a", { href: `#/runs/${r.run_id}` }, `run ${short(r.run_id)}`)),
    h("h2", {}, "Citations"),
    r.citations.length ? h("ol", {}, r.citations.map((c) => h("li", {}, cite(c), " ", c.title, c.page ? ` (page ${c.page})` : ""))) : h("p.muted", {}, "none"),
    panel);
}

async function runsPage(root, params) {
  root.append(h("h1", {}, "Runs"));
  const kind = h("input", { name: "kind", value: params.get("kind") || "", placeholder: "any" });
  const status = select("status", [["", "any"], ...["pending", "running", "succeeded", "failed", "cancelled"].map((x) => [x, x])], params.get("status") || "");
  const form = h("form.row", {}, field("Kind", kind), field("Status", status), h("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    if (kind.value) q.set("kind", kind.value);
    if (status.value) q.set("status", status.value);
    go(`#/runs${q.toString() ? `?${q}` : ""}`);
  });
  root.append(form);
  const list = await api("runs", "", { query: { kind: kind.value, status: status.value, limit: 100 } });
  root.append(runTable(list.runs));
}

function runTable(runs) {
  if (!runs.length) return h("p.muted", {}, "No runs.");
  return h("table", { "aria-label": "Runs" }, h("thead", {}, h("tr", {},
    ["Run", "Kind", "Status", "Scenario", "Parent", "Created", "Error"].map((c) => h("th", { scope: "col" }, c)))),
  h("tbody", {}, runs.map((r) => h("tr", {},
    h("td", {}, h("a", { href: `#/runs/${r.id}` }, short(r.id))), h("td", {}, r.kind), h("td", {}, statusBadge(r.status)),
    h("td", {}, r.scenario_label || "–"),
    h("td", {}, r.parent_run_id ? h("a", { href: `#/runs/${r.parent_run_id}` }, short(r.parent_run_id)) : "–"),
    h("td", {}, fmtTime(r.created_at)), h("td", {}, r.error || "–")))));
}

async function runPage(root, id) {
  const [run, children] = await Promise.all([api("runs", id), api("runs", "", { query: { parent_run_id: id, limit: 100 } })]);
  root.append(h("h1", {}, `Run ${short(run.id)} `, statusBadge(run.status)));
  root.append(h("dl.facts", {}, ...facts({ id: run.id, kind: run.kind, scenario: run.scenario_label, document: run.document_id,
    error: run.error, created: fmtTime(run.created_at), started: fmtTime(run.started_at), finished: fmtTime(run.finished_at) })));
  if (run.parent_run_id) {
    root.append(h("p", {}, "Parent: ", h("a", { href: `#/runs/${run.parent_run_id}` }, short(run.parent_run_id)), " · ",
      h("a", { href: `#/runs/${run.parent_run_id}/compare/${run.id}` }, "compare with parent")));
  }
  root.append(h("h2", {}, `Children (${children.runs.length})`));
  root.append(children.runs.length ? h("ul", {}, children.runs.map((c) => h("li", {},
    h("a", { href: `#/runs/${c.id}` }, short(c.id)), ` ${c.scenario_label || c.kind} `, statusBadge(c.status), " · ",
    h("a", { href: `#/runs/${run.id}/compare/${c.id}` }, "compare")))) : h("p.muted", {}, "none"));
  if (run.kind === "answer" && run.state && run.state.question) root.append(whatIfForm(run));
  root.append(h("h2", {}, "Tool log"));
  const log = run.tool_log || [];
  root.append(log.length ? h("table", { "aria-label": "Tool log" }, h("thead", {}, h("tr", {},
    ["#", "Tool", "ms", "Details"].map((c) => h("th", { scope: "col" }, c)))),
  h("tbody", {}, log.map((entry, i) => {
    const { tool, ms, ...rest } = entry;
    return h("tr", {}, h("td.num", {}, String(i + 1)), h("td", {}, tool ?? "–"), h("td.num", {}, ms ?? "–"),
      h("td", {}, h("code", {}, JSON.stringify(rest))));
  }))) : h("p.muted", {}, "empty"));
  root.append(h("h2", {}, "State"), h("pre", {}, JSON.stringify(run.state, null, 2)),
    h("h2", {}, "Input"), h("pre", {}, JSON.stringify(run.input, null, 2)));
}

function whatIfForm(run) {
  const label = h("input", { name: "scenario", value: "what-if", maxlength: 200 });
  const mode = select("mode", [["vector", "vector"], ["text", "text"], ["hybrid", "hybrid"]], "vector");
  const topK = h("input", { name: "top_k", type: "number", min: 1, max: 50, value: 3 });
  const sentences = h("input", { name: "sentences", type: "number", min: 1, max: 10, value: 2 });
  const form = h("form.row", { "aria-label": "What-if" }, field("Scenario label", label), field("Mode", mode),
    field("Top k", topK), field("Sentences", sentences), h("button.primary", { type: "submit" }, "Run what-if"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const r = await api("answer", "", { method: "POST", json: { question: run.state.question, parent_run_id: run.id,
        scenario_label: label.value || null, params: { mode: mode.value, top_k: +topK.value || 3, sentences: +sentences.value || 2 } } });
      go(`#/runs/${run.id}/compare/${r.run_id}`);
    } catch (err) { showError(err); }
  });
  return h("section", {}, h("h2", {}, "What-if: ask again with other parameters"), form);
}

/** Word-level diff (LCS) of two texts: [{op: "=" | "-" | "+", text}]. */
function wordDiff(a, b) {
  const x = a.split(/(\s+)/), y = b.split(/(\s+)/);
  if (x.length * y.length > 4e6) return [{ op: "-", text: a }, { op: "+", text: b }];
  const n = x.length, m = y.length;
  const dp = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) {
    dp[i][j] = x[i] === y[j] ? dp[i + 1][j + 1] + 1 : Math.max(dp[i + 1][j], dp[i][j + 1]);
  }
  const out = [];
  let i = 0, j = 0;
  const push = (op, text) => { if (out.length && out[out.length - 1].op === op) out[out.length - 1].text += text; else out.push({ op, text }); };
  while (i < n && j < m) {
    if (x[i] === y[j]) { push("=", x[i]); i++; j++; } else if (dp[i + 1][j] >= dp[i][j + 1]) push("-", x[i++]); else push("+", y[j++]);
  }
  while (i < n) push("-", x[i++]);
  while (j < m) push("+", y[j++]);
  return out;
}

const val = (v) => (v === undefined ? "–" : JSON.stringify(v));

async function comparePage(root, a, b) {
  const c = await api("runs", `${a}/compare/${b}`);
  root.append(h("h1", {}, "Compare runs"));
  root.append(h("table", { "aria-label": "Runs compared" }, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, ""),
    h("th.tag-a", { scope: "col" }, "A"), h("th.tag-b", { scope: "col" }, "B"))),
  h("tbody", {},
    h("tr", {}, h("th", { scope: "row" }, "run"), h("td", {}, h("a", { href: `#/runs/${c.a}` }, short(c.a))), h("td", {}, h("a", { href: `#/runs/${c.b}` }, short(c.b)))),
    h("tr", {}, h("th", { scope: "row" }, "kind"), h("td", {}, c.kind.a ?? "–"), h("td", {}, c.kind.b ?? "–")),
    h("tr", {}, h("th", { scope: "row" }, "scenario"), h("td", {}, c.scenario_label.a ?? "–"), h("td", {}, c.scenario_label.b ?? "–")),
    h("tr", {}, h("th", { scope: "row" }, "status"), h("td", {}, statusBadge(c.status.a)), h("td", {}, statusBadge(c.status.b))))));
  const p = c.params;
  const paramRows = [
    ...Object.entries(p.changed).map(([k, v]) => [k, val(v.a), val(v.b), "changed"]),
    ...Object.entries(p.only_a).map(([k, v]) => [k, val(v), "–", "only in A"]),
    ...Object.entries(p.only_b).map(([k, v]) => [k, "–", val(v), "only in B"]),
  ];
  root.append(h("h2", {}, "Parameters"), paramRows.length ? h("table", { "aria-label": "Parameter changes" },
    h("thead", {}, h("tr", {}, ["Parameter", "A", "B", "Change"].map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, paramRows.map((r) => h("tr", {}, r.map((x) => h("td", {}, x)))))) : h("p.muted", {}, "same parameters"));
  const r = c.retrieved;
  root.append(h("h2", {}, "Retrieved chunks"), h("ul", {},
    h("li", {}, `${r.common.length} in both`),
    h("li.tag-a", {}, `${r.only_a.length} only in A: ${r.only_a.map(short).join(", ") || "–"}`),
    h("li.tag-b", {}, `${r.only_b.length} only in B: ${r.only_b.map(short).join(", ") || "–"}`)));
  if (r.rank_changes.length) {
    root.append(h("table", { "aria-label": "Rank changes" }, h("thead", {}, h("tr", {}, ["Chunk", "Rank in A", "Rank in B"].map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, r.rank_changes.map((x) => h("tr", {}, h("td", {}, h("code", {}, short(x.chunk_id))), h("td.num", {}, String(x.a)), h("td.num", {}, String(x.b)))))));
  }
  root.append(h("h2", {}, `Answer (${c.answer.same ? "same" : "differs"})`));
  const ta = typeof c.answer.a === "string" ? c.answer.a : JSON.stringify(c.answer.a);
  const tb = typeof c.answer.b === "string" ? c.answer.b : JSON.stringify(c.answer.b);
  root.append(h("p.answer.diff", { "aria-label": "Answer diff: struck-out words only in A, highlighted words only in B" },
    wordDiff(ta || "", tb || "").map((d) => (d.op === "=" ? d.text : h(d.op === "-" ? "del.del" : "ins.ins", {}, d.text)))));
}

// --- routing ------------------------------------------------------------------------------

const PAGES = { overview: overviewPage, documents: documentsPage, search: searchPage, ask: askPage, runs: runsPage };

function go(hash) { if (location.hash === hash) render(); else location.hash = hash; }

async function render() {
  state.timers.forEach(clearInterval);
  state.timers = [];
  const hash = location.hash.startsWith("#/") ? location.hash.slice(2) : "overview";
  const [path, query] = hash.split("?");
  const parts = path.split("/").filter(Boolean);
  const params = new URLSearchParams(query || "");
  const page = parts[0] || "overview";
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  const hasKey = Boolean(sessionStorage.getItem(KEY));
  document.getElementById("signin").hidden = hasKey;
  document.getElementById("forget-key").hidden = !hasKey;
  document.getElementById("key-status").textContent = hasKey ? "API key set (this tab only)" : "no API key";
  const root = h("div", { "data-page": page });
  view().replaceChildren(root);
  if (!hasKey) return;
  notice("");
  document.title = `${page} · ragline console`;
  try {
    if (page === "runs" && parts[1] && parts[2] === "compare" && parts[3]) await comparePage(root, parts[1], parts[3]);
    else if (page === "runs" && parts[1]) await runPage(root, parts[1]);
    else if (PAGES[page]) await PAGES[page](root, params);
    else root.append(h("h1", {}, "Not found"), h("p", {}, "No such page."));
  } catch (err) { showError(err); }
  root.setAttribute("data-ready", "true");
}

async function start() {
  try {
    const resp = await fetch("config.json", { cache: "no-store" });
    state.config = await resp.json();
  } catch (err) { notice(`config.json could not be read: ${err.message}`); }
  if (!Object.keys(state.config.api || {}).length) notice("config.json lists no API URLs (CONSOLE_API_URLS).");
  document.getElementById("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = document.getElementById("api-key");
    sessionStorage.setItem(KEY, input.value.trim());
    input.value = "";
    render();
  });
  document.getElementById("forget-key").addEventListener("click", () => { sessionStorage.removeItem(KEY); render(); });
  document.getElementById("skip").addEventListener("click", (e) => { e.preventDefault(); document.getElementById("main").focus(); });
  window.addEventListener("hashchange", () => { if (location.hash.startsWith("#/") || !location.hash) render(); });
  await render();
  document.body.setAttribute("data-started", "true");
}

start();
