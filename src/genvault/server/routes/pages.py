"""The server-rendered pages: home, a chat, a generation record, usage. HTML for people; the
JSON API and the AI SDK stream routes stay what the page scripts talk to.

Invariants:
- Model output and user text reach the browser escaped: Jinja autoescapes every template, the
  page scripts write text with `textContent`, and page data travels as JSON inside
  `<script type="application/json">`, where `tojson` escapes `<`, `>`, `&` and `'`.
- A record that does not exist and a record of someone else's give the same 404 page, so the
  page routes reveal nothing about other users' ids.
- Pages work offline and load nothing from elsewhere: scripts, styles and fonts come from
  `/static`, charts are inline SVG drawn here, and the Content-Security-Policy forbids the rest.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from genvault.errors import Forbidden, InvalidRequest, NotFound
from genvault.ids import new_id
from genvault.money import usd_label, usd_text
from genvault.records import UsageRow
from genvault.server.deps import OptionalUserDep, VaultDep
from genvault.server.routes.search import EVERYONE, search_scope
from genvault.store.chats import Chat
from genvault.usage_csv import usage_csv
from genvault.vault import Vault

__all__ = ["BarChart", "bar_chart", "fmt_usd", "nice_ceiling", "router"]

router = APIRouter(include_in_schema=False)

TEMPLATES = Path(__file__).parent.parent / "templates"
templates = Jinja2Templates(directory=TEMPLATES)

# Same-origin everything; `data:`/`blob:` images for file parts the model streams inline.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}
RECENT = 10
CHAT_PAGE = 50
USAGE_RANGES = (7, 30, 90, 365)
USAGE_GROUPS = ("model", "user", "key", "day")


# -- formatting (the page scripts format refreshed values the same way) ----------------------------


def fmt_time(value: datetime | None) -> str:
    return "—" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_num(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def fmt_usd(value: Decimal | None) -> str:
    """Exact dollars, at least to the cent: `$0.00012`, `$1.50`; None is unknown (`money.usd_label`)."""
    return usd_label(value)


def fmt_row_cost(row: UsageRow) -> str:
    """A usage total: "unknown" when none of its generations had a price, rather than $0."""
    if row.generations and row.unpriced_generations == row.generations:
        return "unknown"
    return fmt_usd(row.cost_usd)


def fmt_row_saved(row: UsageRow) -> str:
    """What cache hits saved: "–" without hits (an unpriced model's row shows no $0.00), "unknown"
    when they saved nothing priced and the group has unpriced use (hits of a model without a
    price), rather than $0."""
    if not row.cache_hits:
        return "–"
    if row.cache_hits and not row.saved_nano_usd and row.unpriced_generations:
        return "unknown"
    return fmt_usd(row.saved_usd)


def fmt_seconds(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "—"
    return f"{(end - start).total_seconds():.2f} s"


def fmt_compact(value: float) -> str:
    """Axis labels: 950, 1.2k, 3.4M."""
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


templates.env.filters.update(time=fmt_time, num=fmt_num, usd=fmt_usd)
templates.env.globals.update(seconds=fmt_seconds, row_cost=fmt_row_cost, row_saved=fmt_row_saved)


# -- charts --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: str  # CSS class: the series' colour
    title: str  # hover text


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class Label:
    x: float
    text: str


@dataclass(frozen=True)
class BarChart:
    """Geometry of an SVG bar chart, ready for the `chart` macro in `_macros.html` to draw."""

    title: str
    width: int
    height: int
    left: int
    bottom: float
    bars: list[Bar]
    ticks: list[Tick]
    labels: list[Label]
    legend: list[tuple[str, str]]  # (series class, name)
    empty_text: str = "nothing in this period"

    @property
    def empty(self) -> bool:
        return not self.bars


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10ⁿ at or above `value`: round axis maxima."""
    if value <= 0:
        return 1.0
    scale = 10.0 ** math.floor(math.log10(value))
    return next(float(f * scale) for f in (1, 2, 2.5, 5, 10) if f * scale >= value * (1 - 1e-9))


def bar_chart(
    title: str,
    keys: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[float]]],
    *,
    value_label: Callable[[float], str],
    empty_text: str = "nothing in this period",
    width: int = 720,
    height: int = 220,
) -> BarChart:
    """Stacked bars, one per key; `series` is (css class, name, one value per key), bottom first."""
    left, right, top, bottom = 56, 8, 10, height - 24
    totals = [sum(values[i] for _, _, values in series) for i in range(len(keys))]
    top_value = nice_ceiling(max(totals, default=0))
    plot_h = bottom - top
    slot = (width - left - right) / max(len(keys), 1)
    gap = min(slot * 0.2, 6)
    bars: list[Bar] = []
    for i, key in enumerate(keys):
        base = float(bottom)
        for css, name, values in series:
            value = values[i]
            if value <= 0:
                continue
            h = max(value / top_value * plot_h, 1.0)
            base -= h
            bars.append(
                Bar(left + i * slot + gap / 2, base, slot - gap, h, css, f"{key} · {name}: {value_label(value)}")
            )
    ticks = [Tick(bottom - plot_h * step / 4, value_label(top_value * step / 4)) for step in range(5)]
    # At most ~8 labels under the bars, evenly spaced, always including the last key.
    every = max(1, math.ceil(len(keys) / 8))
    labels = [
        Label(left + i * slot + slot / 2, key[5:] if len(key) == 10 else key)
        for i, key in enumerate(keys)
        if (len(keys) - 1 - i) % every == 0
    ]
    return BarChart(
        title=title,
        width=width,
        height=height,
        left=left,
        bottom=bottom,
        bars=bars,
        ticks=ticks,
        labels=labels,
        legend=[(css, name) for css, name, _ in series],
        empty_text=empty_text,
    )


def _days(since: date, until: date) -> list[str]:
    return [(since + timedelta(days=n)).isoformat() for n in range((until - since).days + 1)]


_USAGE_SUMS = (
    "generations",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cost_nano_usd",
    "unpriced_generations",
    "cache_hits",
    "saved_nano_usd",
)


def usage_charts(rows: Sequence[UsageRow], since: date, until: date) -> tuple[BarChart, BarChart]:
    """Tokens (input and output, stacked) and cost per UTC day; days without use are zero."""
    by_day = {row.key: row for row in rows}
    keys = _days(since, until)
    empty = UsageRow(key="", **dict.fromkeys(_USAGE_SUMS, 0))
    day_rows = [by_day.get(key, empty) for key in keys]
    tokens = bar_chart(
        "Tokens per day",
        keys,
        [
            ("series-input", "input", [float(r.input_tokens) for r in day_rows]),
            ("series-output", "output", [float(r.output_tokens) for r in day_rows]),
        ],
        value_label=fmt_compact,
    )
    cost = bar_chart(
        "Cost per day (USD)",
        keys,
        [("series-cost", "cost", [float(r.cost_usd) for r in day_rows])],
        # A scale (4 significant digits), not an amount: "$0", "$0.25", "$0.0000005" (`f"${v:.4g}"`
        # alone wrote "$5e-07"); no "$0.00", which the page keeps for priced use.
        value_label=lambda v: f"${usd_text(Decimal(f'{v:.4g}'))}",
        # Unknown is not free: unpriced use draws no bar, and the chart says why.
        empty_text="no priced generations in this period"
        if any(r.generations for r in rows)
        else "nothing in this period",
    )
    return tokens, cost


# -- responses -----------------------------------------------------------------------------------


def page(request: Request, name: str, context: dict[str, Any], *, status_code: int = 200) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response


def not_found(request: Request, what: str) -> HTMLResponse:
    return page(request, "404.html", {"title": "Not found", "what": what}, status_code=404)


def sign_in_required(request: Request, vault: Vault) -> Response:
    if vault.settings.auth == "api_key":  # the sign-in page, and back here after
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(here, safe='')}", status_code=303)
    how = f"the {vault.settings.auth_header} header from your proxy"
    return page(
        request,
        "error.html",
        {"title": "Sign-in required", "message": f"This server needs to know who you are: send {how}."},
        status_code=401,
    )


# -- pages ---------------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, vault: VaultDep, user: OptionalUserDep) -> Response:
    if user is None:
        return sign_in_required(request, vault)
    chats = await vault.list_chats(user_id=user, limit=RECENT)
    generations = await vault.list_generations(user_id=user, limit=RECENT)
    return page(
        request,
        "index.html",
        {
            "title": "genvault",
            "chats": chats.items,
            "generations": generations.items,
            "default_model": vault.settings.default_model,
            "default_image_model": vault.settings.default_image_model,
            # A fresh id per render: the chat exists once its first message is sent.
            "new_chat_url": f"/chat/{new_id('chat')}",
        },
    )


async def _find_chat(vault: Vault, chat_id: str, user: str | None) -> Chat | None:
    """The chat if `user` may read it (theirs, or shared by link or in public); None if nobody
    holds this id yet, which makes it a new chat; NotFound otherwise."""
    try:
        # Anonymous visitors may read shared chats; `""` owns nothing.
        return await vault.get_chat(chat_id, user_id=user or "", for_reading=True)
    except NotFound:
        pass
    # A new chat only if no one else holds the id: a stranger's id would fail on the first send.
    try:
        await vault.get_chat(chat_id, user_id=None)
    except NotFound:
        return None
    raise NotFound(f"no chat {chat_id!r}")


@router.get("/chat/{chat_id}", response_class=HTMLResponse)
async def chat_page(chat_id: str, request: Request, vault: VaultDep, user: OptionalUserDep) -> Response:
    if not 0 < len(chat_id) <= 200:
        return not_found(request, "chat")
    try:
        chat = await _find_chat(vault, chat_id, user)
    except NotFound:
        return not_found(request, "chat") if user is not None else sign_in_required(request, vault)
    if chat is None and user is None:
        return sign_in_required(request, vault)
    messages: list[dict[str, Any]] = []
    has_before = active = False
    last_model = None
    if chat is not None:
        history = await vault.chat_messages(chat_id, user_id=None, limit=CHAT_PAGE)
        messages, has_before = history.messages, history.has_before
        # A hint for the script: the stream route's 204 or 200 is the truth.
        active = await vault.active_generation(chat_id, user_id=None) is not None
        last_model = await vault.chat_model(chat_id, user_id=None)
    readonly = chat is not None and chat.user_id != user
    data = {
        "chatId": chat_id,
        "exists": chat is not None,
        "messages": messages,
        "hasBefore": has_before,
        "active": active,
        "readonly": readonly,
        "pageSize": CHAT_PAGE,
    }
    return page(
        request,
        "chat.html",
        {
            "title": chat.title if chat is not None and chat.title else "New chat",
            "chat": chat,
            "data": data,
            "readonly": readonly,
            # The chat remembers its model: the picker starts on its latest turn's.
            "chat_model": last_model or vault.settings.default_model,
            "new_chat_url": f"/chat/{new_id('chat')}",
        },
    )


@router.get("/generate/{generation_id}", response_class=HTMLResponse)
async def generation_page(generation_id: str, request: Request, vault: VaultDep, user: OptionalUserDep) -> Response:
    if user is None:
        return sign_in_required(request, vault)
    try:
        record = await vault.get_generation(generation_id, user_id=user)
    except NotFound:
        return not_found(request, "generation")
    data = {"id": record.id, "status": record.status, "final": record.is_final}
    return page(
        request,
        "generation.html",
        {"title": f"Generation {record.id}", "record": record, "data": data},
    )


@router.get("/image/{generation_id}", response_class=HTMLResponse)
async def image_page(generation_id: str, request: Request, vault: VaultDep, user: OptionalUserDep) -> Response:
    if user is None:
        return sign_in_required(request, vault)
    try:
        record = await vault.get_generation(generation_id, user_id=user)
    except NotFound:
        return not_found(request, "image")
    if record.kind != "image":
        return not_found(request, "image")
    files = await vault.generation_files(record.id, user_id=user)
    return page(request, "image.html", {"title": f"Image {record.id}", "record": record, "files": files})


@router.get("/usage", response_class=HTMLResponse)
async def usage_page(
    request: Request,
    vault: VaultDep,
    user: OptionalUserDep,
    days: str = "30",
    format: str = "",
    group_by: str = "model",
) -> Response:
    """The page; `?format=csv&group_by=model|user|key|day` downloads a table of it as CSV (the
    rows of `GET /api/usage.csv`, for this period and scope)."""
    if user is None:
        return sign_in_required(request, vault)
    span = next((n for n in USAGE_RANGES if days == str(n)), None)
    problem = None
    if span is None:
        problem = f"days must be one of {', '.join(map(str, USAGE_RANGES))}, e.g. /usage?days=30."
    elif format not in ("", "html", "csv"):
        problem = "format must be html or csv, e.g. /usage?format=csv&group_by=model."
    elif group_by not in USAGE_GROUPS:
        problem = f"group_by must be one of {', '.join(USAGE_GROUPS)}."
    if problem is not None or span is None:
        return page(request, "error.html", {"title": "Unknown option", "message": problem}, status_code=400)
    today = datetime.now(UTC).date()
    first_day = today - timedelta(days=span - 1)
    since = datetime.combine(first_day, datetime.min.time(), tzinfo=UTC)
    # As `GET /api/usage`: an admin sees everyone's usage, anyone else their own.
    everyone = await vault.is_admin(user)
    scope = None if everyone else user
    if format == "csv":
        rows = await vault.usage(group_by=group_by, user_id=scope, since=since)  # type: ignore[arg-type]
        filename = f"genvault-usage-{span}d-by-{group_by}.csv"
        headers = {"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"}
        return Response(usage_csv(rows, group_by), media_type="text/csv; charset=utf-8", headers=headers)
    by_model = await vault.usage(group_by="model", user_id=scope, since=since)
    # Admins see who used what; everyone sees their use per API key (`none`: without a key).
    by_user = await vault.usage(group_by="user", user_id=scope, since=since) if everyone else []
    by_key = await vault.usage(group_by="key", user_id=scope, since=since)
    by_day = await vault.usage(group_by="day", user_id=scope, since=since)
    tokens_chart, cost_chart = usage_charts(by_day, first_day, today)
    totals = UsageRow(
        key="total",
        **{field: sum(getattr(row, field) for row in by_model) for field in _USAGE_SUMS},
    )
    # Your own spend against each of your budgets (and rate limits), whoever you are.
    budgets = (await vault.limits_status(user)).usage
    return page(
        request,
        "usage.html",
        {
            "title": "Usage",
            "span": span,
            "ranges": USAGE_RANGES,
            "everyone": everyone,
            "by_model": by_model,
            "by_user": by_user,
            "by_key": by_key if any(row.key != "none" for row in by_key) else [],
            "by_day": by_day,
            "totals": totals,
            "charts": [tokens_chart, cost_chart],
            "budgets": budgets,
        },
    )


@router.get("/search", response_class=HTMLResponse)
async def search_page(
    request: Request,
    vault: VaultDep,
    user: OptionalUserDep,
    q: str = "",
    kind: str = "",
    tag: str = "",
    cursor: str | None = None,
    who: str | None = Query(default=None, alias="user"),
) -> Response:
    """Results link to the message in its chat (`/chat/{id}?message=…`), the chat, or the
    generation; snippets are HTML-escaped with the matched words marked."""
    if user is None:
        return sign_in_required(request, vault)
    admin = await vault.is_admin(user)
    context: dict[str, Any] = {
        "title": f"Search: {q}" if q.strip() else "Search",
        "q": q,
        "kind": kind,
        "tag": tag,
        "results": None,
        "error": None,
        "everyone_allowed": admin,
        "everyone": admin and who == EVERYONE,
        "scope_label": "",
    }
    if not q.strip():
        return page(request, "search.html", context)
    try:
        scope = await search_scope(vault, user, who)
        results = await vault.search(q, user_id=scope, kind=kind or None, tag=tag.strip() or None, cursor=cursor)
    except (InvalidRequest, Forbidden) as exc:
        context["error"] = exc.message
        return page(request, "search.html", context, status_code=403 if isinstance(exc, Forbidden) else 400)
    params = (
        {"q": q} | ({"kind": kind} if kind else {}) | ({"tag": tag} if tag else {}) | ({"user": who} if who else {})
    )
    context["results"] = results
    context["scope_label"] = "everyone's records" if scope is None else "your records" if scope == user else scope
    context["more_url"] = "/search?" + urlencode(params | {"cursor": results.next_cursor or ""})
    return page(request, "search.html", context)
