// The run page, kept live: the graph's node colours and progress, the summary bar, the run
// status and its legal controls, the forms of WAITING nodes, the event log, the result and
// the selected node's panel. Everything is driven by the run's events (WebSocket, resumed
// from the last id; polling when WebSockets are unavailable).
//
// Big runs: events are queued as they arrive and applied once per animation frame. Within a
// frame the state (plain objects) takes every event, each node's newest status winning by
// event id; then each touched node, group and the summary are drawn once. The log takes the
// waiting rows at most every LOG_EVERY_MS (a second during a burst) and keeps its newest
// data.logLimit rows. Layout is read only at the start of a frame (is the log scrolled to
// its end?), before any write. A layer too wide to draw is one group box whose members the
// panel lists, paged.

import {
  el, enhanceForms, fillUrl, formatDuration, formatTime, pageData, secondsBetween, toast,
} from "./common.js";
import { enableAllZooms } from "./dag.js";
import { groupPanel, paintGroupBox, paintGroupList } from "./groups.js";
import { EventStream } from "./stream.js";

const data = pageData();
const initialEvents = pageData("initial-events") || [];
const FINISHED_RUN = new Set(["COMPLETED", "FAILED", "CANCELLED"]);
const FINISHED_NODE = new Set(["COMPLETED", "FAILED", "SKIPPED", "UPSTREAM_FAILED", "CANCELLED"]);
const LOG_LIMIT = data.logLimit || 500;
const LOG_EVERY_MS = 300; // the log takes a burst's rows at most this often (the graph: every frame)

// The nodes come as a table (one list of keys, a row of values per node): the same objects.
function nodesFromTable(table) {
  const nodes = {};
  for (const row of table.rows) {
    const node = {};
    table.fields.forEach((field, index) => { node[field] = row[index]; });
    nodes[node.id] = node;
  }
  return nodes;
}

// The run and its nodes come in the API's shapes (runs.services.shapes: the run-list row of
// the run, each node without output, error and attempts); events in the one event shape.
const state = {
  status: data.run.status,
  nodes: nodesFromTable(data.nodes), // node id -> node (state, attempt, max_attempts, started_at, finished_at, …)
  progress: data.progress, // node id -> its last node.progress data (events, not node fields)
  startedAt: data.run.started_at,
  finishedAt: data.run.finished_at,
  selected: null,
  selectedGroup: null, // the group box whose members the panel lists
  groupPage: 0,
  groupFilter: "", // a state: list only the members in it
  panelLimits: {}, // list name (needs, feeds) -> how many node links the panel asks for
  logHidden: 0, // rows dropped from the log's top (LOG_LIMIT)
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
const nodeElements = new Map(); // node id -> its box
const groupElements = new Map(); // group key -> its box
const groupOf = new Map(); // node id -> the key of the group box it is drawn in
const groups = data.groups || {}; // group key -> member node ids
const edgesFrom = new Map(); // box key -> edges leaving it
const edgesTo = new Map(); // box key -> edges entering it
graph?.querySelectorAll(".dag-node[data-node]").forEach((node) => nodeElements.set(node.dataset.node, node));
graph?.querySelectorAll(".dag-group").forEach((box) => groupElements.set(box.dataset.group, box));
for (const [key, members] of Object.entries(groups)) for (const id of members) groupOf.set(id, key);
graph?.querySelectorAll(".edge").forEach((edge) => {
  for (const [map, key] of [[edgesFrom, edge.dataset.source], [edgesTo, edge.dataset.target]]) {
    if (!map.has(key)) map.set(key, []);
    map.get(key).push(edge);
  }
});

function paintNode(nodeId) {
  const node = state.nodes[nodeId];
  if (!node) return;
  const group = groupOf.get(nodeId);
  if (group) {
    paintGroup(group);
    return;
  }
  const element = nodeElements.get(nodeId);
  if (!element) return;
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
  for (const edge of edgesFrom.get(nodeId) || []) edge.classList.toggle("done", node.state === "COMPLETED");
  for (const edge of edgesTo.get(nodeId) || []) {
    edge.classList.toggle("active", node.state === "RUNNING" || node.state === "QUEUED");
  }
}

// A group box (groups.js); the edges in and out of it follow its members.
function paintGroup(key) {
  const element = groupElements.get(key);
  if (!element) return;
  const selected = state.selectedGroup === key || (state.selected && groupOf.get(state.selected) === key);
  const counts = paintGroupBox(element, groups[key], state.nodes, data.stateOrder, selected);
  const done = (counts.COMPLETED || 0) === groups[key].length;
  const busy = Boolean(counts.RUNNING || counts.QUEUED);
  for (const edge of edgesFrom.get(key) || []) edge.classList.toggle("done", done);
  for (const edge of edgesTo.get(key) || []) edge.classList.toggle("active", busy);
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

const logNote = document.getElementById("event-log-note");

// Called with the frame's events, after `nearBottom` was read (before this frame's writes).
function appendLog(events, fresh, nearBottom) {
  // Rows beyond the limit would be dropped at once: only the newest are built.
  const skipped = Math.max(0, events.length - LOG_LIMIT);
  const fragment = document.createDocumentFragment();
  for (const event of events.slice(skipped)) {
    const row = el(
      "tr",
      { dataset: { kind: event.kind, node: event.node || "", id: event.id }, class: fresh ? "new-event" : null, role: "row" },
      el("td", { class: "num", role: "cell" }, event.id),
      el("td", { class: "time", title: event.ts || "", role: "cell" }, formatTime(event.ts)),
      el("td", { role: "cell" }, el("span", { class: kindClass(event.kind) }, event.kind)),
      el("td", { class: "mono", role: "cell" }, event.node ? el("a", { href: `#node=${event.node}`, "data-select": event.node }, event.node) : ""),
      el("td", { class: "details", role: "cell" }, describe(event)),
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
  // The oldest rows beyond the limit go in one operation, not one by one.
  const extra = logBody.rows.length - LOG_LIMIT;
  if (extra > 0) {
    const range = document.createRange();
    range.setStartBefore(logBody.rows[0]);
    range.setEndAfter(logBody.rows[extra - 1]);
    range.deleteContents();
  }
  const dropped = skipped + Math.max(0, extra);
  if (dropped) {
    state.logHidden += dropped;
    logNote.querySelector("b").textContent = state.logHidden;
    logNote.hidden = false;
  }
  // Scrolled at the start of the next frame, when layout is clean again: never here, after
  // this frame's writes (that would force a layout of the page now).
  if (nearBottom || !fresh) frames.scrollLog = true;
}

function refilterLog() {
  for (const row of logBody.rows) row.hidden = !logRowVisible(row);
}
filterInput.addEventListener("input", refilterLog);
tokensBox.addEventListener("change", refilterLog);

// ------------------------------------------------------------------ node panel

const panel = document.getElementById("node-panel");
const emptyPanel = panel.innerHTML;

function boxOf(nodeId) {
  return nodeElements.get(nodeId) || groupElements.get(groupOf.get(nodeId));
}

function select(nodeId, { scroll = false } = {}) {
  if (!(nodeId in state.nodes)) return false;
  const previous = state.selected;
  const previousGroup = state.selectedGroup;
  state.selected = nodeId;
  state.selectedGroup = null;
  state.tokens = [];
  if (previous && previous !== nodeId) state.panelLimits = {};
  if (previous) paintNode(previous);
  if (previousGroup) paintGroup(previousGroup);
  paintNode(nodeId);
  if (location.hash !== `#node=${nodeId}`) history.replaceState(null, "", `#node=${nodeId}`);
  if (scroll) boxOf(nodeId)?.scrollIntoView({ block: "nearest", inline: "nearest" });
  loadPanel();
  return true;
}

function deselect() {
  const previous = state.selected;
  const previousGroup = state.selectedGroup;
  state.selected = null;
  state.selectedGroup = null;
  if (previous) paintNode(previous);
  if (previousGroup) paintGroup(previousGroup);
  panel.innerHTML = emptyPanel;
  history.replaceState(null, "", location.pathname + location.search);
}

// ------------------------------------------------------------------ group panel

// A group box opens its members in the panel (groups.js): counts per state (each a filter),
// then a page of members, each a button to its node panel.
function selectGroup(key) {
  if (!groups[key]) return;
  const previous = state.selected;
  const previousGroup = state.selectedGroup;
  state.selected = null;
  state.selectedGroup = key;
  state.groupPage = 0;
  state.groupFilter = "";
  if (previous) paintNode(previous);
  if (previousGroup) paintGroup(previousGroup);
  paintGroup(key);
  history.replaceState(null, "", location.pathname + location.search);
  panel.replaceChildren(groupPanel(key, groups[key].length));
  paintGroupPanel();
}

// Redrawn once per frame while open and a member changed.
function paintGroupPanel() {
  const box = panel.querySelector(".group-panel");
  if (!box || box.dataset.group !== state.selectedGroup) return;
  state.groupPage = paintGroupList(box, {
    members: groups[state.selectedGroup], nodes: state.nodes, stateOrder: data.stateOrder,
    filter: state.groupFilter, page: state.groupPage,
  });
}

panel.addEventListener("click", (event) => {
  const pageButton = event.target.closest(".group-panel [data-page]");
  const filter = event.target.closest(".group-panel [data-filter]");
  const more = event.target.closest("[data-more]");
  if (event.target.closest(".group-panel [data-close]")) deselect();
  else if (pageButton) {
    state.groupPage += Number(pageButton.dataset.page);
    paintGroupPanel();
  } else if (filter) {
    state.groupFilter = filter.dataset.filter;
    state.groupPage = 0;
    paintGroupPanel();
  } else if (more) {
    state.panelLimits[more.dataset.more] = Number(more.dataset.limit);
    more.disabled = true;
    schedulePanel(0);
  }
});

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
    const query = new URLSearchParams(state.panelLimits).toString();
    const response = await fetch(`${fillUrl(data.urls.node, { node: nodeId })}${query ? `?${query}` : ""}`, {
      credentials: "same-origin",
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const html = await response.text();
    if (state.selected !== nodeId) return;
    const restore = keepNodeActionForms(nodeId);
    panel.innerHTML = html;
    addGroupLink(nodeId);
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

// A node drawn inside a group box: its panel leads back to the group's list.
function addGroupLink(nodeId) {
  const key = groupOf.get(nodeId);
  const head = panel.querySelector(".panel-head");
  if (!key || !head) return;
  head.after(el("p", { class: "small group-link" }, "In a group of ", groups[key].length, " nodes: ",
    el("button", { type: "button", class: "btn btn-small", "data-open-group": key }, "list the group")));
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

function openBox(box) {
  if (box.dataset.group) selectGroup(box.dataset.group);
  else select(box.dataset.node);
}

graph?.addEventListener("click", (event) => {
  const box = event.target.closest(".dag-node");
  if (box) openBox(box);
});
graph?.addEventListener("keydown", (event) => {
  const box = event.target.closest(".dag-node");
  if (box && (event.key === "Enter" || event.key === " ")) {
    event.preventDefault();
    openBox(box);
  }
});
document.addEventListener("click", (event) => {
  const group = event.target.closest("[data-open-group]");
  if (group) {
    selectGroup(group.dataset.openGroup);
    return;
  }
  const link = event.target.closest("[data-select]");
  if (!link) return;
  event.preventDefault();
  select(link.dataset.select, { scroll: true });
});
document.getElementById("find-node")?.addEventListener("submit", (event) => {
  event.preventDefault();
  const input = event.target.elements.node;
  const nodeId = input.value.trim();
  if (select(nodeId, { scroll: true })) input.value = "";
  else toast(`No node ${nodeId} in this run.`, "error");
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

// Events wait for the next animation frame and are applied together (see the top).
const frames = {
  queue: [], requested: false, scrollLog: false,
  logQueue: [], loggedAt: -Infinity, logTimer: 0, // rows waiting for the log, when it last took some
  count: 0, busiestMs: 0, totalMs: 0, // measured for the browser tests
};

function onEvents(events) {
  for (const event of events) frames.queue.push(event);
  requestFrame();
}

function requestFrame() {
  if (frames.requested) return;
  frames.requested = true;
  requestAnimationFrame(applyFrame);
}

function applyFrame() {
  frames.requested = false;
  // Reads first, while layout is clean: the log's scroll from the last frame, then whether
  // it is still at its end.
  if (frames.scrollLog) {
    logWrap.scrollTop = logWrap.scrollHeight;
    frames.scrollLog = false;
  }
  const nearBottom = logWrap.scrollHeight - logWrap.scrollTop - logWrap.clientHeight < 40;
  const events = frames.queue;
  frames.queue = [];
  const started = performance.now();
  if (events.length) applyEvents(events);
  // The log: every row of a burst costs style and layout, and nobody reads 100 rows a frame.
  // A burst waits longer: its rows are built once a second, not every 300 ms.
  const every = frames.logQueue.length > 50 ? 3 * LOG_EVERY_MS : LOG_EVERY_MS;
  if (frames.logQueue.length && started - frames.loggedAt >= every) {
    appendLog(frames.logQueue, true, nearBottom);
    frames.logQueue = [];
    frames.loggedAt = started;
  } else if (frames.logQueue.length && !frames.logTimer) {
    frames.logTimer = setTimeout(() => {
      frames.logTimer = 0;
      requestFrame();
    }, every - (started - frames.loggedAt));
  }
  const spent = performance.now() - started;
  frames.count += 1;
  frames.totalMs += spent;
  frames.busiestMs = Math.max(frames.busiestMs, spent);
  if (frames.scrollLog) requestFrame();
}

function applyEvents(events) {
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
  const touchedGroups = new Set();
  for (const nodeId of touched) {
    const group = groupOf.get(nodeId);
    if (group) touchedGroups.add(group);
    else paintNode(nodeId);
  }
  touchedGroups.forEach(paintGroup);
  if (state.selectedGroup && touchedGroups.has(state.selectedGroup)) paintGroupPanel();
  if (touched.size) {
    paintSummary();
    paintWaitingForms();
  }
  if (runChanged) paintStatus();
  for (const event of logged) frames.logQueue.push(event);
  // Other views of the run (timeline.js) follow the same events.
  document.dispatchEvent(new CustomEvent("trellis:events", { detail: events }));
  // The page title carries the status, for a run watched from another tab.
  document.title = `${state.status} · ${document.title.replace(/^[A-Z_]+ · /, "")}`;
}

// ------------------------------------------------------------------ start

enableAllZooms();
Object.keys(state.nodes).filter((id) => !groupOf.has(id)).forEach(paintNode);
Object.keys(groups).forEach(paintGroup);
paintSummary();
paintStatus();
paintWaitingForms();
appendLog(initialEvents, false, true);
requestFrame(); // scrolls the log to its end

enhanceForms(document, (form, body) => {
  // A control's answer (pause, resume, cancel, retry): the socket brings the events too; the
  // answer's status shows at once unless a later run event already arrived (its event id is
  // the run's last when the status was read).
  if (form.dataset.action && body.status && Number(body.event) >= state.runEventId) {
    state.status = body.status;
    state.runEventId = Number(body.event);
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
window.trellisRun = { state, stream, groups, frames }; // for debugging and the browser tests
