"""What stays allocated in a benchmark server after a run (a diagnosis aid, not a measurement).

With `BENCH_MEMORY_PROBE=<file>` in its environment, `bench._server` answers SIGUSR1: the first
signal takes a baseline, each later one appends to `<file>` the RSS (and its anonymous part),
Python's small-object allocator's arenas (`sys._debugmallocstats`, the lines that count them),
the modules imported and the collector-tracked objects (by type) gained since the baseline,
and, with `BENCH_MEMORY_PROBE_FRAMES=<n>`, the 25 places holding the most memory allocated since
the baseline and still live (tracemalloc starts at the first signal, so the start-up is
neither slowed nor counted). Signal it at the server's start and 30 s after a run:

    BENCH_MEMORY_PROBE=/tmp/probe.txt BENCH_MEMORY_PROBE_FRAMES=8 python -m bench._server --mode genvault ...
    kill -USR1 <pid>   # baseline
    ... run the client ...
    kill -USR1 <pid>   # what stayed
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import tempfile
import tracemalloc
import weakref
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ["install"]


def _status() -> str:
    fields = ("VmRSS", "RssAnon", "RssFile")
    lines = Path("/proc/self/status").read_text().splitlines()
    return "  ".join(line.replace("\t", " ") for line in lines if line.split(":")[0] in fields)


def _arenas() -> str:
    """The arena lines of `sys._debugmallocstats` (it writes to the C stderr: caught in a file)."""
    with tempfile.TemporaryFile(mode="w+") as out:
        saved = os.dup(2)
        try:
            sys.stderr.flush()
            os.dup2(out.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read()
    keep = ("arenas allocated total", "arenas reclaimed", "arenas highwater", "arenas allocated current", "bytes in")
    return "\n".join(line for line in text.splitlines() if any(k in line.lower() for k in keep))


def _maps() -> str:
    """Resident memory by kind of mapping: glibc's main heap, 1 MiB anonymous maps (Python's
    arenas), files, and the largest other anonymous maps (glibc's per-thread arenas among them)."""
    kinds: dict[str, list[int]] = {}
    others: list[tuple[int, int]] = []
    size = 0
    name = ""
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if "-" in head[0] and not head[0].endswith(":"):
            start, end = (int(x, 16) for x in head[0].split("-"))
            size = end - start
            name = head[5] if len(head) > 5 else ""
        elif head[0] == "Rss:":
            rss = int(head[1])
            if name == "[heap]":
                kind = "heap"
            elif name.startswith("/"):
                kind = "files"
            elif name:
                kind = name
            elif size == 1 << 20:
                kind = "anon 1 MiB (pymalloc arenas)"
            else:
                kind = "anon other"
                others.append((rss, size))
            entry = kinds.setdefault(kind, [0, 0])
            entry[0] += 1
            entry[1] += rss
    lines = [f"  {k:30} {n:5} maps {kb / 1024:8.1f} MiB" for k, (n, kb) in sorted(kinds.items())]
    top = sorted(others, reverse=True)[:8]
    lines.append("  largest other: " + ", ".join(f"{rss / 1024:.1f}/{size >> 20} MiB" for rss, size in top))
    return "\n".join(lines)


def _name(o: object) -> str:
    return f"{type(o).__module__}.{type(o).__qualname__}"


def _objects() -> Counter[str]:
    """Objects the cyclic collector tracks, by type (a weak reference by its referent's type)."""
    return Counter(f"weakref to {_name(o())}" if type(o) is weakref.ref else _name(o) for o in gc.get_objects())


def _since(state: dict[str, Any]) -> str:
    """Modules imported and tracked objects made since the baseline (net, the 20 largest counts)."""
    modules = sorted(set(sys.modules) - state["modules"])
    grown = (_objects() - state["objects"]).most_common(20)
    return (
        f"modules imported since the baseline ({len(modules)}): {' '.join(modules)}\n"
        f"tracked objects more than at the baseline: {', '.join(f'{k} +{n}' for k, n in grown)}\n"
    )


def install(path: str, frames: int = 0) -> None:
    state: dict[str, Any] = {"n": 0}

    def probe(_signum: int, _frame: FrameType | None) -> None:
        gc.collect()
        with open(path, "a") as out:
            out.write(f"--- probe {state['n']}: {_status()}\n{_maps()}\n{_arenas()}\n")
            if state["n"] == 0:
                state["modules"] = set(sys.modules)
                state["objects"] = _objects()
            else:
                out.write(_since(state))
            if tracemalloc.is_tracing():
                snapshot = tracemalloc.take_snapshot()
                total = sum(stat.size for stat in snapshot.statistics("filename"))
                out.write(f"live since the baseline: {total / 1024:.1f} KiB\n")
                for stat in snapshot.statistics("filename")[:30]:
                    out.write(f"{stat.size / 1024:9.1f} KiB {stat.count:7d} blocks  {stat.traceback[0].filename}\n")
                for stat in snapshot.statistics("traceback")[:25]:
                    out.write(f"{stat.size / 1024:9.1f} KiB {stat.count:7d} blocks\n")
                    for line in stat.traceback.format(limit=8):
                        out.write(f"      {line}\n")
            elif frames and state["n"] == 0:
                tracemalloc.start(frames)
        state["n"] += 1

    signal.signal(signal.SIGUSR1, probe)
