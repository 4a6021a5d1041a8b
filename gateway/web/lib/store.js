// The client store: what the page knows, kept current by the live stream. A view subscribes to
// the topics it shows (`on("ticket.", fn)`), and each event reaches only those views, each of
// which updates itself from the event or reloads just its own part: one event is not five
// requests.
export class Store {
  constructor() {
    this.subscribers = [];
    this.changes = new Map(); // change id -> its latest known state (see changeState)
  }

  // fn(event) for every event whose topic starts with `prefix` ("" for all); returns an
  // unsubscribe function.
  on(prefix, fn) {
    const sub = { prefix, fn };
    this.subscribers.push(sub);
    return () => {
      this.subscribers = this.subscribers.filter((s) => s !== sub);
    };
  }

  emit(event) {
    const topic = String(event.topic || "");
    if (topic.startsWith("change.")) this.noteChange(event);
    for (const sub of [...this.subscribers]) {
      if (topic.startsWith(sub.prefix)) {
        try {
          sub.fn(event);
        } catch (err) {
          console.error(err); // one view's bug does not stop the others
        }
      }
    }
  }

  // A change's state from its events: queued (requested), applying, applied, failed,
  // rolled_back; with the ticket a failure opened.
  noteChange(event) {
    const data = event.data || {};
    const id = event.change_id || data.change_id;
    if (!id) return;
    const known = this.changes.get(id) || { id };
    const status = data.status || event.topic.slice("change.".length);
    this.changes.set(id, {
      ...known,
      kind: data.kind || known.kind,
      service_id: data.service_id ?? known.service_id,
      status: status === "requested" ? "queued" : status,
      summary: known.summary || event.summary, // the first words stay: what was asked for
      ticket: data.number || known.ticket,
      error: data.error || known.error,
    });
  }
}

// Calls fn(key) once per key after a burst of calls for that key.
export function keyedDebounce(fn, ms = 120) {
  const timers = new Map();
  return (key) => {
    clearTimeout(timers.get(key));
    timers.set(key, setTimeout(() => {
      timers.delete(key);
      fn(key);
    }, ms));
  };
}
