"""The callgrind readers of `bench.cgturns` and `bench.cgsteps` on dumps written as callgrind
writes them (`--separate-threads=yes`: one file per dump part and thread)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cgsteps import read
from bench.cgturns import phases, read_dump


def _dump(path: Path, label: str, total: int, *functions: str) -> None:
    body = "".join(f"fn=(1) {name}\n1 10\n" for name in functions)
    path.write_text(f"version: 1\ndesc: Trigger: dump {label}\nevents: Ir\nsummary: {total}\n{body}totals: {total}\n")


def test_read_dump_gives_the_label_the_total_and_whether_a_function_ran(tmp_path: Path) -> None:
    _dump(tmp_path / "out.1-01", "genvault", 900, "main", "sqlite3_step")
    assert read_dump(str(tmp_path / "out.1-01"), look_for="sqlite3_step") == ("genvault", 900, True)
    assert read_dump(str(tmp_path / "out.1-01"), look_for="absent") == ("genvault", 900, False)
    assert read_dump(str(tmp_path / "out.1-01")) == ("genvault", 900, False)


def test_phases_sum_each_dump_over_its_threads_and_mark_sqlites(tmp_path: Path) -> None:
    out = tmp_path / "cg.out"
    _dump(tmp_path / "cg.out.1-01", "bare", 300, "main")
    _dump(tmp_path / "cg.out.2-01", "genvault", 600, "main")
    _dump(tmp_path / "cg.out.2-02", "genvault", 150, "sqlite3_step")
    found = phases(str(out))
    assert list(found) == ["bare", "genvault"]
    assert found["genvault"].threads == {1: 600, 2: 150}
    assert found["genvault"].total == 750
    assert found["genvault"].sqlite == {2}


def test_steps_are_read_less_the_empty_steps_cost(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _dump(tmp_path / "st.out.1", "nothing", 1000)
    _dump(tmp_path / "st.out.2", "cache_key", 5000)
    (tmp_path / "st.out.3-01").write_text("not a numbered dump\n")
    read(str(tmp_path / "st.out"), 10)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split()[-1] == "100"
    assert printed[1].split() == ["cache_key", "400"]
