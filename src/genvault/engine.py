"""The life of a generation, start to finish. Read this module to follow one.

1. `Engine.start` validates the request and resolves the provider (bad input fails here, before
   any row exists), mints the ID, and commits a `pending` row with a lease. Only then is the
   provider called, in a task that belongs to the engine, not to whoever asked: a consumer that
   goes away stops nothing.
2. `_run` streams provider events, translates them to UI message stream chunks, publishes each to
   the hub (live followers, replay from any index) and folds it into the run's state. The first
   event moves the record to `streaming` with `first_token_at`.
3. The process's checkpoint writer (`genvault.liveness`) writes the partial output of every
   running generation in one statement at least every `checkpoint_ms`: a crash loses at most
   that window. Liveness is the process's heartbeat, not a lease per generation.
   An identical request (same cache key) does not call the provider: `genvault.cache.dedup`
   decides, and `_copy` replays the earlier or running generation into this record instead.
4. `_finalize` writes status, output, usage, cost and timings in one transaction, guarded by the
   current status, so it happens once. Provider failure → `error`, cancel → `cancelled`, both
   keeping the partial output; a dead process (one that stopped heartbeating) → `interrupted` by
   another process's `sweep` (start-up and periodic), from its last checkpoint (`genvault.swept`
   completes such a record: estimated usage, and a chat turn's partial reply in its chat).
5. `_end` holds back the stream's last chunks (`finish`, `abort`, the error) until the finalize
   has committed, retrying it on a dropped connection: a client told `finish` can reload and find
   the reply. A reply that did not complete first sends its status (and usage, estimated where
   the provider sent none) as message metadata, which the stored message carries too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from genvault import estimate, pricing
from genvault.cache.dedup import CachePolicy, CacheProbe, Dedup
from genvault.errors import Conflict, GenvaultError, NotFound, ProviderError
from genvault.ids import new_id
from genvault.limits import Limits
from genvault.liveness import Liveness, TurnGate
from genvault.money import nano_usd_text
from genvault.providers.base import (
    ModelRequest,
    Provider,
    StreamFile,
    StreamFinish,
    StreamTextDelta,
    StreamToolCall,
    StreamUsage,
)
from genvault.providers.registry import ProviderRegistry
from genvault.records import Generation, GenerationKind
from genvault.replay import chunks_from_record
from genvault.runs import FinishAlone, Run, sdk_usage
from genvault.settings import Settings
from genvault.store import Store
from genvault.store import generations as gen_store
from genvault.streams import MemoryHub, StreamHub
from genvault.swept import settle_interrupted
from genvault.tools import Tool, ToolEvent
from genvault.translate import ChunkTranslator

__all__ = ["Engine", "Run"]

log = logging.getLogger(__name__)

Chunk = dict[str, Any]
# Called inside the finalize transaction (chat turns write the assistant message there).
FinalizeHook = Callable[[AsyncConnection, "Run", str], Awaitable[None]]
# Folds each chunk into richer state (chat turns run the UIMessage assembler).
ChunkSink = Callable[[Chunk], None]
# Keeps a file the model produced (blob store + `blobs` row) and returns its permanent URL, so no
# chunk, checkpoint or record ever carries the file as base64.
FileSink = Callable[["Run", StreamFile], Awaitable[str]]
# Completes the model request just before each provider call (e.g. loads stored files' bytes).
PrepareRequest = Callable[[ModelRequest], Awaitable[None]]


_DERIVED_REQUEST_KEYS = ("messages_before",)


class _PublishNowait(Protocol):
    """`MemoryHub.publish_nowait`."""

    def __call__(self, stream_id: str, chunk: Chunk, *, delta: bool = False) -> None: ...


def _now() -> datetime:
    return datetime.now(UTC)


_T = TypeVar("_T")


class Engine:
    def __init__(
        self,
        store: Store,
        hub: StreamHub,
        registry: ProviderRegistry,
        settings: Settings,
        dedup: Dedup | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.store = store
        self.limits = limits
        self.hub = hub
        self.registry = registry
        self.settings = settings
        self.dedup = dedup
        # The in-process hub publishes without a coroutine (one per token saved); others are
        # awaited, and so is a subclass that overrides `publish`.
        self._publish_nowait: _PublishNowait | None = (
            hub.publish_nowait if isinstance(hub, MemoryHub) and type(hub).publish is MemoryHub.publish else None
        )
        # This process's heartbeat, checkpoint writer and sweeper (its own connections).
        self.liveness = Liveness(
            store,
            settings,
            on_lost=self._stop_lost,
            on_dead=self._stop_all,
            on_beat=self._renew,
            on_interrupted=self._settle_swept,
            busy=self._busy,
        )
        self.gate = TurnGate(_turn_slots(store, settings), settings.db_pool_timeout_seconds)
        self._runs: dict[str, Run] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._shutting_down = False
        # Finalizes still being tried after their stream ended with an error (`_unsaved`).
        self._late_finalizes: set[asyncio.Task[None]] = set()
        # Called with each record this process finalizes (telemetry, tests).
        self.listeners: list[Callable[[Generation], None]] = []
        # Called likewise, with the pending record as inserted and the finalize's values (the
        # final record is `gen_store.final_record(pending, values)`): for a listener that reads a
        # few of its fields (the server's metrics), without that record built for it (~50,000
        # instructions a turn, docs/benchmarks.md "finloop").
        self.final_listeners: list[Callable[[Generation, dict[str, Any]], None]] = []
        # Called with each pending record as its run starts, and with each tool call a run met
        # (`ToolEvent`: timed when it ran here, untimed when the client runs it) (telemetry).
        self.start_listeners: list[Callable[[Generation], None]] = []
        self.tool_listeners: list[Callable[[ToolEvent], None]] = []
        # Awaited with each record that becomes final here, inside the transaction that makes it
        # so (finalize, a cancel of another process's run, the sweeper): the webhooks' outbox.
        self.final_hooks: list[FinalHook] = []

    @property
    def owner_id(self) -> str:
        """This process in `processes` and in the generations' `lease_owner`."""
        return self.liveness.owner_id

    @property
    def _lease(self) -> timedelta:
        return timedelta(seconds=self.settings.lease_seconds)

    # -- 1. start ------------------------------------------------------------------------------

    async def start(
        self,
        *,
        kind: GenerationKind,
        user_id: str,
        model: str,
        request_json: dict[str, Any],
        model_request: ModelRequest,
        idempotency_key: str | None = None,
        chat_id: str | None = None,
        message_id: str | None = None,
        message_id_factory: Callable[[], str] | None = None,
        before_insert: Callable[[AsyncConnection, str], Awaitable[None]] | None = None,
        open_alone: Callable[[dict[str, Any], CacheProbe | None], Awaitable[bool]] | None = None,
        chunk_sink: ChunkSink | None = None,
        snapshot: Callable[[], dict[str, Any]] | None = None,
        finalize_hook: FinalizeHook | None = None,
        finish_alone: FinishAlone | None = None,
        first_chunks: list[Chunk] | None = None,
        tools: Mapping[str, Tool] | None = None,
        next_messages: Callable[[], list[dict[str, Any]]] | None = None,
        resolved: tuple[Provider, str] | None = None,
        file_sink: FileSink | None = None,
        prepare_request: PrepareRequest | None = None,
        cache: CachePolicy | None = None,
        labels: Mapping[str, Any] | None = None,
    ) -> Generation:
        """Commit the pending record, start the provider call in the background, return the record.

        `before_insert(conn, generation_id)` runs in the same transaction as the pending insert
        (chat turns append the user message there). `open_alone(values, probe)`, tried first, writes
        the pending row (`values`) together with whatever it belongs to in one step of its own (a
        new chat's first turn), running the dedup cache's `probe` there too if given; when it
        returns False, having written nothing, the transaction with `before_insert` runs instead;
        `finish_alone`, likewise, before the finalize's transaction with `finalize_hook`. With an
        `idempotency_key` already used by this user for the same request, the existing record
        comes back and nothing runs. With a `cache` policy, an identical earlier or running
        request is copied instead of called.
        """
        # Bounded: at most `gate.slots` turns open at once, then Busy (503) rather than a pool
        # timeout. Held here, not by a decorator forwarding the ~20 keyword arguments.
        async with self.gate.enter():
            # Raises InvalidRequest: nothing written yet. Image generations bring their own adapter.
            provider, bare_model = resolved or self.registry.resolve(model)
            provider_name = model.split("/", 1)[0]  # as asked for; prices are looked up under it
            model_request.model = bare_model

            if idempotency_key is not None:
                async with self.store.read() as conn:
                    existing = await gen_store.find_by_idempotency_key(conn, user_id, idempotency_key)
                if existing is not None:
                    return self._same_request(existing, request_json)

            # Limits: the key's models, requests and tokens per minute; refused before any write.
            admission = await self.limits.admit(user_id=user_id, model=model) if self.limits is not None else None
            generation_id = new_id("gen")
            now = _now()

            def pending_values(message_id: str, key: str | None) -> dict[str, Any]:
                return {
                    "id": generation_id,
                    "kind": kind,
                    "user_id": user_id,
                    "chat_id": chat_id,
                    "message_id": message_id,
                    "model": model,
                    "provider": provider_name,
                    "request": request_json,
                    "created_at": now,
                    "lease_owner": self.owner_id,
                    "lease_expires_at": now + self._lease,
                    "idempotency_key": idempotency_key,
                    "cache_key": key,
                    "api_key_id": admission.key_id if admission is not None else None,
                    "reservation": admission.reservation() if admission is not None else None,
                    **(labels or {}),  # tags, metadata: checked by the caller (`genvault.labels`)
                }

            def cache_key() -> str | None:
                if self.dedup is None:
                    return None
                return self.dedup.key_for(model=model, request=model_request, user_id=user_id, policy=cache)

            async def hold() -> None:
                # The worst-case cost and a running slot, priced now (the request's messages are
                # known) and written with the pending row, whose insert takes them against every
                # budget atomically or fails (`genvault.limits`): no statement of its own.
                if admission is not None and self.limits is not None:
                    await self.limits.reserve(admission, provider_name, bare_model, model_request)

            record: Generation | None = None
            opened = False
            assistant_id = generation_id
            probe: CacheProbe | None = None
            try:
                if open_alone is not None:
                    assistant_id = (message_id_factory() if message_id_factory else message_id) or generation_id
                    key = cache_key()
                    await hold()
                    values = pending_values(assistant_id, key)
                    # The dedup cache's lookup goes along in the same step (the SQL cache's).
                    if self.dedup is not None and key is not None and cache is not None:
                        probe = self.dedup.probe(key, user_id, cache)
                    if await open_alone(values, probe):
                        opened = True
                        record = gen_store.pending_record(values)  # as stored: nothing to read back
                if not opened:
                    async with self.store.write() as conn:
                        if before_insert is not None:
                            await before_insert(conn, generation_id)
                        # A chat turn decides its assistant message id inside the transaction.
                        assistant_id = (message_id_factory() if message_id_factory else message_id) or generation_id
                        # After before_insert: a chat turn's messages are known only now.
                        key = cache_key()
                        await hold()
                        record = await gen_store.insert_pending(conn, pending_values(assistant_id, key))
            except Exception as exc:
                # Refused by a budget: the insert (and its transaction) wrote nothing.
                if (
                    admission is not None
                    and admission.subjects
                    and self.limits is not None
                    and self.limits.refused(exc)
                ):
                    raise await self.limits.refusal(admission) from None
                raise
            if record is None:  # lost a race for the idempotency key (no row, so nothing was held)
                async with self.store.read() as conn:
                    existing = await gen_store.find_by_idempotency_key(conn, user_id, idempotency_key or "")
                if existing is None:  # pragma: no cover - the conflicting row cannot vanish
                    raise Conflict(f"idempotency key {idempotency_key!r} is in use")
                return self._same_request(existing, request_json)

            run = Run(
                generation_id=generation_id,
                kind=kind,
                user_id=user_id,
                provider=provider_name,
                model=model,
                message_id=assistant_id,
                snapshot=snapshot,
                cache_key=key,
                cache_policy=cache,
                pending=record,
                admission=admission,
                finish_alone=finish_alone,
            )
            self._runs[generation_id] = run
            # Open before deciding, so a request that joins this one finds its stream at once.
            await self.hub.open(generation_id)
            source = None
            if self.dedup is not None and key is not None and cache is not None:
                try:
                    source = await self.dedup.decide(
                        key, generation_id, user_id, cache, probe=probe if opened else None
                    )
                except Exception:  # the record is committed: it must run, cache or not
                    log.warning("dedup lookup for %s failed; calling the provider", generation_id, exc_info=True)
            if source is not None:
                work = self._copy(run, source, chunk_sink, finalize_hook)
            else:
                work = self._run(
                    run,
                    provider,
                    model_request,
                    chunk_sink,
                    finalize_hook,
                    first_chunks or [],
                    tools or {},
                    next_messages,
                    file_sink,
                    prepare_request,
                )
            self._tell(self.start_listeners, record)
            # The loop's own `create_task` with the name (asyncio's wrapper: two Python calls more).
            task = asyncio.get_running_loop().create_task(work, name=f"genvault:{generation_id}")
            self._tasks[generation_id] = task
            task.add_done_callback(self._task_done)
            return record

    def _task_done(self, task: asyncio.Task[None]) -> None:
        generation_id = task.get_name().removeprefix("genvault:")
        self._tasks.pop(generation_id, None)
        if not task.cancelled() and task.exception() is not None:
            # Retrieved here (never "Task exception was never retrieved"): a run whose end failed.
            log.error("generation %s ended with an error", generation_id, exc_info=task.exception())

    @staticmethod
    def _same_request(existing: Generation, request_json: dict[str, Any]) -> Generation:
        # Keys a `before_insert` hook adds from the database (a chat's history length) are not
        # part of what the caller asked, and a retry never gets that far.
        asked = {k: v for k, v in existing.request.items() if k not in _DERIVED_REQUEST_KEYS}
        if asked != request_json:
            raise Conflict(
                f"idempotency key {existing.idempotency_key!r} was already used for a different request "
                f"(generation {existing.id}); use a new key for a new request"
            )
        return existing

    # -- 2. stream -----------------------------------------------------------------------------

    async def _publish(self, run: Run, chunks: list[Chunk], sink: ChunkSink | None) -> None:
        if self._publish_nowait is not None:
            self._publish_here(run, chunks, sink)
            return
        for chunk in chunks:
            if sink is not None:
                sink(chunk)
            await self.hub.publish(run.generation_id, chunk)
        if chunks:
            run.dirty = True

    def _publish_here(self, run: Run, chunks: list[Chunk], sink: ChunkSink | None) -> None:
        """`_publish` for a hub that publishes synchronously (the in-process one)."""
        publish = self._publish_nowait
        assert publish is not None
        for chunk in chunks:
            if sink is not None:
                sink(chunk)
            publish(run.generation_id, chunk)
        if chunks:
            run.dirty = True

    async def _run(
        self,
        run: Run,
        provider: Provider,
        request: ModelRequest,
        sink: ChunkSink | None,
        finalize_hook: FinalizeHook | None,
        first_chunks: list[Chunk],
        tools: Mapping[str, Tool],
        next_messages: Callable[[], list[dict[str, Any]]] | None,
        file_sink: FileSink | None = None,
        prepare_request: PrepareRequest | None = None,
    ) -> None:
        translator = ChunkTranslator()
        # A sink may take each token's text delta as `(id, text)` (`TurnHooks.text_sink`).
        offer = getattr(sink, "text_sink", None)
        text_sink: Callable[[str, str], None] | None = None if offer is None else offer()
        self.liveness.track(run)  # the checkpoint writer's until `_end` (no task of its own)
        status, error = "complete", None
        step_open = False
        publish_here = self._publish_nowait
        generation_id = run.generation_id
        run.started_at = _now()
        run.request = request
        tail: list[Chunk] = []
        try:
            await self._publish(run, [{"type": "start", "messageId": run.message_id}, *first_chunks], sink)
            for step in range(self.settings.max_steps):
                await self._publish(run, translator.start_step(), sink)
                step_open = True
                calls: list[StreamToolCall] = []
                if prepare_request is not None:
                    await prepare_request(request)
                answered = False
                # The translator's open text part, known since it last translated, else None.
                part: str | None = None
                async for event in provider.stream(request):
                    if not answered:  # the step's first event (the run's first token: only once)
                        answered = True
                        if run.first_token_at is None:
                            self._mark_streaming(run)
                    if type(event) is StreamTextDelta and publish_here is not None:
                        # One per token: what the general branch below does for a text delta,
                        # without its isinstance chain and the publishing coroutine, and for the
                        # string delta of an open text part without the translator's list, the
                        # loop of `_publish_here` and the sinks' tests of the chunk it built.
                        text = event.text
                        run.text.append(text)
                        if part is None or not text or type(text) is not str:  # opens a part, or not plain
                            self._publish_here(run, translator.translate(event), sink)
                            part = translator.open_text()
                            continue
                        chunk = {"type": "text-delta", "id": part, "delta": text}  # as `translate` gives it
                        if text_sink is not None:
                            text_sink(part, text)
                        elif sink is not None:
                            sink(chunk)
                        publish_here(generation_id, chunk, delta=True)  # a plain delta, built here
                        run.dirty = True
                        continue
                    part = None  # whatever the translator does next decides
                    if isinstance(event, StreamUsage):
                        run.add_usage(event)
                    elif isinstance(event, StreamFinish):
                        run.finish_reason = event.reason
                    else:
                        if isinstance(event, StreamTextDelta):
                            run.text.append(event.text)
                        elif isinstance(event, StreamToolCall) and not event.provider_executed:
                            calls.append(event)
                        if isinstance(event, StreamFile) and file_sink is not None:
                            url = await file_sink(run, event)
                            await self._publish(run, translator.stored_file(event.media_type, url), sink)
                            continue
                        await self._publish(run, translator.translate(event), sink)
                if not answered:  # not even a finish reason: never a silent, empty `complete`
                    raise ProviderError(f"{run.provider} sent an empty answer (no events in its stream)")
                runnable = [c for c in calls if c.name in tools and tools[c.name].runs_on_server]
                for call in calls:
                    if call not in runnable:  # the client's to run
                        self._tell(self.tool_listeners, ToolEvent(run.generation_id, call))
                for call in runnable:
                    began = _now()
                    output = await self._execute(tools[call.name], call)
                    self._tell(self.tool_listeners, ToolEvent(run.generation_id, call, began, _now(), output))
                    await self._publish(run, [output], sink)
                await self._publish(run, translator.finish_step(), sink)
                step_open = False
                # Another model call only when every call was answered here; a client-side tool
                # ends the turn, and the client's next request continues it.
                if not calls or len(runnable) != len(calls) or next_messages is None:
                    break
                if step == self.settings.max_steps - 1:
                    log.warning("generation %s stopped after %d steps", run.generation_id, self.settings.max_steps)
                    break
                request.messages = next_messages()
            if run.finish_reason in (None, "unknown") and not _has_output(run):
                # Nothing read, and the provider never said it finished: not an (empty) answer.
                raise ProviderError(f"{run.provider} sent nothing that could be read as an answer")
            tail = [self._finish_chunk(run)]
        except asyncio.CancelledError:
            if self._shutting_down and not run.cancel_requested:
                status, error = "interrupted", "the server shut down before this generation finished"
            else:
                status, error = "cancelled", None
            tail = [{"type": "abort"}]
        except ProviderError as exc:
            status, error = "error", exc.message
            run.provider_status = exc.status
            run.never_sent = not exc.sent
            tail = [{"type": "error", "errorText": exc.message}]
            if step_open:
                tail.append({"type": "finish-step"})
            tail.append({"type": "finish"})
        except Exception as exc:  # a bug: keep the record honest and the partial output
            log.exception("generation %s failed", run.generation_id)
            status, error = "error", f"internal error: {type(exc).__name__}: {exc}"
            tail = [{"type": "error", "errorText": "internal error"}]
        finally:
            await self._end(run, status, error, finalize_hook, tail, sink)

    async def _copy(self, run: Run, source_id: str, sink: ChunkSink | None, finalize_hook: FinalizeHook | None) -> None:
        """Run `run` as a copy of generation `source_id`: its stream from the start (live while it
        runs), then its final text; the provider is not called."""
        self.liveness.track(run)
        status, error = "complete", None
        run.started_at = _now()
        run.cached_from = source_id
        run.cost = pricing.Cost(nano_usd=0, source="cache")
        tail: list[Chunk] = []
        read: list[Generation] = []  # the source's final record, when `_source_chunks` read it
        try:
            async for chunk in self._source_chunks(source_id, read):
                if run.first_token_at is None:
                    self._mark_streaming(run)
                if chunk["type"] == "text-delta":
                    run.text.append(chunk["delta"])
                if chunk["type"] == "finish":  # told only once this copy is committed (`_end`)
                    tail = [self._retarget(run, chunk)]
                    continue
                await self._publish(run, [self._retarget(run, chunk)], sink)
            if read:  # final already: read once for its chunks, not twice
                source = read[0]
            else:
                await self.wait(source_id)
                async with self.store.read() as conn:
                    source = await gen_store.get(conn, source_id)
            if source.status == "complete":
                run.text = [source.result_text or ""]
                run.finish_reason = source.finish_reason
                # A copy of a copy (joined a request that itself joined another) points at the
                # original, and saved what the original cost.
                run.cached_from = source.cached_from or source.id
                run.saved_nano_usd = source.saved_nano_usd if source.cached_from else source.cost_nano_usd
            else:
                status, error = "error", f"the identical generation {source_id} it joined ended {source.status}"
                tail = [{"type": "error", "errorText": error}]
        except asyncio.CancelledError:
            status, error = ("interrupted", "the server shut down") if self._shutting_down else ("cancelled", None)
            tail = [{"type": "abort"}]
        except Exception as exc:
            log.exception("copy of %s into %s failed", source_id, run.generation_id)
            status, error = "error", f"internal error: {type(exc).__name__}: {exc}"
            tail = [{"type": "error", "errorText": "internal error"}]
        finally:
            await self._end(run, status, error, finalize_hook, tail, sink)

    async def _source_chunks(self, source_id: str, read: list[Generation]) -> AsyncIterator[Chunk]:
        """The source's chunks: live from the hub, else from its final record (put in `read`)."""
        if await self.hub.exists(source_id):
            async for chunk in self.hub.follow(source_id):
                yield chunk
            return
        await self.wait(source_id)  # running where this hub cannot see: its record, once final
        async with self.store.read() as conn:
            record = await gen_store.get(conn, source_id)
        read.append(record)
        for chunk in chunks_from_record(record):
            yield chunk

    @staticmethod
    def _retarget(run: Run, chunk: Chunk) -> Chunk:
        """The source's chunk as this record's: its own message id, and its own id and zero cost
        in the finish metadata (a new dict: the source's chunk is shared with its followers)."""
        if chunk["type"] == "start":
            return {**chunk, "messageId": run.message_id}
        if chunk["type"] == "finish":
            genvault = {"generationId": run.generation_id, "model": run.model, "costUsd": "0"}
            genvault["cachedFrom"] = run.cached_from or ""
            finish: Chunk = {k: v for k, v in chunk.items() if k != "messageMetadata"}
            finish["messageMetadata"] = {"genvault": genvault}
            return finish
        return chunk

    async def _end(
        self,
        run: Run,
        status: str,
        error: str | None,
        finalize_hook: FinalizeHook | None,
        tail: list[Chunk],
        sink: ChunkSink | None,
    ) -> None:
        """Finalize, then tell the followers how it ended (`tail`: `finish`, `abort` or the error
        chunks): a client is told a reply finished only once it is committed. An ending other than
        `complete` first sends its status (and usage, estimated where the provider sent none) as
        message metadata, which the client merges into the message as the store does. A finalize
        that cannot be committed ends the stream with an `error` chunk instead."""
        # Out of the checkpoint writer first: no flush touches the run while it finalizes.
        self.liveness.untrack(run.generation_id)
        committed = False
        try:
            if status != "complete":
                self._settle_usage(run)
                tail = [self._status_chunk(run, status, error), *tail]
            # Into the assembled message first (what finalize stores), to the followers after.
            if sink is not None:
                for chunk in tail:
                    sink(chunk)
            # In this task, not a shielded one: every canceller (`_interrupt`) skips a run that
            # is finalizing, so nothing cancels this write.
            run.finalizing = True
            try:
                outcome = await self._finalize_retrying(run, status, error, finalize_hook)
            finally:
                run.finalizing = False
            committed = outcome == status
            if committed:
                await self._publish(run, tail, None)
            elif outcome is not None:
                await self._publish(run, [self._ended_elsewhere_chunk(run, outcome)], None)
            else:
                await self._unsaved(run, finalize_hook, sink)
        finally:
            run.told.set()
            try:
                # Even when finalize failed: a lead never given up would stall identical requests.
                if self.dedup is not None and run.cache_key is not None and run.cache_policy is not None:
                    complete = committed and status == "complete" and run.cached_from is None and _has_output(run)
                    # Mostly nothing to await (the SQL cache, the result stored with the finalize):
                    # then no task, and the hub closes right after the tail, so a follower takes
                    # both in one wake-up.
                    if not self.dedup.finished_at_once(
                        run.cache_key, run.generation_id, complete=complete, stored=run.cache_stored
                    ):
                        await asyncio.shield(
                            self.dedup.finished(
                                run.cache_key,
                                run.generation_id,
                                run.user_id,
                                complete=complete,
                                policy=run.cache_policy,
                                stored=run.cache_stored,
                            )
                        )
            finally:
                await self.hub.close(run.generation_id)
                self._runs.pop(run.generation_id, None)
                run.done.set()

    @staticmethod
    async def _execute(tool: Tool, call: StreamToolCall) -> Chunk:
        assert tool.execute is not None
        try:
            output = await tool.execute(call.input)
        except Exception as exc:  # the tool's failure is the model's to handle, not the turn's
            log.info("tool %s failed: %s", tool.name, exc)
            return ChunkTranslator.tool_error(call.call_id, f"{type(exc).__name__}: {exc}")
        return ChunkTranslator.tool_output(call.call_id, output)

    def _status_chunk(self, run: Run, status: str, error: str | None) -> Chunk:
        """`message-metadata` with how the reply ended, sent before its `abort` or `error` (the
        client stops reading at an `error`): stored and shown alike."""
        cost = run.cost or pricing.Cost(nano_usd=None, source=None)
        genvault: dict[str, Any] = {
            "generationId": run.generation_id,
            "model": run.model,
            "status": status,
            "costUsd": nano_usd_text(cost.nano_usd),
            **run.timing(),
        }
        if error is not None:
            genvault["error"] = error
        metadata: dict[str, Any] = {"genvault": genvault}
        if run.usage is not None:
            metadata["totalUsage"] = sdk_usage(run.usage)
            if run.usage_estimated:
                genvault["usageEstimated"] = True
        return {"type": "message-metadata", "messageMetadata": metadata}

    @staticmethod
    def _ended_elsewhere_chunk(run: Run, outcome: str) -> Chunk:
        if outcome == "cancelled":  # its output was kept under that status (`_finalize`)
            text = "this generation was cancelled elsewhere before it ended here; its output is kept, cancelled"
        else:
            text = f"this generation was ended elsewhere ({outcome}) before its result was saved"
        log.warning("generation %s: %s", run.generation_id, text)
        return {"type": "error", "errorText": text}

    async def _unsaved(self, run: Run, hook: FinalizeHook | None, sink: ChunkSink | None) -> None:
        """The final write failed for `finalize_retry_seconds`: the client gets an `error` (with
        the status as metadata) instead of how the reply ended, and the record is written as
        that, `error`, as soon as the database answers again, rather than left `streaming`."""
        error = "the reply could not be saved: the database did not answer in time"
        chunks = [self._status_chunk(run, "error", error), {"type": "error", "errorText": error}]
        if sink is not None:
            for chunk in chunks:
                sink(chunk)
        await self._publish(run, chunks, None)
        task = asyncio.create_task(self._finalize_later(run, error, hook), name=f"genvault:unsaved:{run.generation_id}")
        self._late_finalizes.add(task)
        task.add_done_callback(self._late_finalizes.discard)

    async def _finalize_later(self, run: Run, error: str, hook: FinalizeHook | None) -> None:
        """Until it is written (this process is alive, so no sweeper will end the record), or the
        engine closes (then the next start's sweeper marks it `interrupted`)."""
        delay = 0.25
        while True:
            await asyncio.sleep(delay)
            try:
                await self._finalize(run, "error", error, hook)
                return
            except GenvaultError:
                delay = min(delay * 2, 5.0)

    def _settle_usage(self, run: Run) -> None:
        """Usage and cost of a reply that did not complete: the provider's where it sent any, else
        an estimate (`genvault.estimate`), marked estimated; none, at cost 0, when its request
        never reached the provider (`ProviderError.sent`)."""
        if run.cached_from is not None:
            return  # a copy called no model: nothing billed
        if run.never_sent and run.first_token_at is None and run.usage is None:
            # Refused before the request left (connect refused, DNS, connect timeout), and no
            # earlier step answered: the provider never saw it and billed nothing.
            run.cost = pricing.Cost(0)
            return
        usage, estimated = estimate.settle(run.usage, run.request, run.result_text)
        run.usage, run.usage_estimated = usage, estimated
        run.cost = pricing.compute_cost(
            run.provider, run.model.split("/", 1)[1], usage or StreamUsage(), self.settings.price_overrides
        )

    def _finish_chunk(self, run: Run) -> Chunk:
        """`finish`, carrying usage and cost as message metadata (the AI SDK's documented way:
        the client merges it into `message.metadata`, so a UI can show it)."""
        run.cost = pricing.compute_cost(
            run.provider, run.model.split("/", 1)[1], run.usage or StreamUsage(), self.settings.price_overrides
        )
        metadata: dict[str, Any] = {
            "genvault": {
                "generationId": run.generation_id,
                "model": run.model,
                "costUsd": nano_usd_text(run.cost.nano_usd),
                **run.timing(),
            }
        }
        if run.usage is not None:
            metadata["totalUsage"] = sdk_usage(run.usage)
        finish: Chunk = {"type": "finish", "messageMetadata": metadata}
        if run.finish_reason is not None:
            # Newer clients (5.0.92+) keep it; the server's compat layer strips it for older ones.
            finish["finishReason"] = run.finish_reason
        return finish

    def _mark_streaming(self, run: Run) -> None:
        """The first token: the record moves to `streaming` through the process's writer, in one
        statement with the other streams' first tokens; the token does not wait for it."""
        first_token_at = run.first_token_at = _now()
        self.liveness.first_token(
            run.generation_id, started_at=run.started_at or first_token_at, first_token_at=first_token_at
        )

    # -- 3. checkpoint -------------------------------------------------------------------------

    def _busy(self) -> bool:
        """Runs here, or streams the in-process hub still holds (looking forgets stale ones)."""
        return bool(self._runs) or (isinstance(self.hub, MemoryHub) and self.hub.size > 0)

    def _stop_lost(self, generation_ids: list[str]) -> None:
        """Stop runs whose records ended elsewhere (cancelled from another process, or swept)."""
        for generation_id in generation_ids:
            task, run = self._tasks.get(generation_id), self._runs.get(generation_id)
            if task is not None and run is not None:
                run.cancel_requested = True
                self._interrupt(task, run)

    @staticmethod
    def _interrupt(task: asyncio.Task[None], run: Run) -> None:
        """Cancel a run's task, unless its finalize is writing: that write must hold (the run
        ends by itself right after it, as its record now says)."""
        if not run.finalizing:
            task.cancel()

    async def _stop_all(self) -> None:
        """This process was declared dead: its records are `interrupted` already; stop the runs."""
        self._stop_lost(list(self._tasks))
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks)

    async def _renew(self) -> None:
        """With each heartbeat: keep the single-flight leads of running generations."""
        if self.dedup is None:
            return
        for run in list(self._runs.values()):
            if run.cache_key is not None and run.cached_from is None:
                await self.dedup.renew(run.cache_key, run.generation_id)

    # -- 4. finalize ---------------------------------------------------------------------------

    async def _finalize_retrying(
        self, run: Run, status: str, error: str | None, hook: FinalizeHook | None
    ) -> str | None:
        """`_finalize`, tried again while the database fails (a dropped connection, a restart) for
        up to `finalize_retry_seconds`: it is idempotent, guarded by the record's status. Returns
        the record's final status (`status` when this call's write is the one that holds), or
        None when it could not be written."""
        delay, deadline = 0.05, asyncio.get_running_loop().time() + self.settings.finalize_retry_seconds
        while True:
            try:
                return await self._finalize(run, status, error, hook)
            except GenvaultError as exc:
                if asyncio.get_running_loop().time() + delay > deadline:
                    log.error("finalize of %s failed for good: %s", run.generation_id, exc)
                    return None
                log.warning("finalize of %s failed (%s); trying again", run.generation_id, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _finalize(self, run: Run, status: str, error: str | None, hook: FinalizeHook | None) -> str | None:
        usage = run.usage or StreamUsage()
        cost = run.cost or pricing.compute_cost(
            run.provider, run.model.split("/", 1)[1], usage, self.settings.price_overrides
        )
        values: dict[str, Any] = {
            "status": status,
            "error": error,
            "result_text": run.result_text,
            "result_message": run.snapshot() if run.snapshot else None,
            "finish_reason": run.finish_reason if status == "complete" else (run.finish_reason or status),
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cached_input_tokens": usage.cached_input_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "total_tokens": usage.total_tokens,
            "cost_nano_usd": cost.nano_usd,
            "unit_prices": cost.unit_prices,
            "price_source": cost.source,
            "started_at": run.started_at,
            "first_token_at": run.first_token_at,
            "finished_at": _now(),
        }
        if run.cached_from is not None:
            values.update(
                cached_from=run.cached_from, saved_nano_usd=run.saved_nano_usd if status == "complete" else None
            )
        if run.usage_estimated:
            values["usage_estimated"] = True
        if await self._finished_alone(run, status, values):
            return await self._final(run, values)
        stored = False
        async with self.store.write() as conn:
            if not await gen_store.finalize(conn, run.generation_id, values):
                # Already final: an earlier try of this one whose commit's answer was lost (same
                # status), or cancelled or swept elsewhere (that outcome is kept).
                current = await gen_store.status_of(conn, run.generation_id)
                if current == "cancelled":
                    # Cancelled from another process, which could write only the status: the
                    # reply, its usage and cost and the chat message are here (idempotent). Also
                    # when the reply ended here before this process noticed the cancel: the
                    # record stays `cancelled`, but what was produced and paid for is kept and
                    # counted (usage, budgets: the late cost's trigger, revision 0015).
                    await gen_store.complete_cancelled(conn, run.generation_id, values)
                    if hook is not None:
                        run.ended_elsewhere = True
                        await hook(conn, run, current)
                return current
            if hook is not None:
                await hook(conn, run, status)
            await self._tell_final_hooks(conn, run.pending, values, run.generation_id)
            if status == "complete" and self._caches(run) and self.dedup is not None:
                assert run.cache_key is not None
                assert run.cache_policy is not None
                # The SQL cache's entry goes in with the result: one transaction fewer.
                stored = await self.dedup.remember_in(
                    conn, run.cache_key, run.generation_id, run.user_id, run.cache_policy
                )
        run.cache_stored = stored  # committed
        return await self._final(run, values)

    async def _finished_alone(self, run: Run, status: str, values: dict[str, Any]) -> bool:
        """The finalize as the run's `finish_alone` step, when it has one and nothing needs the
        transaction (not ended elsewhere; a budget's reservation is settled by the update's own
        trigger, revision 0015). True when it was written."""
        if run.finish_alone is None or run.ended_elsewhere:
            return False
        if any(h.wants(status) for h in self.final_hooks):  # a hook writes in the transaction
            return False
        entry = None
        if status == "complete" and self._caches(run) and self.dedup is not None:
            assert run.cache_key is not None
            assert run.cache_policy is not None
            entry = self.dedup.entry_for(run.cache_key, run.generation_id, run.user_id, run.cache_policy)
        if not await run.finish_alone(run, values, entry):
            return False
        run.cache_stored = entry is not None  # committed
        return True

    @staticmethod
    def _caches(run: Run) -> bool:
        """Whether a run that completed leaves a result for the dedup cache."""
        cached = run.cache_key is not None and run.cache_policy is not None
        return cached and run.cached_from is None and _has_output(run)

    async def _final(self, run: Run, values: dict[str, Any]) -> str:
        """After the finalize committed: the limits count its tokens, the listeners get the record."""
        status: str = values["status"]
        # The final record for the listeners, from what was just written: no read of it.
        record = gen_store.final_record(run.pending, values) if self.listeners and run.pending else None
        if run.admission is not None and run.admission.tokens and self.limits is not None:
            try:
                await self.limits.record_tokens(run.admission, run.usage)
            except Exception:  # the record is final; a rate window that missed it is no reason to fail
                log.warning("counting the tokens of %s against its limits failed", run.generation_id, exc_info=True)
        if record is not None:
            self._tell(self.listeners, record)
        if self.final_listeners and run.pending:
            pending = run.pending
            for listener in self.final_listeners:
                try:
                    listener(pending, values)
                except Exception:  # an observer's failure never touches the generation
                    log.warning("engine listener failed", exc_info=True)
        return status

    @staticmethod
    def _tell(listeners: list[Callable[[_T], None]], event: _T) -> None:
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # an observer's failure never touches the generation
                log.warning("engine listener failed", exc_info=True)

    # -- control -------------------------------------------------------------------------------

    def is_running_here(self, generation_id: str) -> bool:
        return generation_id in self._tasks

    def run_here(self, generation_id: str) -> Run | None:
        """The run of a generation running in this process (its `done` is set once its final
        state is committed and its last chunk published), or None."""
        return self._runs.get(generation_id)

    def provider_status(self, generation_id: str) -> int | None:
        """The HTTP status of the failed provider call of a generation running here, if any."""
        run = self._runs.get(generation_id)
        return run.provider_status if run is not None else None

    def owner_here(self, generation_id: str) -> str | None:
        """The user a generation running in this process belongs to; None when it is not here."""
        run = self._runs.get(generation_id)
        return run.user_id if run is not None and generation_id in self._tasks else None

    async def wait(self, generation_id: str, *, poll_seconds: float = 0.1) -> None:
        """Until the generation is final (here or in another process)."""
        run = self._runs.get(generation_id)
        if run is not None:
            await run.done.wait()
            return
        while True:
            async with self.store.read() as conn:
                status = await gen_store.status_of(conn, generation_id)
            if status is None:
                raise NotFound(f"no generation {generation_id!r}")
            if status not in gen_store.ACTIVE:
                return
            await asyncio.sleep(poll_seconds)

    async def cancel(self, generation: Generation) -> None:
        """Stop a running generation, keeping its partial output; the record ends `cancelled`."""
        if generation.status == "cancelled":
            return
        if generation.is_final:
            raise Conflict(f"generation {generation.id} already ended {generation.status}; nothing to cancel")
        task = self._tasks.get(generation.id)
        run = self._runs.get(generation.id)
        if task is not None and run is not None:
            run.cancel_requested = True
            self._interrupt(task, run)
            await run.done.wait()
            return
        # Running in another process (or nowhere): end the record here; the owner's next
        # checkpoint flush or heartbeat sees it is no longer active and stops its provider call.
        async with self.store.write() as conn:
            # Ending the record gives back what it held (a trigger: revision 0015).
            values = {"status": "cancelled", "finished_at": _now()}
            if await gen_store.finalize(conn, generation.id, values):
                await self._tell_final_hooks(conn, generation, values, generation.id)

    async def _tell_final_hooks(
        self, conn: AsyncConnection, pending: Generation | None, values: dict[str, Any], generation_id: str
    ) -> None:
        """Run `final_hooks` for a record just made final with `values`, in that transaction."""
        hooks = [h for h in self.final_hooks if h.wants(values["status"])]
        if not hooks:
            return
        record = (
            gen_store.final_record(pending, values) if pending is not None else await gen_store.get(conn, generation_id)
        )
        for final_hook in hooks:
            await final_hook.on_final(conn, record)

    async def _settle_swept(self, conn: AsyncConnection, record: Generation) -> None:
        """In the sweep's transaction: complete a record it interrupted (usage, a turn's partial
        reply in its chat). What it held against its budgets was given back by the update that
        interrupted it, and its estimated cost counts when written (triggers: revision 0015)."""
        await settle_interrupted(conn, record, self.settings.price_overrides)
        hooks = [h for h in self.final_hooks if h.wants(record.status)]
        if hooks:
            settled = await gen_store.get(conn, record.id)  # with the usage settled above
            for final_hook in hooks:
                await final_hook.on_final(conn, settled)

    async def sweep(self) -> list[Generation]:
        """Mark `interrupted` the records whose process died (stopped heartbeating, or a pid gone
        from this host); never this process's own."""
        changed = await self.liveness.sweep()
        for record in changed:
            log.warning("generation %s marked interrupted (owner process gone)", record.id)
            # Its followers (on any process, with Redis) would otherwise wait for chunks that never come.
            await self.hub.abandon(record.id)
        return changed

    async def aclose(self, *, grace_seconds: float = 5.0) -> None:
        """Let running generations finish for `grace_seconds`, then stop them; those end
        `interrupted` (not `cancelled`: nobody asked them to stop), partial output kept."""
        self._shutting_down = True
        tasks = list(self._tasks.values())
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace_seconds)
            for task in pending:
                run = self._runs.get(task.get_name().removeprefix("genvault:"))
                if run is None:
                    task.cancel()
                else:  # one finalizing is waited for (up to `finalize_retry_seconds`)
                    self._interrupt(task, run)
            if pending:
                await asyncio.wait(pending)
        await self.liveness.aclose()
        for late in list(self._late_finalizes):  # still no database: the sweeper's, at next start
            late.cancel()


class FinalHook(Protocol):
    """Told of each record that becomes final in this process, in that transaction."""

    def wants(self, status: str) -> bool: ...

    async def on_final(self, conn: AsyncConnection, record: Generation) -> None: ...


def _has_output(run: Run) -> bool:
    """Whether a completed run produced anything to reuse: an empty answer is never cached."""
    if run.result_text:
        return True
    message = run.snapshot() if run.snapshot else None
    return message is not None and any(p.get("type") not in ("step-start",) for p in message.get("parts", []))


def _turn_slots(store: Store, settings: Settings) -> int:
    """Two thirds of the pool for turns opening at once; the rest stays free for running streams."""
    pg = store.dialect == "postgresql"
    size = settings.db_pool_size if settings.db_pool_size is not None else (10 if pg else 5)
    overflow = settings.db_max_overflow if settings.db_max_overflow is not None else (20 if pg else 10)
    return max(1, (size + overflow) * 2 // 3)
