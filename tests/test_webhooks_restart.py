"""No webhook delivery is lost when the process dies: the outbox row committed with the event is
sent by the next process, whether the first died before sending or in the middle of a send."""

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

from genvault.settings import Settings
from genvault.store import Store
from genvault.store.schema import webhook_deliveries
from genvault.vault import Vault
from webhook_receiver import Call, receiver

CHILD = """
import asyncio, sys
from genvault.vault import Vault

async def main():
    async with Vault() as vault:
        record = await vault.wait((await vault.generate("the last words")).id)
        print(record.id, flush=True)
        await asyncio.sleep(3600)  # killed here

asyncio.run(main())
"""


async def outbox(store: Store) -> list[Any]:
    async with store.read() as conn:
        return list((await conn.execute(select(webhook_deliveries).order_by(webhook_deliveries.c.id))).mappings())


async def run_child_until_final(env: dict[str, str], tmp_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    err = (tmp_path / "child.err").open("wb")
    proc = subprocess.Popen(  # noqa: ASYNC220 - starting it is instant; we poll without blocking
        [sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, stderr=err
    )
    assert proc.stdout is not None
    line = await asyncio.to_thread(proc.stdout.readline)  # the record is final: committed
    err.close()
    assert line, f"the child died: {(tmp_path / 'child.err').read_text()}"
    return proc, line.decode().strip()


def child_env(url: str, schema: str | None, tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GENVAULT_")},
        "GENVAULT_DATABASE_URL": url,
        "GENVAULT_DATA_DIR": str(tmp_path),
        "GENVAULT_TEST_MODEL_TPS": "0",
        **{f"GENVAULT_{k.upper()}": v for k, v in settings.items()},
    }
    if schema:
        env["GENVAULT_DATABASE_SCHEMA"] = schema
    return env


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.long
@pytest.mark.slow
async def test_an_event_committed_before_the_process_was_killed_is_delivered_after_a_restart(
    database: tuple[str, str | None], tmp_path: Path
) -> None:
    url, schema = database
    settings = Settings(
        database_url=url, data_dir=tmp_path, webhook_poll_seconds=0.05, webhook_timeout_seconds=60, test_model_tps=0
    )
    async with receiver() as hook:
        async with Vault(settings, database_schema=schema, deliver_webhooks=False) as admin:
            created = await admin.webhooks.add(hook.url, ["generation.completed"])
        # The child's worker looks once at start (nothing yet), then not for an hour: it dies
        # between the commit of the event and any delivery.
        proc, generation_id = await run_child_until_final(
            child_env(url, schema, tmp_path, webhook_poll_seconds="3600"), tmp_path
        )
        try:
            store = Store(url, schema=schema)
            try:
                [row] = await outbox(store)
            finally:
                await store.aclose()
            assert (row["status"], row["attempts"], row["lease_owner"]) == ("pending", 0, None)
            kill(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        assert hook.calls == []

        async with Vault(settings, database_schema=schema) as restarted:
            await hook.until(lambda: len(hook.ids()) == 1, "the restarted process delivered the event")
            assert hook.calls[0].event["data"]["generation_id"] == generation_id
            for _ in range(3600):
                [delivery] = await restarted.webhooks.deliveries(created.id)
                if delivery.status == "delivered":
                    break
                await asyncio.sleep(0.05)
            assert (delivery.status, delivery.attempts) == ("delivered", 1)


@pytest.mark.long
@pytest.mark.slow
async def test_a_process_killed_in_the_middle_of_a_send_leaves_it_to_the_next_once_the_lease_expires(
    database: tuple[str, str | None], tmp_path: Path
) -> None:
    url, schema = database
    settings = Settings(
        database_url=url,
        data_dir=tmp_path,
        webhook_poll_seconds=0.05,
        webhook_lease_seconds=2,
        webhook_timeout_seconds=60,
        test_model_tps=0,
    )
    async with receiver() as hook:
        first_call = asyncio.Event()

        async def answer(call: Call) -> int:
            if len(hook.calls) == 1:
                first_call.set()
                return await hook.hang()  # the sender dies while waiting for this
            return 200

        hook.answer = answer
        async with Vault(settings, database_schema=schema, deliver_webhooks=False) as admin:
            created = await admin.webhooks.add(hook.url, ["generation.completed"])
        env = child_env(
            url, schema, tmp_path, webhook_poll_seconds="0.05", webhook_lease_seconds="2", webhook_timeout_seconds="300"
        )
        proc, generation_id = await run_child_until_final(env, tmp_path)
        try:
            await asyncio.wait_for(first_call.wait(), 180)
            kill(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()

        async with Vault(settings, database_schema=schema) as restarted:
            await hook.until(lambda: len(hook.ids()) == 1, "the leased delivery was sent again")
            assert [c.event["data"]["generation_id"] for c in hook.calls] == [generation_id, generation_id]
            for _ in range(3600):
                [delivery] = await restarted.webhooks.deliveries(created.id)
                if delivery.status == "delivered":
                    break
                await asyncio.sleep(0.05)
            # The dead process never recorded its attempt: this one is the first on the log.
            assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
