"""Instructions per turn, by phase and thread, from `bench.cpu turn --callgrind`'s outputs.

    .venv/bin/python -m bench.cgturns OUT [OUT ...] [--n 100]

`OUT` is the `--callgrind-out-file` of a `bench.cpu turn --callgrind` run under
`valgrind --tool=callgrind --instr-atstart=no --separate-threads=yes`: callgrind wrote one file
per dump and thread, `OUT.PART-THREAD`, each with its dump's label (`desc: Trigger: dump PHASE`)
and its `summary:` (instructions). Printed per phase (floor, bare, genvault): instructions per
turn of each thread (thread 1 is the event loop's; a thread whose counts include `sqlite3_step` is
marked `sqlite`: the SQLite writer's connection, the liveness store's, the pooled readers'), the
whole process's, and the ratios genvault/bare (the in-process client counted in both) and
(genvault - floor)/(bare - floor) (the client's floor taken out of both; the floor reads no
streamed body, so this overstates the gap). Several `OUT`s (trees side by side): one table each.
"""

from __future__ import annotations

import argparse
import glob
import re
from dataclasses import dataclass, field

_PART = re.compile(r"\.(\d+)-(\d+)$")


@dataclass
class Phase:
    label: str
    threads: dict[int, int] = field(default_factory=dict)  # thread number -> instructions
    sqlite: set[int] = field(default_factory=set)

    @property
    def total(self) -> int:
        return sum(self.threads.values())


def read_dump(path: str, *, look_for: str | None = None) -> tuple[str, int, bool]:
    """A callgrind dump's label (`callgrind_control -d LABEL`), its instruction total, and whether
    `look_for` (a function's name) occurs in it; without `look_for` the file is read only as far
    as the total."""
    label, summary, found = "", 0, False
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if line.startswith("desc: Trigger: "):
                label = line.removeprefix("desc: Trigger: ").strip().removeprefix("dump ").strip()
            elif line.startswith("summary: "):
                summary = int(line.split()[1])
                if look_for is None:
                    break
            elif look_for is not None and not found and look_for in line:
                found = True
    return label, summary, found


def phases(out: str) -> dict[str, Phase]:
    """Each dump's label to its counts, from `out`'s per-dump, per-thread files."""
    found: dict[int, Phase] = {}
    for path in glob.glob(f"{glob.escape(out)}.*-*"):
        match = _PART.search(path)
        if match is None:
            continue
        part, thread = int(match.group(1)), int(match.group(2))
        label, summary, sqlite = read_dump(path, look_for="sqlite3_step")
        phase = found.setdefault(part, Phase(label))
        phase.threads[thread] = summary
        if sqlite:
            phase.sqlite.add(thread)
    return {phase.label: phase for _, phase in sorted(found.items())}


def report(out: str, n: int) -> None:
    found = phases(out)
    print(f"{out} (instructions per turn, M; {n} turns a phase)")
    threads = sorted({thread for phase in found.values() for thread in phase.threads})
    sqlite = {thread for phase in found.values() for thread in phase.sqlite}
    names = ["loop" if t == 1 else f"t{t}" + ("/sqlite" if t in sqlite else "") for t in threads]
    print(f"  {'phase':10}" + "".join(f"{name:>11}" for name in names) + f"{'process':>11}")
    for label, phase in found.items():
        cells = "".join(f"{phase.threads.get(t, 0) / n / 1e6:11.3f}" for t in threads)
        print(f"  {label:10}{cells}{phase.total / n / 1e6:11.3f}")
    if {"floor", "bare", "genvault"} <= found.keys():
        floor, bare, genvault = (found[k].total for k in ("floor", "bare", "genvault"))
        without = (genvault - floor) / (bare - floor)
        print(f"  genvault/bare x{genvault / bare:.3f}; without the client's floor x{without:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("outs", nargs="+", metavar="OUT")
    parser.add_argument("--n", type=int, default=100, help="turns a phase (bench.cpu turn --n)")
    args = parser.parse_args()
    for out in args.outs:
        report(out, args.n)


if __name__ == "__main__":
    main()
