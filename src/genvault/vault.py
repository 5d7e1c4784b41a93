"""`Vault`: the core that the library, the HTTP server and the CLI all call.

It owns the store, the stream hub, the providers and the engine, checks ownership on every read
and write, and validates input before anything is written. The life of one generation is in
`genvault.engine`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from genvault import labels, pricing
from genvault._files import FilesMixin, Upload
from genvault._redis import RedisHealth, connect
from genvault.blobs import BlobStore, blob_store_from_settings
from genvault.cache import Cache, CachePolicy, Dedup, RedisCache, SqlCache
from genvault.cache.dedup import CacheProbe
from genvault.catalog import CatalogModel, configured_models
from genvault.chat_turns import Trigger, TurnPlan, check_turn_depth, one_step_opening, prepare_turn
from genvault.embeddings import Embeddings
from genvault.engine import Engine
from genvault.errors import Conflict, InvalidRequest, NotFound, StorageError
from genvault.feedback import FeedbackService
from genvault.ids import new_id
from genvault.limits import Limits, LimitSet, LimitsStatus, SubjectKind, acting_key
from genvault.messages.assembler import MessageAssembler
from genvault.messages.convert import to_model_messages
from genvault.messages.ui import UIMessage, message_to_json, parse_ui_message
from genvault.messages.validate import ToolSchemas, validate_ui_messages
from genvault.ops import archive
from genvault.ops.backup import BackupManifest, backup
from genvault.ops.erasure import ErasureReceipt, erase_user
from genvault.ops.retention import RetentionReport, apply_retention
from genvault.ops.verify import VerifyReport, verify
from genvault.providers.base import ModelRequest, Provider
from genvault.providers.images import ImageProvider
from genvault.providers.registry import ProviderRegistry
from genvault.records import Generation, Page, UsageRow
from genvault.replay import chunks_from_record
from genvault.runs import Run
from genvault.search import Searcher, SearchPage
from genvault.sessions import Sessions
from genvault.settings import Settings
from genvault.store import Store
from genvault.store import chats as chat_store
from genvault.store import files as file_store
from genvault.store import generations as gen_store
from genvault.store.driver import ConnectionLost, PooledDriver
from genvault.store.finishes import CacheEntry, finish_generation
from genvault.store.openings import open_generation
from genvault.store.schema import MISSING, users
from genvault.store.schema import chats as chats_table
from genvault.store.sqlite_adapter import SqliteReader
from genvault.store.text import check_storable, plain_json
from genvault.store.users import LOCAL_USER_ID, ensure_user
from genvault.streams import MemoryHub, RedisHub, StreamHub
from genvault.streams.memory import CLOSED_RETAIN_SECONDS
from genvault.telemetry import Telemetry
from genvault.tools import Tool, ToolExecutor
from genvault.turn_hooks import TurnHooks
from genvault.validation import check_aware, check_id, check_json_depth, check_message_ids, check_user_id
from genvault.webhooks import Webhooks

__all__ = ["ChatTurn", "GenerationParams", "Vault"]

log = logging.getLogger(__name__)

# How often a Vault on SQLite applies the queued message-part changes to the search index (a
# search applies them first anyway; this keeps the queue, and deleted text in it, short).
SEARCH_CATCH_UP_SECONDS = 1.0

MAX_PROMPT_CHARS = 1_000_000


class GenerationParams(BaseModel):
    """Sampling parameters that change the output (and so belong to the request's identity)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    seed: int | None = None
    stop: list[str] | None = Field(default=None, max_length=4)
    # Choices asked for (OpenAI's `n`): the first is the reply, the others are kept beside it as
    # `data-choice` parts of the record's message. None and 1 are the same request.
    n: int | None = Field(default=None, ge=1, le=128)


def invalid(exc: ValidationError, what: str) -> InvalidRequest:
    """A Pydantic error as one readable sentence per problem, naming the field."""
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or what}: {err['msg']}" for err in exc.errors(include_url=False)
    )
    return InvalidRequest(f"invalid {what}: {problems}")


def parse_params(params: dict[str, Any] | GenerationParams | None) -> GenerationParams:
    if isinstance(params, GenerationParams):
        return params
    try:
        return GenerationParams.model_validate(params or {})
    except ValidationError as exc:
        raise invalid(exc, "parameters") from None


MAX_CACHE_TTL = 30 * 24 * 3600.0


def cache_policy(cache: bool, ttl: float | None) -> CachePolicy:
    if not isinstance(cache, bool):
        raise InvalidRequest("cache must be true or false")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl <= MAX_CACHE_TTL):
        raise InvalidRequest(f"cache_ttl must be a number of seconds above 0 and at most {MAX_CACHE_TTL:.0f}")
    return CachePolicy(enabled=cache, ttl_seconds=None if ttl is None else float(ttl))


TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
USER_ID = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")


@dataclass(frozen=True)
class ChatTurn:
    """A started chat turn: its generation record and the assistant message it writes."""

    generation: Generation
    message_id: str
    continuation: bool


def _known_tools(message: dict[str, Any], tools: Mapping[str, Tool]) -> dict[str, ToolSchemas] | None:
    """Validate tool parts against registered tools only when every named tool is registered:
    a message may carry parts of tools this server no longer offers, and those stay valid. (The
    schemas are gathered only for a message with tool parts: a user's text message has none.)"""
    names = {
        p["type"][len("tool-") :]
        for p in message.get("parts", [])
        if isinstance(p, dict) and str(p.get("type", "")).startswith("tool-")
    }
    if not names or not names <= tools.keys():
        return None
    return {t.name: ToolSchemas(t.input_schema, t.output_schema) for t in tools.values()}


class Vault(FilesMixin):
    """Keeps every generation. Use as `async with Vault(settings) as vault: ...`."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        providers: dict[str, Provider] | None = None,
        image_providers: dict[str, ImageProvider] | None = None,
        http_client: httpx.AsyncClient | None = None,
        hub: StreamHub | None = None,
        blobs: BlobStore | None = None,
        database_schema: str | None = None,
        migrate: bool = True,
        sweep_interval: float | None = None,
        run_retention: bool = True,
        telemetry: Telemetry | None = None,
        deliver_webhooks: bool = True,
        webhook_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.store = Store(
            self.settings.resolved_database_url,
            schema=database_schema or self.settings.database_schema,
            pool_size=self.settings.db_pool_size,
            max_overflow=self.settings.db_max_overflow,
            pool_timeout=self.settings.db_pool_timeout_seconds,
        )
        # Redis, when configured, holds the dedup cache and the live streams (any process can
        # resume any generation); otherwise an SQL table and an in-process hub.
        self.redis_health = RedisHealth()
        self.redis = connect(self.settings.redis_url) if self.settings.redis_url else None
        self.cache: Cache
        if self.redis is not None:
            prefix = self.settings.redis_prefix
            self.cache = RedisCache(self.redis, prefix=prefix)
            default_hub: StreamHub = RedisHub(
                self.redis,
                prefix=prefix,
                maxlen=self.settings.stream_maxlen,
                retain_seconds=self.settings.stream_retain_seconds,
                health=self.redis_health,
            )
        else:
            self.cache = SqlCache(self.store)
            default_hub = MemoryHub(retain_seconds=min(self.settings.stream_retain_seconds, CLOSED_RETAIN_SECONDS))
        self.hub: StreamHub = hub or default_hub
        self.blobs: BlobStore = blobs or blob_store_from_settings(self.settings)
        self.registry = ProviderRegistry(
            self.settings, http_client=http_client, providers=providers, image_providers=image_providers
        )
        self.dedup = Dedup(self.cache, self.store, self.settings, self.redis_health if self.redis else None)
        self.limits = Limits(self.store, self.settings, redis_url=self.settings.redis_url)
        self.engine = Engine(self.store, self.hub, self.registry, self.settings, self.dedup, self.limits)
        self.searcher = Searcher(self.store)
        # Spans per generation when an OTLP endpoint is set (or a `Telemetry` is given).
        self.telemetry = telemetry or Telemetry.from_env(capture_content=self.settings.otel_capture_content)
        if self.telemetry is not None:
            self.telemetry.attach(self.engine)
        self.embeddings = Embeddings(self.engine, self.registry, self.settings)
        self.sessions = Sessions(self.store, self.settings, rates=self.limits.rates)  # the pages' sign-in
        # Webhook events go to the outbox in the transaction that makes a record final; this
        # process's worker delivers them (one-off CLI commands leave delivery to the server).
        self.webhooks = Webhooks(self.store, self.settings, lambda: self.engine.owner_id, transport=webhook_transport)
        self.engine.final_hooks.append(self.webhooks)
        self._deliver_webhooks = deliver_webhooks
        self.feedback = FeedbackService(self.store)
        self._migrate = migrate
        # The periodic retention task (when retention is configured); one-off commands turn it off.
        self._run_retention = run_retention
        self._sweep_interval = sweep_interval if sweep_interval is not None else self.settings.lease_seconds / 2
        self._sweeper: asyncio.Task[None] | None = None
        self._search_catch_up: asyncio.Task[None] | None = None
        self._retention: asyncio.Task[None] | None = None
        self._started = False
        self.tools: dict[str, Tool] = {}
        # The system prompt of chat turns (the AI SDK docs: set it on the server, not in the UI).
        self.chat_system: str | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Upgrade the schema (unless `migrate=False`), ensure the local user, sweep records left
        active by a dead process, and keep sweeping periodically."""
        if self._started:
            return
        if self._migrate:
            await self.store.upgrade()
        async with self.store.write() as conn:
            await ensure_user(conn, LOCAL_USER_ID, "Local user", is_admin=True)
        # What the first turn needs, loaded now rather than on the event loop mid-stream.
        pricing.warm()
        # This process's heartbeat row and checkpoint writer, before it sweeps others' records.
        await self.engine.liveness.start()
        await self.limits.load()
        await self._sweep()
        try:
            # Temporary objects of blob writers that died (never under a final key; just litter).
            await self.blobs.sweep_temporary()
        except StorageError:
            log.warning("could not sweep temporary blob objects", exc_info=True)
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="genvault:sweeper")
        if self.store.dialect == "sqlite":  # message parts' changes wait in a queue for the index
            self._search_catch_up = asyncio.create_task(
                self.searcher.catch_up_forever(SEARCH_CATCH_UP_SECONDS), name="genvault:search"
            )
        if self._deliver_webhooks:
            await self.webhooks.start()
        if self.retention_enabled and self._run_retention:
            self._retention = asyncio.create_task(self._retain_forever(), name="genvault:retention")
        self._started = True

    @property
    def retention_enabled(self) -> bool:
        s = self.settings
        return any(d is not None for d in (s.retention_days_chat, s.retention_days_text, s.retention_days_image))

    async def _retain_forever(self) -> None:
        while True:
            try:
                await self.apply_retention()
            except Exception:
                log.warning("retention run failed", exc_info=True)
            await asyncio.sleep(self.settings.retention_interval_seconds)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_interval)
            try:
                await self._sweep()
            except Exception:
                log.warning("sweep failed", exc_info=True)

    async def _sweep(self) -> None:
        swept = await self.engine.sweep()
        if self.telemetry is not None and swept:
            self.telemetry.swept(swept)

    async def aclose(self, *, grace_seconds: float = 5.0) -> None:
        for task in (self._sweeper, self._retention, self._search_catch_up):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.webhooks.aclose()
        await self.engine.aclose(grace_seconds=grace_seconds)
        if self.telemetry is not None:  # after the engine: its last spans ended, then flushed
            await asyncio.to_thread(self.telemetry.shutdown)
        await self.hub.aclose()
        await self.registry.aclose()
        await self.cache.aclose()
        await self.limits.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        await self.store.aclose()
        self._started = False

    async def __aenter__(self) -> Vault:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- users ----------------------------------------------------------------------------------

    async def ensure_user(self, user_id: str, name: str | None = None, *, is_admin: bool = False) -> None:
        async with self.store.write() as conn:
            await ensure_user(conn, user_id, name, is_admin=is_admin)

    async def create_user(self, user_id: str, name: str | None = None, *, is_admin: bool = False) -> None:
        """Like `ensure_user`, after checking the id is a sensible account name."""
        if not USER_ID.match(user_id):
            raise InvalidRequest(f"user id {user_id!r} must be 1-64 letters, digits or . _ - @")
        await self.ensure_user(user_id, name, is_admin=is_admin)

    # -- limits (genvault.limits) ---------------------------------------------------------------

    async def set_limits(
        self,
        limits: LimitSet | dict[str, Any],
        *,
        user_id: str | None = None,
        key_id: str | None = None,
        default: bool = False,
    ) -> LimitSet:
        """Replace the limits of one user, one API key, or (`default=True`) every user without a
        value of their own. Fields left out or `None` mean no limit of that kind."""
        if sum((user_id is not None, key_id is not None, default)) != 1:
            raise InvalidRequest("set limits on exactly one of: a user, an API key, the default")
        try:
            values = limits if isinstance(limits, LimitSet) else LimitSet.model_validate(limits)
        except ValidationError as exc:
            raise invalid(exc, "limits") from None
        kind: SubjectKind = "default" if default else ("user" if user_id is not None else "key")
        return await self.limits.set_limits(kind, user_id if user_id is not None else key_id, values)

    async def limits_status(self, user_id: str = LOCAL_USER_ID) -> LimitsStatus:
        """The user's limits and how much of each is used, with when it resets."""
        return await self.limits.status(user_id)

    # -- text generations -----------------------------------------------------------------------

    async def generate(
        self,
        prompt: str,
        *,
        model: str | None = None,
        system: str | None = None,
        params: dict[str, Any] | GenerationParams | None = None,
        user_id: str = LOCAL_USER_ID,
        idempotency_key: str | None = None,
        cache: bool = True,
        cache_ttl: float | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Generation:
        """Start a text generation and return its `pending` record at once.

        The model runs in the background; follow it with `stream(id)`, wait with `wait(id)`. An
        identical request within the cache TTL (or still running) is answered from it without a
        provider call: `cache=False` always calls; `cache_ttl` (seconds) overrides the TTL.
        """
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidRequest("prompt is empty: give the text to send to the model")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise InvalidRequest(f"prompt is {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}")
        if idempotency_key is not None:
            check_id(idempotency_key, "the idempotency key")
        check_json_depth(params, "params")
        check_storable([prompt, system or ""], "the request")
        given_labels = labels.checked(tags, metadata)
        model = model or self.settings.default_model
        sampling = parse_params(params)
        param_json = sampling.model_dump(exclude_none=True)
        request_json: dict[str, Any] = {"prompt": prompt, "params": param_json}
        if system:
            request_json["system"] = system
        model_request = ModelRequest(
            model=model,
            messages=[{"role": "user", "content": [{"type": "text", "text": prompt}]}],
            system=system,
            params=param_json,
        )
        return await self.engine.start(
            kind="text",
            user_id=user_id,
            model=model,
            request_json=request_json,
            model_request=model_request,
            idempotency_key=idempotency_key,
            file_sink=self._file_sink(None, None),
            cache=cache_policy(cache, cache_ttl),
            labels=given_labels,
            **self._one_step(idempotency_key),
        )

    async def complete(
        self,
        model_request: ModelRequest,
        *,
        model: str,
        request_json: dict[str, Any],
        user_id: str = LOCAL_USER_ID,
        idempotency_key: str | None = None,
        cache: bool = True,
        cache_ttl: float | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Generation:
        """Start a generation for a request already in model form (the `/v1` gateway translates
        each wire format to one) and return its `pending` record at once, like `generate`.

        The record keeps `request_json` (the client's request) and the reply as an assistant
        UIMessage (`result_message`: text, reasoning, tool calls), checkpointed while it streams.
        """
        if idempotency_key is not None and not (0 < len(idempotency_key) <= 200):
            raise InvalidRequest("idempotency key must be 1 to 200 characters")
        given_labels = labels.checked(tags, metadata)
        assembler = MessageAssembler()
        return await self.engine.start(
            kind="text",
            user_id=user_id,
            model=model,
            request_json=request_json,
            model_request=model_request,
            idempotency_key=idempotency_key,
            chunk_sink=assembler.feed,
            snapshot=assembler.message_json,
            file_sink=self._file_sink(None, None),
            cache=cache_policy(cache, cache_ttl),
            labels=given_labels,
            **self._one_step(idempotency_key),
        )

    def _one_step(self, idempotency_key: str | None) -> dict[str, Any]:
        """The engine's one-step opening and finalize for a generation of no chat
        (`store.openings.open_generation`, `store.finishes.finish_generation`): the pending row
        with the dedup lookup in one statement (one hop on SQLite), the final row with the cache
        entry in another. An idempotency key's conflict is the general opening's to sort out."""
        store = self.store

        async def open_alone(values: dict[str, Any], probe: CacheProbe | None) -> bool:
            await open_generation(store, values, probe)
            return True

        async def finish_alone(run: Run, values: dict[str, Any], entry: CacheEntry | None) -> bool:
            return await finish_generation(store, generation_id=run.generation_id, values=values, entry=entry)

        steps: dict[str, Any] = {"finish_alone": finish_alone}
        if idempotency_key is None:
            steps["open_alone"] = open_alone
        return steps

    async def embed(
        self,
        inputs: str | list[str] | list[int] | list[list[int]],
        *,
        model: str | None = None,
        dimensions: int | None = None,
        user_id: str = LOCAL_USER_ID,
        idempotency_key: str | None = None,
        cache: bool = True,
        cache_ttl: float | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        request_json: dict[str, Any] | None = None,
    ) -> Generation:
        """Start an embedding call (kind `embedding`) and return its `pending` record at once;
        `genvault.embeddings.embedding_result(await vault.wait(id))` gives the vectors."""
        return await self.embeddings.embed(
            inputs,
            model=model,
            dimensions=dimensions,
            user_id=user_id,
            idempotency_key=idempotency_key,
            cache=cache_policy(cache, cache_ttl),
            tags=tags,
            metadata=metadata,
            request_json=request_json,
        )

    # -- tools ----------------------------------------------------------------------------------

    def register_tool(
        self,
        name: str,
        *,
        description: str = "",
        input_schema: dict[str, Any] | None = None,
        output_schema: dict[str, Any] | None = None,
        execute: ToolExecutor | None = None,
    ) -> Tool:
        """Offer a tool to the model in chat turns. With `execute` it runs here; without, the
        client answers it (the AI SDK's client-side tools)."""
        if not TOOL_NAME.match(name):
            raise InvalidRequest(f"tool name {name!r} must be letters, digits, _ or -, at most 64")
        tool = Tool(
            name=name,
            description=description,
            input_schema=input_schema or {"type": "object", "properties": {}},
            output_schema=output_schema,
            execute=execute,
        )
        self.tools[name] = tool
        return tool

    # -- chats ----------------------------------------------------------------------------------

    async def chat(
        self,
        chat_id: str,
        *,
        message: dict[str, Any] | None = None,
        trigger: Trigger = "submit-message",
        message_id: str | None = None,
        model: str | None = None,
        params: dict[str, Any] | GenerationParams | None = None,
        user_id: str = LOCAL_USER_ID,
        idempotency_key: str | None = None,
        cache: bool = True,
        cache_ttl: float | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> ChatTurn:
        """Start a chat turn: save the user's message (or the client's tool results), mint the
        assistant message id, and start the reply. Returns at once; follow it with
        `stream(turn.generation.id)`.

        `message` is the AI SDK UIMessage the client sent last; history always comes from the
        database. See `genvault.chat_turns` for what each trigger does. `tags` / `metadata`
        label a chat this turn creates; the turn's generation carries the chat's labels with
        these added (`labels.merged`).
        """
        if trigger not in ("submit-message", "regenerate-message"):
            raise InvalidRequest(f"trigger must be submit-message or regenerate-message, got {trigger!r}")
        check_id(chat_id, "chat id")
        if message_id is not None:
            check_id(message_id, "messageId")
        if idempotency_key is not None:
            check_id(idempotency_key, "the idempotency key")
        check_turn_depth(message, params)
        given_labels = labels.checked(tags, metadata)
        # Filled once the turn is planned (the chat's labels are known then), before the pending
        # row is written from it.
        turn_labels: dict[str, Any] = dict(given_labels)
        incoming = None
        parsed: UIMessage | None = None  # `incoming` as the model validated it
        if message is not None:
            parsed = validate_ui_messages([message], tools=_known_tools(message, self.tools))[0]
            incoming = message_to_json(parsed)
            check_message_ids(incoming)
        uploads: list[Upload] = []
        if incoming is not None:
            if incoming.get("role") == "user" and any(p.get("type") == "file" for p in incoming["parts"]):
                # Before writing any object: a stranger's chat is refused here, not after the upload.
                with contextlib.suppress(NotFound):
                    if (await self.get_chat(chat_id, user_id=None)).user_id != user_id:
                        raise Conflict(f"chat id {chat_id!r} is taken; start a new chat with another id")
            uploads = await self._stage_uploads(incoming, chat_id, user_id)
            if uploads:
                parsed = None  # `incoming`'s file parts now hold the stored objects' URLs
        model = model or self.settings.default_model
        # No params (a chat turn from `useChat`): what `GenerationParams()` dumps without its
        # Nones, `{}`, without validating and dumping the model (tests/test_chat_turns.py).
        param_json = {} if params is None else parse_params(params).model_dump(exclude_none=True)
        model_request = ModelRequest(
            model=model,
            messages=[],
            system=self.chat_system,
            tools=[t.spec for t in self.tools.values()],
            params=param_json,
        )
        plan: dict[str, TurnPlan] = {}
        # Regenerating asks for a different answer than the cached one, so it always calls.
        policy = cache_policy(cache and trigger != "regenerate-message", cache_ttl)

        async def before_insert(conn: AsyncConnection, generation_id: str) -> None:
            turn = await prepare_turn(
                conn,
                chat_id=chat_id,
                user_id=user_id,
                trigger=trigger,
                message=incoming,
                message_id=message_id,
                tools=self.tools,
                generation_id=generation_id,
                labels=given_labels,
            )
            for upload in uploads:
                if upload.exists:
                    continue
                await file_store.insert_row(
                    conn,
                    id=upload.file_id,
                    user_id=user_id,
                    sha256=upload.sha256,
                    media_type=upload.media_type,
                    size=len(upload.data),
                    filename=upload.filename,
                    chat_id=chat_id,
                    message_id=incoming["id"] if incoming else None,
                    part_position=upload.position,
                )
            if turn.continued:
                # Continuing a message (client tool results) is tied to this chat's own reply.
                policy.enabled = False
            planned(turn)

        request_json: dict[str, Any] = {
            "chat_id": chat_id,
            "trigger": trigger,
            "message": incoming,
            "params": param_json,
        }
        if message_id is not None:
            request_json["message_id"] = message_id
        hooks = TurnHooks(self.store, chat_id=chat_id, user_id=user_id)

        def planned(turn: TurnPlan) -> None:
            plan["turn"] = turn
            # A history of the turn's message alone is converted from the message as validated,
            # not parsed again from its copy (`incoming` is `message_to_json(parsed)`: the same
            # UIMessage either way; tests/test_chat_turns.py).
            source = [parsed] if turn.alone and parsed is not None else turn.history
            model_request.messages = to_model_messages(source, ignore_incomplete_tool_calls=True)
            request_json["messages_before"] = len(turn.history)
            hooks.message_id = turn.assistant_id
            hooks.assembler = MessageAssembler(
                parse_ui_message(turn.continued) if turn.continued else None, message_id=turn.assistant_id
            )
            hooks.history = turn.history
            hooks.continues = turn.continued is not None
            turn_labels.clear()
            turn_labels.update(turn.labels)

        open_alone = None
        if trigger == "submit-message" and incoming is not None and not uploads and idempotency_key is None:
            # A new message of a new or existing chat: tried as one step (`store/openings.py`);
            # else `before_insert` plans the turn anew in the general path.
            open_alone = one_step_opening(self.store, chat_id, user_id, incoming, planned, given_labels)
        record = await self.engine.start(
            kind="chat",
            user_id=user_id,
            model=model,
            request_json=request_json,
            model_request=model_request,
            idempotency_key=idempotency_key,
            chat_id=chat_id,
            message_id_factory=lambda: hooks.message_id,
            before_insert=before_insert,
            open_alone=open_alone,
            chunk_sink=hooks,
            snapshot=hooks.snapshot,
            finalize_hook=hooks.finalize,
            finish_alone=hooks.finish_alone,
            tools=self.tools,
            next_messages=hooks.next_messages,
            file_sink=self._file_sink(chat_id, hooks.snapshot),
            prepare_request=lambda request: self._inline_files(request, user_id),
            cache=policy,
            labels=turn_labels,
        )
        turn = plan.get("turn")
        return ChatTurn(
            generation=record,
            message_id=turn.assistant_id if turn else (record.message_id or ""),
            continuation=bool(turn and turn.continued),
        )

    async def create_chat(
        self,
        chat_id: str | None = None,
        *,
        title: str | None = None,
        user_id: str = LOCAL_USER_ID,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> chat_store.Chat:
        if chat_id is not None:
            check_id(chat_id, "chat id")
        given = labels.checked(tags, metadata)
        async with self.store.write() as conn:
            return await chat_store.create_chat(conn, chat_id or new_id("chat"), user_id, title=title, labels=given)

    async def get_chat(
        self, chat_id: str, *, user_id: str | None = LOCAL_USER_ID, for_reading: bool = False
    ) -> chat_store.Chat:
        check_id(chat_id, "chat id")
        async with self.store.read() as conn:
            return await chat_store.get_chat(conn, chat_id, user_id, for_reading=for_reading)

    async def chat_model(self, chat_id: str, *, user_id: str | None = LOCAL_USER_ID) -> str | None:
        """The model the chat's latest turn asked (None before its first): the chat remembers it."""
        await self.get_chat(chat_id, user_id=user_id, for_reading=True)
        async with self.store.read() as conn:
            return await gen_store.last_chat_model(conn, chat_id)

    def models(self) -> list[CatalogModel]:
        """The models this configuration can call, with prices (`genvault.catalog`); under an API
        key limited to some models, only those."""
        grant = acting_key.get()
        listed = configured_models(self.settings, self.registry.environ)
        return listed if grant is None or grant.models is None else [m for m in listed if m.name in grant.models]

    async def list_chats(
        self,
        *,
        user_id: str = LOCAL_USER_ID,
        limit: int = 50,
        cursor: str | None = None,
        q: str | None = None,
        tag: str | None = None,
    ) -> Page[chat_store.Chat]:
        """The user's chats, most recently updated first; `q`: only those whose title or any
        message matches the search query; `tag`: only those carrying it."""
        among = None
        if q:
            among = self.searcher.chats_matching(q, user_id)
            await self.searcher.catch_up()
        if tag is not None:
            has_tag = labels.tagged(tag, self.store.dialect, chats_table)
            among = has_tag if among is None else and_(among, has_tag)
        async with self.store.read() as conn:
            return await chat_store.list_chats(conn, user_id, limit=limit, cursor=cursor, among=among)

    async def chat_messages(
        self,
        chat_id: str,
        *,
        user_id: str | None = LOCAL_USER_ID,
        limit: int = 50,
        before: str | None = None,
        after: str | None = None,
        for_reading: bool = True,
    ) -> chat_store.MessagePage:
        """A page of UIMessages, oldest first. Shared (link/public) chats are readable by others."""
        check_id(chat_id, "chat id")
        for name, value in (("before", before), ("after", after)):
            if value is not None:
                check_id(value, f"{name} (a message id)")

        # One statement: the ownership check is part of the page read.
        def page(conn: AsyncConnection | PooledDriver | SqliteReader) -> Awaitable[chat_store.MessagePage]:
            return chat_store.load_messages(
                conn,
                chat_id,
                limit=limit,
                before=before,
                after=after,
                owner=user_id,
                check_owner=user_id is not None,
                for_reading=for_reading,
            )

        if self.store.dialect == "postgresql":
            return await self.store.driver_retrying(page)
        async with self.store.sqlite_reader() as reader:
            return await page(reader)

    async def append_messages(
        self,
        chat_id: str,
        messages: list[dict[str, Any]],
        *,
        user_id: str = LOCAL_USER_ID,
        validate: bool = True,
    ) -> list[int]:
        """Append UIMessages to the user's chat, in order and atomically; returns their seqs.
        A stranger's or missing chat is `NotFound`; an id already in the chat is a `Conflict`
        (nothing is appended then). `validate=False` skips the UIMessage validation for
        messages that are valid already (say, produced by genvault).

        On PostgreSQL the append is one statement in autocommit, one round trip. The pooled
        connection is not pinged first: if it turns out dead the append runs once more on a
        pinged one, and if the first try may have reached the server, finding exactly these
        messages already appended counts as success (so a retry never appends twice)."""
        if not messages:
            return []
        check_id(chat_id, "chat id")
        # One orjson encode answers the depth and storable checks for the usual messages; the
        # exact walks run only when it cannot (and then decide and word errors as before).
        plain = plain_json(messages)
        if not plain:
            check_json_depth(messages, "messages")
        for message in messages:
            check_message_ids(message)
        if validate:
            messages = [message_to_json(m) for m in validate_ui_messages(messages)]
            plain = False  # new values: the store checks those
        if self.store.dialect != "postgresql":
            async with self.store.write() as conn:
                return await chat_store.append_messages(conn, chat_id, user_id, messages)
        try:
            async with self.store.driver(ping=False) as driver:
                return await chat_store.append_alone(driver, chat_id, user_id, messages, storable=plain)
        except ConnectionLost as lost:
            maybe_stored = lost.sent
        try:
            async with self.store.driver() as driver:
                return await chat_store.append_alone(driver, chat_id, user_id, messages, storable=plain)
        except Conflict:
            if not maybe_stored:
                raise
            async with self.store.read() as conn:
                seqs = await chat_store.appended_seqs(conn, chat_id, user_id, messages)
            if seqs is None:
                raise
            return seqs

    async def update_chat(
        self,
        chat_id: str,
        *,
        user_id: str = LOCAL_USER_ID,
        title: Any = MISSING,
        visibility: Literal["private", "link", "public"] | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> chat_store.Chat:
        """Rename, share, or replace the chat's tags and/or metadata (None: leave as is; `[]` /
        `{}`: clear). Later turns' generations carry the new labels; earlier ones keep theirs."""
        if isinstance(title, str) and len(title) > 500:
            raise InvalidRequest("title must be at most 500 characters")
        given = labels.checked(tags, metadata)
        async with self.store.write() as conn:
            return await chat_store.update_chat(
                conn, chat_id, user_id, title=title, visibility=visibility, labels=given
            )

    async def delete_chat(self, chat_id: str, *, user_id: str = LOCAL_USER_ID) -> None:
        chat = await self.get_chat(chat_id, user_id=user_id)
        if chat.active_generation_id and self.engine.is_running_here(chat.active_generation_id):
            await self.cancel(chat.active_generation_id, user_id=user_id)
        async with self.store.write() as conn:
            await chat_store.delete_chat(conn, chat_id, user_id)
            await self.webhooks.chat_deleted(conn, chat_id, user_id)

    async def delete_message(self, chat_id: str, message_id: str, *, user_id: str = LOCAL_USER_ID) -> None:
        check_id(chat_id, "chat id")
        check_id(message_id, "message id")
        async with self.store.write() as conn:
            await chat_store.delete_message(conn, chat_id, user_id, message_id)

    async def import_chat(
        self,
        chat_id: str,
        messages: list[dict[str, Any]],
        *,
        user_id: str = LOCAL_USER_ID,
        title: str | None = None,
    ) -> dict[str, int]:
        """Store a whole chat (validated UIMessages, ids kept) in one transaction. Importing the
        same chat again changes nothing; returns counts of inserted/unchanged/updated messages."""
        check_id(chat_id, "chat id")
        check_json_depth(messages, "messages")
        validated = [message_to_json(m) for m in validate_ui_messages(messages)]
        for message in validated:
            check_message_ids(message)
        counts = {"inserted": 0, "unchanged": 0, "updated": 0}
        async with self.store.write() as conn:
            await ensure_user(conn, user_id)
            await chat_store.ensure_chat(conn, chat_id, user_id, title=title)
            for message in validated:
                counts[await chat_store.upsert_message(conn, chat_id, user_id, message)] += 1
        return counts

    async def active_generation(self, chat_id: str, *, user_id: str | None = LOCAL_USER_ID) -> Generation | None:
        """The chat's reply that is still running, if any."""
        chat = await self.get_chat(chat_id, user_id=user_id, for_reading=True)
        if chat.active_generation_id is None:
            return None
        record = await self.get_generation(chat.active_generation_id, user_id=None)
        return None if record.is_final else record

    async def cancel_chat(self, chat_id: str, *, user_id: str = LOCAL_USER_ID) -> Generation:
        await self.get_chat(chat_id, user_id=user_id)
        active = await self.active_generation(chat_id, user_id=user_id)
        if active is None:
            raise Conflict(f"chat {chat_id!r} has no reply running; nothing to cancel")
        return await self.cancel(active.id, user_id=user_id)

    # -- reading records ------------------------------------------------------------------------

    async def get_generation(self, generation_id: str, *, user_id: str | None = LOCAL_USER_ID) -> Generation:
        """The record; `NotFound` if missing or owned by someone else (`user_id=None`: anyone's)."""
        check_id(generation_id, "generation id")
        async with self.store.read() as conn:
            return await gen_store.get(conn, generation_id, user_id=user_id)

    async def list_generations(
        self,
        *,
        user_id: str | None = LOCAL_USER_ID,
        model: str | None = None,
        status: str | None = None,
        kind: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
        q: str | None = None,
        tag: str | None = None,
    ) -> Page[Generation]:
        """Newest first; `q`: only those whose prompt or output (a chat turn's: its reply)
        matches the search query; `tag`: only those carrying the tag."""
        check_aware(since, "since")
        check_aware(until, "until")
        if model is not None:
            check_storable(model, "model")
        among = None
        if q:
            among = self.searcher.generations_matching(q, user_id)
            await self.searcher.catch_up()
        if tag is not None:
            has_tag = labels.tagged(tag, self.store.dialect)
            among = has_tag if among is None else and_(among, has_tag)
        async with self.store.read() as conn:
            return await gen_store.list_page(
                conn,
                user_id=user_id,
                model=model,
                status=status,
                kind=kind,
                since=since,
                until=until,
                limit=limit,
                cursor=cursor,
                among=among,
            )

    async def search(
        self,
        q: str,
        *,
        user_id: str | None = LOCAL_USER_ID,
        chat_id: str | None = None,
        kind: str | None = None,
        model: str | None = None,
        role: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        tag: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> SearchPage:
        """Messages, chat titles and generations matching `q` (words, "phrases", prefix*,
        -exclude), best first, with snippets; `user_id=None` searches every user's. See
        `genvault.search`."""
        return await self.searcher.search(
            q,
            user_id=user_id,
            chat_id=chat_id,
            kind=kind,
            model=model,
            role=role,
            status=status,
            since=since,
            until=until,
            tag=tag,
            limit=limit,
            cursor=cursor,
        )

    async def update_labels(
        self,
        generation_id: str,
        *,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        user_id: str | None = LOCAL_USER_ID,
    ) -> Generation:
        """Replace a generation's tags and/or metadata (None: leave as is; `[]` / `{}`: clear)."""
        check_id(generation_id, "generation id")
        values = labels.checked(tags, metadata)
        async with self.store.write() as conn:
            await gen_store.get(conn, generation_id, user_id=user_id)  # NotFound for others' records
            if values:
                await labels.store(conn, generation_id, values)
            return await gen_store.get(conn, generation_id, user_id=user_id)

    async def usage(
        self,
        *,
        group_by: Literal["model", "user", "day", "key", "tag"] = "model",
        user_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[UsageRow]:
        check_aware(since, "since")
        check_aware(until, "until")
        async with self.store.read() as conn:
            return await gen_store.usage_report(conn, group_by=group_by, user_id=user_id, since=since, until=until)

    # -- following and controlling running generations ------------------------------------------

    async def stream(
        self, generation_id: str, *, start: int = 0, user_id: str | None = LOCAL_USER_ID
    ) -> AsyncIterator[dict[str, Any]]:
        """The generation's UI message stream chunks from index `start`: replay, then live. A
        generation no longer live (finished, or its hub forgot it) replays from its stored record,
        from any index, for as long as the record exists."""
        async for chunk in self.replay(generation_id, start=start, user_id=user_id):
            yield chunk

    def follow_here(
        self, generation_id: str, *, user_id: str | None = LOCAL_USER_ID
    ) -> AsyncIterator[dict[str, Any]] | None:
        """The hub's own iterator over a generation this process runs, from its first chunk; None
        when it does not run here, or belongs to another user (use `replay`, which reads the
        record and says which). `user_id=None` skips the owner check, as elsewhere, for callers
        that made it themselves. A response following its own chat turn skips `replay`'s record
        read and one async-generator hop per chunk this way; the stream is open from before the
        generation's task starts until after it ends, and retained."""
        owner = self.engine.owner_here(generation_id)
        if owner is None or (user_id is not None and owner != user_id):
            return None
        return self.hub.follow(generation_id)

    def hub_here(self, generation_id: str) -> MemoryHub | None:
        """The in-process hub, to follow a generation this process runs in it (`follow_here`, owner
        check skipped, for `MemoryHub.follow_batches`); None when the generation does not run
        here or the hub is not the in-process one."""
        if not isinstance(self.hub, MemoryHub) or self.engine.owner_here(generation_id) is None:
            return None
        return self.hub

    async def replay(
        self, generation_id: str, *, start: int = 0, user_id: str | None = LOCAL_USER_ID
    ) -> AsyncIterator[dict[str, Any]]:
        """What `stream` yields: the hub's chunks while the generation is live there, else its stored
        record's, so a stream URL works for as long as the record exists."""
        record = await self.get_generation(generation_id, user_id=user_id)
        if start < 0:
            raise InvalidRequest(f"start must be 0 or more, got {start}")
        if await self.hub.exists(generation_id):
            async for chunk in self.hub.follow(generation_id, start):
                yield chunk
            return
        if not record.is_final:
            # Running in a process whose hub we cannot see: wait for the record, then replay it.
            await self.engine.wait(generation_id)
            record = await self.get_generation(generation_id, user_id=user_id)
        for chunk in chunks_from_record(record)[start:]:
            yield chunk

    async def is_admin(self, user_id: str) -> bool:
        async with self.store.read() as conn:
            flag = (await conn.execute(select(users.c.is_admin).where(users.c.id == user_id))).scalar()
        return bool(flag)

    async def wait(self, generation_id: str, *, user_id: str | None = LOCAL_USER_ID) -> Generation:
        """Wait until the generation is final and return its record."""
        await self.get_generation(generation_id, user_id=user_id)
        await self.engine.wait(generation_id)
        return await self.get_generation(generation_id, user_id=user_id)

    async def cancel(self, generation_id: str, *, user_id: str | None = LOCAL_USER_ID) -> Generation:
        """Stop it; the partial output is kept and the record ends `cancelled`."""
        record = await self.get_generation(generation_id, user_id=user_id)
        await self.engine.cancel(record)
        return await self.get_generation(generation_id, user_id=user_id)

    # -- privacy and operations (genvault.ops) --------------------------------------------------

    async def user_exists(self, user_id: str) -> bool:
        check_user_id(user_id)
        async with self.store.read() as conn:
            return (await conn.execute(select(users.c.id).where(users.c.id == user_id))).first() is not None

    async def export(
        self, *, user_id: str | None, progress: Callable[[str, int], None] | None = None
    ) -> AsyncIterator[bytes]:
        """The archive of one user (or, with `user_id=None`, the whole database), line by line,
        read from one consistent snapshot. See docs/archive-format.md."""
        if user_id is not None and not await self.user_exists(user_id):
            raise NotFound(f"no user {user_id!r}")
        async with archive.snapshot(self.store) as conn:
            objects = archive.blob_objects(self.blobs)
            async for line in archive.export_lines(conn, user_id=user_id, objects=objects, progress=progress):
                yield line

    async def import_archive(
        self,
        lines: AsyncIterable[bytes] | Iterable[bytes] | Path,
        *,
        progress: Callable[[str, int], None] | None = None,
    ) -> dict[str, Any]:
        """Load an archive (a path or its lines) in one transaction: all of it, or nothing."""
        source = archive.read_archive_lines(lines) if isinstance(lines, Path) else lines
        async with self.store.write() as conn:
            return await archive.import_lines(conn, source, objects=archive.blob_sink(self.blobs), progress=progress)

    async def erase_user(self, user_id: str, *, actor_user_id: str | None = None) -> ErasureReceipt:
        """Remove every trace of the user and return the receipt (see `genvault.ops.erasure`).
        Erasing a user who is already gone returns a receipt of zeros. The local user (auth
        `none`) is recreated empty, since that mode always acts as it."""
        check_user_id(user_id)
        receipt = await erase_user(self, user_id, actor_user_id=actor_user_id)
        await self.searcher.catch_up()  # the erased texts leave the search index's queue now
        if user_id == LOCAL_USER_ID:
            # The embedded single-user mode acts as this user: it comes back empty, as at start.
            async with self.store.write() as conn:
                await ensure_user(conn, LOCAL_USER_ID, "Local user", is_admin=True)
        return receipt

    async def apply_retention(self, *, now: datetime | None = None) -> RetentionReport:
        report = await apply_retention(self, now=now)
        await self.searcher.catch_up()  # the expired texts leave the search index's queue now
        return report

    async def verify(self) -> VerifyReport:
        return await verify(self.store, blobs=self.blobs)

    async def backup(self, path: Path) -> BackupManifest:
        return await backup(self.store, path, blobs=self.blobs)
