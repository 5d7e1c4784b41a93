"""Which memory allocator a server process runs on.

Python's small-object allocator keeps each 1 MiB arena that a burst filled while any one object
in it lives, so after 100,000 streamed tokens a server stayed ~30–36 MB above its start.
jemalloc gives back what a burst freed (its own decay, and `memory.QuietTrim`'s purge once the
process is quiet) for about the same instructions per turn and per token (docs/benchmarks.md,
"rss"), so `auto` is jemalloc where the library is installed and Python's own allocator elsewhere.

The choice is made by environment variables that the interpreter and the dynamic loader read
when a process starts (`PYTHONMALLOC`, `LD_PRELOAD`), so `genvault serve` applies it by
re-executing its own command line with them set (`allocator_exec`). `APPLIED_ENV` marks the
re-executed process: it never executes again.
"""

from __future__ import annotations

import ctypes.util
import logging
import sys
from collections.abc import Mapping
from typing import Literal

__all__ = ["ALLOCATORS", "APPLIED_ENV", "Allocator", "allocator_env", "allocator_exec", "resolve"]

log = logging.getLogger(__name__)

Allocator = Literal["auto", "pymalloc", "malloc", "jemalloc", "mimalloc"]
ALLOCATORS: tuple[Allocator, ...] = ("auto", "pymalloc", "malloc", "jemalloc", "mimalloc")
APPLIED_ENV = "GENVAULT_ALLOCATOR_APPLIED"
_PRELOADED = ("jemalloc", "mimalloc")


def _library(name: str) -> str | None:
    """The shared library's name as the loader finds it (`libjemalloc.so.2`), or None."""
    if not sys.platform.startswith("linux"):  # LD_PRELOAD is the Linux loader's
        return None
    return ctypes.util.find_library(name)


def resolve(choice: Allocator) -> Allocator:
    """The allocator `choice` runs on here: `auto` is jemalloc when installed, else Python's own;
    a preloaded one that is not installed falls back to Python's own (logged)."""
    if choice == "auto":
        return "jemalloc" if _library("jemalloc") is not None else "pymalloc"
    if choice in _PRELOADED and _library(choice) is None:
        log.warning("%s is not installed (lib%s): serving on Python's allocator", choice, choice)
        return "pymalloc"
    return choice


def allocator_env(allocator: Allocator, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables that start a process on `allocator` (a resolved one, not `auto`)."""
    if allocator in _PRELOADED:
        library = _library(allocator)
        assert library is not None, "resolve() first"
        # Python's objects through malloc too, or jemalloc would only see the large ones.
        preload = " ".join(filter(None, (environ.get("LD_PRELOAD"), library)))
        return {"PYTHONMALLOC": "malloc", "LD_PRELOAD": preload}
    return {"PYTHONMALLOC": allocator}


def allocator_exec(
    choice: Allocator, environ: Mapping[str, str], argv: list[str]
) -> tuple[list[str], dict[str, str]] | None:
    """The (argv, environment) that restart this process on `choice`, or None when it should run
    as it is: already restarted (`APPLIED_ENV`, so never a loop), an interpreter that ignores the
    environment (`-E`/`-I`: the variables would not take), or nothing to change (Python's own
    allocator chosen and `PYTHONMALLOC` unset or already `pymalloc`). Under `auto`, a
    `PYTHONMALLOC` the user set is kept. `argv`: the interpreter's own command line
    (`sys.orig_argv`: options and `-m genvault` or the script)."""
    if APPLIED_ENV in environ or sys.flags.ignore_environment:
        return None
    if choice == "auto" and "PYTHONMALLOC" in environ:
        return None
    allocator = resolve(choice)
    if allocator == "pymalloc" and environ.get("PYTHONMALLOC", "pymalloc") == "pymalloc":
        return None
    env = {**environ, **allocator_env(allocator, environ), APPLIED_ENV: allocator}
    return [sys.executable, *argv[1:]], env
