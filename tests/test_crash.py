"""A generating process killed with SIGKILL loses nothing that was checkpointed, and its record
ends `interrupted` when genvault next starts."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from genvault.providers.base import ModelRequest
from genvault.providers.testmodel import default_reply
from genvault.settings import Settings
from genvault.store import Store
from genvault.store.schema import generations
from genvault.vault import Vault

PROMPT = "Tell me something long enough to be killed in the middle of it."


async def latest_row(store: Store) -> Any:
    async with store.read() as conn:
        return (await conn.execute(select(generations))).mappings().first()


@pytest.mark.slow
async def test_a_killed_process_leaves_an_interrupted_record_with_every_checkpointed_token(
    database: tuple[str, str | None], tmp_path: Path
) -> None:
    url, schema = database
    env = {
        **os.environ,
        "GENVAULT_DATABASE_URL": url,
        "GENVAULT_DATA_DIR": str(tmp_path),
        "GENVAULT_TEST_MODEL_TPS": "15",
        "GENVAULT_CHECKPOINT_MS": "50",
    }
    if schema:
        env["GENVAULT_DATABASE_SCHEMA"] = schema
    store = Store(url, schema=schema)
    child_err = (tmp_path / "child.err").open("wb")
    proc = subprocess.Popen(  # noqa: ASYNC220 - starting it is instant; we poll without blocking
        [sys.executable, "-m", "genvault", "generate", PROMPT],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=child_err,
    )
    try:
        seen = ""
        for _ in range(1200):  # up to 120 s (a loaded machine): the child installs the schema, then streams
            await asyncio.sleep(0.1)
            try:
                row = await latest_row(store)
            except Exception:
                continue  # the child has not created the schema yet
            if row is not None and row["status"] == "streaming" and len((row["result_text"] or "").split()) >= 3:
                seen = row["result_text"]
                break
        assert seen, f"the child never checkpointed: {(tmp_path / 'child.err').read_text()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL

        before = await latest_row(store)
        assert before["status"] == "streaming"  # nobody finalized it: the process died
        checkpointed = before["result_text"]
        assert checkpointed.startswith(seen)

        async with Vault(Settings(database_url=url, data_dir=tmp_path), database_schema=schema) as vault:
            record = await vault.get_generation(before["id"])
        assert record.status == "interrupted"
        assert record.result_text == checkpointed
        full = default_reply(
            ModelRequest(model="test-model", messages=[{"role": "user", "content": [{"type": "text", "text": PROMPT}]}])
        )
        assert full.startswith(checkpointed)
        assert len(checkpointed) < len(full)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        child_err.close()
        await store.aclose()
