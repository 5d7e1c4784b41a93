"""The fast path gives exactly genai-prices' own result, for every bundled model it takes.

`pricing._plain_cost` prices a model from its price in force (plain or tiered Decimal rates; units
genvault never reports add `price * 0`) without the library's per-call calculation; a request
price, Groq's Whisper and anything the library rejects go to `pricing._library_cost`
(`ModelInfo.calc_price`). Equality is checked on the exact Decimal
total (value and representation), the rates and the whole `Cost`, against the library itself.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from genai_prices import Usage
from genai_prices.types import ModelPrice, StartDateConstraint, TieredPrices, TimeOfDateConstraint
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from genvault import pricing
from genvault.pricing import Cost, compute_cost, usd_to_nano
from genvault.providers.base import StreamUsage

FIXED = (
    datetime(2024, 1, 1, tzinfo=UTC),
    datetime(2025, 9, 1, 12, tzinfo=UTC),
    datetime(2026, 12, 6, 3, tzinfo=timezone(timedelta(hours=5))),
    datetime(2027, 6, 1, 7, 0),  # naive: UTC to the library
)
ONE_US = timedelta(microseconds=1)


def _boundaries(found_model: Any) -> list[datetime]:
    """The instants where the model's conditional price may switch, and one microsecond before."""
    out: list[datetime] = []
    if isinstance(found_model.prices, ModelPrice):
        return out
    for conditional in found_model.prices:
        constraint = conditional.constraint
        if isinstance(constraint, StartDateConstraint):
            edges = [datetime.combine(constraint.start_date, time(0), tzinfo=UTC)]
        elif isinstance(constraint, TimeOfDateConstraint):
            edges = [
                datetime.combine(date(2026, 1, 15), t).replace(tzinfo=t.tzinfo or UTC)
                for t in (constraint.start_time, constraint.end_time)
            ]
        else:
            continue
        out += [instant for edge in edges for instant in (edge - ONE_US, edge)]
    return out


def _cases() -> list[tuple[Any, Any, datetime]]:
    """Every bundled (provider, model, instant) whose price in force takes the fast path."""
    cases = []
    for found_provider in pricing._bundled_snapshot().providers:
        for found_model in found_provider.models:
            for at in (*FIXED, *_boundaries(found_model)):
                if pricing._plain_cost(found_provider, found_model, 0, 0, 0, 0, at) is not None:
                    cases.append((found_provider, found_model, at))
    return cases


CASES = _cases()


@st.composite
def usages(draw: st.DrawFn) -> tuple[int, int, int, int]:
    """(input, cache read, cache write, output) with reads + writes <= input, as compute_cost admits;
    up to 10^15 tokens so that Decimal's 28 digits round the library's products and sums too."""
    size = draw(st.sampled_from([10**4, 10**7, 10**15]))
    input_tokens = draw(st.integers(0, size))
    cache_read = draw(st.integers(0, input_tokens))
    cache_write = draw(st.integers(0, input_tokens - cache_read))
    return input_tokens, cache_read, cache_write, draw(st.integers(0, size))


def _assert_same(found_provider: Any, found_model: Any, at: datetime, usage: tuple[int, int, int, int]) -> None:
    input_tokens, cache_read, cache_write, output = usage
    fast = pricing._plain_cost(found_provider, found_model, input_tokens, cache_read, cache_write, output, at)
    assert fast is not None
    total, rates = fast
    calculation = found_model.calc_price(
        Usage(
            input_tokens=input_tokens,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            output_tokens=output,
        ),
        found_provider,
        genai_request_timestamp=at,
    )
    context = (found_provider.id, found_model.id, at, usage)
    assert (total, str(total)) == (calculation.total_price, str(calculation.total_price)), context
    library = pricing._library_cost(found_provider, found_model, input_tokens, cache_read, cache_write, output, at)
    assert Cost(usd_to_nano(total), rates, pricing._source()) == library, context


def test_most_bundled_models_take_the_fast_path_and_the_common_ones_do():
    models = {(p.id, m.id) for p, m, _ in CASES}
    assert len(models) > 2000
    assert {("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-5")} <= models


@pytest.mark.long  # every bundled price, 33 usages: ~25 s on two loaded cores
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(usages())
@example((0, 0, 0, 0))
@example((200_000, 0, 0, 1))
@example((200_001, 100_000, 100_001, 1))
@example((128_001, 0, 0, 1))
@example((1843, 1536, 0, 214))
@example((3620, 2048, 1200, 121))
@example((10**15, 0, 10**15, 10**15))
@example((10**15 - 1, 10**15 - 3, 1, 999_999_999_999_999))
def test_every_fast_path_model_matches_the_library_exactly(usage: tuple[int, int, int, int]) -> None:
    for found_provider, found_model, at in CASES:
        _assert_same(found_provider, found_model, at, usage)


@settings(max_examples=400, deadline=None)
@given(st.integers(0, len(CASES) - 1), usages())
def test_random_fast_path_models_and_usages_match_the_library_exactly(case: int, usage: Any) -> None:
    _assert_same(*CASES[case], usage)


@pytest.mark.parametrize(("provider", "model"), [("perplexity", "sonar"), ("groq", "whisper-large-v3")])
def test_a_request_price_or_groq_whisper_falls_back_to_the_library(provider: str, model: str) -> None:
    found_provider, found_model = pricing._find_model(provider, model)
    at = FIXED[1]
    assert pricing._plain_cost(found_provider, found_model, 1000, 0, 0, 10, at) is None
    usage = StreamUsage(input_tokens=1000, output_tokens=10)
    expected = pricing._library_cost(found_provider, found_model, 1000, 0, 0, 10, at)
    assert compute_cost(provider, model, usage, {}, at=at) == expected


@pytest.mark.parametrize("input_tokens", [200_000, 200_001])
def test_a_tiered_price_takes_the_tier_exactly_where_the_library_does(input_tokens: int) -> None:
    found_provider, found_model = pricing._find_model("anthropic", "claude-sonnet-4-5")
    assert isinstance(found_model.get_prices(FIXED[1]).input_mtok, TieredPrices)
    _assert_same(found_provider, found_model, FIXED[1], (input_tokens, 1000, 1000, 100))
    expected_input = "3" if input_tokens == 200_000 else "6"
    assert compute_cost(
        "anthropic", "claude-sonnet-4-5", StreamUsage(input_tokens=input_tokens, output_tokens=1), {}, at=FIXED[1]
    ).unit_prices == {"input": expected_input, "output": "15" if input_tokens == 200_000 else "22.5"}


def _switching_model() -> tuple[Any, Any, datetime]:
    """A model whose start-date conditional price changes from plain to plain at an instant."""
    for p in pricing._bundled_snapshot().providers:
        for m in p.models:
            for at in _boundaries(m)[1::2]:
                before, after = m.get_prices(at - ONE_US), m.get_prices(at)
                if before != after and all(
                    pricing._plain_cost(p, m, 0, 0, 0, 0, instant) is not None for instant in (at - ONE_US, at)
                ):
                    return p, m, at
    raise AssertionError("no bundled model switches between plain prices")


def test_a_conditional_price_switches_at_its_instant_on_the_fast_path():
    found_provider, found_model, at = _switching_model()
    usage = (10**6, 0, 0, 10**6)
    for when in (at - ONE_US, at):
        _assert_same(found_provider, found_model, when, usage)
    before = pricing._plain_cost(found_provider, found_model, *usage, at - ONE_US)
    after = pricing._plain_cost(found_provider, found_model, *usage, at)
    assert before != after


def test_the_plan_of_a_price_is_kept_not_rebuilt(monkeypatch: pytest.MonkeyPatch) -> None:
    compute_cost("openai", "gpt-4o-mini", StreamUsage(input_tokens=10, output_tokens=1), {}, at=FIXED[1])
    calls: list[object] = []
    monkeypatch.setattr(pricing, "_plan", lambda *args: calls.append(args))
    cost = compute_cost("openai", "gpt-4o-mini", StreamUsage(input_tokens=10, output_tokens=1), {}, at=FIXED[1])
    assert calls == []
    assert cost.nano_usd == usd_to_nano(Decimal("0.15") * 10 / 10**6 + Decimal("0.6") / 10**6)
