"""Money as text (`genvault.money`): a 750 nano-USD cost reads "0.00000075" (a value) or
"$0.00000075" (a display) on every surface, never "7.50E-7" (`str()` of the Decimal, which the
chat footer once showed as "$7.50E-7")."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from typer.testing import CliRunner

from genvault.limits import LimitSet
from genvault.messages.sse import parse_sse
from genvault.money import estimated_cost_cents, nano_to_usd, nano_usd_text, usd_label, usd_text
from genvault.providers import testmodel as tm
from genvault.server import create_app
from genvault.webhooks import generation_data

# 3 input tokens at $0.25 per million: 750 nano-USD, the amount `str()` writes as "7.50E-7".
PRICES = {"offline/test-model": {"input_mtok": "0.25", "output_mtok": "0"}}
TINY = "0.00000075"


def no_exponent(text: str) -> bool:
    return "e" not in text.lower()


class TestTheHelper:
    @given(st.integers(min_value=0))
    @example(0)
    @example(750)
    @example(10**9)
    @example(10**60 + 1)
    def test_a_nano_amount_round_trips_exactly_without_an_exponent(self, nano: int) -> None:
        usd = nano_to_usd(nano)
        text = usd_text(usd)
        assert no_exponent(text)
        assert Decimal(text) == usd
        whole, _, fraction = text.partition(".")
        assert len(fraction) <= 9
        assert int(whole + fraction.ljust(9, "0")) == nano  # not a nano-USD lost, at any size
        assert not text.endswith(("0", ".")) or text == "0" or "." not in text  # no trailing zeros
        label = usd_label(usd)
        assert label.startswith("$")
        assert no_exponent(label)
        assert Decimal(label[1:]) == usd
        assert len(label.partition(".")[2]) >= 2  # at least to the cent

    def test_the_two_forms_of_everyday_amounts(self) -> None:
        cases = {0: ("0", "$0.00"), 750: (TINY, "$0.00000075"), 1_500_000_000: ("1.5", "$1.50")}
        cases |= {20 * 10**9: ("20", "$20.00"), 123_456_789: ("0.123456789", "$0.123456789")}
        for nano, (text, label) in cases.items():
            assert (usd_text(nano_to_usd(nano)), usd_label(nano_to_usd(nano))) == (text, label)
        assert str(nano_to_usd(750)) == "7.50E-7"  # what the surfaces used to write
        assert usd_label(None) == "unknown"
        assert nano_to_usd(None) is None
        assert nano_usd_text(None) is None
        for nano, (text, _) in cases.items():
            assert nano_usd_text(nano) == text

    def test_any_decimal_however_written_gets_the_same_text(self) -> None:
        for written in ("7.50E-7", "0.000000750", "75E-8", "0.00000075"):
            assert usd_text(Decimal(written)) == TINY
        assert usd_text(Decimal("1E+1")) == "10"
        assert usd_text(Decimal("0E-9")) == "0"
        assert usd_text(Decimal("2.500")) == "2.5"

    def test_a_whole_number_of_dollars_given_as_an_int_is_exact(self) -> None:
        assert usd_text(10**30) == "1" + "0" * 30  # not through a float
        assert usd_label(20) == "$20.00"

    def test_cents_are_exact_too(self) -> None:
        assert usd_text(estimated_cost_cents(750) or 0) == "0.000075"
        assert usd_text(estimated_cost_cents(7) or 0) == "0.0000007"


@pytest.fixture
async def client(vault_factory: Any) -> Any:
    provider = tm.TestProvider(tokens_per_second=0)
    vault = await vault_factory(providers={"offline": provider}, settings_overrides={"price_overrides": PRICES})
    transport = httpx.ASGITransport(app=create_app(vault=vault))
    async with httpx.AsyncClient(transport=transport, base_url="http://genvault.test") as http:
        http.vault = vault  # type: ignore[attr-defined]
        http.provider = provider  # type: ignore[attr-defined]
        yield http


def user(text: str) -> dict[str, Any]:
    return {"id": "u1", "role": "user", "parts": [{"type": "text", "text": text}]}


async def tiny_turn(http: Any, chat_id: str = "c1") -> tuple[dict[str, Any], list[Any]]:
    """A chat turn that costs 750 nano-USD: its record (JSON API) and its UI message stream."""
    http.provider.enqueue(tm.text("ok"), tm.usage(input=3, output=1))
    events = parse_sse((await http.post("/api/chat", json={"id": chat_id, "messages": [user("hi")]})).content)
    [finish] = [e for e in events if isinstance(e, dict) and e["type"] == "finish"]
    generation_id = finish["messageMetadata"]["genvault"]["generationId"]
    record: dict[str, Any] = (await http.get(f"/api/generations/{generation_id}")).json()
    return record, events


class TestEverySurface:
    async def test_the_stream_metadata_the_record_and_the_stored_message(self, client: Any) -> None:
        record, events = await tiny_turn(client)
        assert record["cost_nano_usd"] == 750
        [finish] = [e for e in events if isinstance(e, dict) and e["type"] == "finish"]
        assert finish["messageMetadata"]["genvault"]["costUsd"] == TINY
        assert record["cost_usd"] == TINY
        assert record["estimated_cost_cents"] == "0.000075"
        messages = (await client.get("/api/chats/c1/messages")).json()["messages"]
        assert messages[-1]["metadata"]["genvault"]["costUsd"] == TINY

    async def test_a_failed_turn_s_status_metadata(self, client: Any) -> None:
        client.provider.enqueue(tm.text("half"), tm.usage(input=1, output=1), tm.error("boom", status=500))
        events = parse_sse((await client.post("/api/chat", json={"id": "c2", "messages": [user("hi")]})).content)
        [status] = [e for e in events if isinstance(e, dict) and e["type"] == "message-metadata"]
        shown = status["messageMetadata"]["genvault"]
        assert shown["status"] == "error"
        record = (await client.get(f"/api/generations/{shown['generationId']}")).json()
        assert shown["costUsd"] == record["cost_usd"] == usd_text(nano_to_usd(record["cost_nano_usd"]))
        assert no_exponent(shown["costUsd"])

    async def test_usage_json_csv_and_the_pages(self, client: Any) -> None:
        record, _events = await tiny_turn(client)
        [row] = (await client.get("/api/usage")).json()
        assert row["cost_usd"] == TINY
        assert row["saved_usd"] == "0"
        [parsed] = list(csv.DictReader(io.StringIO((await client.get("/api/usage.csv")).text)))
        assert parsed["cost_usd"] == TINY
        pages = [(await client.get(path)).text for path in (f"/generate/{record['id']}", "/usage", "/generations", "/")]
        for html in pages:
            assert not re.search(r"\d[eE]-\d", html), re.search(r".{80}\d[eE]-\d.{20}", html)
        assert f'data-field="cost_usd">${TINY}' in pages[0]
        assert f"${TINY}" in pages[1]

    async def test_the_webhook_body(self, client: Any) -> None:
        record, _events = await tiny_turn(client)
        stored = await client.vault.get_generation(record["id"])
        assert generation_data(stored)["cost_usd"] == TINY

    async def test_limits_a_tiny_budget_reads_plainly(self, client: Any) -> None:
        await client.vault.set_limits({"total_usd": "75E-8"}, user_id="local")
        status = (await client.get("/api/limits")).json()
        assert status["own"]["total_usd"] == TINY
        [total] = [u for u in status["usage"] if u["limit"] == "total_usd"]
        assert total["limit_value"] == TINY
        assert LimitSet(total_usd=Decimal("7.50E-7")).model_dump(mode="json")["total_usd"] == TINY

    async def test_model_prices_in_the_api_and_the_gateway(self, vault_factory: Any) -> None:
        prices = {"offline/test-model": {"input_mtok": "1E-7", "output_mtok": "2.50"}}
        vault = await vault_factory(settings_overrides={"price_overrides": prices})
        transport = httpx.ASGITransport(app=create_app(vault=vault))
        async with httpx.AsyncClient(transport=transport, base_url="http://genvault.test") as http:
            models = (await http.get("/api/models")).json()["models"]
            gateway = (await http.get("/v1/models")).json()["data"]
        [ours] = [m for m in models if m["id"] == "offline/test-model"]
        assert (ours["price"]["input_mtok"], ours["price"]["output_mtok"]) == ("0.0000001", "2.5")
        [theirs] = [m for m in gateway if m["id"] == "offline/test-model"]
        assert (theirs["pricing"]["input"], theirs["pricing"]["output"]) == ("0.0000001", "2.5")


def test_the_cli_shows_the_exact_amount(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from genvault.cli import app
    from genvault.settings import Settings
    from genvault.vault import Vault

    async def tiny() -> str:
        provider = tm.TestProvider(tokens_per_second=0)
        provider.enqueue(tm.text("ok"), tm.usage(input=3, output=1))
        async with Vault(Settings(data_dir=tmp_path, price_overrides=PRICES), providers={"offline": provider}) as vault:
            started = await vault.generate("hi", model="offline/test-model")
            await vault.wait(started.id)
            await vault.set_limits({"total_usd": "0.00000075"}, user_id="local")
            return started.id

    generation_id = asyncio.run(tiny())
    monkeypatch.setenv("GENVAULT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "250")
    runner = CliRunner()
    outputs = {}
    for args in (["show", generation_id], ["logs"], ["usage"], ["limits", "show", "local"]):
        done = runner.invoke(app, args)
        assert done.exit_code == 0, done.output
        outputs[args[0]] = done.stdout
    for name, out in outputs.items():
        assert f"${TINY}" in out, (name, out)
        assert "E-7" not in out
    as_json = runner.invoke(app, ["usage", "--json"])
    assert json.loads(as_json.stdout)[0]["cost_usd"] == TINY
