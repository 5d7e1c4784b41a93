"""The exact cost of a generation, from its token usage.

Invariants:
- Money is `Decimal` inside and whole nano-USD (10⁻⁹ USD) outside. The one rounding step turns
  the exact Decimal USD total into nano-USD, half to even (banker's rounding), so rounding errors
  do not drift one way when many costs are summed.
- Unknown is not free: a model without a price (the offline test model unless overridden, an
  unknown model or provider, usage the provider did not report) costs `None`, never 0.
- Prices come from genai-prices' snapshot bundled with the installed package, never from the
  network. The library only fetches when someone starts `genai_prices.UpdatePrices`, and even
  then it swaps the process-wide snapshot; genvault reads its own copy of the bundled data, so a
  fetched snapshot cannot change what genvault charges. The version in `Cost.source` says which
  prices were used.
- A `provider/model` entry in `Settings.price_overrides` wins over genai-prices.

Token accounting follows `StreamUsage`: `input_tokens` includes cached reads and cache writes,
each billed at its own rate; `output_tokens` includes reasoning tokens, which are not counted
again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from genvault.money import estimated_cost_cents, nano_to_usd
from genvault.providers.base import StreamUsage

if TYPE_CHECKING:
    from genai_prices.data_snapshot import DataSnapshot

    from genvault.settings import PriceOverride

__all__ = ["Cost", "compute_cost", "estimated_cost_cents", "nano_to_usd", "usd_to_nano", "warm"]

logger = logging.getLogger(__name__)

NANO_PER_USD = 10**9
_TOKENS_PER_MTOK = 10**6


@dataclass(frozen=True, slots=True)
class Cost:
    """A generation's cost. `nano_usd is None` means unknown, which is different from free.

    `unit_prices` holds the USD-per-million-token rates that were applied, as decimal strings,
    under `input`, `output`, `cache_read` and `cache_write` (the cache ones only when such tokens
    were billed). `source` names where they came from: `"genai-prices 0.2.3"` or `"override"`.
    """

    nano_usd: int | None
    unit_prices: dict[str, str] | None = None
    source: str | None = None

    @property
    def usd(self) -> Decimal | None:
        return None if self.nano_usd is None else nano_to_usd(self.nano_usd)


UNKNOWN = Cost(None)


def usd_to_nano(usd: Decimal) -> int:
    """Whole nano-USD, rounded half to even."""
    return int((usd * NANO_PER_USD).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def compute_cost(
    provider: str,
    model: str,
    usage: StreamUsage,
    overrides: Mapping[str, PriceOverride],
    *,
    at: datetime | None = None,
) -> Cost:
    """The cost of `usage` on `provider/model`; `at` is when the request was made (default: now).

    An override's missing cache rates fall back to its input rate: without a known discount,
    a cached token is billed as an ordinary input token.
    """
    if usage.input_tokens is None or usage.output_tokens is None:
        return UNKNOWN
    cache_read = usage.cached_input_tokens or 0
    cache_write = usage.cache_write_tokens or 0
    if cache_read + cache_write > usage.input_tokens:
        logger.warning(
            "usage for %s/%s is inconsistent (cached %d + cache writes %d > input %d); cost unknown",
            provider,
            model,
            cache_read,
            cache_write,
            usage.input_tokens,
        )
        return UNKNOWN
    override = overrides.get(f"{provider}/{model}")
    if override is not None:
        return _override_cost(override, usage.input_tokens, cache_read, cache_write, usage.output_tokens)
    return _genai_prices_cost(provider, model, usage.input_tokens, cache_read, cache_write, usage.output_tokens, at)


def _format(price: Decimal) -> str:
    return format(price.normalize(), "f")


def _override_cost(override: PriceOverride, input_tokens: int, cache_read: int, cache_write: int, output: int) -> Cost:
    read_rate = override.cache_read_mtok if override.cache_read_mtok is not None else override.input_mtok
    write_rate = override.cache_write_mtok if override.cache_write_mtok is not None else override.input_mtok
    uncached = input_tokens - cache_read - cache_write
    total = (
        uncached * override.input_mtok
        + cache_read * read_rate
        + cache_write * write_rate
        + output * override.output_mtok
    ) / _TOKENS_PER_MTOK
    prices = {"input": _format(override.input_mtok), "output": _format(override.output_mtok)}
    if cache_read:
        prices["cache_read"] = _format(read_rate)
    if cache_write:
        prices["cache_write"] = _format(write_rate)
    return Cost(usd_to_nano(total), prices, "override")


@cache
def _bundled_snapshot() -> DataSnapshot:
    # Our own DataSnapshot over the data shipped in the wheel: `genai_prices.calc_price` would
    # use a snapshot fetched by `UpdatePrices` if anything in the process had started one.
    from genai_prices.data import providers
    from genai_prices.data_snapshot import DataSnapshot

    return DataSnapshot(providers=providers, from_auto_update=False)


def warm() -> None:
    """Load genai-prices and its price data now (about a second of imports and parsing), so the
    first generation to finish does not stall the event loop doing it (`Vault.start` calls this,
    before the server reports healthy)."""
    _bundled_snapshot()
    _source()
    compute_cost("openai", "gpt-4o-mini", StreamUsage(input_tokens=1, output_tokens=1), {})


@cache
def _source() -> str:
    import genai_prices

    return f"genai-prices {genai_prices.__version__}"


@cache
def _usage_class() -> Any:
    """genai-prices' `Usage`, imported once: a `from … import` in the function ran the import
    system's `_handle_fromlist` (Python) at every finalize (docs/benchmarks.md, "finloop")."""
    from genai_prices import Usage

    return Usage


@lru_cache(maxsize=1024)
def _find_model(provider: str, model: str) -> tuple[Any, Any] | None:
    """genai-prices' provider and model entries for `provider/model`, None when it knows none.
    Memoized: the bundled snapshot never changes in a process, and the search (pattern matching
    over every model of the provider) cost ~0.5 ms per finished generation."""
    try:
        return _bundled_snapshot().find_provider_model(model, None, provider, None)
    except LookupError:
        return None


def _genai_prices_cost(
    provider: str, model: str, input_tokens: int, cache_read: int, cache_write: int, output: int, at: datetime | None
) -> Cost:
    found = _find_model(provider, model)
    if found is None:
        logger.debug("no price known for %s/%s", provider, model)
        return UNKNOWN
    found_provider, found_model = found
    # As `ModelInfo.calc_price` does; resolved here once so both paths price the same instant.
    when = at or datetime.now(tz=UTC)
    fast = _plain_cost(found_provider, found_model, input_tokens, cache_read, cache_write, output, when)
    if fast is not None:
        return Cost(usd_to_nano(fast[0]), fast[1], _source())
    try:
        return _library_cost(found_provider, found_model, input_tokens, cache_read, cache_write, output, when)
    except ValueError as exc:  # the library's check that the usage adds up
        logger.warning("cannot price %s/%s: %s", provider, model, exc)
        return UNKNOWN


def _library_cost(
    found_provider: Any,
    found_model: Any,
    input_tokens: int,
    cache_read: int,
    cache_write: int,
    output: int,
    when: datetime,
) -> Cost:
    """genai-prices' own calculation (`ModelInfo.calc_price`), for every price it knows; raises
    its ValueError when the usage does not add up for the price."""
    tokens = _usage_class()(
        input_tokens=input_tokens, cache_read_tokens=cache_read, cache_write_tokens=cache_write, output_tokens=output
    )
    calculation = found_model.calc_price(tokens, found_provider, genai_request_timestamp=when)
    prices = calculation.model_price
    rates: dict[str, str] = {}
    for key, attr, used in (
        ("input", "input_mtok", True),
        ("output", "output_mtok", True),
        ("cache_read", "cache_read_mtok", cache_read > 0),
        ("cache_write", "cache_write_mtok", cache_write > 0),
    ):
        rate = _rate(getattr(prices, attr, None), input_tokens)
        if used and rate is not None:
            rates[key] = _format(rate)
    return Cost(usd_to_nano(calculation.total_price), rates or None, _source())


# The usage genvault reports, by genai-prices' price key: the index of its count in `_plain_cost`.
# Index 4 is a priced unit the usage never reports (web searches, 1-hour cache writes, …):
# the library infers 0 of it (see `_plan`) and still adds its `price * 0 / per`.
_REPORTED = {"input_mtok": 0, "cache_read_mtok": 1, "cache_write_mtok": 2, "output_mtok": 3}
_UNREPORTED = 4

# (count index, unit size, base rate, base rate formatted, tiers highest first as (start, rate,
# rate formatted)): one priced unit of a price, in the price's own key order.
_Term = tuple[int, int, Decimal, str, tuple[tuple[int, Decimal, str], ...]]


@dataclass(frozen=True, slots=True)
class _PlainPrice:
    """What `ModelPrice.calc_price` does with one price, resolved once: its priced units in the
    library's summing order, and whether cache reads/writes are priced (then they leave the
    input count, as in genai-prices' `compute_leaf_values`)."""

    terms: tuple[_Term, ...]
    reads_priced: bool
    writes_priced: bool


# (id(ModelInfo), id(ModelPrice)) -> (the ModelPrice, kept so that its id stays its own; its plan,
# or None when the library has to price it). The bundled snapshot lives as long as the process,
# so this holds at most one entry per price in it.
_plans: dict[tuple[int, int], tuple[Any, _PlainPrice | None]] = {}


def _plain_cost(
    found_provider: Any,
    found_model: Any,
    input_tokens: int,
    cache_read: int,
    cache_write: int,
    output: int,
    when: datetime,
) -> tuple[Decimal, dict[str, str] | None] | None:
    """The exact Decimal USD total and the rates `_library_cost` would give, without the library's
    per-call work; None when the price in force at `when` is not one `_plan` accepts.

    The library still chooses the price (`ModelInfo.get_prices`, every call, so a conditional
    price switches at its own instant); only what follows from that price is memoized. The total
    is `ModelPrice.calc_price`'s Decimal operations in its order: from `Decimal(0)`, for each
    priced unit in the price's key order, `+= rate * Decimal(count) / per`, a tiered rate chosen
    by the input tokens as `calc_unit_price` does.
    """
    if type(input_tokens) is not int or type(cache_read) is not int or type(cache_write) is not int:
        return None
    if type(output) is not int or min(input_tokens, cache_read, cache_write, output) < 0:
        return None
    model_price = found_model.get_prices(when)
    key = (id(found_model), id(model_price))
    entry = _plans.get(key)
    if entry is None or entry[0] is not model_price:
        entry = (model_price, _plan(found_provider, found_model, model_price))
        _plans[key] = entry
    plan = entry[1]
    if plan is None:
        return None
    uncached = input_tokens
    if plan.reads_priced:
        uncached -= cache_read
    if plan.writes_priced:
        uncached -= cache_write
    if uncached < 0:
        return None  # the library raises: usage that does not add up
    counts = (uncached, cache_read, cache_write, output, 0)
    shown: list[str | None] = [None] * 5
    total = Decimal(0)
    for index, per, rate, text, tiers in plan.terms:
        for start, tier_rate, tier_text in tiers:
            if input_tokens > start:
                rate, text = tier_rate, tier_text
                break
        total += rate * Decimal(counts[index]) / per
        shown[index] = text
    rates: dict[str, str] = {}
    for name, index, used in (
        ("input", 0, True),
        ("output", 3, True),
        ("cache_read", 1, cache_read),
        ("cache_write", 2, cache_write),
    ):
        applied = shown[index]
        if used and applied is not None:
            rates[name] = applied
    return total, rates or None


def _plan(found_provider: Any, found_model: Any, model_price: Any) -> _PlainPrice | None:
    """The plan of `model_price`, or None where `_plain_cost` could not follow the library: a
    request price (its count is 1), a priced unit above one genvault reports (the library
    would infer it or refuse), prices the library rejects or warns about, Groq's Whisper."""
    from genai_prices.types import ModelPrice, TieredPrices
    from genai_prices.units import _get_registry
    from genai_prices.validation import validate_priced_units

    if type(model_price) is not ModelPrice:
        return None
    if found_provider.id == "groq" and found_model.id in ("whisper-large-v3", "whisper-large-v3-turbo"):
        return None  # the library rewrites these usages (billed audio seconds)
    registry = _get_registry()
    reported = [registry.unit_for_price_key(price_key) for price_key in _REPORTED]
    terms: list[_Term] = []
    units: list[Any] = []
    for price_key, value in model_price.__dict__.items():
        if price_key.startswith("_") or value is None:
            continue
        if price_key not in registry._all_price_keys:
            return None
        unit = registry.unit_for_price_key(price_key)
        index = _REPORTED.get(price_key, _UNREPORTED)
        if index == _UNREPORTED and (
            unit.usage_key == "requests"
            or any(unit.dimensions.items() <= other.dimensions.items() for other in reported)
        ):
            return None
        tiers: tuple[tuple[int, Decimal, str], ...] = ()
        if isinstance(value, TieredPrices):
            previous = -1
            for tier in value.tiers:
                if type(tier.start) is not int or tier.start < previous or not _valid_rate(tier.price):
                    return None
                previous = tier.start
            tiers = tuple((tier.start, tier.price, _format(tier.price)) for tier in reversed(value.tiers))
            value = value.base
        if not _valid_rate(value):
            return None
        units.append(unit)
        terms.append((index, unit.per, value, _format(value), tiers))
    try:
        validate_priced_units(units, registry)
    except ValueError:
        return None  # the library raises it on every call
    priced = {term[0] for term in terms}
    return _PlainPrice(tuple(terms), 1 in priced, 2 in priced)


def _valid_rate(value: object) -> bool:
    return type(value) is Decimal and value.is_finite() and value >= 0


def _rate(price: Any, input_tokens: int) -> Decimal | None:
    """The per-MTok rate genai-prices applied: a tiered price depends on the request's input size."""
    if price is None or isinstance(price, Decimal):
        return price
    from genai_prices.types import TieredPrices

    if isinstance(price, TieredPrices):
        # As genai-prices does: crossing a tier's start bills all tokens at that tier's rate.
        for tier in reversed(price.tiers):
            if input_tokens > tier.start:
                return tier.price
        return price.base
    return None


@dataclass(frozen=True)
class ListedPrice:
    """A model genai-prices knows for a provider, with its base prices per million tokens (a
    tiered price by its lowest tier; None where the data has no such price)."""

    model: str
    name: str | None
    input_mtok: Decimal | None
    output_mtok: Decimal | None
    cache_read_mtok: Decimal | None
    deprecated: bool


def listed_prices(provider: str) -> list[ListedPrice]:
    """The models genai-prices prices for `provider` (its id there: `openai`, `anthropic`, …),
    sorted by id; empty for a provider it does not know."""
    found = next((p for p in _bundled_snapshot().providers if p.id == provider), None)
    if found is None:
        return []

    def base(price: Any) -> Decimal | None:
        return _rate(price, 0)

    rows = []
    for model in found.models:
        prices = model.prices[0].prices if isinstance(model.prices, list) else model.prices
        rows.append(
            ListedPrice(
                model=model.id,
                name=model.name,
                input_mtok=base(getattr(prices, "input_mtok", None)),
                output_mtok=base(getattr(prices, "output_mtok", None)),
                cache_read_mtok=base(getattr(prices, "cache_read_mtok", None)),
                deprecated=bool(getattr(model, "deprecated", False)),
            )
        )
    return sorted(rows, key=lambda row: row.model)
