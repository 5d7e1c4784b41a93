"""`bench.turn_ab --variant`: a server of this tree with extra environment variables."""

from __future__ import annotations

from pathlib import Path

from bench.turn_ab import _env, _variant


def test_a_variant_names_its_variables_and_a_value_may_hold_commas_or_be_empty() -> None:
    assert _variant("je:MALLOC_CONF=narenas:1,dirty_decay_ms:-1,LD_PRELOAD=,X_Y=2") == (
        "je",
        {"MALLOC_CONF": "narenas:1,dirty_decay_ms:-1", "LD_PRELOAD": "", "X_Y": "2"},
    )
    assert _variant("plain:") == ("plain", {})


def test_a_variant_s_import_path_goes_before_the_tree_s_own() -> None:
    root = Path("/t")
    assert _env(root, {}) == {"PYTHONPATH": "/t/src:/t"}
    assert _env(root, {"PYTHONPATH": "/site", "A": "1"}) == {"PYTHONPATH": "/site:/t/src:/t", "A": "1"}
