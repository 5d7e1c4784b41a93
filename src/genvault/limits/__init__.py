"""Budgets, quotas and rate limits (issue 19): admission before the pending record, reservations
that concurrency cannot overshoot, rate limits on moving windows.

See `genvault.limits._service` for where the engine calls in, `_ledger` for the atomic step (the
database's own: triggers on `generations`, revision 0015; and why not Redis) and `_rates` for
requests and tokens per minute.
"""

from genvault.limits._context import KeyGrant, acting_key
from genvault.limits._cost import input_token_bound, worst_case_nano
from genvault.limits._model import LimitSet, LimitsStatus, LimitUsage
from genvault.limits._service import Admission, Limits, SubjectKind

__all__ = [
    "Admission",
    "KeyGrant",
    "LimitSet",
    "LimitUsage",
    "Limits",
    "LimitsStatus",
    "SubjectKind",
    "acting_key",
    "input_token_bound",
    "worst_case_nano",
]
