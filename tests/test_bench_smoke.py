"""The benchmarks still run: each benchmark function at a tiny size on SQLite, through genvault's
own paths only (no peers, no plots), so this runs in CI without the `bench` group. No timing is
asserted; the numbers of a run this small mean nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import append, cpu, http, pageload, report, search, streaming

pytestmark = pytest.mark.slow


async def test_append_benchmark_writes_turns_for_genvault_and_the_raw_sql_baseline(tmp_path: Path) -> None:
    data = await append.run(dbs=["sqlite"], writer_counts=[1, 2], seconds=0.05, rounds=1, peers=False, out_dir=tmp_path)
    names = {(r["contender"], r["writers"]) for r in data["results"]}
    assert names == {(c, w) for c in ("genvault", "genvault+validate", "raw SQL") for w in (1, 2)}
    assert all(r["turns_per_s"] > 0 for r in data["results"])
    assert json.loads((tmp_path / "append.json").read_text())["benchmark"] == "append"


async def test_pageload_benchmark_reads_a_page_of_each_chat_size(tmp_path: Path) -> None:
    # The benchmark itself checks that every read returned min(50, size) messages.
    data = await pageload.run(dbs=["sqlite"], sizes=[10, 120], seconds=0.02, peers=False, out_dir=tmp_path)
    assert {(r["contender"], r["size"]) for r in data["results"]} == {
        (c, s) for c in ("genvault", "raw SQL") for s in (10, 120)
    }


@pytest.mark.long
async def test_streaming_benchmark_relays_the_whole_stream_and_measures_a_crash(tmp_path: Path) -> None:
    data = await streaming.run(
        dbs=["sqlite"], tps_list=[400.0], tokens=300, repeats=1, kills=1, checkpoint_ms=50, out_dir=tmp_path
    )
    assert {r["server"] for r in data["overhead"]} == {"bare", "genvault/sqlite"}
    assert all(r["tokens"] == 300 for r in data["overhead"])
    [crash] = data["crash"]
    assert crash["db"] == "sqlite"
    assert len(crash["windows_s"]) == 1


@pytest.mark.long
async def test_http_benchmark_drives_genvault_and_the_bare_relay_from_a_second_process(tmp_path: Path) -> None:
    data = await http.run(dbs=["sqlite"], concurrency=[2], duration=0.3, chat_size=60, rounds=1, out_dir=tmp_path)
    assert [(r["server"], r["endpoint"]) for r in data["results"]] == [
        ("genvault", "GET /api/chats/{id}/messages?limit=50"),
        ("bare", "POST /api/chat"),
        ("genvault", "POST /api/chat"),
    ]
    assert all(r["errors"] == 0 and r["requests_per_s"] > 0 for r in data["results"])
    assert all(r["server_cpu_ms_per_request"] is not None for r in data["results"])
    [turn] = data["turn"]
    assert (turn["db"], turn["rounds"]) == ("sqlite", 1)
    assert turn["rps_ratio"] > 0


async def test_report_renders_tables_and_targets_from_result_files(tmp_path: Path) -> None:
    await append.run(dbs=["sqlite"], writer_counts=[1], seconds=0.02, rounds=1, peers=False, out_dir=tmp_path)
    await pageload.run(dbs=["sqlite"], sizes=[10, 60], seconds=0.02, peers=False, out_dir=tmp_path)
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# Benchmarks\n\nprose kept\n\n{report.BEGIN}\nold\n{report.END}\n\nmore prose\n")
    report.write(tmp_path, doc, with_plots=False)
    text = doc.read_text()
    assert "prose kept" in text
    assert "more prose" in text
    assert "old" not in text
    assert "### 1. Chat turn append" in text
    assert "| sqlite | 1 | genvault |" in text
    assert "Page load p50 ≤ 1.2× raw SQL at every size, sqlite" in text


@pytest.mark.parametrize(
    ("what", "expected"), [("append", ["append"]), ("page", ["page"]), ("stream", ["bare", "bare+hub", "genvault"])]
)
async def test_cpu_micro_runs_run_each_path(what: str, expected: list[str]) -> None:
    import argparse

    rows = await cpu.run(argparse.Namespace(what=what, db="sqlite", n=3, tokens=20, tps=0.0, checkpoint_ms=250))
    assert [r["what"] for r in rows] == expected
    assert all(r["cpu_us"] >= 0 and r["wall_us"] > 0 for r in rows)


async def test_cpu_slow_streams_run_every_token_of_every_stream_through_the_hot_route() -> None:
    import argparse

    args = argparse.Namespace(what="slow", db="sqlite", n=3, tokens=30, checkpoint_ticks=5, callgrind=False)
    [row] = await cpu.run(args)
    assert row["what"] == "genvault"
    assert row["cpu_us"] > 0
    assert row["main_thread_cpu_us"] > 0
    assert row["checkpoints"] == 30 // 5  # paced by the tick, not the clock


@pytest.mark.long
def test_gateway_benchmark_runs_genvault_and_the_direct_upstream(tmp_path: Path) -> None:
    from bench import gateway

    data = gateway.run(clients=[1], duration=0.3, rounds=1, chunks=3, litellm=None, out_dir=tmp_path)
    rows = {(r["contender"], r["stream"]) for r in data["summary"]}
    assert rows == {(c, s) for c in ("direct", "genvault") for s in (False, True)}
    assert all(r["errors"] == 0 for r in data["summary"])
    assert all(r["rps"] > 0 for r in data["summary"])
    assert json.loads((tmp_path / "gateway.json").read_text())["benchmark"] == "gateway"


@pytest.mark.long
async def test_streams_benchmark_holds_concurrent_slow_streams_against_bare_and_genvault(tmp_path: Path) -> None:
    from bench import streams

    data = await streams.run(ns=[3], dbs=["sqlite"], tokens=5, tps=50, settle=0, start_settle=0, out_dir=tmp_path)
    rows = {r["server"]: r for r in data["results"]}
    assert set(rows) == {"bare", "sqlite"}
    assert all(r["completed"] == 3 and r["errors"] == {} for r in rows.values())
    assert rows["sqlite"]["records"] == {"complete": 3}
    assert {r["server"] for r in data["summary"]} == {"bare", "sqlite"}
    assert json.loads((tmp_path / "streams.json").read_text())["benchmark"] == "streams"
    assert "### 6. Many slow streams at once" in report.render(tmp_path, with_plots=False)


async def test_limits_benchmark_runs_turns_with_and_without_limits(tmp_path: Path) -> None:
    from bench import limits

    data = await limits.run(dbs=["sqlite"], turns=3, runs=1, out_dir=tmp_path)
    [result] = data["runs"]
    assert result["free"]["turn_ms"]["n"] == 3
    assert result["limited"]["turn_ms"]["n"] == 3
    assert result["limits_in_force"] == 6


@pytest.mark.long
async def test_search_benchmark_loads_a_corpus_builds_the_index_and_times_every_query_shape(tmp_path: Path) -> None:
    corpus = {"seed": 3, "users": 4, "chats": 12, "messages": 240, "generations": 40}
    data = await search.run(
        dbs=["sqlite"], corpus_args=corpus, samples=2, append_seconds=0.05, rounds=1, writers=[1], out_dir=tmp_path
    )
    [build] = data["builds"]
    assert build["index_build_s"] > 0
    shapes = {(r["query"], r["scope"]) for r in data["queries"]}
    assert {q for q, _ in shapes} == {"2 common words", "1 rare word", "prefix migra*", "LIKE '%a%' AND LIKE '%b%'"}
    assert {s for _, s in shapes} == {"one user", "all users"}
    [append_row] = data["append"]
    assert append_row["with_index_turns_per_s"] > 0
    assert append_row["without_index_turns_per_s"] > 0
    assert json.loads((tmp_path / "search.json").read_text())["benchmark"] == "search"


def test_input_guard_benchmark_times_the_guard_against_parsing() -> None:
    from bench import input_guard

    rows = input_guard.run(tool_parts=80, messages=2, repeat=1, scale=1000)
    assert [r["body"] for r in rows] == ["small", "large", "url"]
    assert all(r["guard_us"] > 0 for r in rows)


async def test_telemetry_benchmark_runs_generations_with_and_without_export(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import telemetry

    # The benchmark sets and clears the endpoint itself; this puts the variable back afterwards.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    data = await telemetry.main(n=2, rounds=1)
    assert set(data["cpu_us_per_generation"]) == {"off", "on"}
    assert len(data["ratios"]) == 1


async def test_webhooks_benchmark_runs_every_contender_and_drains_the_backlog() -> None:
    from bench import webhooks

    results = await webhooks.run(dbs=["sqlite"], count=3, rounds=1)
    table = results["sqlite"]
    assert set(table) == {"none", "subscribed", "delivering", "drain"}
    assert all(row["median_per_s"] > 0 for row in table.values())
    assert "ratio_to_none" in table["subscribed"]
