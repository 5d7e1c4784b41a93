"""Atomicity: a writer process killed (SIGKILL, no clean-up) halfway through a put never leaves
an object under the final key; the next put of the same bytes succeeds; leftovers are swept."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import sys
from asyncio.subprocess import PIPE
from datetime import timedelta

import pytest

from genvault.blobs import BlobNotFound, blob_store_from_settings
from genvault.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")]

DATA = bytes(range(256)) * 4096  # 1 MiB

# Run in a child process: patch one obstore call in genvault's blob store so that the process
# kills itself at the chosen moment, then put DATA.
WRITER = """
import asyncio, json, os, signal, sys
import genvault.blobs.store as module
from genvault.blobs import blob_store_from_settings
from genvault.settings import Settings

settings = Settings.model_validate(json.loads(sys.argv[1]))
moment = sys.argv[2]
real_obstore = module.obstore
real_put = real_obstore.put_async

class Obstore:
    def __getattr__(self, name):
        return getattr(real_obstore, name)

    async def put_async(self, store, path, data, **kwargs):
        if moment == "during-upload":
            async def chunks():
                yield data[: len(data) // 2]
                os.kill(os.getpid(), signal.SIGKILL)
                yield data[len(data) // 2 :]
            return await real_put(store, path, chunks(), **kwargs)
        return await real_put(store, path, data, **kwargs)

    async def rename_async(self, store, source, target, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

module.obstore = Obstore()
data = bytes(range(256)) * 4096
asyncio.run(blob_store_from_settings(settings).put(data))
print("the writer was not killed")
"""


@pytest.mark.parametrize("moment", ["during-upload", "before-publishing"])
async def test_a_killed_writer_leaves_no_object_under_the_final_key(persistent_settings: Settings, moment: str) -> None:
    settings_json = persistent_settings.model_dump_json()
    # model_dump_json hides the secret; pass it in clear to the child.
    values = json.loads(settings_json)
    if persistent_settings.s3_secret_access_key is not None:
        values["s3_secret_access_key"] = persistent_settings.s3_secret_access_key.get_secret_value()
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, json.dumps(values), moment, stdout=PIPE, stderr=PIPE
    )
    out, err = await asyncio.wait_for(child.communicate(), timeout=60)
    assert child.returncode == -signal.SIGKILL, (out + err).decode()

    store = blob_store_from_settings(persistent_settings)
    sha = hashlib.sha256(DATA).hexdigest()
    assert not await store.exists(sha)
    with pytest.raises(BlobNotFound):
        await store.get(sha)
    assert [key async for key in store.iter_keys()] == []

    # A fresh writer stores the same bytes whole.
    assert await store.put(DATA) == sha
    assert await store.get(sha) == DATA

    # Whatever the dead writer left under a temporary key goes with the sweep.
    await store.sweep_temporary(older_than=timedelta(0))
    leftovers = [m async for m in store._list("tmp")]
    assert leftovers == []
    assert [key async for key in store.iter_keys()] == [sha]
