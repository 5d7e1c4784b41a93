"""Embeddings: `POST /v1/embeddings` through the official `openai` SDK (offline model and a fake
OpenAI upstream on a real socket), the library's `Vault.embed`, and `genvault embed`. Every call
is a generation record of kind `embedding` holding its vectors."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from bench.fake_upstream import Answer, FakeUpstream
from genvault.cli import app as cli_app
from genvault.embeddings import decode_vector, embedding_result
from genvault.errors import InvalidRequest
from genvault.providers.openai import OpenAIProvider
from genvault.server import create_app
from genvault.store.schema import generations
from genvault.vault import Vault
from live_server import serve
from test_aisdk_client import CLIENT_DIR, node  # noqa: F401 - `node` is a fixture


@pytest.fixture
def database(request: pytest.FixtureRequest, database_maker: Any) -> tuple[str, str | None]:
    """SQLite unless a test asks for both (the record path is the engine's, tested on both)."""
    made: tuple[str, str | None] = database_maker(getattr(request, "param", "sqlite"))
    return made


BOTH_DATABASES = pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture
def upstream() -> FakeUpstream:
    return FakeUpstream()


@pytest.fixture
async def vault(vault_factory: Any, upstream: FakeUpstream) -> AsyncIterator[Vault]:
    async with serve(upstream.app()) as upstream_url:
        to_openai = OpenAIProvider("openai", api_key="sk-upstream", base_url=f"{upstream_url}/v1", max_retries=0)
        vault: Vault = await vault_factory(providers={"openai": to_openai})
        yield vault
        await vault.aclose(grace_seconds=0)
        await to_openai.aclose()


@pytest.fixture
async def base_url(vault: Vault) -> AsyncIterator[str]:
    async with serve(create_app(vault=vault)) as url:
        yield url


@pytest.fixture
async def oai(base_url: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(api_key="unused", base_url=f"{base_url}/v1", max_retries=0, timeout=60) as client:
        yield client


async def count_embeddings(vault: Vault) -> int:
    async with vault.store.read() as conn:
        query = select(func.count()).select_from(generations).where(generations.c.kind == "embedding")
        return int((await conn.execute(query)).scalar_one())


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (math.hypot(*a) * math.hypot(*b))


async def test_the_offline_model_embeds_through_the_sdk_and_keeps_a_record(
    oai: openai.AsyncOpenAI, vault: Vault, base_url: str
) -> None:
    texts = ["the cat sat on the mat", "a cat sat on a mat", "quarterly invoice totals"]
    # The SDK asks for base64 by default and decodes it itself.
    raw = await oai.embeddings.with_raw_response.create(model="offline/test-embedding", input=texts)
    answer = raw.parse()
    vectors = [item.embedding for item in answer.data]
    assert [len(v) for v in vectors] == [256, 256, 256]
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])  # shared words point alike
    record = await vault.wait(raw.headers["x-genvault-generation-id"])
    assert (record.kind, record.status, record.model) == ("embedding", "complete", "offline/test-embedding")
    assert record.usage.input_tokens == answer.usage.prompt_tokens > 0
    assert record.request["input"] == texts
    stored = [decode_vector(v) for v in embedding_result(record)]
    assert stored == vectors  # float32 both ways: exact
    floats = await oai.embeddings.create(
        model="offline/test-embedding", input="the cat sat on the mat", encoding_format="float", dimensions=16
    )
    assert len(floats.data[0].embedding) == 16
    async with httpx.AsyncClient(base_url=base_url) as http:
        page = await http.get(f"/generate/{record.id}")
        listed = await http.get("/api/generations", params={"kind": "embedding"})
    assert page.status_code == 200
    assert "3 vectors" in page.text
    assert "quarterly invoice totals" in page.text
    assert {g["id"] for g in listed.json()["items"]} >= {record.id}


@BOTH_DATABASES
async def test_an_openai_upstream_is_called_once_and_a_repeat_is_a_cache_copy(
    oai: openai.AsyncOpenAI, vault: Vault, upstream: FakeUpstream
) -> None:
    texts = ["one two", "three"]
    first = await oai.embeddings.with_raw_response.create(
        model="openai/text-embedding-3-small", input=texts, dimensions=4
    )
    second = await oai.embeddings.with_raw_response.create(
        model="openai/text-embedding-3-small", input=texts, dimensions=4
    )
    sent = upstream.requests
    assert len(sent) == 1  # the repeat never reached the upstream
    assert (sent[0]["model"], sent[0]["input"], sent[0]["dimensions"]) == ("text-embedding-3-small", texts, 4)
    expected = [[(len(t) + i) / (i + 1) for i in range(4)] for t in texts]
    for answer in (first.parse(), second.parse()):
        for got, want in zip([d.embedding for d in answer.data], expected, strict=True):
            assert got == pytest.approx(want, rel=1e-6)  # float32
    original = await vault.wait(first.headers["x-genvault-generation-id"])
    copy = await vault.wait(second.headers["x-genvault-generation-id"])
    assert original.status == copy.status == "complete"
    assert original.usage.input_tokens == 3
    assert original.cost_nano_usd is not None
    assert original.cost_nano_usd > 0
    assert copy.cached_from == original.id
    assert embedding_result(copy) == embedding_result(original)


async def test_bad_requests_are_the_sdks_bad_request_errors_and_write_nothing(
    oai: openai.AsyncOpenAI, vault: Vault
) -> None:
    bad: list[dict[str, Any]] = [
        {"model": "offline/test-embedding", "input": ""},
        {"model": "offline/test-embedding", "input": []},
        {"model": "offline/test-embedding", "input": [1.5]},
        {"model": "offline/test-embedding", "input": ["ok", {"text": "no"}]},
        {"model": "offline/test-embedding", "input": "x\u0000y"},
        {"model": "offline/test-embedding", "input": "x", "dimensions": 0},
        {"model": "offline/test-embedding", "input": "x", "encoding_format": "hex"},
        {"model": "offline/test-model", "input": "x"},
        {"model": "anthropic/claude-x", "input": "x"},
        {"input": "x"},
    ]
    for body in bad:
        with pytest.raises(openai.BadRequestError):
            await oai.post("/embeddings", body=body, cast_to=object)
    assert await count_embeddings(vault) == 0


async def test_an_upstream_error_keeps_its_status_and_ends_the_record_in_error(
    oai: openai.AsyncOpenAI, vault: Vault, upstream: FakeUpstream
) -> None:
    body = {"error": {"message": "Rate limit reached", "type": "requests", "param": None, "code": "rate_limit"}}
    upstream.enqueue(Answer(status=429, body=body))
    with pytest.raises(openai.RateLimitError) as caught:
        await oai.embeddings.create(model="openai/text-embedding-3-small", input="x")
    record = await vault.wait(caught.value.response.headers["x-genvault-generation-id"])
    assert record.status == "error"
    assert "Rate limit reached" in (record.error or "")


async def test_the_library_checks_inputs_before_writing_and_token_ids_are_accepted(vault: Vault) -> None:
    with pytest.raises(InvalidRequest):
        await vault.embed([["not", "tokens"]])  # type: ignore[list-item]
    with pytest.raises(InvalidRequest):
        await vault.embed("x", dimensions=True)  # type: ignore[arg-type]
    assert await count_embeddings(vault) == 0
    record = await vault.wait((await vault.embed([[1, 2, 3], [4]], idempotency_key="emb-1")).id)
    assert record.status == "complete"
    assert len(embedding_result(record)) == 2
    again = await vault.embed([[1, 2, 3], [4]], idempotency_key="emb-1")
    assert again.id == record.id


def test_the_cli_embeds_and_prints_the_record(tmp_path: Path) -> None:
    env = {"GENVAULT_DATA_DIR": str(tmp_path)}
    result = CliRunner().invoke(
        cli_app, ["embed", "hello world", "goodbye", "--dimensions", "8", "--json"], env=env, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["kind"] == "embedding"
    assert record["status"] == "complete"
    assert [len(v) for v in record["embeddings"]] == [8, 8]
    shown = CliRunner().invoke(cli_app, ["embed", "hello world"], env=env, catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    assert "256 dimensions" in shown.output


@pytest.mark.slow
async def test_the_ai_sdk_embeds_through_the_gateway(
    base_url: str,
    vault: Vault,
    node: Path,  # noqa: F811 - the fixture imported above
) -> None:
    spec = {"baseUrl": base_url, "call": "embed", "model": "offline/test-embedding", "values": ["sunny day", "rain"]}
    process = await asyncio.create_subprocess_exec(
        str(node),
        str(CLIENT_DIR / "gateway-scenario.mjs"),
        json.dumps(spec),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    result = json.loads(out)
    assert [len(v) for v in result["embeddings"]] == [256, 256]
    record = await vault.wait(result["headers"]["x-genvault-generation-id"])
    assert record.kind == "embedding"
    assert [decode_vector(v) for v in embedding_result(record)] == result["embeddings"]  # float32 as JSON: exact
