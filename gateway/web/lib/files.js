// Files on tickets: sending a message with attachments (multipart/form-data: the message as a
// `payload` JSON part, each file a `files` part) and offering a message's files as downloads
// (fetched with the token: a plain link can not send it).
import { download, el } from "./dom.js";

// POSTs `payload` to `path`, as JSON when there are no files, else as multipart; with an
// Idempotency-Key either way (a retried send is one message, its files stored once).
export async function sendWithFiles(session, path, payload, files) {
  const headers = { "Idempotency-Key": crypto.randomUUID() };
  if (!files || !files.length) return session.post(path, payload, headers);
  const form = new FormData();
  form.append("payload", new Blob([JSON.stringify(payload)], { type: "application/json" }));
  for (const file of files) form.append("files", file, file.name);
  const resp = await session.request("POST", path, { body: form, headers });
  return resp.json();
}

function size(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

export function fileList(session, number, attachments) {
  if (!attachments.length) return "";
  return el("ul", { class: "files", "aria-label": "Attached files" }, attachments.map((a) =>
    el("li", {}, el("button", { type: "button", class: "link file",
      onclick: async () => download(
        await session.blob(`/tickets/${encodeURIComponent(number)}/attachments/${a.id}`), a.filename),
    }, a.filename), ` (${size(a.size)})`)));
}
