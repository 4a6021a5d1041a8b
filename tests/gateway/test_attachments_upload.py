"""Files sent with a new ticket or a message from the portal and the console
(multipart/form-data), on the real desk: stored with their message, downloaded byte for byte
by whoever may see the message and by nobody else, bounded, cleaned, stored once."""

from __future__ import annotations

import json
import os
import socket
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from sqlalchemy import func, select

from gateway.uploads import clean_filename, safe_content_type
from store.models import Attachment, Message
from tests.desk import Desk

pytestmark = pytest.mark.ray

MiB = 1024 * 1024
PDF_NAME = "Übersicht März \u2013 Rechnung №7.pdf"
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 64 + os.urandom(20_000) + b"\x00\r\n\x1a"
LOG = b"Fehler: 502 Bad Gateway\nnginx: upstream timed out\n"


def upload(
    desk: Desk,
    token: str,
    path: str,
    files: list[tuple[str, bytes, str]],
    payload: dict[str, Any] | None = None,
    fields: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """A multipart POST as the portal's and the console's pages send it: the JSON in a
    `payload` part (or form fields), each file in a `files` part."""
    parts: list[tuple[str, Any]] = [(k, (None, v)) for k, v in (fields or {}).items()]
    if payload is not None:
        parts.append(("payload", (None, json.dumps(payload), "application/json")))
    parts += [("files", (name, content, ctype)) for name, content, ctype in files]
    with desk.http(token) as c:
        return c.post(path, files=parts, headers=headers or {})


def ticket(desk: Desk, token: str, number: str) -> dict[str, Any]:
    with desk.http(token) as c:
        r = c.get(f"/api/v1/tickets/{number}")
    assert r.status_code == 200, r.text
    return dict(r.json())


def download(desk: Desk, token: str, number: str, attachment_id: int) -> httpx.Response:
    with desk.http(token) as c:
        return c.get(f"/api/v1/tickets/{number}/attachments/{attachment_id}")


def saved_name(r: httpx.Response) -> str:
    """The file name a browser saves the download under (filename* wins, RFC 6266)."""
    disposition = r.headers["content-disposition"]
    assert disposition.startswith("attachment;"), disposition
    for part in disposition.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "filename*":
            charset, _, encoded = value.partition("''")
            assert charset.lower() == "utf-8"
            return unquote(encoded)
    return disposition.split('filename="', 1)[1].rstrip('"')


def stored_files(desk: Desk, number: str) -> int:
    ticket_id = int(number.removeprefix("TT-"))
    with desk.db.read() as s:
        q = select(func.count(Attachment.id)).join(Message, Message.id == Attachment.message_id)
        return int(s.scalar(q.where(Message.ticket_id == ticket_id)) or 0)


def open_with(desk: Desk, token: str, files: list[tuple[str, bytes, str]], **kw: Any) -> str:
    r = upload(desk, token, "/api/v1/tickets", files,
               payload={"subject": "Shop shows 502", "body": "See the files."}, **kw)  # fmt: skip
    assert r.status_code == 201, r.text
    return str(r.json()["number"])


def test_a_ticket_opened_with_two_files_shows_them_and_they_download_byte_identical(
    desk: Desk,
) -> None:
    account, customer = desk.customer("Ada Upload")
    _, stranger = desk.customer("Other Tenant")
    _, agent = desk.agent(1, online=False)

    r = upload(desk, customer, "/api/v1/tickets",
               [(PDF_NAME, PDF, "application/pdf"), ("nginx.log", LOG, "text/plain")],
               payload={"subject": "Shop shows 502", "body": "Screenshots attached."})  # fmt: skip

    assert r.status_code == 201, r.text
    number = r.json()["number"]
    assert r.json()["account_id"] == account.id and r.json()["channel"] == "portal"
    first = ticket(desk, customer, number)["messages"][0]
    assert first["body"] == "Screenshots attached."
    files = {a["filename"]: a for a in first["attachments"]}
    assert set(files) == {PDF_NAME, "nginx.log"}
    assert files[PDF_NAME]["content_type"] == "application/pdf"
    assert files[PDF_NAME]["size"] == len(PDF)
    assert files["nginx.log"]["content_type"] == "text/plain"
    for reader in (customer, agent):
        for name, content in ((PDF_NAME, PDF), ("nginx.log", LOG)):
            got = download(desk, reader, number, files[name]["id"])
            assert got.status_code == 200, got.text
            assert got.content == content
            assert saved_name(got) == name
            assert got.headers["content-type"] == "application/octet-stream"
            assert got.headers["x-content-type-options"] == "nosniff"
    # Another customer gets exactly what a ticket that does not exist gets.
    theirs = download(desk, stranger, number, files[PDF_NAME]["id"])
    missing = download(desk, stranger, "TT-999999", files[PDF_NAME]["id"])
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["error"] == missing.json()["error"] == "ticket_not_found"
    assert PDF_NAME not in theirs.text


def test_replies_and_notes_with_files(desk: Desk) -> None:
    _, customer = desk.customer("Ben Reply")
    _, agent = desk.agent(1, online=False)
    number = open_with(desk, customer, [])
    assert ticket(desk, customer, number)["messages"][0]["attachments"] == []

    # The console sends form fields instead of a payload part.
    r = upload(desk, agent, f"/api/v1/tickets/{number}/messages",
               [("fix.patch", b"--- a\n+++ b\n", "text/x-diff")],
               fields={"body": "Apply this patch.", "visibility": "public",
                       "pending_customer": "true", "channel": ""})  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "pending_customer"
    r = upload(desk, agent, f"/api/v1/tickets/{number}/messages",
               [("notes.txt", b"root cause: disk full", "text/plain")],
               payload={"body": "For us only.", "visibility": "internal"})  # fmt: skip
    assert r.status_code == 201, r.text
    # The portal's pages (gateway/web/lib/files.js) send the payload as a JSON Blob: a file
    # part named `payload` (filename "blob").
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(4096)
    with desk.http(customer) as c:
        r = c.post(f"/api/v1/tickets/{number}/messages", files=[
            ("payload", ("blob", json.dumps({"body": "Done, it works."}), "application/json")),
            ("files", ("after.png", png, "image/png")),
        ])  # fmt: skip
    assert r.status_code == 201, r.text

    seen = ticket(desk, customer, number)["messages"]
    by_body = {m["body"]: m["attachments"] for m in seen}
    assert "For us only." not in by_body
    [patch] = by_body["Apply this patch."]
    assert patch["filename"] == "fix.patch"
    assert patch["content_type"] == "application/octet-stream"  # not on the safe list
    [shot] = by_body["Done, it works."]
    assert shot["filename"] == "after.png" and shot["content_type"] == "image/png"
    assert download(desk, customer, number, shot["id"]).content == png
    assert download(desk, customer, number, patch["id"]).content == b"--- a\n+++ b\n"
    staff = {m["body"]: m["attachments"] for m in ticket(desk, agent, number)["messages"]}
    [note] = staff["For us only."]
    assert download(desk, agent, number, note["id"]).content == b"root cause: disk full"
    hidden = download(desk, customer, number, note["id"])
    assert hidden.status_code == 404 and hidden.json()["error"] == "attachment_not_found"


def test_names_and_types_are_cleaned(desk: Desk) -> None:
    _, customer = desk.customer("Cleaning")
    number = open_with(desk, customer, [
        ("../../etc/passwd", b"root:x:0:0", "text/plain"),
        ("C:\\Users\\ada\\Desktop\\report.pdf", b"%PDF", "application/pdf"),
        ("invoice\u202efdp.exe", b"MZ", "application/x-msdownload"),
        ("page.html", b"<script>alert(1)</script>", "text/html"),
        ("drawing.svg", b"<svg onload=alert(1)>", "image/svg+xml; charset=utf-8"),
        ("x" * 300 + ".tar.gz", b"\x1f\x8b", "application/gzip"),
    ])  # fmt: skip
    files = ticket(desk, customer, number)["messages"][0]["attachments"]
    assert [(a["filename"], a["content_type"]) for a in files] == [
        ("passwd", "text/plain"),
        ("report.pdf", "application/pdf"),
        ("invoicefdp.exe", "application/octet-stream"),
        ("page.html", "application/octet-stream"),
        ("drawing.svg", "application/octet-stream"),
        ("x" * 197 + ".gz", "application/gzip"),
    ]
    r = download(desk, customer, number, files[3]["id"])
    assert r.content == b"<script>alert(1)</script>"
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"] == 'attachment; filename="page.html"'


def test_too_many_files_too_large_and_malformed_forms_are_refused(desk: Desk) -> None:
    _, customer = desk.customer("Limits")
    number = open_with(desk, customer, [])
    before = stored_files(desk, number)
    path = f"/api/v1/tickets/{number}/messages"
    one = {"body": "files"}

    r = upload(desk, customer, path, [(f"f{i}.txt", b"x", "text/plain") for i in range(11)],
               payload=one)  # fmt: skip
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "too_many_files"
    assert r.json()["detail"] == {"field": "files", "max_files": 10, "files": 11}

    r = upload(desk, customer, path, [("big.bin", b"\x00" * (5 * MiB + 1), "application/zip")],
               payload=one)  # fmt: skip
    assert r.status_code == 413, r.text
    assert r.json()["error"] == "file_too_large"
    assert r.json()["detail"] == {"field": "files", "filename": "big.bin", "max_bytes": 5 * MiB}

    # Over 1 MiB is fine with files (two of 4 MiB: 8 MiB in all) ...
    r = upload(desk, customer, path, [("a.bin", os.urandom(4 * MiB), "application/zip"),
                                      ("b.bin", os.urandom(4 * MiB), "application/zip")],
               payload={"body": "two big ones"})  # fmt: skip
    assert r.status_code == 201, r.text
    # ... up to 10 MiB; JSON keeps its 1 MiB. Refused from the declared length alone.
    status, body = declared_body(desk, customer, path, "multipart/form-data; boundary=x", 11 * MiB)
    assert status == 413 and body["error"] == "body_too_large"
    assert body["detail"] == {"max_bytes": 10 * MiB}
    status, body = declared_body(desk, customer, path, "application/json", 2 * MiB)
    assert status == 413 and body["detail"] == {"max_bytes": MiB}

    r = upload(desk, customer, path, [], payload={"visibility": "public"})
    assert r.status_code == 422 and r.json()["error"] == "invalid_request"
    assert r.json()["detail"][0]["field"] == "body"
    r = upload(desk, customer, path, [("a.txt", b"a", "text/plain")], payload=one,
               fields={"body": "also here"})  # fmt: skip
    assert r.status_code == 422 and r.json()["error"] == "invalid_upload"
    with desk.http(customer) as c:
        r = c.post(path, data=one, files=[("files", (None, b"not a file"))])  # no filename
        assert r.status_code == 422 and r.json()["error"] == "invalid_upload"
        assert r.json()["detail"] == [{"field": "files", "problem": "not a file"}]
        r = c.post(
            path, content=b"--x\r\nnonsense", headers={"content-type": "multipart/form-data"}
        )
        assert r.status_code == 422 and r.json()["error"] == "invalid_upload"
        r = c.post(path, files=[("attachment", ("a.txt", b"a", "text/plain"))], data=one)
        assert r.status_code == 422 and r.json()["error"] == "invalid_upload"
    assert stored_files(desk, number) == before + 2  # only the two of the accepted reply


def test_an_idempotent_retry_stores_the_files_once(desk: Desk) -> None:
    _, customer = desk.customer("Retry")
    files = [(PDF_NAME, PDF, "application/pdf"), ("nginx.log", LOG, "text/plain")]
    key = {"Idempotency-Key": f"open-{os.urandom(4).hex()}"}
    number = open_with(desk, customer, files, headers=key)
    assert open_with(desk, customer, files, headers=key) == number  # the retry: the same ticket
    assert stored_files(desk, number) == 2

    path = f"/api/v1/tickets/{number}/messages"
    reply = {"Idempotency-Key": f"reply-{os.urandom(4).hex()}"}
    payload = {"body": "One more file."}
    first = upload(desk, customer, path, files[1:], payload=payload, headers=reply)
    again = upload(desk, customer, path, files[1:], payload=payload, headers=reply)
    assert first.status_code == again.status_code == 201, again.text
    assert again.json() == first.json()
    assert stored_files(desk, number) == 3
    assert ticket(desk, customer, number)["message_count"] == 2
    # The same key with other files is another request, refused: not a retry.
    other = upload(desk, customer, path, [("other.log", b"x", "text/plain")], payload=payload,
                   headers=reply)  # fmt: skip
    assert other.status_code == 422 and other.json()["error"] == "idempotency_key_reused"
    assert stored_files(desk, number) == 3


def test_json_bodies_work_as_before_and_the_openapi_documents_both(desk: Desk) -> None:
    _, customer = desk.customer("Json Still")
    with desk.http(customer) as c:
        r = c.post("/api/v1/tickets", json={"subject": "Plain JSON", "body": "no files"})
        assert r.status_code == 201, r.text
        number = r.json()["number"]
        r = c.post(f"/api/v1/tickets/{number}/messages", json={"body": "still JSON"})
        assert r.status_code == 201, r.text
        spec = c.get("/openapi.json").json()
    for path in ("/api/v1/tickets", "/api/v1/tickets/{number}/messages"):
        post = spec["paths"][path]["post"]
        content = post["requestBody"]["content"]
        assert set(content) == {"application/json", "multipart/form-data"}
        assert set(content["multipart/form-data"]["schema"]["properties"]) == {"payload", "files"}
        for status, body in (("413", "ErrorBody"), ("422", "UploadErrorBody")):
            assert post["responses"][status]["content"]["application/json"]["schema"] == {
                "$ref": f"#/components/schemas/{body}"
            }


def declared_body(
    desk: Desk, token: str, path: str, content_type: str, length: int
) -> tuple[int, dict[str, Any]]:
    """POST only the headers of a body of `length` bytes and read the answer: the limit is
    enforced from the declared Content-Length, before a byte of the body is sent."""
    url = urlsplit(desk.base_url)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
    )
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(head.encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


def test_clean_filename_and_safe_content_type() -> None:
    assert clean_filename("../../etc/passwd", fallback="f") == "passwd"
    assert clean_filename("..\\..\\boot.ini", fallback="f") == "boot.ini"
    assert clean_filename("a\x00b\x1fc\x7f.txt", fallback="f") == "abc.txt"
    assert clean_filename("Nbsp\u00a0and\u3000ideographic  spaces .txt", fallback="f") == (
        "Nbsp and ideographic spaces .txt"
    )
    assert clean_filename("Cafe\u0301.txt", fallback="f") == "Café.txt"  # NFC
    for nothing in ("", "..", "/", " . ", "dir/", None):
        assert clean_filename(nothing, fallback="file-3") == "file-3"
    assert clean_filename("y" * 400, fallback="f") == "y" * 200
    assert safe_content_type("Image/PNG; name=a.png") == "image/png"
    assert safe_content_type("text/html") == "application/octet-stream"
    assert safe_content_type("application/xhtml+xml") == "application/octet-stream"
    assert safe_content_type(None) == "application/octet-stream"
