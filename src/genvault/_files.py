"""The Vault's files and images: the blob store tied to the `blobs` table, image generations,
and file parts in chats (uploads in, model files out, bytes back in for the provider).

Invariants:
- No row, checkpoint or stream chunk ever carries a file as base64: files go to the blob store at
  once and are referred to by their permanent URL, `/files/{id}` (absolute under `public_url`).
- A refused file (media type, size, a path for a name) is refused before any byte is written.
- Access follows the record that owns the file: its owner, or anyone for a chat shared by link or
  public. An object is deleted only when no row names its sha256.

`Vault` inherits these methods; they use only the Vault's store, blobs, registry and engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from genvault.blobs import BlobStore, check_file
from genvault.blobs.dataurl import parse_data_url
from genvault.blobs.parts import file_id_in_url, inline_stored_files
from genvault.engine import Engine, FileSink, Run
from genvault.errors import CallerError, InvalidRequest, NotFound, ProviderError
from genvault.ids import new_id
from genvault.messages.convert import to_model_messages
from genvault.providers.base import ModelRequest, StreamFile
from genvault.providers.images import SIZE_PATTERN, ImageRequest, ImageStream
from genvault.providers.registry import ProviderRegistry
from genvault.records import FileRecord, Generation
from genvault.result_message import ResultMessage
from genvault.settings import Settings
from genvault.store import Store
from genvault.store import chats as chat_store
from genvault.store import files as file_store
from genvault.store import generations as gen_store
from genvault.store.text import check_storable
from genvault.store.users import LOCAL_USER_ID, ensure_user
from genvault.validation import check_id

__all__ = ["FilesMixin"]

MAX_IMAGE_PROMPT_CHARS = 32_000
MAX_IMAGES = 10


@dataclass
@dataclass
class Upload:
    """A file part of an incoming message, checked and decoded, waiting for its row."""

    position: int
    data: bytes
    media_type: str
    filename: str | None
    file_id: str = field(default_factory=lambda: new_id("file"))
    sha256: str = ""
    exists: bool = False  # a row for it is already stored


class FilesMixin:
    """Files and images on the Vault (see the module docstring)."""

    settings: Settings
    store: Store
    blobs: BlobStore
    registry: ProviderRegistry
    engine: Engine

    # -- files ----------------------------------------------------------------------------------

    def file_url(self, file_id: str) -> str:
        """The file's permanent URL: `/files/{id}`, absolute when `public_url` is set."""
        return f"{self.settings.public_url or ''}/files/{file_id}"

    def _file_record(self, row: dict[str, Any]) -> FileRecord:
        return FileRecord.model_validate({**row, "url": self.file_url(row["id"])})

    async def store_file(
        self,
        data: bytes,
        *,
        media_type: str,
        user_id: str,
        filename: str | None = None,
        generation_id: str | None = None,
        chat_id: str | None = None,
        message_id: str | None = None,
        part_position: int | None = None,
    ) -> FileRecord:
        """Keep `data` in the blob store and record who references it; returns the file with its
        permanent URL. Refused files (media type, size, a path for a name) store nothing."""
        media_type, filename = check_file(data, media_type, filename, self.settings)
        data = bytes(data)
        sha256 = await self.blobs.put(data)
        async with self.store.write() as conn:
            await ensure_user(conn, user_id)
            row = await file_store.insert_row(
                conn,
                id=new_id("file"),
                user_id=user_id,
                sha256=sha256,
                media_type=media_type,
                size=len(data),
                filename=filename,
                generation_id=generation_id,
                chat_id=chat_id,
                message_id=message_id,
                part_position=part_position,
            )
        # An erasure may have deleted the object between our put and our row's commit (it saw no
        # reference yet). Now that the row is visible, make sure the object is there.
        if not await self.blobs.exists(sha256):
            await self.blobs.put(data)
        return self._file_record(row)

    async def get_file(self, file_id: str, *, user_id: str | None) -> FileRecord:
        """The file's record; `NotFound` unless `user_id` owns it or it belongs to a chat shared by
        link or public (`user_id=None`: anyone's)."""
        if not isinstance(file_id, str) or not 0 < len(file_id) <= 40:
            raise NotFound(f"no file {str(file_id)[:50]!r}")
        async with self.store.read() as conn:
            return self._file_record(await file_store.get_row(conn, file_id, user_id))

    async def read_file(self, file_id: str, *, user_id: str | None) -> bytes:
        record = await self.get_file(file_id, user_id=user_id)
        return await self.blobs.get(record.sha256)

    async def generation_files(self, generation_id: str, *, user_id: str | None = LOCAL_USER_ID) -> list[FileRecord]:
        """The files a generation made (its images), in order."""
        async with self.store.read() as conn:
            await gen_store.get(conn, generation_id, user_id=user_id)  # ownership
            rows = await file_store.list_for_generation(conn, generation_id)
        return [self._file_record(r) for r in rows]

    async def sweep_unreferenced_blobs(self, *, older_than: timedelta = timedelta(hours=1)) -> tuple[int, int]:
        """Delete objects no `blobs` row names (left by a turn that failed after its upload, or
        by an erasure that stopped midway); returns (objects deleted, bytes freed). Only objects
        older than `older_than`: a younger one may belong to a write whose row is not committed."""
        cutoff = datetime.now(UTC) - older_than
        candidates = [(sha, size) async for sha, size, modified in self.blobs.iter_objects() if modified < cutoff]
        deleted = freed = 0
        for start in range(0, len(candidates), 500):
            batch = dict(candidates[start : start + 500])
            async with self.store.read() as conn:
                keep = await file_store.referenced(conn, list(batch))
            for sha, size in batch.items():
                if sha not in keep:
                    await self.blobs.delete(sha)
                    deleted, freed = deleted + 1, freed + size
        return deleted, freed

    async def delete_file(self, file_id: str, *, user_id: str) -> None:
        """Forget the file (owner only); its object goes too once nothing else references it."""
        record = await self.get_file(file_id, user_id=user_id)
        if record.user_id != user_id:
            raise NotFound(f"no file {file_id!r}")
        async with self.store.write() as conn:
            await file_store.delete_rows(conn, [file_id])
            remaining = await file_store.references(conn, record.sha256)
        if remaining == 0:
            await self.blobs.delete(record.sha256)

    # -- images ---------------------------------------------------------------------------------

    async def generate_image(
        self,
        prompt: str,
        *,
        model: str | None = None,
        size: str = "auto",
        n: int = 1,
        user_id: str = LOCAL_USER_ID,
        idempotency_key: str | None = None,
    ) -> Generation:
        """Start an image generation and return its `pending` record at once. When it completes,
        `record.image_urls` are the images' permanent URLs (stored in the blob store, linked to
        the record); `wait(id)` waits for that."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidRequest("prompt is empty: describe the image to make")
        if len(prompt) > MAX_IMAGE_PROMPT_CHARS:
            raise InvalidRequest(f"prompt is {len(prompt)} characters; the limit is {MAX_IMAGE_PROMPT_CHARS}")
        if not isinstance(size, str) or not SIZE_PATTERN.match(size):
            raise InvalidRequest(f"size must be WIDTHxHEIGHT (e.g. 1024x1024) or auto, got {str(size)[:50]!r}")
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_IMAGES:
            raise InvalidRequest(f"n (how many images) must be 1 to {MAX_IMAGES}, got {n!r}")
        if idempotency_key is not None:
            check_id(idempotency_key, "the idempotency key")
        check_storable(prompt, "the request")
        model = model or self.settings.default_image_model
        images, bare_model = self.registry.resolve_image(model)
        images.check(ImageRequest(model=bare_model, prompt=prompt, size=size, n=n))
        hooks = ResultMessage()
        return await self.engine.start(
            kind="image",
            user_id=user_id,
            model=model,
            request_json={"prompt": prompt, "size": size, "n": n},
            model_request=ModelRequest(
                model=bare_model,
                messages=[{"role": "user", "content": [{"type": "text", "text": prompt}]}],
                params={"size": size, "n": n},
            ),
            idempotency_key=idempotency_key,
            resolved=(ImageStream(images), bare_model),
            before_insert=hooks.before_insert,
            chunk_sink=hooks.feed,
            snapshot=hooks.snapshot,
            file_sink=self._file_sink(None, hooks.snapshot),
        )

    def _file_sink(self, chat_id: str | None, snapshot: Any) -> FileSink:
        """Where files a model produces go: the blob store, with a row linking them to the
        generation (and the chat message and part position they land in)."""

        async def sink(run: Run, event: StreamFile) -> str:
            position = len(snapshot()["parts"]) if snapshot is not None else None
            try:
                record = await self.store_file(
                    event.data,
                    media_type=event.media_type,
                    user_id=run.user_id,
                    generation_id=run.generation_id,
                    chat_id=chat_id,
                    message_id=run.message_id,
                    part_position=position,
                )
            except CallerError as exc:
                raise ProviderError(f"the model sent a file genvault does not keep: {exc.message}") from None
            return record.url

        return sink

    async def _inline_files(self, request: ModelRequest, user_id: str) -> None:
        async def load(file_id: str) -> bytes:
            return await self.read_file(file_id, user_id=user_id)

        await inline_stored_files(request.messages, self.settings.public_url, load)

    async def _stage_uploads(self, message: dict[str, Any], chat_id: str, user_id: str) -> list[Upload]:
        """Turn the `data:` URL file parts of an incoming message into stored objects with
        permanent URLs (the message is changed in place). Every part is checked before any byte
        is written; the rows are inserted later, in the turn's transaction."""
        uploads: list[Upload] = []
        for position, part in enumerate(message.get("parts", [])):
            if part.get("type") != "file":
                continue
            url = str(part.get("url", ""))
            if url.startswith("data:"):
                _declared, data = parse_data_url(url, max_bytes=self.settings.max_file_bytes)
                media_type, filename = check_file(data, part.get("mediaType", ""), part.get("filename"), self.settings)
                uploads.append(Upload(position, data, media_type, filename))
            elif (file_id := file_id_in_url(url, self.settings.public_url)) is not None:
                await self.get_file(file_id, user_id=user_id)  # one may only cite files one can read
        for upload in uploads:
            upload.sha256 = await self.blobs.put(upload.data)
            # The same bytes in the same part again (a retried POST, a re-sent message) keep the
            # URL they got the first time, so the message and the request are unchanged.
            async with self.store.read() as conn:
                existing = await file_store.find_upload(
                    conn,
                    user_id=user_id,
                    chat_id=chat_id,
                    message_id=message["id"],
                    part_position=upload.position,
                    sha256=upload.sha256,
                )
            if existing is not None:
                upload.file_id, upload.exists = existing, True
            message["parts"][upload.position]["url"] = self.file_url(upload.file_id)
        return uploads

    async def model_messages(self, chat_id: str, *, user_id: str | None = LOCAL_USER_ID) -> list[dict[str, Any]]:
        """The chat as the provider receives it: AI SDK ModelMessages, with the bytes of stored
        files in place of their URLs."""
        async with self.store.read() as conn:
            chat = await chat_store.get_chat(conn, chat_id, user_id)
            history = await chat_store.load_all_messages(conn, chat_id)
        request = ModelRequest(model="", messages=to_model_messages(history, ignore_incomplete_tool_calls=True))
        await self._inline_files(request, chat.user_id)
        return request.messages
