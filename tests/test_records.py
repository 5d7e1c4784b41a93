"""`store.generations.pending_record` / `final_record` (the validators called directly, the
values' filtering without a comprehension) build the records the earlier code built: the same
values, key order, fields set and JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from genvault.records import Generation, Usage
from genvault.store.generations import _USAGE_COLUMNS, _USAGE_VALUES, final_record, pending_record

_ids = st.text(alphabet="abcdefghjkmnpqrstvwxyz0123456789_", min_size=1, max_size=30)
_maybe_ids = st.none() | _ids
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
_objects = st.dictionaries(st.text(max_size=8), _json, max_size=4)
_moments = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1))
_aware = _moments.map(lambda d: d.replace(tzinfo=UTC))


@st.composite
def pending_values(draw: st.DrawFn) -> dict[str, Any]:
    """What the engine's `pending_values` holds: the row's columns, the lease's and the
    reservation's (not fields), and the labels when given."""
    now = draw(_aware)
    values: dict[str, Any] = {
        "id": draw(_ids),
        "kind": draw(st.sampled_from(["text", "chat", "image", "embedding"])),
        "user_id": draw(_ids),
        "chat_id": draw(_maybe_ids),
        "message_id": draw(_maybe_ids),
        "model": draw(_ids),
        "provider": draw(_ids),
        "request": draw(_objects),
        "created_at": now,
        "lease_owner": draw(_ids),
        "lease_expires_at": now + timedelta(seconds=30),
        "idempotency_key": draw(_maybe_ids),
        "cache_key": draw(_maybe_ids),
        "api_key_id": draw(_maybe_ids),
        "reservation": draw(st.none() | _objects),
    }
    if draw(st.booleans()):
        values["tags"] = draw(st.none() | st.lists(st.text(max_size=8), max_size=3))
    if draw(st.booleans()):
        values["metadata"] = draw(st.none() | _objects)
    return values


def _validated_pending(values: dict[str, Any]) -> Generation:
    """`pending_record` as it was: the lease's columns dropped, then validation."""
    data = {k: v for k, v in values.items() if k not in ("lease_owner", "lease_expires_at")}
    return Generation.model_validate({"status": "pending", **data})


def _validated_final(pending: Generation, values: dict[str, Any]) -> Generation:
    """`final_record` as it was: a validated `Usage` and `model_copy`."""
    usage = Usage(
        **{name: values.get(name) for name in _USAGE_COLUMNS}, estimated=bool(values.get("usage_estimated", False))
    )
    update = {k: v for k, v in values.items() if k not in _USAGE_VALUES}
    return pending.model_copy(update={**update, "usage": usage})


def _same(built: Generation, validated: Generation) -> None:
    assert type(built) is type(validated)
    assert built == validated
    assert list(built.__dict__) == list(validated.__dict__)
    assert built.__dict__ == validated.__dict__
    assert built.model_fields_set == validated.model_fields_set
    assert built.__pydantic_extra__ == validated.__pydantic_extra__
    assert built.__pydantic_private__ == validated.__pydantic_private__
    assert built.model_dump_json() == validated.model_dump_json()
    assert built.model_dump() == validated.model_dump()
    assert type(built.usage) is Usage
    assert list(built.usage.__dict__) == list(validated.usage.__dict__)
    assert built.usage.model_fields_set == validated.usage.model_fields_set


@given(pending_values())
def test_the_pending_record_is_the_validated_one(values: dict[str, Any]) -> None:
    built = pending_record(values)
    _same(built, _validated_pending(values))
    # Containers copied as validation copies them: the record does not share the caller's.
    assert built.request == values["request"]
    assert built.request is not values["request"]
    if values.get("tags") is not None:
        assert built.tags is not values["tags"]
    if values.get("metadata") is not None:
        assert built.metadata is not values["metadata"]


_counts = st.none() | st.integers(min_value=0, max_value=10**9)


@st.composite
def final_values(draw: st.DrawFn) -> dict[str, Any]:
    """What the engine's `_finalize` writes."""
    status = draw(st.sampled_from(["complete", "error", "cancelled", "interrupted"]))
    values: dict[str, Any] = {
        "status": status,
        "error": draw(st.none() | st.text(max_size=20)),
        "result_text": draw(st.none() | st.text(max_size=20)),
        "result_message": draw(st.none() | _objects),
        "finish_reason": draw(st.none() | st.sampled_from(["stop", "length", status])),
        **{name: draw(_counts) for name in _USAGE_COLUMNS},
        "cost_nano_usd": draw(st.none() | st.integers(min_value=0, max_value=10**12)),
        "unit_prices": draw(st.none() | _objects),
        "price_source": draw(st.none() | st.text(max_size=10)),
        "started_at": draw(st.none() | _aware),
        "first_token_at": draw(st.none() | _aware),
        "finished_at": draw(_aware),
    }
    if draw(st.booleans()):
        values.update(cached_from=draw(_ids), saved_nano_usd=draw(st.none() | st.integers(min_value=0)))
    if draw(st.booleans()):
        values["usage_estimated"] = True
    return values


@given(pending_values(), final_values())
def test_the_final_record_is_the_validated_pending_ones_copy(pending: dict[str, Any], values: dict[str, Any]) -> None:
    record = _validated_pending(pending)
    built = final_record(record, values)
    _same(built, _validated_final(record, values))
    assert record.status == "pending"  # the pending record is left as it was
    assert built.usage.estimated is bool(values.get("usage_estimated", False))
