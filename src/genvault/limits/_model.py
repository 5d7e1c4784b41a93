"""Limit values: what an admin sets (`LimitSet`, in USD and counts) and what a user is shown
(`LimitsStatus`). Pure values; the ledger and the rate windows live beside them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from genvault.money import nano_to_usd
from genvault.pricing import usd_to_nano
from genvault.records import UsdJson

__all__ = ["Caps", "LimitName", "LimitSet", "LimitUsage", "LimitsStatus"]

LimitName = Literal["daily_usd", "monthly_usd", "total_usd", "rpm", "tpm", "concurrent"]
MONEY_LIMITS: tuple[LimitName, ...] = ("daily_usd", "monthly_usd", "total_usd")


class LimitSet(BaseModel):
    """Limits on one user, one API key, or the default for every user. `None`: no limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    daily_usd: UsdJson | None = Field(default=None, ge=0, description="USD per calendar day (UTC)")
    monthly_usd: UsdJson | None = Field(default=None, ge=0, description="USD per calendar month (UTC)")
    total_usd: UsdJson | None = Field(default=None, ge=0, description="USD in total")
    rpm: int | None = Field(default=None, ge=0, description="requests per minute")
    tpm: int | None = Field(default=None, ge=0, description="tokens (input + output) per minute")
    concurrent: int | None = Field(default=None, ge=0, description="generations running at once")

    @property
    def is_empty(self) -> bool:
        return all(v is None for v in self.model_dump().values())

    def to_row(self) -> dict[str, Any]:
        def nano(usd: Decimal | None) -> int | None:
            return None if usd is None else usd_to_nano(usd)

        return {
            "daily_nano_usd": nano(self.daily_usd),
            "monthly_nano_usd": nano(self.monthly_usd),
            "total_nano_usd": nano(self.total_usd),
            "rpm": self.rpm,
            "tpm": self.tpm,
            "concurrent": self.concurrent,
        }

    @classmethod
    def from_row(cls, row: Any) -> LimitSet:
        return cls(
            daily_usd=nano_to_usd(row.daily_nano_usd),
            monthly_usd=nano_to_usd(row.monthly_nano_usd),
            total_usd=nano_to_usd(row.total_nano_usd),
            rpm=row.rpm,
            tpm=row.tpm,
            concurrent=row.concurrent,
        )


@dataclass(frozen=True, slots=True)
class Caps:
    """A subject's limits as admission uses them (money in nano-USD)."""

    daily: int | None = None
    monthly: int | None = None
    total: int | None = None
    rpm: int | None = None
    tpm: int | None = None
    concurrent: int | None = None

    @classmethod
    def of(cls, limits: LimitSet) -> Caps:
        row = limits.to_row()
        return cls(
            row["daily_nano_usd"],
            row["monthly_nano_usd"],
            row["total_nano_usd"],
            row["rpm"],
            row["tpm"],
            row["concurrent"],
        )

    def over(self, fallback: Caps) -> Caps:
        """These limits, field by field, with `fallback`'s where this has none (a user over the default)."""
        return Caps(
            *(
                mine if mine is not None else theirs
                for mine, theirs in zip(
                    (self.daily, self.monthly, self.total, self.rpm, self.tpm, self.concurrent),
                    (fallback.daily, fallback.monthly, fallback.total, fallback.rpm, fallback.tpm, fallback.concurrent),
                    strict=True,
                )
            )
        )

    @property
    def counted(self) -> bool:
        """Whether the ledger keeps this subject's spend and running count."""
        return any(v is not None for v in (self.daily, self.monthly, self.total, self.concurrent))


class LimitUsage(BaseModel):
    """One limit of one subject: how much of it is used, and when it frees up."""

    subject: str  # "user:<id>" or "key:<id>"
    limit: LimitName
    limit_value: str  # USD as a decimal string, or a count
    used: str
    remaining: str
    # When the window starts again (day, month) or frees room (a minute); None for a total.
    resets_at: datetime | None = None
    # Money limits: the part of `used` held by generations still running (their worst case).
    reserved: str | None = None


class LimitsStatus(BaseModel):
    """A user's limits as they stand: their own, the default, their keys', and the usage of each."""

    user_id: str
    own: LimitSet
    default: LimitSet
    keys: dict[str, LimitSet] = Field(default_factory=dict)
    usage: list[LimitUsage] = Field(default_factory=list)
