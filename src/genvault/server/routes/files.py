"""`GET /files/{id}`: a stored file at its permanent URL.

Access is checked like the record that owns the file (its owner, or anyone when it belongs to a
chat shared by link or public); anyone else gets the same 404 as for a file that never existed.
The bytes never change under an id, so the ETag is their sha256 and caches may keep them forever.
Files are served so that even an HTML or SVG upload cannot run script on this origin.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile

from genvault.errors import InvalidRequest, NotFound
from genvault.ids import ID_PATTERN
from genvault.records import FileRecord
from genvault.server.deps import OptionalUserDep, UserDep, VaultDep

__all__ = ["parse_range", "router"]

router = APIRouter(tags=["files"])

FILE_CSP = "sandbox; default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeNotSatisfiable(Exception):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One `bytes=` range as (start, end exclusive); None to send the whole file (no header, or
    one we do not serve, such as several ranges, which RFC 9110 lets a server ignore)."""
    if not header:
        return None
    match = _RANGE.match(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(0, size - suffix), size
    start = int(first)
    end = size if not last else min(int(last) + 1, size)
    if last and int(last) < start:
        return None  # invalid syntax: ignore the header
    if start >= size:
        raise RangeNotSatisfiable
    return start, end


def _headers(record: FileRecord) -> dict[str, str]:
    headers = {
        "content-type": record.media_type,
        "etag": f'"{record.sha256}"',
        # Access-checked, so only the browser's own cache may keep it; the bytes never change.
        "cache-control": "private, max-age=31536000, immutable",
        "accept-ranges": "bytes",
        "x-content-type-options": "nosniff",
        # An uploaded HTML or SVG file opened directly must not run script as this origin.
        "content-security-policy": FILE_CSP,
    }
    if record.filename:
        headers["content-disposition"] = f"inline; filename*=UTF-8''{quote(record.filename, safe='')}"
    return headers


@router.head("/files/{file_id}", include_in_schema=False)
@router.get("/files/{file_id}", responses={206: {}, 304: {}, 404: {}, 416: {}})
async def get_file(
    file_id: str,
    request: Request,
    vault: VaultDep,
    user: OptionalUserDep,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
    if_range: Annotated[str | None, Header(alias="If-Range")] = None,
    if_none_match: Annotated[str | None, Header(alias="If-None-Match")] = None,
) -> Response:
    """The file's bytes, with `Range` support (one range) and conditional requests."""
    if not ID_PATTERN.match(file_id):
        raise NotFound(f"no file {file_id[:50]!r}")
    # Anonymous callers ("") see only files of shared chats.
    record = await vault.get_file(file_id, user_id=user or "")
    headers = _headers(record)
    etag = headers["etag"]
    if if_none_match and (if_none_match.strip() == "*" or etag in [t.strip() for t in if_none_match.split(",")]):
        return Response(status_code=304, headers={k: headers[k] for k in ("etag", "cache-control")})
    head = request.method == "HEAD"
    if head:
        await vault.blobs.stat(record.sha256)  # a HEAD must not promise bytes that are gone
    if if_range is not None and if_range.strip() != etag:
        range_header = None  # the client's copy is of other bytes: send them all
    try:
        wanted = parse_range(range_header, record.size)
    except RangeNotSatisfiable:
        return Response(
            status_code=416,
            headers={"content-range": f"bytes */{record.size}", "etag": etag, "content-type": "text/plain"},
            content=b"" if head else f"the file has {record.size} bytes; the requested range is outside it".encode(),
        )
    if wanted is None:
        body = b"" if head else await vault.blobs.get(record.sha256)
        return Response(content=body, status_code=200, headers={**headers, "content-length": str(record.size)})
    start, end = wanted
    body = b"" if head else await vault.blobs.get_range(record.sha256, start, end)
    headers.update({"content-range": f"bytes {start}-{end - 1}/{record.size}", "content-length": str(end - start)})
    return Response(content=body, status_code=206, headers=headers)


_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
            "*/*": {
                "schema": {"type": "string", "format": "binary"},
                "description": "the raw bytes, with their Content-Type (and ?filename=)",
            },
        },
    }
}


@router.post("/api/files", status_code=201, response_model=FileRecord, openapi_extra=_UPLOAD_BODY)
async def upload_file(
    request: Request,
    vault: VaultDep,
    user: UserDep,
    filename: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    """Store a file: a `multipart/form-data` body with a `file` field, or the raw bytes with their
    `Content-Type` (and `?filename=`). Answers the file record with its permanent URL."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() == "multipart/form-data":
        async with request.form() as form:  # closes the spooled upload files
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise InvalidRequest("send the file in a form field named `file`")
            data = await upload.read()
            media_type = upload.content_type or ""
            filename = filename or upload.filename
    else:
        data = await request.body()
        media_type = content_type
    if not media_type:
        raise InvalidRequest("say what the file is with a Content-Type header, e.g. image/png")
    record = await vault.store_file(data, media_type=media_type, user_id=user, filename=filename)
    return JSONResponse(record.model_dump(mode="json"), status_code=201, headers={"Location": record.url})
