// The runs list, kept live by the runs socket (status changes of the runs the user may see),
// resumed from the event id read before the rows; polls the runs API when WebSockets are
// unavailable.

import { el, fillUrl, formatDuration, pageData, secondsBetween } from "./common.js";
import { EventStream } from "./stream.js";

const data = pageData();
const table = document.querySelector("#runs-table tbody");
const empty = document.getElementById("runs-empty");
const staff = data.staff;
const urls = data.urls;

function matches(run) {
  const { status, workflow, session } = data.filters;
  return (!status || run.status === status) && (!workflow || run.workflow === workflow)
    && (!session || run.session === session);
}

function rowFor(run) {
  const short = run.id.slice(0, 8);
  const created = run.created_at ? new Date(run.created_at) : null;
  const pad = (n) => String(n).padStart(2, "0");
  const createdText = created
    ? `${created.getUTCFullYear()}-${pad(created.getUTCMonth() + 1)}-${pad(created.getUTCDate())} ${pad(created.getUTCHours())}:${pad(created.getUTCMinutes())}:${pad(created.getUTCSeconds())}`
    : "";
  return el(
    "tr",
    { dataset: { run: run.id, started: run.started_at || "", finished: run.finished_at || "" }, class: "flash-row" },
    el("td", {}, el("span", { class: `state state-${run.status.toLowerCase()}`, "data-role": "status" }, run.status)),
    el("td", {}, el("a", { class: "mono", href: fillUrl(urls.run, { id: run.id }) }, short)),
    el("td", {}, el("a", { href: fillUrl(urls.workflow, { name: run.workflow }) }, run.workflow), " ",
      el("span", { class: "muted" }, `v${run.version}`)),
    el("td", { title: run.created_at || "" }, createdText),
    el("td", { "data-role": "duration" }, ""),
    staff ? el("td", {}, run.owner) : null,
  );
}

function paintRow(row, run) {
  const badge = row.querySelector("[data-role=status]");
  if (badge.textContent !== run.status) {
    badge.className = `state state-${run.status.toLowerCase()}`;
    badge.textContent = run.status;
    row.classList.remove("flash-row");
    void row.offsetWidth; // restart the highlight animation
    row.classList.add("flash-row");
  }
  row.dataset.started = run.started_at || "";
  row.dataset.finished = run.finished_at || "";
  paintDuration(row);
}

function paintDuration(row) {
  const cell = row.querySelector("[data-role=duration]");
  if (!row.dataset.started) return;
  cell.textContent = formatDuration(secondsBetween(row.dataset.started, row.dataset.finished || null));
}

function bumpCount(status, delta) {
  const counter = document.querySelector(`[data-count="${status}"]`);
  if (counter) counter.textContent = String(Math.max(0, Number(counter.textContent) + delta));
}

function upsert(run) {
  let row = table.querySelector(`tr[data-run="${run.id}"]`);
  if (row) {
    paintRow(row, run);
  } else if (matches(run)) {
    row = rowFor(run);
    table.prepend(row);
    paintDuration(row);
    while (table.rows.length > data.limit) table.deleteRow(table.rows.length - 1);
  }
  empty.classList.toggle("hidden", table.rows.length > 0);
}

function onEvents(events, message) {
  for (const event of events) {
    const d = event.data || {};
    if (d.from) bumpCount(d.from, -1);
    bumpCount(d.status, 1);
  }
  // Rows show each run as it is now: the run-list row (the API's run without inputs, params
  // and waiting), read when the message is relayed.
  for (const summary of Object.values(message.runs || {})) upsert(summary);
}

// Live durations of running rows.
setInterval(() => {
  table.querySelectorAll("tr[data-run]").forEach((row) => {
    if (row.dataset.started && !row.dataset.finished) paintDuration(row);
  });
}, 1000);

document.querySelectorAll("#filters select").forEach((select) => {
  select.addEventListener("change", () => select.form.submit());
});

async function pollRuns() {
  const params = new URLSearchParams({ limit: "50" });
  for (const key of ["status", "workflow", "session"]) if (data.filters[key]) params.set(key, data.filters[key]);
  const response = await fetch(`${urls.runs}?${params}`, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const body = await response.json();
  for (const run of [...body.results].reverse()) upsert(run);
  return [];
}

new EventStream({ path: urls.socket, after: data.after, onEvents, poll: pollRuns, pollInterval: 3000 }).start();
