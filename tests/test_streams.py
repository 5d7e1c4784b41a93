"""One contract for both stream hubs (in-process and Redis Streams), plus what only Redis does:
following from another process, and surviving an outage without a hole in the stream."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from genvault._redis import connect
from genvault.streams import MemoryHub, RedisHub, StreamHub
from redis_server import RedisServer

CHUNKS = [
    {"type": "start", "messageId": "m"},
    *({"type": "text-delta", "id": "t", "delta": f"w{i} "} for i in range(5)),
]


async def collect(hub: StreamHub, stream_id: str, start: int = 0) -> list[dict[str, Any]]:
    return [chunk async for chunk in hub.follow(stream_id, start)]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def hub_kind(request: pytest.FixtureRequest) -> dict[str, str] | None:
    """None for the in-process hub; the Redis settings for the Redis hub."""
    if request.param == "memory":
        return None
    settings: dict[str, str] = request.getfixturevalue("redis_settings")
    return settings


@pytest.fixture
async def hubs(hub_kind: dict[str, str] | None) -> AsyncIterator[Callable[[], StreamHub]]:
    """Makes hubs sharing one backing store: two Redis hubs stand for two processes."""
    made: list[Any] = []
    if hub_kind is None:
        hub = MemoryHub()

        def make() -> StreamHub:
            return hub
    else:
        settings = hub_kind

        def make() -> StreamHub:
            client = connect(settings["redis_url"])
            made.append(client)
            return RedisHub(client, prefix=settings["redis_prefix"], block_ms=100)

    yield make
    for client in made:
        await client.aclose()


class TestHubContract:
    async def test_a_closed_stream_replays_every_chunk_in_order(self, hubs: Callable[[], StreamHub]) -> None:
        hub = hubs()
        await hub.open("g1")
        for chunk in CHUNKS:
            await hub.publish("g1", chunk)
        await hub.close("g1")
        assert await hub.exists("g1")
        assert await collect(hub, "g1") == CHUNKS
        assert await collect(hub, "g1", start=4) == CHUNKS[4:]

    async def test_a_follower_gets_the_past_then_the_live_chunks(self, hubs: Callable[[], StreamHub]) -> None:
        producer, follower = hubs(), hubs()
        await producer.open("g2")
        await producer.publish("g2", CHUNKS[0])
        following = asyncio.create_task(collect(follower, "g2"))
        await asyncio.sleep(0.05)
        for chunk in CHUNKS[1:]:
            await producer.publish("g2", chunk)
        await producer.close("g2")
        assert await asyncio.wait_for(following, 10) == CHUNKS

    async def test_a_follower_that_goes_away_while_waiting_does_not_stop_the_others(
        self, hubs: Callable[[], StreamHub]
    ) -> None:
        producer = hubs()
        await producer.open("g5")
        await producer.publish("g5", CHUNKS[0])
        leaving = asyncio.create_task(collect(hubs(), "g5"))
        staying = asyncio.create_task(collect(hubs(), "g5"))
        await asyncio.sleep(0.05)  # both have the first chunk and wait for the next
        leaving.cancel()
        await asyncio.sleep(0)
        for chunk in CHUNKS[1:]:
            await producer.publish("g5", chunk)
        await producer.close("g5")
        assert await asyncio.wait_for(staying, 10) == CHUNKS
        assert leaving.cancelled()

    async def test_a_long_stream_replays_every_chunk_as_published_from_any_index(
        self, hubs: Callable[[], StreamHub]
    ) -> None:
        hub = hubs()
        await hub.open("s")
        published: list[dict[str, Any]] = [{"type": "start", "messageId": "m"}]
        for i in range(300):
            published.append({"type": "text-delta", "id": "t", "delta": f"w{i} "})
            if i % 100 == 0:  # not a plain delta: kept as it is
                published.append({"type": "text-delta", "id": "t", "delta": "x", "providerMetadata": {"p": {}}})
            if i == 150:
                published.append({"type": "reasoning-delta", "id": "r", "delta": "hm"})
        published.append({"type": "finish"})
        live = asyncio.ensure_future(collect(hub, "s"))
        for chunk in published:
            await hub.publish("s", chunk)
        await hub.close("s")
        assert await live == published
        assert await collect(hub, "s") == published
        assert await collect(hub, "s", 123) == published[123:]

    async def test_an_unknown_stream_yields_nothing(self, hubs: Callable[[], StreamHub]) -> None:
        hub = hubs()
        assert not await hub.exists("nope")
        assert await collect(hub, "nope") == []

    async def test_discard_forgets_the_stream(self, hubs: Callable[[], StreamHub]) -> None:
        producer, other = hubs(), hubs()
        await producer.open("g3")
        await producer.publish("g3", CHUNKS[0])
        await producer.close("g3")
        await producer.discard("g3")
        assert not await other.exists("g3")
        assert await collect(other, "g3") == []

    async def test_abandon_ends_a_stream_whose_producer_died_with_an_abort(self, hubs: Callable[[], StreamHub]) -> None:
        producer, sweeper = hubs(), hubs()
        await producer.open("g4")
        await producer.publish("g4", CHUNKS[0])
        following = asyncio.create_task(collect(sweeper, "g4"))
        await asyncio.sleep(0.05)
        await sweeper.abandon("g4")
        assert await asyncio.wait_for(following, 10) == [CHUNKS[0], {"type": "abort"}]


@pytest.mark.slow
async def test_a_redis_outage_mid_stream_leaves_no_hole_once_redis_is_back() -> None:
    server = RedisServer()
    server.start()
    producer_client, follower_client = connect(server.url), connect(server.url)
    producer = RedisHub(producer_client, prefix="gv:", block_ms=100)
    follower = RedisHub(follower_client, prefix="gv:", block_ms=100)
    try:
        await producer.open("g")
        await producer.publish("g", CHUNKS[0])
        server.kill()
        for chunk in CHUNKS[1:4]:
            await producer.publish("g", chunk)  # lost by Redis, kept locally; never raises
        assert producer.health.down
        server.start()  # an empty Redis: everything it held is gone too
        for chunk in CHUNKS[4:]:
            await producer.publish("g", chunk)
        await producer.close("g")
        assert not producer.health.down
        assert await collect(follower, "g") == CHUNKS
    finally:
        server.kill()
        await producer_client.aclose()
        await follower_client.aclose()


async def test_after_a_failure_redis_is_not_called_again_until_the_pause_ends() -> None:
    from genvault._redis import RedisHealth
    from redis_server import free_port

    client = connect(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    health = RedisHealth(retry_seconds=3600)
    hub = RedisHub(client, prefix="gv:", health=health)
    try:
        await hub.open("g")
        for chunk in CHUNKS:
            await hub.publish("g", chunk)
        assert health.failures == 1  # one refused connection, then local only
        assert await hub.exists("g")
        following = asyncio.create_task(collect(hub, "g"))
        await hub.close("g")  # the end marker is tried regardless: a second failure
        assert await following == CHUNKS
        assert health.failures == 2
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_a_stream_longer_than_its_bound_replays_from_its_oldest_kept_chunk(
    redis_settings: dict[str, str],
) -> None:
    producer_client, follower_client = connect(redis_settings["redis_url"]), connect(redis_settings["redis_url"])
    prefix = redis_settings["redis_prefix"]
    producer = RedisHub(producer_client, prefix=prefix, maxlen=100, block_ms=100)
    follower = RedisHub(follower_client, prefix=prefix, block_ms=100)
    chunks = [{"type": "text-delta", "id": "t", "delta": str(i)} for i in range(1000)]
    try:
        await producer.open("long")
        for chunk in chunks:
            await producer.publish("long", chunk)
        await producer.close("long")
        got = await asyncio.wait_for(collect(follower, "long"), 10)
        assert 100 <= len(got) < 1000  # bounded, approximately (MAXLEN ~)
        assert got == chunks[-len(got) :]  # the newest, in order, without holes
    finally:
        await producer_client.aclose()
        await follower_client.aclose()


async def test_the_memory_hub_forgets_closed_streams_in_close_order_without_scanning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr("genvault.streams.memory.time.monotonic", lambda: clock[0])
    hub = MemoryHub(retain_seconds=5)
    for name in ("a", "b", "c"):
        await hub.open(name)
        await hub.publish(name, {"type": "start"})
    await hub.close("a")
    clock[0] += 3
    await hub.close("b")
    following = [c async for c in hub.follow("a")]  # just closed: still replayable from memory
    assert following == [{"type": "start"}]
    clock[0] += 3  # a is 6 s closed, b 3 s, c running
    assert hub.size == 2
    assert not await hub.exists("a")
    assert await hub.exists("b")
    assert await hub.exists("c")
    clock[0] += 60
    assert hub.size == 1  # a running stream is never forgotten
    assert hub.chunks("c") == [{"type": "start"}]

    await hub.open("b")  # reopened: the old close entry must not evict the new stream
    clock[0] += 60
    assert await hub.exists("b")


async def test_the_memory_hub_hands_out_every_chunk_as_published_after_compacting_them() -> None:
    hub = MemoryHub()
    await hub.open("s")
    published: list[dict[str, Any]] = [{"type": "start", "messageId": "m"}, {"type": "text-start", "id": "t"}]
    for i in range(200):
        published.append({"type": "text-delta", "id": "t", "delta": f"w{i} é" if i == 70 else f"w{i} "})
        if i == 50:
            published.append({"type": "reasoning-delta", "id": "t", "delta": "hm"})  # same id, other kind
        if i == 90:
            published.append({"type": "text-delta", "id": "t", "delta": "x", "providerMetadata": {"p": {}}})
        if i == 120:
            published.append({"type": "text-delta", "id": "u", "delta": ""})
        if i == 130:
            published.append({"type": "text-delta", "id": 7, "delta": "y"})  # kept as published
    for chunk in published:
        await hub.publish("s", chunk)
    following = asyncio.ensure_future(collect(hub, "s", 5))  # starts late, while it runs
    await asyncio.sleep(0)
    await hub.publish("s", {"type": "finish"})
    published.append({"type": "finish"})
    await hub.close("s")
    assert hub.count("s") == len(published)
    for start in (0, 1, 2, 60, 123, len(published) - 1, len(published)):
        assert hub.chunks("s", start) == published[start:]
        assert [c async for c in hub.follow("s", start)] == published[start:]
    assert await following == published[5:]
    assert [list(c) for c in hub.chunks("s")] == [list(c) for c in published]  # keys in the same order


async def test_a_running_stream_holds_a_few_bytes_per_token_in_the_memory_hub() -> None:
    """Memory per running stream, measured: its aged deltas (dicts of ~200 bytes with their own
    strings) are kept as text end to end plus offsets."""
    hub = MemoryHub()
    await hub.open("s")
    await hub.publish("s", {"type": "text-start", "id": "t"})
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(2000):
            await hub.publish("s", {"type": "text-delta", "id": "t", "delta": f" w{i % 10}"})
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # ~3 bytes of text, 8 of offsets and 8 of list slot a token, and the newest chunks as published.
    assert held < 2000 * 40, held


async def test_deltas_published_as_plain_among_other_chunks_are_given_back_as_published() -> None:
    """Compaction takes the values of the deltas published with `delta=True` without testing
    them, and tests every chunk published otherwise, whatever came before it."""
    hub = MemoryHub()
    await hub.open("s")
    published: list[tuple[dict[str, Any], bool]] = []
    for i in range(150):
        kind = "reasoning-delta" if i % 40 < 5 else "text-delta"
        published.append(({"type": kind, "id": f"p{i // 20}", "delta": f" w{i}\n é"}, True))
        if i % 17 == 0:
            published.append(({"type": "text-delta", "id": "x", "delta": "y", "providerMetadata": {}}, False))
        if i % 23 == 0:
            published.append(({"type": "text-delta", "id": f"q{i}", "delta": f"{i}"}, False))  # plain, tested
        if i % 31 == 0:
            published.append(({"type": "finish-step"}, False))
    for chunk, delta in published:
        hub.publish_nowait("s", chunk, delta=delta)
    chunks = [chunk for chunk, _ in published]
    assert hub.chunks("s") == chunks
    assert [list(c) for c in hub.chunks("s")] == [list(c) for c in chunks]  # key order too
    stream = hub._streams["s"]
    assert stream.compacted == len(chunks) - 16 - len(chunks) % 16
    assert sum(type(slot) is tuple for slot in stream.chunks) > 100  # the plain deltas, compacted
    await hub.close("s")
    assert [c async for c in hub.follow("s", 7)] == chunks[7:]


async def test_a_compacted_delta_gives_back_the_published_chunk_whatever_its_id_and_text_hold() -> None:
    hub = MemoryHub()
    await hub.open("s")
    published = [
        {"type": "text-delta" if i % 2 else "reasoning-delta", "id": f"{i}:{i}", "delta": f"{i}:\x00\n é"}
        for i in range(130)
    ]
    for chunk in published:
        hub.publish_nowait("s", chunk)
    assert hub.chunks("s") == published
    assert [list(c) for c in hub.chunks("s")] == [["type", "id", "delta"]] * 130  # key order too
    await hub.close("s")
    assert [c async for c in hub.follow("s", 3)] == published[3:]


async def test_the_memory_hubs_batch_follower_takes_every_chunk_published_since_its_last_batch() -> None:
    hub = MemoryHub()
    await hub.open("s")
    published = [{"type": "text-delta", "id": "t", "delta": f"w{i} "} for i in range(40)]
    for chunk in published[:3]:  # before the follower runs: one batch
        hub.publish_nowait("s", chunk)
    batches = hub.follow_batches("s")
    assert await anext(batches) == (published[:3], False)
    waiting = asyncio.ensure_future(anext(batches))
    await asyncio.sleep(0)
    assert not waiting.done()  # nothing new: it waits, it does not hand out an empty batch
    hub.publish_nowait("s", published[3])
    hub.publish_nowait("s", published[4])
    assert await waiting == (published[3:5], False)
    for chunk in published[5:]:  # compacted meanwhile: handed out as published
        hub.publish_nowait("s", chunk)
    await hub.close("s")
    assert await anext(batches) == (published[5:], True)  # the last batch says so
    assert [batch async for batch in batches] == []
    assert [b async for b in hub.follow_batches("s")] == [(published, True)]  # a late one: all at once
    assert [b async for b in hub.follow_batches("unknown")] == []


async def test_a_followers_sink_takes_what_is_published_once_it_caught_up_until_it_declines_one() -> None:
    hub = MemoryHub()
    await hub.open("s")
    published = [{"type": "text-delta", "id": "t", "delta": f"w{i} "} for i in range(6)]
    hub.publish_nowait("s", published[0])
    taken: list[dict[str, Any]] = []

    def sink(chunk: dict[str, Any]) -> bool:
        if chunk is published[3]:
            return False  # declined: the follower's
        taken.append(chunk)
        return True

    batches = hub.follow_batches("s", sink=sink)
    assert await anext(batches) == (published[:1], False)
    waiting = asyncio.ensure_future(anext(batches))
    await asyncio.sleep(0)  # caught up: the sink is set
    hub.publish_nowait("s", published[1])
    hub.publish_nowait("s", published[2])
    assert taken == published[1:3]  # handed over at once, the follower not woken
    assert not waiting.done()
    hub.publish_nowait("s", published[3])
    hub.publish_nowait("s", published[4])  # after a decline: the follower's too
    assert await waiting == (published[3:5], False)
    waiting = asyncio.ensure_future(anext(batches))
    await asyncio.sleep(0)  # caught up again: the sink again
    hub.publish_nowait("s", published[5])
    await hub.close("s")
    assert taken == [*published[1:3], published[5]]
    assert await waiting == ([], True)  # the close ends the sink's turn: the last batch


async def test_a_delta_published_as_plain_goes_to_the_followers_delta_sink_under_the_same_rules() -> None:
    """`publish_nowait(..., delta=True)` (the engine's text deltas): to the follower's `delta_sink`,
    the other chunks to its `sink`; a decline by either hands the stream back to the follower, and
    both are removed together. Without a `delta_sink`, the `sink` takes both."""
    hub = MemoryHub()
    await hub.open("s")
    deltas = [{"type": "text-delta", "id": "t", "delta": f"w{i} "} for i in range(4)]
    end = {"type": "text-end", "id": "t"}
    by_sink: list[dict[str, Any]] = []
    by_delta_sink: list[dict[str, Any]] = []

    def sink(chunk: dict[str, Any]) -> bool:
        by_sink.append(chunk)
        return chunk is not end

    def delta_sink(chunk: dict[str, Any]) -> bool:
        by_delta_sink.append(chunk)
        return chunk is not deltas[2]

    batches = hub.follow_batches("s", sink=sink, delta_sink=delta_sink)
    waiting = asyncio.ensure_future(anext(batches))
    await asyncio.sleep(0)  # caught up: the sinks are set
    hub.publish_nowait("s", deltas[0], delta=True)
    hub.publish_nowait("s", deltas[1])  # not vouched for: the general sink
    assert (by_delta_sink, by_sink) == ([deltas[0]], [deltas[1]])
    assert not waiting.done()
    hub.publish_nowait("s", deltas[2], delta=True)  # declined: the follower's from here
    hub.publish_nowait("s", deltas[3], delta=True)
    assert await waiting == (deltas[2:], False)
    assert by_delta_sink == [deltas[0], deltas[2]]
    waiting = asyncio.ensure_future(anext(batches))
    await asyncio.sleep(0)
    hub.publish_nowait("s", end)  # declined by the general sink: both removed
    hub.publish_nowait("s", deltas[0], delta=True)
    assert await waiting == ([end, deltas[0]], False)
    assert by_delta_sink == [deltas[0], deltas[2]]
    await hub.close("s")

    await hub.open("u")
    alone: list[dict[str, Any]] = []
    waiting = asyncio.ensure_future(anext(hub.follow_batches("u", sink=lambda chunk: alone.append(chunk) is None)))
    await asyncio.sleep(0)
    hub.publish_nowait("u", deltas[0], delta=True)
    assert alone == [deltas[0]]  # no `delta_sink`: the sink takes it
    waiting.cancel()


async def test_a_cancelled_followers_sink_is_removed() -> None:
    hub = MemoryHub()
    await hub.open("s")
    taken: list[dict[str, Any]] = []

    def sink(chunk: dict[str, Any]) -> bool:
        taken.append(chunk)
        return True

    batches = hub.follow_batches("s", sink=sink)
    waiting = asyncio.ensure_future(anext(batches))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    hub.publish_nowait("s", {"type": "text-delta", "id": "t", "delta": "x"})
    assert taken == []


async def test_a_late_follower_of_a_finished_generation_replays_it_from_the_database(vault_factory: Any) -> None:
    vault = await vault_factory()
    vault.hub.retain_seconds = 0  # forgotten as soon as it closes
    record = await vault.generate("Tell me a short story.")
    live = [chunk async for chunk in vault.stream(record.id)]
    assert (await vault.wait(record.id)).status == "complete"
    assert not await vault.hub.exists(record.id)
    assert vault.hub.size == 0
    late = [chunk async for chunk in vault.replay(record.id)]
    text = "".join(c["delta"] for c in late if c["type"] == "text-delta")
    assert text == (await vault.get_generation(record.id)).result_text
    assert late[0]["type"] == "start"
    assert late[-1]["type"] == "finish"
    assert "".join(c["delta"] for c in live if c["type"] == "text-delta") == text
