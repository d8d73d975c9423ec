// Small helpers shared by the dashboard pages: DOM building, formatting, CSRF, toasts and
// forms that post in the background (`<form data-async>`).

/** JSON embedded by Django's `json_script` filter. */
export function pageData(id = "page-data") {
  const node = document.getElementById(id);
  return node ? JSON.parse(node.textContent) : null;
}

/**
 * A URL template from the page's data (`…/runs/{id}/`) with its holes filled in, each value
 * encoded: the server reverses every URL, so the dashboard works under any prefix.
 */
export function fillUrl(template, values) {
  return template.replace(/\{(\w+)\}/g, (hole, name) => encodeURIComponent(values[name]));
}

/** `el("td", {class: "x"}, "text", child)`: an element with attributes and children. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** `0.42 s`, `12.0 s`, `3 min 05 s`, `2 h 01 min` (as the server's `duration`). */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "";
  seconds = Math.max(0, seconds);
  if (seconds < 60) return seconds < 10 ? `${seconds.toFixed(2)} s` : `${seconds.toFixed(1)} s`;
  let minutes = Math.floor(seconds / 60);
  const secs = Math.floor(seconds % 60);
  if (minutes < 60) return `${minutes} min ${String(secs).padStart(2, "0")} s`;
  const hours = Math.floor(minutes / 60);
  minutes %= 60;
  return `${hours} h ${String(minutes).padStart(2, "0")} min`;
}

export function secondsBetween(startIso, endIso) {
  if (!startIso) return null;
  const end = endIso ? Date.parse(endIso) : Date.now();
  return (end - Date.parse(startIso)) / 1000;
}

/** `HH:MM:SS.mmm` in local time. */
export function formatTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

/** `YYYY-MM-DD HH:MM:SS ZONE` in the browser's time zone (e.g. `… CET`, `… GMT+2`). */
export function formatLocalDateTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  const zone = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" })
    .formatToParts(date).find((part) => part.type === "timeZoneName")?.value || "";
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} `
    + `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())} ${zone}`.trim();
}

/** Every `<time datetime=ISO data-local>` under `root` (the server writes UTC text) shown
 * in the browser's zone, the UTC text kept as its tooltip. */
export function localiseTimes(root = document) {
  root.querySelectorAll("time[data-local]").forEach((node) => {
    const text = formatLocalDateTime(node.getAttribute("datetime"));
    if (!text) return;
    if (!node.title) node.title = node.textContent.trim();
    node.textContent = text;
    node.removeAttribute("data-local");
  });
}

export function csrfToken(form) {
  const input = (form || document).querySelector("input[name=csrfmiddlewaretoken]");
  if (input) return input.value;
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  if (!box) return;
  const item = el("div", { class: `toast toast-${kind}`, role: "status" }, message);
  box.append(item);
  setTimeout(() => item.remove(), kind === "error" ? 7000 : 3500);
}

/** The live-updates dot in the sidebar: live, connecting, polling, offline, denied. */
export function setLiveMode(mode) {
  const box = document.getElementById("live");
  if (!box) return;
  box.dataset.mode = mode;
  const labels = {
    live: "live", connecting: "connecting…", polling: "live (polling)",
    offline: "reconnecting…", denied: "not signed in", idle: "static",
  };
  box.querySelector("span").textContent = labels[mode] || mode;
}

/**
 * Forms marked `data-async` post with fetch and stay on the page; the server answers JSON
 * (`{ok, message, errors}`) because we ask for it. `onResult(form, body, response)` sees
 * every answer; field errors are written under their fields.
 */
export function enhanceForms(root, onResult) {
  root.querySelectorAll("form[data-async]").forEach((form) => {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      // `data-confirm`: a question asked first (cancel a run); no means nothing is sent.
      if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
      const button = form.querySelector("button[type=submit], button:not([type])");
      if (button) button.disabled = true;
      form.querySelectorAll("[data-field-error]").forEach((node) => { node.textContent = ""; });
      form.querySelectorAll(".field.has-error").forEach((node) => node.classList.remove("has-error"));
      let body = { ok: false, message: "No answer from the server." };
      let response = null;
      try {
        response = await fetch(form.action, {
          method: "POST",
          body: new FormData(form),
          headers: { Accept: "application/json", "X-CSRFToken": csrfToken(form) },
          credentials: "same-origin",
        });
        body = await response.json();
      } catch (error) {
        body = { ok: false, message: `Request failed: ${error.message}` };
      } finally {
        if (button) button.disabled = false;
      }
      for (const [name, messages] of Object.entries(body.errors || {})) {
        const target = form.querySelector(`[data-field-error="${CSS.escape(name)}"]`);
        if (target) {
          target.textContent = messages.join(" ");
          target.closest(".field")?.classList.add("has-error");
        }
      }
      toast(body.message || (body.ok ? "Done." : "Refused."), body.ok ? "info" : "error");
      if (onResult) onResult(form, body, response);
    });
  });
}
