"""Files sent with a new ticket or a message: `multipart/form-data` beside the JSON body.

A route that takes `Uploads` (`POST /tickets`, `POST /tickets/{number}/messages`) accepts
either its JSON body as before or a multipart form of

- `payload`: the same JSON as the JSON body (a text part, or a part of type application/json),
  or instead of it the JSON body's fields as form fields (`subject`, `body`, ...; an empty
  field counts as left out);
- `files`: one part per file, at most `upload_max_files`, each at most `upload_max_file_bytes`.

The JSON goes on to the route's own validation as though it had come as the JSON body, so both
ways are checked by one model and answer with the same errors. Such a request may be up to
`upload_max_bytes` (the body limit of every other request stays `max_body_bytes`, see
gateway/middleware.py). A file's name is cleaned (no path, no control characters, at most
`MAX_FILENAME` characters) and its type kept only from a list of harmless ones, else
`application/octet-stream`; downloads are always served as attachments (gateway/routes/mail.py).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.types import Message, Scope

from actors.errors import DeskError
from actors.tickets.commands import FilePart
from gateway.settings import GatewaySettings
from store.files import short_of_space

# The routes that take files; BodyLimit allows their multipart requests the larger limit.
UPLOAD_PATHS = re.compile(r"/api/v1/tickets(?:/[^/]+/messages)?")
UPLOADS = "sitedesk.uploads"  # where the parsed files wait in the request's scope
MAX_FILENAME = 200
MAX_FIELDS = 50  # form fields of a multipart request (the payload's, or the payload itself)
OCTET_STREAM = "application/octet-stream"
# Types kept as the uploader said: documents, images, archives, logs. Anything else, and above
# all what a browser would run (text/html, image/svg+xml, scripts), is stored as
# application/octet-stream.
SAFE_TYPES = frozenset(
    {
        "application/pdf",
        "application/json",
        "application/xml",
        "application/zip",
        "application/gzip",
        "application/x-gzip",
        "application/x-tar",
        "application/x-7z-compressed",
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.oasis.opendocument.spreadsheet",
        "application/vnd.oasis.opendocument.presentation",
        "message/rfc822",
        "text/plain",
        "text/csv",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/bmp",
        "image/tiff",
        "image/heic",
        "video/mp4",
        "video/webm",
        "video/quicktime",
        OCTET_STREAM,
    }
)


class InvalidUpload(DeskError):
    code, status = "invalid_upload", 422


class TooManyFiles(DeskError):
    code, status = "too_many_files", 422


class FileTooLarge(DeskError):
    code, status = "file_too_large", 413


class InsufficientStorage(DeskError):
    """Keeping the files would eat into the data directory's free-space reserve."""

    code, status = "insufficient_storage", 507


# A file is written twice before it rests (SQLite: into the write-ahead log, then the database).
STORAGE_FACTOR = 2


def is_upload(scope: Scope) -> bool:
    """A multipart POST to a route that takes files."""
    if scope.get("method") != "POST" or not UPLOAD_PATHS.fullmatch(scope.get("path", "")):
        return False
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.split(b";", 1)[0].strip().lower() == b"multipart/form-data"
    return False


def clean_filename(name: str | None, *, fallback: str) -> str:
    """A file's name as it may be stored and shown: its last path part only (a browser sends
    only that; other clients may send `../../etc/passwd` or `C:\\Users\\x\\a.pdf`), no
    control or format characters (U+202E would turn `gpj.exe` around), spaces of any kind as
    one space, no dots or spaces at either end, at most MAX_FILENAME characters with the
    extension kept; `fallback` when nothing is left."""
    text = unicodedata.normalize("NFC", name or "")
    text = re.split(r"[/\\]", text)[-1]
    text = "".join(" " if unicodedata.category(c) == "Zs" else c for c in text)
    text = "".join(c for c in text if c.isprintable())
    text = " ".join(text.split()).strip(" .")
    if len(text) > MAX_FILENAME:
        stem, dot, ext = text.rpartition(".")
        if dot and 0 < len(ext) <= 16:
            text = stem[: MAX_FILENAME - len(ext) - 1].rstrip(" .") + "." + ext
        else:
            text = text[:MAX_FILENAME].rstrip(" .")
    return text or fallback


def safe_content_type(declared: str | None) -> str:
    """The declared type (without parameters, lower-case) when it is on the safe list, else
    application/octet-stream."""
    base = (declared or "").split(";", 1)[0].strip().lower()
    return base if base in SAFE_TYPES else OCTET_STREAM


async def read_form(request: Request, settings: GatewaySettings) -> tuple[bytes, list[FilePart]]:
    """The JSON of a multipart request (its `payload` part, or its fields as one object) and
    its files, within the limits."""
    parser = MultiPartParser(
        request.headers,
        request.stream(),
        max_fields=MAX_FIELDS,
        max_part_size=settings.max_body_bytes,
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise InvalidUpload(f"the multipart body is not valid: {exc.message}") from None
    try:
        payload: bytes | None = None
        fields: dict[str, str] = {}
        uploads: list[UploadFile] = []
        for name, value in form.multi_items():
            if name == "files":
                if not isinstance(value, UploadFile):
                    raise InvalidUpload(
                        "`files` parts must be files (with a filename)",
                        detail=[{"field": "files", "problem": "not a file"}],
                    )
                if value.filename or value.size:  # an empty file input sends an empty part
                    uploads.append(value)
            elif name == "payload":
                if payload is not None:
                    raise InvalidUpload("send one `payload` part")
                payload = await value.read() if isinstance(value, UploadFile) else value.encode()
            elif isinstance(value, UploadFile):
                raise InvalidUpload(
                    f"files go in parts named `files`, not `{name[:40]}`",
                    detail=[{"field": name[:40], "problem": "a file outside `files`"}],
                )
            elif name in fields:
                raise InvalidUpload(
                    f"the form field `{name[:40]}` is given twice",
                    detail=[{"field": name[:40], "problem": "given twice"}],
                )
            elif value != "":
                fields[name] = value
        if payload is not None and fields:
            raise InvalidUpload(
                "send the request either as a `payload` part or as form fields, not both",
                detail=[{"field": f, "problem": "beside `payload`"} for f in sorted(fields)],
            )
        if len(uploads) > settings.upload_max_files:
            raise TooManyFiles(
                f"at most {settings.upload_max_files} files in one request",
                detail={"field": "files", "max_files": settings.upload_max_files,
                        "files": len(uploads)},
            )  # fmt: skip
        files = []
        for i, upload in enumerate(uploads):
            data = await upload.read(settings.upload_max_file_bytes + 1)
            name = clean_filename(upload.filename, fallback=f"file-{i + 1}")
            if len(data) > settings.upload_max_file_bytes:
                raise FileTooLarge(
                    f"{name} is larger than {settings.upload_max_file_bytes} bytes",
                    detail={"field": "files", "filename": name,
                            "max_bytes": settings.upload_max_file_bytes},
                )  # fmt: skip
            files.append(
                FilePart(filename=name, content_type=safe_content_type(upload.content_type),
                         data=data)
            )  # fmt: skip
    finally:
        await form.close()
    return (payload if payload is not None else json.dumps(fields).encode()), files


class UploadRoute(APIRoute):
    """A route that may also be sent files: for a route that takes `Uploads`, a multipart
    request is read into its JSON and its files, and the route then runs as for the JSON body
    (its body model validates the JSON; the files are its `Uploads`). Every other request,
    and every route without `Uploads`, is handled exactly as by APIRoute."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if not any(d.call is uploads_of for d in self.dependant.dependencies):
            return handler
        path = re.sub(r"\{[^}]*\}", "x", self.path_format)
        assert UPLOAD_PATHS.fullmatch(path), f"{self.path} takes files: add it to UPLOAD_PATHS"

        async def route(request: Request) -> Response:
            if is_upload(request.scope):
                settings: GatewaySettings = request.app.state.platform.settings
                payload, files = await read_form(request, settings)
                check_disk(settings, files)
                request = as_json_request(request, payload, files)
            return await handler(request)

        return route


def check_disk(settings: GatewaySettings, files: list[FilePart]) -> None:
    """Refuse files (507) that would leave the data directory's disk with less than its
    reserve free (`min_free_disk_mb`), before anything of the request is written: the ticket
    or message is not made at all, rather than made without its files or with a disk full."""
    if not files:
        return
    need = STORAGE_FACTOR * sum(len(f.data) for f in files)
    reserve = settings.min_free_disk_mb * 1024 * 1024
    if short_of_space(settings.data_dir, reserve, need):
        raise InsufficientStorage(
            "the desk has no room for these files now; send them later, or send the text "
            "without them",
            detail={"field": "files", "bytes": need // STORAGE_FACTOR},
        )


def as_json_request(request: Request, payload: bytes, files: list[FilePart]) -> Request:
    """The request as though `payload` had been its JSON body, the files in its scope."""
    headers = [(k, v) for k, v in request.scope["headers"]
               if k not in (b"content-type", b"content-length")]  # fmt: skip
    headers += [(b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode())]  # fmt: skip
    scope = {**request.scope, "headers": headers, UPLOADS: files}
    given = False

    async def receive() -> Message:
        nonlocal given
        if given:
            return await request.receive()  # a disconnect, as the original would tell it
        given = True
        return {"type": "http.request", "body": payload, "more_body": False}

    return Request(scope, receive)


async def uploads_of(request: Request) -> list[FilePart]:
    """The files sent with the request (none for a JSON body)."""
    return list(request.scope.get(UPLOADS, ()))


Uploads = Annotated[list[FilePart], Depends(uploads_of)]


def hashed_request(body: BaseModel, files: list[FilePart]) -> Any:
    """What an Idempotency-Key's request hash covers: the body, and the files by name, type
    and SHA-256 (the same key with other files is another request). Without files, exactly
    the JSON body, as before files could be sent."""
    if not files:
        return body
    return {
        "body": body.model_dump(mode="json"),
        "files": [[f.filename, f.content_type, hashlib.sha256(f.data).hexdigest()] for f in files],
    }


def multipart_doc(model: str) -> dict[str, Any]:
    """The OpenAPI of the multipart form beside a route's JSON body (`openapi_extra`)."""
    return {
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "payload": {
                                "type": "string",
                                "contentMediaType": "application/json",
                                "description": f"The {model} JSON, as the JSON body would "
                                "be. Or leave it out and send its fields as form fields.",
                            },
                            "files": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                                "description": "One part per file, with its filename. Limits: "
                                "SITEDESK_UPLOAD_MAX_FILES files (10), "
                                "SITEDESK_UPLOAD_MAX_FILE_BYTES each (5 MiB), "
                                "SITEDESK_UPLOAD_MAX_BYTES the whole request (10 MiB).",
                            },
                        },
                    },
                    "encoding": {"payload": {"contentType": "application/json, text/plain"}},
                }
            }
        }
    }
