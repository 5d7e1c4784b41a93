"""Instructions per turn of a chat turn's per-turn Python steps on the event loop, exactly.

    cd /tmp && PYTHONHASHSEED=0 PYTHONPATH=TREE/src:TREE valgrind --tool=callgrind \\
        --instr-atstart=no --callgrind-out-file=OUT TREE/.venv/bin/python -m bench.cgsteps [--reps 2000]
    .venv/bin/python -m bench.cgsteps --read OUT [--reps 2000]

`bench.cpu turn`'s set-up (the ASGI app in process, httpx's ASGI transport, SQLite, the offline
model's 20-token reply at full speed, each turn a new chat's first). Every step below is wrapped
before the app is made; after 20 warm-up turns, one more turn records each step's first call (its
arguments as given), and each recorded call is then replayed `--reps` times with callgrind's
instrumentation on and a dump (`callgrind_control -d STEP`) after each step: the instructions of
one call are the dump's over `--reps` (the replay loop's own few hundred instructions included).
`--read OUT` prints them. A step that a tree does not have (renamed, removed) is reported missing.
"""

from __future__ import annotations

import argparse
import glob
import importlib
import os
import subprocess
import tempfile
from collections.abc import Callable
from typing import Any

from bench.cgturns import read_dump

# (label, module, attribute path): each wrapped where its caller looks it up.
STEPS: list[tuple[str, str, str]] = [
    ("parse_chat_request", "genvault.server.routes.chat_stream", "_parse_chat_request"),
    ("check_id", "genvault.vault", "check_id"),
    ("check_json_depth", "genvault.vault", "check_json_depth"),
    ("validate_ui_messages", "genvault.vault", "validate_ui_messages"),
    ("message_to_json", "genvault.vault", "message_to_json"),
    ("check_message_ids", "genvault.vault", "check_message_ids"),
    ("labels_checked", "genvault.labels", "checked"),
    ("labels_from_headers", "genvault.labels", "from_headers"),
    ("to_model_messages", "genvault.vault", "to_model_messages"),
    ("registry_resolve", "genvault.providers.registry", "ProviderRegistry.resolve"),
    ("new_id", "genvault.engine", "new_id"),
    ("cache_key", "genvault.cache.dedup", "Dedup.key_for"),
    ("pending_record", "genvault.store.generations", "pending_record"),
    ("final_record", "genvault.store.generations", "final_record"),
    ("finish_chunk", "genvault.engine", "Engine._finish_chunk"),
    ("metrics_observe", "genvault.server.metrics", "Metrics.observe"),
    ("check_message_storable", "genvault.store.chats", "check_message_storable"),
]

_recorded: dict[str, tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = {}
_recording = False


def _wrap(label: str, module: str, path: str) -> bool:
    owner: Any = importlib.import_module(module)
    *parents, name = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent, None)
    original = getattr(owner, name, None)
    if original is None:
        return False

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _recording and label not in _recorded:
            _recorded[label] = (original, args, kwargs)
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)
    return True


def _nothing() -> None:
    return None


async def _run(reps: int) -> None:
    import httpx

    from bench._server import LongReplyModel
    from bench.cpu import _idle, _vault
    from genvault.ids import new_id

    global _recording
    present = [label for label, module, path in STEPS if _wrap(label, module, path)]
    from genvault.server import create_app

    with tempfile.TemporaryDirectory(prefix="genvault-bench-") as tmp:
        vault = await _vault(f"sqlite:///{tmp}/bench.db", tmp, 60_000, quiet=True, offline=LongReplyModel(0, 20))
        app = create_app(vault=vault)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t")

        async def turn() -> None:
            message = {"id": new_id("msg"), "role": "user", "parts": [{"type": "text", "text": new_id("q")}]}
            body = {"id": new_id("chat"), "messages": [message], "trigger": "submit-message"}
            async with client.stream("POST", "/api/chat", json=body) as response:
                assert response.status_code == 200, await response.aread()
                async for _ in response.aiter_bytes():
                    pass
            await _idle(vault)

        for _ in range(20):
            await turn()
        _recording = True
        await turn()
        _recording = False

        def callgrind(*args: str) -> None:
            subprocess.run(["callgrind_control", *args, str(os.getpid())], check=True, capture_output=True)

        _recorded["nothing"] = (_nothing, (), {})  # the loop and the dump's own cost
        for label in ["nothing", *present]:
            if label not in _recorded:
                print(f"{label}: not called")
                continue
            fn, args, kwargs = _recorded[label]
            for _ in range(50):
                fn(*args, **kwargs)
            callgrind("-z")
            callgrind("-i", "on")
            for _ in range(reps):
                fn(*args, **kwargs)
            callgrind("-d", label)  # before `-i off`, which drops what was counted
            callgrind("-i", "off")
        for label, _, _ in STEPS:
            if label not in present:
                print(f"{label}: missing in this tree")
        await client.aclose()
        await vault.aclose()


def read(out: str, reps: int) -> None:
    """Each step's instructions a call, less the `nothing` step's (the loop and the dump)."""
    counts: dict[str, float] = {}
    dumps = [path for path in glob.glob(f"{glob.escape(out)}.*") if path.rsplit(".", 1)[1].isdigit()]
    for path in sorted(dumps, key=lambda p: int(p.rsplit(".", 1)[1])):
        label, summary, _ = read_dump(path)
        if label and not label.startswith("Program termination"):
            counts[label] = summary / reps
    floor = counts.pop("nothing", 0.0)
    print(f"{'(loop and dump)':24} {floor:12,.0f}")
    for label, count in counts.items():
        print(f"{label:24} {count - floor:12,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--read", metavar="OUT", help="print a run's instructions per step from its dumps")
    args = parser.parse_args()
    if args.read:
        read(args.read, args.reps)
        return
    from bench._common import run_on

    run_on("uvloop", _run(args.reps))


if __name__ == "__main__":
    main()
