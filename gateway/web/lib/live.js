// The live stream of events (Server-Sent Events read with fetch, so it can send the token).
import { API } from "./api.js";

// The live stream: an EventSource can not send an Authorization header, so read
// text/event-stream with fetch and a ReadableStream; reconnect with Last-Event-ID.
export class LiveStream {
  constructor(session, indicator, onEvent) {
    this.session = session;
    this.indicator = indicator;
    this.onEvent = onEvent;
    this.lastId = null;
    this.retryMs = 2000;
    this.controller = null;
    this.running = false;
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.loop();
  }

  stop() {
    this.running = false;
    if (this.controller) this.controller.abort();
    this.setState("off");
  }

  setState(state) {
    if (!this.indicator) return;
    this.indicator.dataset.state = state;
    this.indicator.textContent = { live: "live", connecting: "connecting…", off: "offline" }[state];
    this.indicator.title =
      state === "live" ? "Updates appear as they happen" : "Live updates are not connected";
  }

  async loop() {
    while (this.running) {
      this.setState("connecting");
      try {
        await this.readOnce();
      } catch (err) {
        if (!this.running) break;
      }
      if (!this.running || !this.session.token) break;
      this.setState("off");
      await new Promise((resolve) => setTimeout(resolve, this.retryMs));
    }
    this.setState("off");
  }

  async readOnce() {
    this.controller = new AbortController();
    const headers = { Accept: "text/event-stream", Authorization: `Bearer ${this.session.token}` };
    if (this.lastId !== null) headers["Last-Event-ID"] = String(this.lastId);
    const resp = await fetch(`${API}/events`, { headers, signal: this.controller.signal });
    if (resp.status === 401) {
      this.running = false;
      this.session.token = null;
      this.session.onExpired();
      return;
    }
    if (!resp.ok || !resp.body) throw new Error(`events: ${resp.status}`);
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        this.handleBlock(block);
      }
    }
  }

  handleBlock(block) {
    const fields = { data: [] };
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) {
        if (line.startsWith(": connected")) this.setState("live");
        continue;
      }
      const colon = line.indexOf(":");
      const name = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (name === "data") fields.data.push(value);
      else if (name === "id") fields.id = value;
      else if (name === "retry" && /^\d+$/.test(value)) this.retryMs = Number(value);
    }
    if (fields.id && /^\d+$/.test(fields.id)) this.lastId = Number(fields.id);
    if (!fields.data.length) return;
    let event;
    try {
      event = JSON.parse(fields.data.join("\n"));
    } catch {
      return;
    }
    this.onEvent(event);
  }
}

