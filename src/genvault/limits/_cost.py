"""A request's worst-case cost, what admission reserves before the model is called.

Input: every text of the request counted as one token per UTF-8 byte (a token is at least one
byte, so this never undercounts), files as a flat `FILE_TOKENS` each. Output: `max_tokens` when
the request sets it, else `Settings.limits_max_output_tokens` (no model's output limit is in the
price data; the context window caps it where known). Priced at the model's input and output
rates (the highest tier for tiered prices); a model without a known price gives None: it is
admitted against request, token and concurrency limits only.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any

from genvault.pricing import usd_to_nano
from genvault.providers.base import ModelRequest
from genvault.settings import PriceOverride

__all__ = ["FILE_TOKENS", "input_token_bound", "worst_case", "worst_case_nano"]

FILE_TOKENS = 2_000
_BINARY_KEYS = frozenset({"data", "url", "image", "file_data", "image_url", "bytes"})


def input_token_bound(request: ModelRequest) -> int:
    """An upper bound of the request's input tokens (see the module docstring)."""
    total = len((request.system or "").encode())
    stack: list[Any] = [request.messages, [t for t in request.tools or []]]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item.encode())
        elif isinstance(item, dict):
            for key, value in item.items():
                if key in _BINARY_KEYS and isinstance(value, str | bytes):
                    total += FILE_TOKENS
                else:
                    stack.append(value)
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif item is not None and not isinstance(item, bool | int | float):
            stack.append(getattr(item, "__dict__", None) or str(item))
    return total


@lru_cache(maxsize=256)
def _catalog_rates(provider: str, model: str) -> tuple[Decimal, Decimal, int | None] | None:
    from genvault.pricing import _bundled_snapshot

    try:
        _found_provider, found = _bundled_snapshot().find_provider_model(model, None, provider, None)
    except LookupError:
        return None
    prices = found.prices
    candidates = [p.prices for p in prices] if isinstance(prices, list) else [prices]
    rates_in: list[Decimal] = []
    rates_out: list[Decimal] = []
    for price in candidates:
        rates_in.append(_highest(getattr(price, "input_mtok", None)))
        rates_out.append(_highest(getattr(price, "output_mtok", None)))
    return max(rates_in), max(rates_out), found.context_window


def _highest(price: Any) -> Decimal:
    if price is None:
        return Decimal(0)
    if isinstance(price, Decimal):
        return price
    tiers = getattr(price, "tiers", None)
    base: Decimal = getattr(price, "base", Decimal(0))
    highest: Decimal = max([base, *(t.price for t in tiers or [])])
    return highest


def worst_case_nano(
    provider: str,
    model: str,
    request: ModelRequest,
    *,
    overrides: Mapping[str, PriceOverride],
    default_output_tokens: int,
) -> int | None:
    """The most the request can cost in nano-USD; None when the model has no known price."""
    found = worst_case(provider, model, request, overrides=overrides, default_output_tokens=default_output_tokens)
    return None if found is None else found[0]


def worst_case(
    provider: str,
    model: str,
    request: ModelRequest,
    *,
    overrides: Mapping[str, PriceOverride],
    default_output_tokens: int,
) -> tuple[int, int] | None:
    """(the most the request can cost in nano-USD, the output tokens that assumes); None when
    the model has no known price."""
    override = overrides.get(f"{provider}/{model}")
    window: int | None = None
    if override is not None:
        rate_in, rate_out = override.input_mtok, override.output_mtok
    else:
        found = _catalog_rates(provider, model)
        if found is None:
            return None
        rate_in, rate_out, window = found
    max_tokens = request.params.get("max_tokens")
    output = max_tokens if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) else default_output_tokens
    if window:
        output = min(output, window)
    return usd_to_nano((input_token_bound(request) * rate_in + output * rate_out) / 1_000_000), output
