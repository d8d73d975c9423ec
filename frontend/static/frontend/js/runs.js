// The runs list, kept live by the runs socket (status changes of the runs the user may see,
// and their nodes starting or stopping to wait), resumed from the event id read before the
// rows; polls the runs API when WebSockets are unavailable. Times are shown in the
// browser's zone; cancel asks first.

import {
  el, enhanceForms, fillUrl, formatDuration, formatLocalDateTime, localiseTimes, pageData,
  secondsBetween,
} from "./common.js";
import { EventStream } from "./stream.js";

const data = pageData();
const table = document.querySelector("#runs-table tbody");
const empty = document.getElementById("runs-empty");
const staff = data.staff;
const urls = data.urls;
const cancellable = new Set(data.cancellable);
// Ids of the runs that need input (RUNNING with a WAITING node): the chip's and the
// navigation's count follow the rows the socket sends.
const needing = new Set(data.needing);

function matches(run) {
  const { status, workflow, session, needs_input: needsInput } = data.filters;
  return data.live_rows && (!status || run.status === status) && (!workflow || run.workflow === workflow)
    && (!session || run.session === session) && (!needsInput || run.needs_input);
}

function cancelForm(run) {
  const form = el(
    "form",
    {
      method: "post", action: fillUrl(urls.cancel, { id: run.id }), "data-async": true, "data-role": "cancel",
      "data-confirm": `Cancel run ${run.id.slice(0, 8)} of ${run.workflow}? Its unfinished nodes are cancelled.`,
    },
    el("button", { type: "submit", class: "btn btn-small btn-cancel", "data-testid": `cancel-${run.id}` }, "Cancel"),
  );
  const holder = document.createElement("div"); // enhanceForms looks for forms inside a root
  holder.append(form);
  enhanceForms(holder, onCancelled);
  return form;
}

function rowFor(run) {
  return el(
    "tr",
    { dataset: { run: run.id, started: run.started_at || "", finished: run.finished_at || "" }, class: "flash-row" },
    el("td", {},
      el("span", { class: `state state-${run.status.toLowerCase()}`, "data-role": "status" }, run.status), " ",
      el("span", { class: "chip-input", "data-role": "needs-input", hidden: !run.needs_input }, "needs input")),
    el("td", {}, el("a", { class: "mono", href: fillUrl(urls.run, { id: run.id }) }, run.id.slice(0, 8))),
    el("td", {}, el("a", { href: fillUrl(urls.workflow, { name: run.workflow }) }, run.workflow), " ",
      el("span", { class: "muted" }, `v${run.version}`)),
    el("td", {}, el("time", { datetime: run.created_at || "", title: run.created_at || "" }, formatLocalDateTime(run.created_at))),
    el("td", { "data-role": "duration" }, ""),
    staff ? el("td", {}, run.owner) : null,
    el("td", { class: "row-actions" }, cancelForm(run)),
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
  row.querySelector("[data-role=needs-input]").hidden = !run.needs_input;
  const cancel = row.querySelector("[data-role=cancel]");
  if (cancel) cancel.hidden = !cancellable.has(run.status);
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

function paintNeeding(run) {
  if (run.needs_input) needing.add(run.id);
  else needing.delete(run.id);
  const count = String(needing.size);
  const chip = document.querySelector('[data-count="needs-input"]');
  if (chip) chip.textContent = count;
  const nav = document.getElementById("needs-input-count");
  if (nav) {
    nav.textContent = count;
    nav.classList.toggle("zero", needing.size === 0);
    nav.setAttribute("aria-label", `${count} run${needing.size === 1 ? "" : "s"} need input`);
  }
}

function upsert(run) {
  paintNeeding(run);
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
    if (event.kind !== "run.status") continue; // node events only change needs_input
    const d = event.data || {};
    if (d.from) bumpCount(d.from, -1);
    bumpCount(d.status, 1);
  }
  // Rows show each run as it is now: the run-list row (the API's run without inputs, params
  // and waiting), read when the message is relayed.
  for (const summary of Object.values(message.runs || {})) upsert(summary);
}

function onCancelled(form, body) {
  const row = form.closest("tr[data-run]");
  if (!body.ok || !row || !body.status) return;
  // The socket brings the events too; show the new status at once.
  const badge = row.querySelector("[data-role=status]");
  badge.className = `state state-${body.status.toLowerCase()}`;
  badge.textContent = body.status;
  form.hidden = !cancellable.has(body.status);
}

// Live durations of running rows.
setInterval(() => {
  table.querySelectorAll("tr[data-run]").forEach((row) => {
    if (row.dataset.started && !row.dataset.finished) paintDuration(row);
  });
}, 1000);

document.querySelectorAll("#filters select, #filters input[type=checkbox]").forEach((input) => {
  input.addEventListener("change", () => input.form.submit());
});

localiseTimes(document);
enhanceForms(table, onCancelled);

async function pollRuns() {
  const params = new URLSearchParams({ limit: "50" });
  for (const key of ["status", "workflow", "session", "needs_input"]) if (data.filters[key]) params.set(key, data.filters[key]);
  const response = await fetch(`${urls.runs}?${params}`, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const body = await response.json();
  for (const run of [...body.results].reverse()) upsert(run);
  return [];
}

new EventStream({ path: urls.socket, after: data.after, onEvents, poll: pollRuns, pollInterval: 3000 }).start();
