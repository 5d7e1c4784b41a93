"""Exact costs: genai-prices' bundled snapshot, overrides, unknown ≠ free, nano-USD rounding."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from decimal import Decimal

import genai_prices
import pytest
from genai_prices import Usage, calc_price, data_snapshot
from genai_prices.update_prices import UpdatePrices

from genvault.pricing import Cost, compute_cost, estimated_cost_cents, nano_to_usd, usd_to_nano
from genvault.providers.base import StreamUsage
from genvault.settings import PriceOverride

AT = datetime(2025, 9, 1, tzinfo=UTC)
SOURCE = f"genai-prices {genai_prices.__version__}"


class TestGenaiPrices:
    def test_openai_cost_matches_calc_price_including_cached_tokens(self):
        usage = StreamUsage(input_tokens=1843, output_tokens=214, cached_input_tokens=1536, reasoning_tokens=192)

        cost = compute_cost("openai", "gpt-4o-mini", usage, {}, at=AT)

        expected = calc_price(
            Usage(input_tokens=1843, cache_read_tokens=1536, output_tokens=214),
            "gpt-4o-mini",
            provider_id="openai",
            genai_request_timestamp=AT,
        ).total_price
        # 307 × $0.15 + 1536 × $0.075 + 214 × $0.60, per million tokens
        assert expected == Decimal("0.00028965")
        assert cost == Cost(289650, {"input": "0.15", "output": "0.6", "cache_read": "0.075"}, SOURCE)

    def test_anthropic_cost_prices_cache_reads_and_writes_at_their_own_rates(self):
        usage = StreamUsage(input_tokens=3620, output_tokens=121, cached_input_tokens=2048, cache_write_tokens=1200)

        cost = compute_cost("anthropic", "claude-sonnet-4-5", usage, {}, at=AT)

        expected = calc_price(
            Usage(input_tokens=3620, cache_read_tokens=2048, cache_write_tokens=1200, output_tokens=121),
            "claude-sonnet-4-5",
            provider_id="anthropic",
            genai_request_timestamp=AT,
        ).total_price
        # 372 × $3 + 2048 × $0.30 + 1200 × $3.75 + 121 × $15, per million tokens
        assert expected == Decimal("0.0080454")
        assert cost.nano_usd == 8045400
        assert cost.unit_prices == {"input": "3", "output": "15", "cache_read": "0.3", "cache_write": "3.75"}

    def test_reasoning_tokens_are_not_billed_twice(self):
        with_reasoning = StreamUsage(input_tokens=100, output_tokens=50, reasoning_tokens=40)
        without = StreamUsage(input_tokens=100, output_tokens=50)

        assert compute_cost("openai", "o3-mini", with_reasoning, {}) == compute_cost("openai", "o3-mini", without, {})

    def test_cache_rates_are_listed_only_when_cache_tokens_were_billed(self):
        cost = compute_cost("anthropic", "claude-sonnet-4-5", StreamUsage(input_tokens=10, output_tokens=5), {}, at=AT)

        assert cost.unit_prices == {"input": "3", "output": "15"}

    def test_tiered_prices_report_the_tier_that_applied(self):
        usage = StreamUsage(input_tokens=250_000, output_tokens=1000)

        cost = compute_cost("anthropic", "claude-sonnet-4-5", usage, {}, at=AT)

        expected = calc_price(
            Usage(input_tokens=250_000, output_tokens=1000),
            "claude-sonnet-4-5",
            provider_id="anthropic",
            genai_request_timestamp=AT,
        ).total_price
        assert cost.nano_usd == usd_to_nano(expected)
        assert cost.unit_prices == {"input": "6", "output": "22.5"}

    def test_a_fetched_snapshot_elsewhere_in_the_process_does_not_change_genvault_prices(self, monkeypatch):
        usage = StreamUsage(input_tokens=1000, output_tokens=1000)
        before = compute_cost("openai", "gpt-4o-mini", usage, {}, at=AT)
        empty = data_snapshot.DataSnapshot(providers=[], from_auto_update=True)
        monkeypatch.setattr(data_snapshot, "_custom_snapshot", empty)

        assert compute_cost("openai", "gpt-4o-mini", usage, {}, at=AT) == before

    def test_pricing_never_touches_the_network(self, monkeypatch):
        def no_network(*args: object, **kwargs: object) -> None:
            raise AssertionError("pricing tried to use the network")

        monkeypatch.setattr(socket.socket, "connect", no_network)
        monkeypatch.setattr(UpdatePrices, "fetch", no_network)
        monkeypatch.setattr(UpdatePrices, "start", no_network)

        cost = compute_cost("openai", "gpt-4o", StreamUsage(input_tokens=10, output_tokens=10), {}, at=AT)

        assert cost.nano_usd is not None


class TestUnknown:
    @pytest.mark.parametrize(
        ("provider", "model"),
        [("offline", "test-model"), ("openai", "no-such-model-xyz"), ("ollama", "llama3.2"), ("myserver", "gpt-4o")],
    )
    def test_a_model_without_a_price_costs_unknown_not_zero(self, provider, model):
        cost = compute_cost(provider, model, StreamUsage(input_tokens=10, output_tokens=10), {})

        assert cost == Cost(None)
        assert cost.usd is None

    @pytest.mark.parametrize(
        "usage", [StreamUsage(), StreamUsage(input_tokens=10), StreamUsage(output_tokens=10)], ids=["none", "in", "out"]
    )
    def test_unreported_usage_costs_unknown(self, usage):
        assert compute_cost("openai", "gpt-4o-mini", usage, {}).nano_usd is None

    def test_inconsistent_usage_costs_unknown(self):
        usage = StreamUsage(input_tokens=10, output_tokens=1, cached_input_tokens=20)

        assert compute_cost("openai", "gpt-4o-mini", usage, {}).nano_usd is None

    def test_zero_tokens_on_a_priced_model_cost_zero(self):
        assert compute_cost("openai", "gpt-4o-mini", StreamUsage(input_tokens=0, output_tokens=0), {}).nano_usd == 0


class TestOverrides:
    def test_an_override_prices_a_model_genai_prices_does_not_know(self):
        overrides = {"offline/test-model": PriceOverride(input_mtok=Decimal("1"), output_mtok=Decimal("2"))}

        cost = compute_cost("offline", "test-model", StreamUsage(input_tokens=1500, output_tokens=700), overrides)

        # 1500 × $1 + 700 × $2 per million = $0.0029
        assert cost == Cost(2_900_000, {"input": "1", "output": "2"}, "override")

    def test_an_override_wins_over_genai_prices(self):
        overrides = {"openai/gpt-4o-mini": PriceOverride(input_mtok=Decimal("10"), output_mtok=Decimal("20"))}

        cost = compute_cost("openai", "gpt-4o-mini", StreamUsage(input_tokens=100, output_tokens=100), overrides)

        assert cost.source == "override"
        assert cost.nano_usd == 3_000_000

    def test_override_cache_rates_apply_and_missing_ones_fall_back_to_the_input_rate(self):
        usage = StreamUsage(input_tokens=1000, output_tokens=0, cached_input_tokens=600, cache_write_tokens=300)
        with_rates = PriceOverride(
            input_mtok=Decimal("2"),
            output_mtok=Decimal("8"),
            cache_read_mtok=Decimal("0.5"),
            cache_write_mtok=Decimal("2.5"),
        )
        without = PriceOverride(input_mtok=Decimal("2"), output_mtok=Decimal("8"))

        priced = compute_cost("x", "m", usage, {"x/m": with_rates})
        fallback = compute_cost("x", "m", usage, {"x/m": without})

        # 100 × 2 + 600 × 0.5 + 300 × 2.5 = 1250 micro-dollars
        assert priced == Cost(
            1_250_000, {"input": "2", "output": "8", "cache_read": "0.5", "cache_write": "2.5"}, "override"
        )
        assert fallback.nano_usd == 2_000_000
        assert fallback.unit_prices == {"input": "2", "output": "8", "cache_read": "2", "cache_write": "2"}

    def test_an_override_for_another_model_does_not_apply(self):
        overrides = {"openai/gpt-4o": PriceOverride(input_mtok=Decimal("10"), output_mtok=Decimal("20"))}

        cost = compute_cost("openai", "gpt-4o-mini", StreamUsage(input_tokens=100, output_tokens=100), overrides)

        assert cost.source == SOURCE


class TestMoney:
    @pytest.mark.parametrize(
        ("usd", "nano"),
        [
            (Decimal("0.0000000005"), 0),  # half to even: down to 0
            (Decimal("0.0000000015"), 2),  # half to even: up to 2
            (Decimal("0.0000000025"), 2),
            (Decimal("0.00000000051"), 1),
            (Decimal("1.23"), 1_230_000_000),
        ],
    )
    def test_usd_rounds_half_to_even_into_whole_nano_usd(self, usd, nano):
        assert usd_to_nano(usd) == nano

    def test_override_cost_rounds_half_to_even(self):
        overrides = {"x/m": PriceOverride(input_mtok=Decimal("0.0005"), output_mtok=Decimal("0"))}

        # 3 tokens × $0.0005 / 1e6 = $0.0000000015 → 2 nano-USD (half to even)
        assert compute_cost("x", "m", StreamUsage(input_tokens=3, output_tokens=0), overrides).nano_usd == 2

    def test_nano_to_usd_is_exact(self):
        assert nano_to_usd(240450) == Decimal("0.000240450")
        assert nano_to_usd(1) == Decimal("1E-9")
        assert Cost(1_500_000_000).usd == Decimal("1.5")

    def test_estimated_cost_cents_is_exact_and_keeps_unknown(self):
        assert estimated_cost_cents(240450) == Decimal("0.024045")
        assert estimated_cost_cents(0) == 0
        assert estimated_cost_cents(None) is None
