// The workers page: the table and the counters refreshed from the workers API every few
// seconds (heartbeats are rows, not events).

import { el, pageData } from "./common.js";

const REFRESH_MS = 3000;
const urls = pageData().urls;
const body = document.querySelector("#workers-table tbody");
const empty = document.getElementById("workers-empty");
const order = { alive: 0, stale: 1, dead: 2 };

function time(iso) {
  const date = new Date(iso);
  return date.toLocaleTimeString([], { hour12: false });
}

async function refresh() {
  try {
    const response = await fetch(urls.workers, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const workers = (await response.json()).results;
    workers.sort((a, b) => order[a.liveness] - order[b.liveness] || a.hostname.localeCompare(b.hostname));
    body.replaceChildren(...workers.map((w) => el(
      "tr", { dataset: { worker: w.hostname } },
      el("td", {}, el("span", { class: `state state-${w.liveness}` }, w.liveness)),
      el("td", { class: "mono" }, w.hostname, " ", el("span", { class: "muted small" }, `pid ${w.pid}`)),
      el("td", {}, ...w.queues.map((q) => [el("span", { class: "pill" }, q), " "])),
      el("td", {}, w.concurrency),
      el("td", {}, w.nodes_running),
      el("td", {}, w.started_at.replace("T", " ").slice(0, 19)),
      el("td", {}, el("time", { datetime: w.last_seen }, time(w.last_seen))),
    )));
    const alive = workers.filter((w) => w.liveness === "alive");
    document.getElementById("stat-alive").textContent = alive.length;
    const slots = alive.reduce((n, w) => n + w.concurrency, 0);
    const busy = alive.reduce((n, w) => n + w.nodes_running, 0);
    document.getElementById("stat-busy").textContent = `${busy} / ${slots}`;
    empty.classList.toggle("hidden", workers.length > 0);
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

setTimeout(refresh, REFRESH_MS);
