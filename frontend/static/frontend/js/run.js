// The run page, kept live: the graph's node colours and progress, the summary bar, the run
// status and its legal controls, the forms of WAITING nodes, the event log, the result and
// the selected node's panel. Everything is driven by the run's events (WebSocket, resumed
// from the last id; polling when WebSockets are unavailable).

import {
  el, enhanceForms, fillUrl, formatDuration, formatTime, pageData, secondsBetween, toast,
} from "./common.js";
import { enableAllZooms } from "./dag.js";
import { EventStream } from "./stream.js";

const data = pageData();
const initialEvents = pageData("initial-events") || [];
const FINISHED_RUN = new Set(["COMPLETED", "FAILED", "CANCELLED"]);
const FINISHED_NODE = new Set(["COMPLETED", "FAILED", "SKIPPED", "UPSTREAM_FAILED", "CANCELLED"]);
const LOG_LIMIT = 2000;

// The run and its nodes come in the API's shapes (runs.services.shapes: the run-list row of
// the run, each node without output, error and attempts); events in the one event shape.
const state = {
  status: data.run.status,
  nodes: data.nodes, // node id -> node (state, attempt, max_attempts, started_at, finished_at, …)
  progress: data.progress, // node id -> its last node.progress data (events, not node fields)
  startedAt: data.run.started_at,
  finishedAt: data.run.finished_at,
  selected: null,
  panelTimer: null,
  panelLoading: false,
  tokens: [], // token events of the selected node, for appending after a panel load
  tokensHidden: 0,
  // The id of the last event applied to the run's status and to each node's state. Events
  // can arrive out of id order (a node action's events, published by the web process, after
  // the worker's later ones; commit order on PostgreSQL): an older one must not undo a newer.
  runEventId: 0,
  resultEventId: 0,
  nodeEventIds: {},
};

// ------------------------------------------------------------------ graph

const graph = document.querySelector("svg.dag");
const nodeElements = new Map();
graph?.querySelectorAll(".dag-node").forEach((node) => nodeElements.set(node.dataset.node, node));

function paintNode(nodeId) {
  const node = state.nodes[nodeId];
  const element = nodeElements.get(nodeId);
  if (!node || !element) return;
  const stateName = node.state.toLowerCase();
  element.setAttribute("class", `dag-node state-${stateName}${state.selected === nodeId ? " selected" : ""}`);
  element.dataset.state = node.state;
  const text = element.querySelector(".state-text");
  if (text) text.textContent = stateName.replace("_", " ");
  // The button's accessible name carries the state, as the template drew it.
  if (element.hasAttribute("aria-label")) element.setAttribute("aria-label", `node ${nodeId}, ${stateName}`);
  const meta = element.querySelector(".meta");
  if (meta) {
    let label = "";
    if (FINISHED_NODE.has(node.state) && node.started_at && node.finished_at) {
      label = formatDuration(secondsBetween(node.started_at, node.finished_at));
    } else if (node.state === "RETRYING") {
      label = `retry ${node.attempt + 1}/${node.max_attempts}`;
    } else if (node.attempt > 1) {
      label = `attempt ${node.attempt}`;
    }
    meta.textContent = label;
  }
  const bar = element.querySelector(".bar");
  if (bar) {
    const full = Number(bar.dataset.full);
    const progress = state.progress[nodeId];
    let fraction = progress ? Number(progress.fraction) || 0 : 0;
    if (node.state === "COMPLETED") fraction = progress ? 1 : 0;
    bar.setAttribute("width", String(Math.max(0, Math.min(1, fraction)) * full));
  }
  graph.querySelectorAll(`.edge[data-source="${CSS.escape(nodeId)}"]`).forEach((edge) => {
    edge.classList.toggle("done", node.state === "COMPLETED");
  });
  graph.querySelectorAll(`.edge[data-target="${CSS.escape(nodeId)}"]`).forEach((edge) => {
    edge.classList.toggle("active", node.state === "RUNNING" || node.state === "QUEUED");
  });
}

// ------------------------------------------------------------------ summary, status, controls

function paintSummary() {
  const counts = {};
  const nodes = Object.values(state.nodes);
  for (const node of nodes) counts[node.state] = (counts[node.state] || 0) + 1;
  const bar = document.getElementById("summary-bar");
  const legend = document.getElementById("summary-legend");
  bar.replaceChildren();
  legend.replaceChildren();
  for (const name of data.stateOrder) {
    const count = counts[name] || 0;
    if (!count) continue;
    const css = name.toLowerCase();
    bar.append(el("span", { class: `seg-${css}`, style: `width:${(100 * count) / nodes.length}%`, title: `${count} ${css}` }));
    legend.append(el("span", {}, el("i", { class: `seg-${css}` }), el("b", {}, count), ` ${css.replace("_", " ")}`));
  }
  const done = (counts.COMPLETED || 0) + (counts.SKIPPED || 0);
  legend.append(el("span", { class: "summary-total" }, `${done} of ${nodes.length} done`));
}

function paintStatus() {
  const badge = document.getElementById("run-status");
  badge.className = `state state-lg state-${state.status.toLowerCase()}`;
  badge.textContent = state.status;
  document.querySelectorAll("#controls form[data-action]").forEach((form) => {
    form.hidden = !(data.actions[form.dataset.action] || []).includes(state.status);
  });
  paintDuration();
}

function paintDuration() {
  const target = document.getElementById("run-duration");
  if (!state.startedAt) {
    target.textContent = "—";
    return;
  }
  const end = FINISHED_RUN.has(state.status) ? state.finishedAt : null;
  target.textContent = formatDuration(secondsBetween(state.startedAt, end));
}

async function showPrompt(prompt, url) {
  try {
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    prompt.innerHTML = await response.text(); // sanitized HTML (nh3) from the server
    prompt.hidden = false;
  } catch (error) {
    toast(`Could not load the prompt: ${error.message}`, "error");
  }
}

function paintWaitingForms() {
  document.querySelectorAll("[data-waiting]").forEach((section) => {
    const node = state.nodes[section.dataset.waiting];
    section.hidden = !node || node.state !== "WAITING";
  });
}

// ------------------------------------------------------------------ event log

const logBody = document.querySelector("#event-log tbody");
const logWrap = document.getElementById("event-log-wrap");
const filterInput = document.getElementById("event-filter");
const tokensBox = document.getElementById("show-tokens");

function kindClass(kind) {
  if (kind === "run.result") return "kind kind-result";
  if (kind.startsWith("run.")) return "kind kind-run";
  if (kind === "node.log") return "kind kind-log";
  if (kind === "node.progress") return "kind kind-progress";
  return "kind";
}

function describe(event) {
  const d = event.data || {};
  switch (event.kind) {
    case "node.status":
      return [
        d.from ? `${d.from.toLowerCase()} → ` : "",
        el("span", { class: `state state-${String(d.state).toLowerCase()}` }, d.state),
        d.attempt ? ` attempt ${d.attempt}` : "",
        d.error ? ` · ${d.error}` : "",
        d.retry_in !== undefined ? ` · retry in ${d.retry_in} s` : "",
        d.by ? ` · by ${d.by}` : "",
      ];
    case "run.status":
      return [
        d.from ? `${d.from.toLowerCase()} → ` : "",
        el("span", { class: `state state-${String(d.status).toLowerCase()}` }, d.status),
        d.by ? ` · by ${d.by}` : "",
      ];
    case "run.result":
      return `${d.status}${d.error ? ` · ${d.error}` : ""} · result ${JSON.stringify(d.result)}`.slice(0, 400);
    case "run.retry":
      return `retry${d.by ? ` by ${d.by}` : ""}: ${(d.nodes || []).join(", ")}`;
    case "node.progress":
      return `${Math.round(100 * (Number(d.fraction) || 0))}%${d.message ? ` · ${d.message}` : ""}`;
    case "node.log":
      return String(d.message ?? JSON.stringify(d));
    case "node.markdown":
      return String(d.text ?? "").slice(0, 400);
    case "node.token":
      return JSON.stringify(d.delta ?? d);
    default:
      return JSON.stringify(d).slice(0, 400);
  }
}

function logRowVisible(row) {
  const query = filterInput.value.trim().toLowerCase();
  if (row.dataset.kind === "node.token" && !tokensBox.checked) return false;
  if (!query) return true;
  return row.dataset.kind.includes(query) || row.dataset.node.toLowerCase().includes(query);
}

function appendLog(events, fresh) {
  const nearBottom = logWrap.scrollHeight - logWrap.scrollTop - logWrap.clientHeight < 40;
  const fragment = document.createDocumentFragment();
  for (const event of events) {
    const row = el(
      "tr",
      { dataset: { kind: event.kind, node: event.node || "", id: event.id }, class: fresh ? "new-event" : null },
      el("td", { class: "num" }, event.id),
      el("td", { class: "time", title: event.ts || "" }, formatTime(event.ts)),
      el("td", {}, el("span", { class: kindClass(event.kind) }, event.kind)),
      el("td", { class: "mono" }, event.node ? el("a", { href: `#node=${event.node}`, "data-select": event.node }, event.node) : ""),
      el("td", { class: "details" }, describe(event)),
    );
    row.hidden = !logRowVisible(row);
    fragment.append(row);
  }
  const last = logBody.rows[logBody.rows.length - 1];
  const previousLast = last ? Number(last.dataset.id) : 0;
  logBody.append(fragment);
  // On PostgreSQL a transaction can commit after a later-numbered one, so an event may
  // arrive after a higher id: keep the log in id order (rare, so a full re-sort is fine).
  const ids = events.map((event) => Number(event.id));
  if (ids.some((id, i) => id < previousLast || (i > 0 && id < ids[i - 1]))) {
    const rows = [...logBody.rows].sort((a, b) => Number(a.dataset.id) - Number(b.dataset.id));
    logBody.append(...rows);
  }
  while (logBody.rows.length > LOG_LIMIT) logBody.deleteRow(0);
  if (nearBottom || !fresh) logWrap.scrollTop = logWrap.scrollHeight;
}

function refilterLog() {
  for (const row of logBody.rows) row.hidden = !logRowVisible(row);
}
filterInput.addEventListener("input", refilterLog);
tokensBox.addEventListener("change", refilterLog);

// ------------------------------------------------------------------ node panel

const panel = document.getElementById("node-panel");
const emptyPanel = panel.innerHTML;

function select(nodeId, { scroll = false } = {}) {
  if (!(nodeId in state.nodes)) return;
  const previous = state.selected;
  state.selected = nodeId;
  state.tokens = [];
  if (previous) paintNode(previous);
  paintNode(nodeId);
  if (location.hash !== `#node=${nodeId}`) history.replaceState(null, "", `#node=${nodeId}`);
  if (scroll) nodeElements.get(nodeId)?.scrollIntoView({ block: "nearest", inline: "nearest" });
  loadPanel();
}

function deselect() {
  const previous = state.selected;
  state.selected = null;
  if (previous) paintNode(previous);
  panel.innerHTML = emptyPanel;
  history.replaceState(null, "", location.pathname + location.search);
}

async function loadPanel() {
  const nodeId = state.selected;
  if (!nodeId) return;
  if (state.panelLoading) {
    schedulePanel(); // one more load after this one
    return;
  }
  state.panelLoading = true;
  panel.classList.add("panel-loading");
  try {
    const response = await fetch(fillUrl(data.urls.node, { node: nodeId }), {
      credentials: "same-origin",
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const html = await response.text();
    if (state.selected !== nodeId) return;
    const restore = keepNodeActionForms(nodeId);
    panel.innerHTML = html;
    restore();
    enhanceForms(panel, onNodeAction);
    // Tokens streamed after the panel's snapshot are appended to it.
    const snapshot = Number(panel.querySelector(".panel")?.dataset.lastEvent || 0);
    for (const event of state.tokens) if (event.id > snapshot) appendToken(event);
  } catch (error) {
    toast(`Could not load node ${nodeId}: ${error.message}`, "error");
  } finally {
    state.panelLoading = false;
    panel.classList.remove("panel-loading");
  }
}

// The panel reloads on every event of its node: an open mark dialog and what was typed into
// the node-action forms survive the reload (when the node still offers that action).
function keepNodeActionForms(nodeId) {
  const old = panel.querySelector(".panel");
  if (!old || old.dataset.node !== nodeId) return () => {};
  const kept = [...old.querySelectorAll("form[data-node-action]")].map((form) => ({
    action: form.dataset.nodeAction,
    open: Boolean(form.closest("details")?.open),
    fields: [...form.elements]
      .filter((field) => field.name && field.type !== "hidden")
      .map((field) => [field.name, field.type === "checkbox" ? field.checked : field.value]),
  }));
  return () => {
    for (const { action, open, fields } of kept) {
      const form = panel.querySelector(`form[data-node-action="${CSS.escape(action)}"]`);
      if (!form) continue;
      const details = form.closest("details");
      if (details && open) details.open = true;
      for (const [name, value] of fields) {
        const field = form.elements.namedItem(name);
        if (!field || field instanceof RadioNodeList) continue;
        if (field.type === "checkbox") field.checked = value;
        else if (field.tagName !== "SELECT" || [...field.options].some((o) => o.value === value)) {
          field.value = value;
        }
      }
    }
  };
}

// A node action (clear, mark, skip) from the panel: the socket brings its events; the run's
// status and the panel (its legal actions changed) are refreshed at once.
function onNodeAction(form, body) {
  if (!body.ok) return;
  form.reset(); // done: the reload that follows must not bring the dialog back open
  const dialog = form.closest("details");
  if (dialog) dialog.open = false;
  // The answer's status is as new as its event id: stale when the socket brought later ones.
  if (body.status && Number(body.event) >= state.runEventId) {
    state.status = body.status;
    state.runEventId = Number(body.event);
    paintStatus();
  }
  schedulePanel(0);
}

function schedulePanel(delay = 250) {
  clearTimeout(state.panelTimer);
  state.panelTimer = setTimeout(loadPanel, delay);
}

function appendToken(event) {
  const box = panel.querySelector("[data-role=tokens]");
  if (!box) return;
  box.textContent += event.data?.delta ?? "";
  box.closest(".tokens-block")?.classList.remove("hidden");
}

function paintPanelProgress(progress) {
  const block = panel.querySelector("[data-role=progress]");
  if (!block || !progress) return;
  const percent = Math.round(100 * (Number(progress.fraction) || 0));
  block.classList.remove("hidden");
  block.querySelector(".progress-fill").style.width = `${percent}%`;
  block.querySelector("[data-role=progress-percent]").textContent = `${percent}%`;
  block.querySelector("[data-role=progress-message]").textContent = progress.message || "";
}

graph?.addEventListener("click", (event) => {
  const node = event.target.closest(".dag-node");
  if (node) select(node.dataset.node);
});
graph?.addEventListener("keydown", (event) => {
  const node = event.target.closest(".dag-node");
  if (node && (event.key === "Enter" || event.key === " ")) {
    event.preventDefault();
    select(node.dataset.node);
  }
});
document.addEventListener("click", (event) => {
  const link = event.target.closest("[data-select]");
  if (!link) return;
  event.preventDefault();
  select(link.dataset.select, { scroll: true });
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && state.selected) deselect();
});

// ------------------------------------------------------------------ applying events

function apply(event) {
  const d = event.data || {};
  const node = event.node ? state.nodes[event.node] : null;
  switch (event.kind) {
    case "node.status":
      if (!node || event.id < (state.nodeEventIds[event.node] || 0)) break;
      state.nodeEventIds[event.node] = event.id;
      node.state = d.state;
      if (d.attempt !== undefined) node.attempt = d.attempt;
      if (d.state === "RUNNING") {
        node.started_at = event.ts;
        node.finished_at = null;
        delete state.progress[event.node];
      } else if (FINISHED_NODE.has(d.state)) {
        node.finished_at = event.ts;
      } else if (d.state === "PENDING") {
        delete state.progress[event.node];
      }
      return "node";
    case "node.progress":
      if (node) state.progress[event.node] = d;
      return "progress";
    case "node.markdown": {
      // A waiting node posts its rendered prompt as markdown: show it above its form.
      // The server renders the Markdown and sanitizes it (frontend/markdown.py).
      const section = document.querySelector(`[data-waiting="${CSS.escape(event.node)}"]`);
      const prompt = section?.querySelector("[data-role=prompt]");
      if (prompt && d.text) showPrompt(prompt, section.dataset.markdownUrl);
      return "other";
    }
    case "run.status":
      if (event.id < state.runEventId) break;
      state.runEventId = event.id;
      state.status = d.status;
      if (d.status === "RUNNING" && !state.startedAt) state.startedAt = event.ts;
      if (FINISHED_RUN.has(d.status)) {
        state.finishedAt = event.ts;
        const pending = document.getElementById("result-pending");
        if (pending.textContent === "Not finished yet.") pending.textContent = "No result.";
      }
      if (d.status === "RUNNING" && d.from && FINISHED_RUN.has(d.from) && event.id > state.resultEventId) {
        state.finishedAt = null; // retried
        showResult(undefined);
        showError("");
      }
      return "run";
    case "run.result":
      if (event.id < state.resultEventId) break;
      state.resultEventId = event.id;
      showResult(d.result);
      showError(d.error || "");
      return "run";
    default:
      return "other";
  }
}

function showResult(result) {
  const box = document.getElementById("run-result");
  const pending = document.getElementById("result-pending");
  if (result === undefined) {
    box.classList.add("hidden");
    pending.textContent = "Not finished yet.";
    pending.classList.remove("hidden");
    return;
  }
  box.textContent = JSON.stringify(result, null, 2);
  box.classList.toggle("hidden", result === null);
  pending.textContent = "No result.";
  pending.classList.toggle("hidden", result !== null);
}

function showError(message) {
  const box = document.getElementById("run-error");
  box.textContent = message;
  box.classList.toggle("hidden", !message);
}

function onEvents(events) {
  const touched = new Set();
  let runChanged = false;
  const logged = [];
  for (const event of events) {
    const effect = apply(event);
    if (event.node) touched.add(event.node);
    if (effect === "run") runChanged = true;
    if (event.kind === "node.token") {
      if (event.node === state.selected) {
        state.tokens.push(event);
        if (!state.panelLoading) appendToken(event);
      }
    } else if (event.node === state.selected) {
      if (event.kind === "node.progress") paintPanelProgress(event.data);
      else schedulePanel();
    }
    logged.push(event);
  }
  touched.forEach(paintNode);
  if (touched.size) {
    paintSummary();
    paintWaitingForms();
  }
  if (runChanged) paintStatus();
  appendLog(logged, true);
  // Other views of the run (timeline.js) follow the same events.
  document.dispatchEvent(new CustomEvent("trellis:events", { detail: events }));
  // The page title carries the status, for a run watched from another tab.
  document.title = `${state.status} · ${document.title.replace(/^[A-Z_]+ · /, "")}`;
}

// ------------------------------------------------------------------ start

enableAllZooms();
Object.keys(state.nodes).forEach(paintNode);
paintSummary();
paintStatus();
paintWaitingForms();
appendLog(initialEvents, false);

enhanceForms(document, (form, body) => {
  if (form.dataset.action && body.status) {
    // The socket will bring the events too; show the new status at once.
    state.status = body.status;
    paintStatus();
  }
  if (!form.dataset.action && body.ok) form.reset();
});

const hashNode = decodeURIComponent((location.hash.match(/^#node=(.+)$/) || [])[1] || "");
const attention = Object.entries(state.nodes).find(([, n]) => n.state === "WAITING")
  || Object.entries(state.nodes).find(([, n]) => n.state === "FAILED");
if (hashNode && hashNode in state.nodes) select(hashNode);
else if (attention) select(attention[0]);

setInterval(() => {
  if (state.startedAt && !FINISHED_RUN.has(state.status)) paintDuration();
}, 1000);

const stream = new EventStream({
  path: data.urls.socket,
  after: data.after,
  onEvents,
  poll: async (after) => {
    const response = await fetch(`${data.urls.events}?after=${after}&limit=1000`, {
      credentials: "same-origin", headers: { Accept: "application/json" },
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return (await response.json()).results; // the same event shape as the socket's
  },
});
stream.start();
window.trellisRun = { state, stream }; // for debugging and the browser tests
