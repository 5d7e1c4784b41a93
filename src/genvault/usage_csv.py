"""Usage reports as CSV: one row per group (model, user, day, API key or tag), the same numbers as
`Vault.usage` and `GET /api/usage`, for a spreadsheet.

Money is exact dollars as decimal text (`genvault.money.usd_text`: `0.000123`, `0.00000075`), never
a float or an exponent. A group none of whose
generations had a price has an empty `cost_usd` (unknown, not free) and says so in
`unpriced_generations`; a group with some priced and some unpriced generations shows the priced
sum there, and the count of the rest beside it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from genvault.money import usd_text
from genvault.records import UsageRow

__all__ = ["COLUMNS", "usage_csv"]

COLUMNS = (
    "generations",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cost_usd",
    "unpriced_generations",
    "cache_hits",
    "saved_usd",
    "estimated_generations",
    "estimated_cost_usd",
)


def _cells(row: UsageRow) -> list[str]:
    values = row.model_dump()
    cells = []
    for name in COLUMNS:
        if name == "cost_usd":
            unknown = row.generations > 0 and row.unpriced_generations == row.generations
            cells.append("" if unknown else usd_text(row.cost_usd))
        elif name.endswith("_usd"):
            cells.append(usd_text(getattr(row, name)))
        else:
            cells.append(str(values[name]))
    return cells


def usage_csv(rows: Iterable[UsageRow], group_by: str) -> str:
    """The report as CSV text with a header row; the first column is named after the grouping."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([group_by, *COLUMNS])
    for row in rows:
        # A cell a spreadsheet would run as a formula (a model or tag named "=…") is quoted as text.
        key = f"'{row.key}" if row.key[:1] in ("=", "+", "-", "@", "\t", "\r") else row.key
        writer.writerow([key, *_cells(row)])
    return out.getvalue()
