// A live event feed that survives reloads, dropped sockets and blocked WebSockets.
//
// It connects to `path?after=<last id>`, reconnects with backoff from the highest id it has
// seen (the server then sends exactly what was missed), and drops any id it already
// delivered. When WebSockets are unavailable or keep failing it calls `poll(after)` every
// `pollInterval` ms instead (e.g. the run's events from the API, `?after=`), until a socket
// opens again.

import { setLiveMode } from "./common.js";

const REFUSED = new Set([4400, 4401, 4403, 4404]);
const SEEN_LIMIT = 20000; // ids remembered for de-duplication

export class EventStream {
  /**
   * @param {object} options
   * @param {string} options.path      WebSocket path from the page's data (`urls.socket`)
   * @param {number} options.after     highest event id already reflected in the page
   * @param {(events: object[], message: object) => void} options.onEvents
   * @param {(after: number) => Promise<object[]>} [options.poll]  fallback reader
   * @param {(message: object) => void} [options.onSynced]
   * @param {number} [options.pollInterval]
   */
  constructor({ path, after = 0, onEvents, poll = null, onSynced = null, pollInterval = 2000 }) {
    this.path = path;
    this.last = after;
    this.onEvents = onEvents;
    this.poll = poll;
    this.onSynced = onSynced;
    this.pollInterval = pollInterval;
    this.seen = new Set();
    this.failures = 0;
    this.socket = null;
    this.pollTimer = null;
    this.polling = false;
    this.stopped = false;
  }

  start() {
    if (typeof window.WebSocket !== "function") {
      this.startPolling();
      return this;
    }
    this.connect();
    return this;
  }

  stop() {
    this.stopped = true;
    if (this.socket) this.socket.close();
    this.stopPolling();
  }

  connect() {
    if (this.stopped) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${scheme}//${location.host}${this.path}?after=${this.last}`;
    let socket;
    try {
      socket = new WebSocket(url);
    } catch (error) {
      this.startPolling();
      return;
    }
    this.socket = socket;
    let opened = false;
    setLiveMode(this.polling ? "polling" : "connecting");
    socket.onopen = () => {
      opened = true;
      this.failures = 0;
      this.stopPolling();
      setLiveMode("live");
    };
    socket.onmessage = (message) => {
      let body;
      try {
        body = JSON.parse(message.data);
      } catch {
        return;
      }
      if (body.type === "events") this.deliver(body.events || [], body);
      else if (body.type === "synced" && this.onSynced) this.onSynced(body);
    };
    socket.onclose = (event) => {
      if (this.socket === socket) this.socket = null;
      if (this.stopped) return;
      if (REFUSED.has(event.code)) {
        setLiveMode("denied");
        return;
      }
      this.failures += 1;
      // Two failures in a row (or one that never opened): read by polling meanwhile.
      if (!opened || this.failures >= 2) this.startPolling();
      else setLiveMode("offline");
      const delay = Math.min(15000, 500 * 2 ** this.failures) * (0.8 + Math.random() * 0.4);
      setTimeout(() => this.connect(), delay);
    };
  }

  /** Hand over the events not delivered yet, in id order. */
  deliver(events, message = {}) {
    const fresh = [];
    for (const event of [...events].sort((a, b) => a.id - b.id)) {
      if (this.seen.has(event.id)) continue;
      this.seen.add(event.id);
      if (event.id > this.last) this.last = event.id;
      fresh.push(event);
    }
    if (this.seen.size > SEEN_LIMIT) {
      const keep = [...this.seen].sort((a, b) => a - b).slice(-SEEN_LIMIT / 2);
      this.seen = new Set(keep);
    }
    if (fresh.length) this.onEvents(fresh, message);
  }

  startPolling() {
    if (!this.poll || this.pollTimer || this.stopped) return;
    this.polling = true;
    setLiveMode("polling");
    const tick = async () => {
      try {
        const events = await this.poll(this.last);
        if (events && events.length) this.deliver(events);
      } catch (error) {
        setLiveMode("offline");
      }
      if (this.polling && !this.stopped) this.pollTimer = setTimeout(tick, this.pollInterval);
    };
    this.pollTimer = setTimeout(tick, 0);
  }

  stopPolling() {
    this.polling = false;
    if (this.pollTimer) clearTimeout(this.pollTimer);
    this.pollTimer = null;
  }
}
