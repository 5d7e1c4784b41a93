"""Property: any valid UIMessage → rows → UIMessage is the identical JSON, on SQLite and
PostgreSQL (strategies shared with the messages tests)."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genvault.errors import InvalidRequest
from genvault.messages.ui import UIMessage, message_to_json
from genvault.store import Store
from genvault.store import chats as chat_store
from genvault.store.parts import load_json, load_json_many
from genvault.store.users import ensure_user
from messages.strategies import ui_messages

_ids = itertools.count()
# Any character a database can store: not U+0000 and no lone surrogates (both refused with a clear
# error, tested below).
TEXT = st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_loop(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """(runner, store): one event loop and one store for every example of the module."""
    schema = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('rt') / 'rt.db'}"
    else:
        url = request.getfixturevalue("pg_database")
        schema = f"rt_{uuid.uuid4().hex[:8]}"
    runner = asyncio.Runner()
    store = Store(url, schema=schema)

    async def setup() -> None:
        if schema:
            async with store.engine.begin() as conn:
                await conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        # Migrated, not `metadata.create_all`: PostgreSQL's appends write the parts' search
        # vectors, a column of revision 0009's that the metadata does not hold.
        await store.upgrade()
        async with store.write() as conn:
            await ensure_user(conn, "u")
            await chat_store.create_chat(conn, "rt", "u")

    runner.run(setup())
    yield runner, store
    runner.run(store.aclose())
    runner.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=ui_messages(TEXT))
def test_any_valid_message_comes_back_from_the_database_as_identical_json(store_loop: Any, message: UIMessage) -> None:
    runner, store = store_loop
    original = message_to_json(message)
    original = {**original, "id": f"{original['id']}-{next(_ids)}"}  # unique within the chat

    async def roundtrip() -> dict[str, Any]:
        async with store.write() as conn:
            await chat_store.append_messages(conn, "rt", "u", [original])
        async with store.read() as conn:
            return await chat_store.get_message(conn, "rt", original["id"])

    loaded = runner.run(roundtrip())
    assert loaded == original
    assert list(loaded) == list(original)  # same keys, same order
    for before, after in zip(original["parts"], loaded["parts"], strict=True):
        assert sorted(after) == sorted(before)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=ui_messages(TEXT))
def test_the_fast_paths_append_and_page_read_give_back_identical_json(store_loop: Any, message: UIMessage) -> None:
    """On PostgreSQL the standalone append and the page read run straight on asyncpg
    (`Store.driver`); on SQLite the page read goes straight to aiosqlite."""
    runner, store = store_loop
    original = message_to_json(message)
    original = {**original, "id": f"{original['id']}-{next(_ids)}"}

    async def roundtrip() -> dict[str, Any]:
        if store.dialect == "postgresql":
            async with store.driver() as driver:
                await chat_store.append_alone(driver, "rt", "u", [original])
                page = await chat_store.load_messages(driver, "rt", limit=1, owner="u", check_owner=True)
        else:
            async with store.write() as conn:
                await chat_store.append_messages(conn, "rt", "u", [original])
            async with store.read() as conn:
                page = await chat_store.load_messages(conn, "rt", limit=1, owner="u", check_owner=True)
        return page.messages[-1]

    loaded = runner.run(roundtrip())
    assert loaded == original
    assert list(loaded) == list(original)
    for before, after in zip(original["parts"], loaded["parts"], strict=True):
        assert sorted(after) == sorted(before)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=ui_messages(TEXT), changed=ui_messages(TEXT))
def test_upserting_a_changed_message_then_the_same_again_is_idempotent(
    store_loop: Any, message: UIMessage, changed: UIMessage
) -> None:
    runner, store = store_loop
    message_id = f"up-{next(_ids)}"
    first = {**message_to_json(message), "id": message_id}
    second = {**message_to_json(changed), "id": message_id}

    async def run() -> tuple[str, str, dict[str, Any]]:
        async with store.write() as conn:
            await chat_store.upsert_message(conn, "rt", "u", first)
            outcome = await chat_store.upsert_message(conn, "rt", "u", second)
            again = await chat_store.upsert_message(conn, "rt", "u", second)
        async with store.read() as conn:
            return outcome, again, await chat_store.get_message(conn, "rt", message_id)

    outcome, again, loaded = runner.run(run())
    assert outcome == ("unchanged" if first == second else "updated")
    assert again == "unchanged"
    assert loaded == second


def test_strategies_cover_every_part_type() -> None:
    seen: set[str] = set()

    @settings(max_examples=300, deadline=None)
    @given(message=ui_messages())
    def collect(message: UIMessage) -> None:
        for part in message_to_json(message)["parts"]:
            kind = part["type"]
            seen.add("tool" if kind.startswith("tool-") else "data" if kind.startswith("data-") else kind)

    collect()
    assert seen >= {
        "text",
        "reasoning",
        "tool",
        "dynamic-tool",
        "source-url",
        "source-document",
        "file",
        "data",
        "step-start",
    }


def test_text_no_database_can_keep_is_refused_with_a_clear_error_on_every_backend(store_loop: Any) -> None:
    runner, store = store_loop
    message = {"id": f"nul-{next(_ids)}", "role": "user", "parts": [{"type": "text", "text": "a\x00b"}]}

    async def run() -> None:
        async with store.write() as conn:
            await chat_store.append_messages(conn, "rt", "u", [message])

    with pytest.raises(InvalidRequest, match="NUL"):
        runner.run(run())
    message["parts"][0]["text"] = "lone \ud800 surrogate"
    with pytest.raises(InvalidRequest, match="surrogate"):
        runner.run(run())


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


@given(value=JSON_VALUES, indent=st.sampled_from([None, 1]), pad=st.sampled_from(["", " ", "\n "]))
def test_load_json_reads_any_json_text_as_json_loads_does(value: Any, indent: int | None, pad: str) -> None:
    # Compact text (what genvault stores) takes the short path; whitespace around it falls back.
    text = pad + json.dumps(value, separators=(",", ":"), indent=indent, ensure_ascii=False) + pad
    assert load_json(text) == json.loads(text)


@pytest.mark.parametrize(
    "text",
    ["18446744073709551616", "-9223372036854775809", '{"n":[1234567890123456789012]}', "1e400", "NaN", '"\\ud800"'],
)
def test_load_json_keeps_what_orjson_would_read_otherwise_as_json_loads_does(text: str) -> None:
    # Integers beyond 64 bits (orjson makes them floats), non-standard numbers, escaped lone
    # surrogates: the same value, of the same type, as `json.loads` gives.
    assert repr(load_json(text)) == repr(json.loads(text))


@pytest.mark.parametrize("text", ["", "{", '{"a":1}x', "[1,]", "\ufeff1", "1 2", "nul"])
def test_load_json_refuses_what_json_loads_refuses(text: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    with pytest.raises(json.JSONDecodeError):
        load_json(text)


@given(values=st.lists(JSON_VALUES, max_size=6))
def test_load_json_many_reads_each_text_as_load_json_does(values: list[Any]) -> None:
    texts = [json.dumps(value, separators=(",", ":"), ensure_ascii=False) for value in values]
    assert load_json_many(texts) == [load_json(text) for text in texts]


def test_load_json_many_keeps_a_long_integer_among_others_exact() -> None:
    texts = ['{"a":1.5}', "18446744073709551616", '"x"']
    assert repr(load_json_many(texts)) == repr([json.loads(text) for text in texts])


@pytest.mark.parametrize(
    "texts",
    [["1,2", "3"], ["[1", "2]"], ["{", "}"], ["1", "nul"]],
)
def test_load_json_many_parses_each_text_alone_when_one_is_not_a_single_value(texts: list[str]) -> None:
    # Joined, these would parse (to the wrong number of values) or fail; each alone, a text that
    # is not one JSON value fails as load_json fails on it.
    with pytest.raises(json.JSONDecodeError):
        load_json_many(texts)
