"""A generating process killed with SIGKILL loses nothing that was checkpointed, and its record
ends `interrupted` when genvault next starts."""

from __future__ import annotations

import asyncio
import json
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


@pytest.mark.long
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


CHAT_CHILD = """
import asyncio
import json
from genvault.vault import Vault

async def main():
    async with Vault() as vault:
        message = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": %r}]}
        turn = await vault.chat("crash-chat", message=message)
        await vault.wait(turn.generation.id)

asyncio.run(main())
"""


@pytest.mark.long
@pytest.mark.slow
async def test_a_killed_chat_turn_leaves_its_partial_reply_in_the_chat_marked_interrupted(
    database: tuple[str, str | None], tmp_path: Path
) -> None:
    from genvault.providers import testmodel as tm

    url, schema = database
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GENVAULT_")},
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
        [sys.executable, "-c", CHAT_CHILD % PROMPT], env=env, stdout=subprocess.DEVNULL, stderr=child_err
    )
    try:
        for _ in range(300):  # up to 30 s: the child installs the schema, then streams
            await asyncio.sleep(0.1)
            try:
                row = await latest_row(store)
            except Exception:
                continue
            if row is not None and row["status"] == "streaming" and len((row["result_text"] or "").split()) >= 3:
                break
        else:
            raise AssertionError(f"the child never checkpointed: {(tmp_path / 'child.err').read_text()}")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        checkpointed = (await latest_row(store))["result_text"]

        provider = tm.TestProvider(tokens_per_second=0)
        settings = Settings(database_url=url, data_dir=tmp_path)
        async with Vault(settings, database_schema=schema, providers={"offline": provider}) as vault:
            record = await vault.get_generation((await latest_row(store))["id"])
            assert record.status == "interrupted"
            messages = (await vault.chat_messages("crash-chat")).messages
            assert [m["role"] for m in messages] == ["user", "assistant"]
            reply = messages[1]
            assert reply["id"] == record.message_id
            assert "".join(p["text"] for p in reply["parts"] if p["type"] == "text") == checkpointed
            genvault = reply["metadata"]["genvault"]
            assert genvault["status"] == "interrupted"
            assert genvault["generationId"] == record.id
            assert genvault["usageEstimated"] is True
            assert record.usage.estimated
            assert record.usage.output_tokens is not None
            assert record.usage.output_tokens > 0

            # The next turn's history holds the partial reply, as the client's list would.
            provider.enqueue(tm.text("Picking up."))
            turn = await vault.chat(
                "crash-chat", message={"id": "u2", "role": "user", "parts": [{"type": "text", "text": "Go on"}]}
            )
            assert (await vault.wait(turn.generation.id)).status == "complete"
            sent = provider.calls[-1].messages
            assert [m["role"] for m in sent] == ["user", "assistant", "user"]
            assert checkpointed in json.dumps(sent[1])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        child_err.close()
        await store.aclose()
