"""The load generator: an idle connection is dropped by the client before the server drops it
(bench/_load.py, `KEEPALIVE_EXPIRY_S`); the server's counters it reports (`_proc.counters`)."""

from __future__ import annotations

import mmap
import os
import time

import pytest
import uvicorn

from bench._load import KEEPALIVE_EXPIRY_S
from bench._proc import counters, cpu_seconds


async def _app(scope: object, receive: object, send: object) -> None:  # pragma: no cover - never served
    raise AssertionError


def test_the_load_generator_expires_an_idle_connection_well_before_the_servers_keep_alive_timeout() -> None:
    # bench._server and `genvault serve` run uvicorn with its default keep-alive timeout. With
    # httpx's default expiry (the same 5 s, counted from later) a connection idle about 5 s was
    # reused just after the server closed it, and the request failed with a ReadError.
    server_timeout = uvicorn.Config(_app).timeout_keep_alive
    assert server_timeout - KEEPALIVE_EXPIRY_S >= 2


def test_a_process_s_counters_show_its_system_time_page_faults_waits_and_read_and_write_syscalls() -> None:
    # `bench._load` reports them over its window (`server_counters`), and `bench.turn_ab` per turn.
    pid = os.getpid()
    before = counters(pid)
    pages = 256
    with mmap.mmap(-1, pages * mmap.PAGESIZE) as fresh:  # never touched: each first write faults
        for page in range(pages):
            fresh[page * mmap.PAGESIZE] = 1
    time.sleep(0.01)  # a wait: a voluntary context switch
    reader, writer = os.pipe()
    os.write(writer, b"x")  # one write syscall and one read
    os.read(reader, 1)
    os.close(reader)
    os.close(writer)
    after = counters(pid)
    assert set(after) == {
        "user_s",
        "system_s",
        "minor_faults",
        "voluntary_switches",
        "involuntary_switches",
        "read_syscalls",
        "write_syscalls",
    }
    assert after["minor_faults"] - before["minor_faults"] >= pages
    assert after["voluntary_switches"] > before["voluntary_switches"]
    assert after["write_syscalls"] > before["write_syscalls"]
    assert after["read_syscalls"] > before["read_syscalls"]
    assert all(after[name] >= before[name] for name in after)
    assert after["user_s"] + after["system_s"] == pytest.approx(cpu_seconds(pid), abs=0.05)
