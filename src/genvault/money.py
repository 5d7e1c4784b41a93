"""Money as text: the one way every surface writes a USD amount.

genvault keeps money as integer nano-USD (10⁻⁹ USD) and hands it out as exact `Decimal` dollars.
`str()` of such a Decimal is no form to show anyone: below a millionth of a dollar it switches to
exponent notation (`str(Decimal(750).scaleb(-9))` is "7.50E-7", which a page showed as "$7.50E-7"),
and its trailing zeros depend on how the amount was computed. Two forms, one built on the other:

- `usd_text`, the value (JSON fields, the chat stream's `genvault.costUsd`, webhook bodies, CSV
  cells, limit values): exact, positional, no trailing zeros and no trailing point: "0", "20",
  "1.5", "0.00000075". `Decimal(usd_text(x)) == x` for every finite x.
- `usd_label`, the display (pages, the CLI, the chat footer's script): "$" and the same digits,
  at least to the cent: "$0.00", "$20.00", "$1.50", "$0.00000075"; `None` is "unknown".

Neither rounds: a nano-USD amount keeps its ninth decimal. `records.UsdJson` is a `Decimal` that a
Pydantic model writes to JSON as `usd_text` (Pydantic's own `str()` would give the exponent). This
module imports no more than `decimal`: the CLI's quick commands load it without pydantic.
"""

from __future__ import annotations

from decimal import Decimal
from typing import overload

__all__ = ["estimated_cost_cents", "nano_to_usd", "nano_usd_text", "usd_label", "usd_text"]


@overload
def nano_to_usd(nano: int) -> Decimal: ...
@overload
def nano_to_usd(nano: None) -> None: ...
@overload
def nano_to_usd(nano: int | None) -> Decimal | None: ...
def nano_to_usd(nano: int | None) -> Decimal | None:
    """Integer nano-USD to exact `Decimal` dollars (`None`, unknown, stays `None`)."""
    # From text, which is exact at any size (`scaleb` and division round to the context's 28 digits).
    return None if nano is None else Decimal(f"{nano}E-9")


def estimated_cost_cents(nano: int | None) -> Decimal | None:
    """The cost in US cents for display (1 cent = 10⁷ nano-USD), exact; `None` stays unknown."""
    return None if nano is None else Decimal(f"{nano}E-7")


def usd_text(usd: Decimal | int) -> str:
    """The value form: exact positional digits without trailing zeros ("0.00000075", "20")."""
    # `format(…, "f")` of a Decimal without a precision is exact (no context rounding, unlike
    # `normalize()`); an int goes through Decimal, since `format(int, "f")` is a float's.
    text = format(Decimal(usd), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


@overload
def nano_usd_text(nano: int) -> str: ...
@overload
def nano_usd_text(nano: None) -> None: ...
@overload
def nano_usd_text(nano: int | None) -> str | None: ...
def nano_usd_text(nano: int | None) -> str | None:
    """A stored nano-USD amount in the value form (`usd_text`); `None`, unknown, stays `None`."""
    return None if nano is None else usd_text(nano_to_usd(nano))


def usd_label(usd: Decimal | int | None) -> str:
    """The display form: "$" and the value's digits, at least to the cent ("$1.50"); None is "unknown"."""
    if usd is None:
        return "unknown"
    whole, _, fraction = usd_text(usd).partition(".")
    return f"${whole}.{fraction.ljust(2, '0')}"
