// The run page's timeline (a Gantt chart) and the paging of a map node's items in the node
// panel. The timeline is drawn on one canvas the size of its viewport, and only the rows in
// view are drawn, so a run of thousands of nodes costs no more DOM than a run of one. Its data
// (every node with its attempts) is loaded when the tab is first opened; the run's events,
// which run.js dispatches as `trellis:events`, keep it live (running bars grow).

import { formatDuration, formatTime } from "./common.js";

const ROW = 22; // px per node row
const AXIS = 28; // px of the time axis at the top
const LABEL = 190; // px of the node-id column
const MAX_HEIGHT = 560; // px: taller timelines scroll
const FONT = "12px ui-monospace, SFMono-Regular, Menlo, monospace";
const FINISHED_NODE = new Set(["COMPLETED", "FAILED", "SKIPPED", "UPSTREAM_FAILED", "CANCELLED"]);
const FINISHED_RUN = new Set(["COMPLETED", "FAILED", "CANCELLED"]);
const ACTIVE = new Set(["RUNNING", "WAITING"]);

const card = document.getElementById("timeline-card");
const tabs = [...document.querySelectorAll(".view-tabs [data-view]")];
const scroller = card?.querySelector(".timeline-scroll");
const canvas = card?.querySelector(".timeline-canvas");
const spacer = card?.querySelector(".timeline-spacer");
const tip = card?.querySelector(".timeline-tip");
const note = card?.querySelector("[data-role=timeline-note]");
const selector = card?.querySelector("[data-role=timeline-select]");
const live = card?.querySelector("[data-role=timeline-live]");

const model = {
  loaded: false,
  loading: null,
  after: 0, // the snapshot's last event id: later events are applied on top of it
  buffer: [], // status events received while the snapshot was on its way
  nodes: [], // in the workflow's layer order
  byId: new Map(),
  status: null,
  startedAt: null,
  finishedAt: null,
  runEventId: 0,
  nodeEventIds: {},
  cursor: -1, // the row the keyboard is on
};

const ms = (iso) => (iso ? Date.parse(iso) : null);

// ------------------------------------------------------------------ colours

const palette = new Map();
function colours(stateName) {
  if (!palette.has(stateName)) {
    const key = stateName === "UPSTREAM_FAILED" ? "upstream" : stateName.toLowerCase();
    const style = getComputedStyle(document.documentElement);
    palette.set(stateName, {
      fg: style.getPropertyValue(`--state-${key}-fg`).trim() || "#596377",
      bg: style.getPropertyValue(`--state-${key}-bg`).trim() || "#f1f3f7",
    });
  }
  return palette.get(stateName);
}

// ------------------------------------------------------------------ data

function normalise(node) {
  return {
    id: node.id,
    state: node.state,
    attempt: node.attempt,
    queuedAt: ms(node.queued_at),
    startedAt: ms(node.started_at),
    finishedAt: ms(node.finished_at),
    attempts: (node.attempts || []).map((a) => ({
      attempt: a.attempt,
      state: a.state,
      startedAt: ms(a.started_at),
      finishedAt: ms(a.finished_at),
    })),
  };
}

/** The bars of a node's row: [{kind: "queued"|"run"|"tick", state, start, end, attempt}]. */
function barsOf(node, now) {
  const bars = [];
  for (const a of node.attempts) {
    if (a.startedAt !== null) {
      bars.push({ kind: "run", state: a.state, start: a.startedAt, end: a.finishedAt ?? now, attempt: a.attempt });
    }
  }
  const recorded = node.attempts.some((a) => a.attempt === node.attempt);
  const current = !recorded && node.startedAt !== null && node.attempt > 0;
  // The current attempt's wait in the queue, known from queued_at.
  if (node.queuedAt !== null && (node.state === "QUEUED" || node.state === "READY")) {
    bars.push({ kind: "queued", state: "QUEUED", start: node.queuedAt, end: now, attempt: node.attempt + 1 });
  } else if (node.queuedAt !== null && node.startedAt !== null && node.queuedAt <= node.startedAt) {
    bars.push({ kind: "queued", state: "QUEUED", start: node.queuedAt, end: node.startedAt, attempt: node.attempt });
  }
  if (ACTIVE.has(node.state) && node.startedAt !== null) {
    bars.push({ kind: "run", state: node.state, start: node.startedAt, end: now, attempt: node.attempt });
  } else if (FINISHED_NODE.has(node.state) && current) {
    bars.push({ kind: "run", state: node.state, start: node.startedAt, end: node.finishedAt ?? now, attempt: node.attempt });
  } else if (FINISHED_NODE.has(node.state) && !node.attempts.length && node.finishedAt !== null) {
    bars.push({ kind: "tick", state: node.state, start: node.finishedAt, end: node.finishedAt, attempt: 0 });
  }
  return bars;
}

function applyEvent(event) {
  const d = event.data || {};
  const ts = ms(event.ts);
  if (event.kind === "run.status") {
    if (event.id < model.runEventId) return;
    model.runEventId = event.id;
    model.status = d.status;
    if (d.status === "RUNNING" && model.startedAt === null) model.startedAt = ts;
    if (FINISHED_RUN.has(d.status)) model.finishedAt = ts;
    else if (d.status === "RUNNING") model.finishedAt = null;
    return;
  }
  const node = model.byId.get(event.node);
  if (event.kind !== "node.status" || !node || event.id <= (model.nodeEventIds[node.id] || 0)) return;
  model.nodeEventIds[node.id] = event.id;
  const previous = node.state;
  node.state = d.state;
  if (d.attempt !== undefined) node.attempt = d.attempt;
  if (d.state === "QUEUED") {
    node.queuedAt = ts;
  } else if (d.state === "RUNNING") {
    node.startedAt = ts;
    node.finishedAt = null;
  }
  // An attempt ended: the server appended it to the node's history, so does the timeline.
  const ended = ACTIVE.has(previous) && ["COMPLETED", "FAILED", "RETRYING"].includes(d.state);
  if (ended && !node.attempts.some((a) => a.attempt === node.attempt)) {
    node.attempts.push({
      attempt: node.attempt,
      state: d.state === "COMPLETED" ? "COMPLETED" : "FAILED",
      startedAt: node.startedAt,
      finishedAt: ts,
    });
  }
  if (FINISHED_NODE.has(d.state)) node.finishedAt = ts;
  else if (d.state === "PENDING") node.finishedAt = null;
}

function onEvents(events) {
  const relevant = events.filter((e) => e.kind === "node.status" || e.kind === "run.status");
  if (!relevant.length) return;
  if (!model.loaded) {
    // Only while the snapshot is on its way: before that, the snapshot will include them.
    if (model.loading) model.buffer.push(...relevant);
    return;
  }
  const began = performance.now();
  for (const event of relevant) if (event.id > model.after) applyEvent(event);
  stats.events += relevant.length;
  stats.eventMs += performance.now() - began;
  scheduleDraw();
}
document.addEventListener("trellis:events", (event) => onEvents(event.detail || []));

async function load() {
  if (model.loaded) return;
  if (!model.loading) {
    model.loading = (async () => {
      const response = await fetch(card.dataset.url, {
        credentials: "same-origin", headers: { Accept: "application/json" },
      });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const data = await response.json();
      model.after = data.after;
      model.status = data.run.status;
      model.startedAt = ms(data.run.started_at);
      model.finishedAt = ms(data.run.finished_at);
      model.runEventId = data.after;
      model.nodes = data.nodes.map(normalise);
      model.byId = new Map(model.nodes.map((node) => [node.id, node]));
      for (const node of model.nodes) model.nodeEventIds[node.id] = data.after;
      model.buffer.sort((a, b) => a.id - b.id);
      for (const event of model.buffer) if (event.id > model.after) applyEvent(event);
      model.buffer = [];
      model.loaded = true;
    })();
  }
  try {
    await model.loading;
  } catch (error) {
    model.loading = null;
    note.textContent = `Could not load the timeline: ${error.message}`;
    throw error;
  }
}

// ------------------------------------------------------------------ drawing

const view = {
  width: 0, height: 0, ratio: 0, content: 0, measured: 0, top: 0, t0: 0, t1: 1, frame: 0,
};

function extent(now) {
  let t0 = model.startedAt ?? Infinity;
  let t1 = FINISHED_RUN.has(model.status) && model.finishedAt !== null ? model.finishedAt : now;
  for (const node of model.nodes) {
    for (const bar of barsOf(node, now)) {
      t0 = Math.min(t0, bar.start);
      t1 = Math.max(t1, bar.end);
    }
  }
  if (!Number.isFinite(t0)) t0 = now;
  if (t1 - t0 < 1000) t1 = t0 + 1000; // at least a second across
  return [t0, t1];
}

const xOf = (t) => LABEL + ((t - view.t0) / (view.t1 - view.t0)) * (view.width - LABEL - 12);

/** A bar's left edge and width in whole pixels (crisp edges; at least 2 px to be seen). */
function barBox(bar) {
  const x0 = Math.round(xOf(bar.start));
  return [x0, Math.max(bar.kind === "tick" ? 3 : 2, Math.round(xOf(bar.end)) - x0)];
}

function niceStep(span, pixels) {
  const target = (span * 90) / Math.max(pixels, 1); // a tick every ~90 px
  const steps = [10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 15e3, 3e4, 6e4, 12e4, 3e5, 6e5, 9e5, 18e5, 36e5, 72e5, 216e5, 432e5, 864e5];
  return steps.find((step) => step >= target) || steps[steps.length - 1];
}

function label(offset, step) {
  if (step < 1000) return `${(offset / 1000).toFixed(step < 100 ? 2 : 1)} s`;
  if (offset < 60e3) return `${Math.round(offset / 1000)} s`;
  if (offset < 36e5) return `${Math.floor(offset / 60e3)}:${String(Math.round((offset % 60e3) / 1000)).padStart(2, "0")}`;
  return `${Math.floor(offset / 36e5)} h ${String(Math.round((offset % 36e5) / 60e3)).padStart(2, "0")}`;
}

// Sizes are read when they change (resize, scroll), never while drawing: a read of a layout
// property after run.js changed the page would force a layout of the whole page per frame.
function layout() {
  const content = AXIS + model.nodes.length * ROW + 4;
  const height = Math.min(content, MAX_HEIGHT);
  if (content !== view.content) {
    view.content = content;
    scroller.style.height = `${height}px`;
    spacer.style.height = `${Math.max(0, content - height)}px`;
  }
  const width = view.measured;
  const ratio = window.devicePixelRatio || 1;
  if (width !== view.width || height !== view.height || ratio !== view.ratio) {
    view.width = width;
    view.height = height;
    view.ratio = ratio;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    canvas.style.width = `${width}px`;
    canvas.style.height = `${height}px`;
  }
  return ratio;
}

const stats = { draws: 0, drawMs: 0, events: 0, eventMs: 0 }; // what the timeline costs

function draw() {
  const began = performance.now();
  try {
    paint();
  } finally {
    stats.draws += 1;
    stats.drawMs += performance.now() - began;
  }
}

function paint() {
  view.frame = 0;
  if (!model.loaded || card.hidden) return;
  const ratio = layout();
  const now = Date.now();
  [view.t0, view.t1] = extent(now);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, view.width, view.height);
  // Set once per canvas size (a resize resets the context): with a font or direction to
  // resolve, Chromium recomputes the page's style first, on every draw.
  if (ctx.textBaseline !== "middle") {
    ctx.font = FONT;
    ctx.direction = "ltr";
    ctx.textBaseline = "middle";
  }
  const top = view.top;
  const first = Math.max(0, Math.floor(top / ROW));
  const last = Math.min(model.nodes.length, Math.ceil((top + view.height - AXIS) / ROW) + 1);
  const muted = colours("PENDING").fg;
  // grid lines and the axis
  const step = niceStep(view.t1 - view.t0, view.width - LABEL);
  ctx.strokeStyle = "#e6e9ef";
  ctx.fillStyle = muted;
  ctx.lineWidth = 1;
  for (let offset = 0; view.t0 + offset <= view.t1; offset += step) {
    const x = Math.round(xOf(view.t0 + offset)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(x, AXIS - 6);
    ctx.lineTo(x, view.height);
    ctx.stroke();
    ctx.fillText(label(offset, step), x + 3, AXIS / 2);
  }
  for (let row = first; row < last; row += 1) {
    const node = model.nodes[row];
    const y = AXIS + row * ROW - top;
    if (row % 2) {
      ctx.fillStyle = "rgba(15, 23, 42, 0.03)";
      ctx.fillRect(0, y, view.width, ROW);
    }
    if (row === model.cursor) {
      ctx.strokeStyle = "#1f2937";
      ctx.strokeRect(1.5, y + 1.5, view.width - 3, ROW - 3);
    }
    ctx.fillStyle = colours(node.state).fg;
    ctx.fillRect(4, y + 6, 8, ROW - 12);
    ctx.fillStyle = "#1f2937";
    ctx.save();
    ctx.beginPath();
    ctx.rect(16, y, LABEL - 22, ROW);
    ctx.clip();
    ctx.fillText(node.id, 18, y + ROW / 2);
    ctx.restore();
    // Queued spans first, attempts on top: a node continued in its parent's task waits
    // a fraction of a millisecond, and its 2 px queued span must not cover its attempt.
    const bars = barsOf(node, now);
    bars.sort((a, b) => (a.kind === "queued" ? 0 : 1) - (b.kind === "queued" ? 0 : 1));
    for (const bar of bars) {
      const [x0, width] = barBox(bar);
      const { fg, bg } = colours(bar.state);
      if (bar.kind === "queued") {
        ctx.fillStyle = bg;
        ctx.fillRect(x0, y + 7, width, ROW - 14);
        ctx.strokeStyle = fg;
        ctx.strokeRect(x0 + 0.5, y + 7.5, width - 1, ROW - 15);
      } else {
        ctx.fillStyle = fg;
        ctx.fillRect(x0, y + 4, width, ROW - 8);
      }
    }
  }
  // the axis band stays on top of the rows scrolled under it
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, view.width, AXIS - 6);
  ctx.fillStyle = muted;
  for (let offset = 0; view.t0 + offset <= view.t1; offset += step) {
    ctx.fillText(label(offset, step), Math.round(xOf(view.t0 + offset)) + 3, AXIS / 2 - 2);
  }
  ctx.fillText(`start ${formatTime(new Date(view.t0).toISOString())}`, 4, AXIS / 2 - 2);
  const running = model.nodes.filter((n) => ACTIVE.has(n.state)).length;
  note.textContent = `${model.nodes.length} node${model.nodes.length === 1 ? "" : "s"} · ${formatDuration((view.t1 - view.t0) / 1000)} shown${running ? ` · ${running} running` : ""}`;
}

function scheduleDraw() {
  if (!view.frame) view.frame = requestAnimationFrame(draw);
}

// ------------------------------------------------------------------ pointing at bars

function hit(event) {
  const rect = canvas.getBoundingClientRect();
  const x = event.clientX - rect.left;
  const y = event.clientY - rect.top;
  if (y < AXIS) return null;
  const row = Math.floor((y - AXIS + view.top) / ROW);
  const node = model.nodes[row];
  if (!node) return null;
  if (x < LABEL) return { node, bar: null };
  const t = view.t0 + ((x - LABEL) / (view.width - LABEL - 12)) * (view.t1 - view.t0);
  const slack = (4 * (view.t1 - view.t0)) / (view.width - LABEL);
  const bars = barsOf(node, Date.now());
  const bar = bars.filter((b) => t >= b.start - slack && t <= b.end + slack).pop() || null;
  return bar ? { node, bar } : null;
}

function describe({ node, bar }) {
  const lines = [`${node.id} · ${node.state.toLowerCase().replace("_", " ")}`];
  if (bar && bar.kind === "queued") {
    lines.push(`queued ${formatTime(new Date(bar.start).toISOString())} · waited ${formatDuration((bar.end - bar.start) / 1000)}`);
  } else if (bar && bar.kind === "run") {
    lines.push(`attempt ${bar.attempt} · ${bar.state.toLowerCase()}`);
    lines.push(`${formatTime(new Date(bar.start).toISOString())} → ${ACTIVE.has(bar.state) ? "now" : formatTime(new Date(bar.end).toISOString())} · ${formatDuration((bar.end - bar.start) / 1000)}`);
  } else if (bar) {
    lines.push(`at ${formatTime(new Date(bar.start).toISOString())}`);
  }
  return lines;
}

function showTip(event) {
  const found = model.loaded ? hit(event) : null;
  canvas.style.cursor = found ? "pointer" : "default";
  if (!found) {
    tip.hidden = true;
    return;
  }
  tip.replaceChildren(...describe(found).map((line) => Object.assign(document.createElement("div"), { textContent: line })));
  tip.dataset.node = found.node.id;
  tip.hidden = false;
  const box = card.getBoundingClientRect();
  tip.style.left = `${Math.min(event.clientX - box.left + 12, box.width - 260)}px`;
  tip.style.top = `${event.clientY - box.top + 14}px`;
}

// The keyboard: arrows move between rows (read out through a live region), Enter opens the
// node's panel, as a click on its bar does.
function onKey(event) {
  if (!model.loaded || !model.nodes.length) return;
  const moves = { ArrowDown: 1, ArrowUp: -1, PageDown: 10, PageUp: -10, Home: -Infinity, End: Infinity };
  if (event.key === "Enter" && model.cursor >= 0) {
    event.preventDefault();
    selector.dataset.select = model.nodes[model.cursor].id;
    selector.click();
    return;
  }
  if (!(event.key in moves)) return;
  event.preventDefault();
  const last = model.nodes.length - 1;
  model.cursor = Math.max(0, Math.min(last, (model.cursor < 0 ? -1 : model.cursor) + moves[event.key]));
  const top = model.cursor * ROW;
  const visible = view.height - AXIS;
  if (top < view.top) scroller.scrollTop = top;
  else if (top + ROW > view.top + visible) scroller.scrollTop = top + ROW - visible;
  const node = model.nodes[model.cursor];
  const bars = barsOf(node, Date.now()).filter((b) => b.kind !== "queued");
  live.textContent = describe({ node, bar: bars[bars.length - 1] || null }).join(", ");
  scheduleDraw();
}

function choose(event) {
  const found = model.loaded ? hit(event) : null;
  if (!found) return;
  // run.js opens a node's panel for any click on a [data-select] element.
  selector.dataset.select = found.node.id;
  selector.click();
}

// ------------------------------------------------------------------ tabs

const graphCard = document.querySelector(".dag-card");

async function show(name) {
  for (const tab of tabs) tab.setAttribute("aria-selected", String(tab.dataset.view === name));
  if (graphCard) graphCard.hidden = name !== "graph";
  card.hidden = name !== "timeline";
  try {
    localStorage.setItem("trellis.runView", name);
  } catch {
    // storage may be unavailable (private mode): the choice is just not remembered
  }
  if (name === "timeline") {
    await load();
    view.measured = scroller.clientWidth;
    view.top = scroller.scrollTop;
    draw();
  }
}

if (card) {
  tabs.forEach((tab) => tab.addEventListener("click", () => show(tab.dataset.view)));
  scroller.addEventListener("scroll", () => {
    view.top = scroller.scrollTop;
    scheduleDraw();
  }, { passive: true });
  new ResizeObserver(([entry]) => {
    const width = Math.round(entry.contentRect.width);
    if (width && width !== view.measured) {
      view.measured = width;
      scheduleDraw();
    }
  }).observe(scroller);
  canvas.addEventListener("mousemove", showTip);
  canvas.addEventListener("mouseleave", () => { tip.hidden = true; });
  canvas.addEventListener("click", choose);
  scroller.addEventListener("keydown", onKey);
  // Running bars grow with the clock, not only with events.
  setInterval(() => {
    if (model.loaded && !card.hidden && !FINISHED_RUN.has(model.status)) scheduleDraw();
  }, 1000);
  let remembered = null;
  try {
    remembered = localStorage.getItem("trellis.runView");
  } catch {
    remembered = null;
  }
  if (remembered === "timeline") show("timeline");
}

// ------------------------------------------------------------------ map items (node panel)

async function loadItems(section, page, stateName) {
  const url = new URL(section.dataset.url, location.href);
  url.searchParams.set("page", page);
  if (stateName) url.searchParams.set("state", stateName);
  const response = await fetch(url, { credentials: "same-origin" });
  if (!response.ok) return;
  const holder = document.createElement("div");
  holder.innerHTML = await response.text();
  const fresh = holder.querySelector("[data-role=map-items]");
  if (fresh && section.isConnected) section.replaceWith(fresh);
}

// The panel reloads on every event of its node: the page and state chosen survive that.
const itemsView = { node: null, page: "1", state: "" };

async function loadItemsAndRemember(section, page, stateName) {
  itemsView.node = section.closest("[data-node]")?.dataset.node ?? null;
  itemsView.page = String(page);
  itemsView.state = stateName || "";
  await loadItems(section, page, stateName);
}

const nodePanel = document.getElementById("node-panel");
if (nodePanel) {
  new MutationObserver(() => {
    const section = nodePanel.querySelector("[data-role=map-items]");
    const nodeId = section?.closest("[data-node]")?.dataset.node;
    if (!section || nodeId !== itemsView.node || section.dataset.restored) return;
    if (section.dataset.page !== itemsView.page || section.dataset.state !== itemsView.state) {
      section.dataset.restored = "1";
      loadItems(section, itemsView.page, itemsView.state);
    }
  }).observe(nodePanel, { childList: true });
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-items-page], [data-items-state]");
  const section = button?.closest("[data-role=map-items]");
  if (!section) return;
  event.preventDefault();
  if (button.dataset.itemsPage !== undefined) {
    loadItemsAndRemember(section, button.dataset.itemsPage, section.dataset.state);
  } else {
    loadItemsAndRemember(section, 1, button.dataset.itemsState);
  }
});

window.trellisTimeline = {
  model,
  stats,
  show,
  draw,
  /** Where a node's last bar is drawn, in page coordinates (for the browser tests). */
  barPoint(nodeId) {
    const row = model.nodes.findIndex((n) => n.id === nodeId);
    const node = model.nodes[row];
    const bars = node ? barsOf(node, Date.now()).filter((b) => b.kind !== "queued") : [];
    if (!bars.length) return null;
    const bar = bars[bars.length - 1];
    const [x0, width] = barBox(bar);
    const rect = canvas.getBoundingClientRect();
    return {
      left: rect.left + x0,
      x: rect.left + x0 + width / 2,
      y: rect.top + AXIS + row * ROW - view.top + ROW / 2,
      width,
      state: bar.state,
    };
  },
};
