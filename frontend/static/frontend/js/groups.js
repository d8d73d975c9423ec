// Group boxes of the run page's graph (frontend/dag.py draws a layer too wide to draw node by
// node as one box) and the panel that lists a group's members. Drawing only: the run page
// (run.js) keeps the state and calls these when a member changes.

import { el } from "./common.js";

export const GROUP_PAGE = 50; // members listed per page of a group's panel
// Which state a group box shows (its stripe and colours): the first of these any member is
// in, else the state all its members share, else pending.
const PRESSING = ["FAILED", "UPSTREAM_FAILED", "WAITING", "RETRYING", "RUNNING", "QUEUED", "READY"];
const SVG = "http://www.w3.org/2000/svg";

const label = (name) => name.toLowerCase().replace("_", " ");

/** How many of `members` are in each state (`nodes`: node id -> node). */
export function countStates(members, nodes) {
  const counts = {};
  for (const id of members) {
    const name = nodes[id]?.state || "PENDING";
    counts[name] = (counts[name] || 0) + 1;
  }
  return counts;
}

function shownState(counts, total) {
  const first = PRESSING.find((name) => counts[name]);
  if (first) return first;
  const names = Object.keys(counts);
  return names.length === 1 && counts[names[0]] === total ? names[0] : "PENDING";
}

/**
 * A group box: the colour of its most pressing state, its counts per state as a stacked bar,
 * in `data-counts` and in its accessible name. Returns the counts.
 */
export function paintGroupBox(element, members, nodes, stateOrder, selected) {
  const total = members.length;
  const counts = countStates(members, nodes);
  const shown = shownState(counts, total);
  element.setAttribute("class", `dag-node dag-group state-${shown.toLowerCase()}${selected ? " selected" : ""}`);
  element.dataset.state = shown;
  element.dataset.counts = JSON.stringify(counts);
  const words = stateOrder.filter((name) => counts[name]).map((name) => `${counts[name]} ${label(name)}`);
  element.querySelector(".state-text").textContent = words.slice(0, 2).join(" · ");
  element.setAttribute("aria-label", `group of ${total} nodes, ${words.join(", ")}`);
  const bar = element.querySelector(".group-bar");
  if (bar) {
    const full = Number(bar.dataset.full);
    bar.querySelectorAll(".seg").forEach((seg) => seg.remove());
    let x = 0;
    for (const name of stateOrder) {
      if (!counts[name]) continue;
      const width = (full * counts[name]) / total;
      const seg = document.createElementNS(SVG, "rect");
      seg.setAttribute("class", `seg seg-${name.toLowerCase()}`);
      seg.setAttribute("x", x.toFixed(1));
      seg.setAttribute("width", width.toFixed(1));
      seg.setAttribute("height", "3");
      bar.append(seg);
      x += width;
    }
  }
  return counts;
}

/** The empty group panel: head, state filters, member list and pager (filled by paintGroupList). */
export function groupPanel(key, size) {
  return el("div", { class: "panel group-panel", "data-group": key },
    el("div", { class: "panel-head" },
      el("div", {},
        el("h2", {}, `${size} nodes`),
        el("span", { class: "muted small" }, "one layer of the graph, drawn as a group")),
      el("button", { type: "button", class: "btn btn-small", "data-close": "" }, "Close")),
    el("div", { class: "group-filters", role: "group", "aria-label": "Show members by state" }),
    el("ol", { class: "member-list" }),
    el("div", { class: "group-pager" },
      el("button", { type: "button", class: "btn btn-small", "data-page": "-1" }, "Previous"),
      el("span", { class: "small muted", "data-role": "range", "aria-live": "polite" }),
      el("button", { type: "button", class: "btn btn-small", "data-page": "1", "data-testid": "group-next" }, "Next")));
}

/**
 * Fill a group panel: a filter button per state present (with its count), then page `page` of
 * the members in state `filter` (all when empty). The list's buttons are updated in place
 * (same position, same button), so keyboard focus survives a live update. Returns the page
 * shown (clamped to the pages there are).
 */
export function paintGroupList(box, { members, nodes, stateOrder, filter, page }) {
  const counts = countStates(members, nodes);
  const filters = box.querySelector(".group-filters");
  const choices = [["", "all", members.length]].concat(
    stateOrder.filter((name) => counts[name]).map((name) => [name, label(name), counts[name]]));
  const focused = document.activeElement?.closest?.(".group-filters [data-filter]")?.dataset.filter;
  filters.replaceChildren(...choices.map(([name, text, count]) => el("button", {
    type: "button", class: `chip${filter === name ? " active" : ""}`,
    "data-filter": name, "aria-pressed": String(filter === name),
  }, el("b", {}, count), ` ${text}`)));
  if (focused !== undefined) filters.querySelector(`[data-filter="${CSS.escape(focused)}"]`)?.focus();
  const listed = filter ? members.filter((id) => nodes[id]?.state === filter) : members;
  const pages = Math.max(1, Math.ceil(listed.length / GROUP_PAGE));
  const shown = Math.min(page, pages - 1);
  const start = shown * GROUP_PAGE;
  const ids = listed.slice(start, start + GROUP_PAGE);
  const list = box.querySelector(".member-list");
  list.start = start + 1;
  const items = [...list.children];
  ids.forEach((id, index) => {
    const nodeState = nodes[id]?.state || "PENDING";
    let item = items[index];
    if (!item) {
      item = el("li", {}, el("button", { type: "button", class: "member" },
        el("span", { class: "mono" }), el("span", { class: "state" })));
      list.append(item);
    }
    const button = item.firstChild;
    button.dataset.select = id;
    button.firstChild.textContent = id;
    button.lastChild.className = `state state-${nodeState.toLowerCase()}`;
    button.lastChild.textContent = nodeState;
  });
  items.slice(ids.length).forEach((item) => item.remove());
  box.querySelector("[data-role=range]").textContent = listed.length
    ? `${start + 1}–${start + ids.length} of ${listed.length}` : "none";
  box.querySelector('[data-page="-1"]').disabled = shown === 0;
  box.querySelector('[data-page="1"]').disabled = shown >= pages - 1;
  return shown;
}
