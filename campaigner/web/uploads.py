"""Uploads: a POST body read with a size bound (file parts spooled to disk as they
arrive), and an uploaded file saved under a name of ours. The name the browser sent is
shown to the user (escaped) and decides nothing but the CSV/XLSX kind."""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath, PureWindowsPath

import anyio
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.types import Message

from campaigner.errors import CampaignerError
from campaigner.inputs.sniff import CSV_SUFFIXES, XLSX_SUFFIXES

__all__ = ("MAX_UPLOAD_BYTES", "UploadError", "display_name", "read_form", "save_upload")

MAX_UPLOAD_BYTES = 200 * 1024 * 1024  # the recipient list; the rest of the form is small
_FORM_OVERHEAD = 2 * 1024 * 1024  # a campaign file (≤ 1 MiB), fields and part headers
_ZIP_MAGIC = b"PK\x03\x04"


class UploadError(CampaignerError):
    """An upload refused: too large, or not a form."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _too_large() -> UploadError:
    return UploadError(f"the upload is over {MAX_UPLOAD_BYTES // 2**20} MB", 413)


async def read_form(request: Request) -> FormData:
    """The body's form; the body is refused past the bound, before it is all read."""
    limit = MAX_UPLOAD_BYTES + _FORM_OVERHEAD
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise _too_large()
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _too_large()
        return message

    bounded = Request(request.scope, receive)
    try:
        return await bounded.form(max_files=4, max_fields=200, max_part_size=2 * 1024 * 1024)
    except MultiPartException as exc:
        raise UploadError(f"the form could not be read: {exc.message}") from None


def display_name(upload: UploadFile) -> str:
    """The file name the browser sent, without any folder, for showing only."""
    raw = upload.filename or ""
    name = PureWindowsPath(PurePosixPath(raw).name).name
    return name[:200] or "upload"


def _suffix(upload: UploadFile, kinds: frozenset[str]) -> str:
    suffix = PurePosixPath(display_name(upload)).suffix.lower()
    if suffix in kinds:
        return suffix
    head = upload.file.read(4)
    upload.file.seek(0)
    return ".xlsx" if head == _ZIP_MAGIC else ".csv"


async def save_upload(upload: UploadFile, folder: Path, stem: str) -> Path:
    """``folder/<stem>.csv`` or ``.xlsx`` (by the name's suffix, else by the content)."""
    suffix = _suffix(upload, CSV_SUFFIXES | XLSX_SUFFIXES)
    if suffix not in CSV_SUFFIXES | XLSX_SUFFIXES:
        suffix = ".csv"
    path = folder / f"{stem}{suffix}"

    def copy() -> None:
        upload.file.seek(0)
        with path.open("xb") as out:
            shutil.copyfileobj(upload.file, out, 1024 * 1024)

    await anyio.to_thread.run_sync(copy)
    return path


async def save_text_upload(upload: UploadFile, path: Path, limit: int) -> None:
    """A small text file (the campaign file), at most ``limit`` bytes."""

    def copy() -> None:
        upload.file.seek(0)
        data = upload.file.read(limit + 1)
        if len(data) > limit:
            raise UploadError(f"{display_name(upload)} is over {limit:,} bytes")
        path.write_bytes(data)

    await anyio.to_thread.run_sync(copy)
