"""Webhooks delivered to a real local receiver: signed, in order per generation and chat, retried
after 500s and timeouts until dead, retried by hand, never sent twice at once by two workers."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from genvault.providers import testmodel as tm
from genvault.server import create_app
from genvault.store.keys import create_key
from genvault.vault import Vault
from genvault.webhooks import Webhooks
from webhook_receiver import Call, Receiver, receiver

FAST = {
    "webhook_poll_seconds": 0.05,
    "webhook_backoff_seconds": 0.05,
    "webhook_backoff_max_seconds": 0.2,
    # Generous: a 200 that comes late on a loaded machine must not read as a timeout (and a retry).
    "webhook_timeout_seconds": 30.0,
}
ALL_GENERATION_EVENTS = ["generation.completed", "generation.failed", "generation.cancelled", "generation.interrupted"]


def verify_signature(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The README's recipe, written out again here (not imported): what a receiver runs."""
    timestamp = headers["genvault-timestamp"]
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"sha256={expected}", headers["genvault-signature"])


@pytest.fixture
async def hook() -> AsyncIterator[Receiver]:
    async with receiver() as state:
        yield state


async def make_vault(vault_factory: Any, **overrides: Any) -> Vault:
    vault: Vault = await vault_factory(
        providers={"offline": tm.TestProvider(tokens_per_second=0)}, settings_overrides={**FAST, **overrides}
    )
    return vault


async def delivered(vault: Vault, webhook_id: str, count: int) -> list[Any]:
    """The webhook's deliveries once `count` of them are no longer pending (oldest first); the
    log is written right after the receiver answers."""
    found: list[Any] = []
    for _ in range(3600):  # a ceiling (180 s) for a loaded machine
        found = await vault.webhooks.deliveries(webhook_id)
        if len(found) >= count and all(d.status != "pending" for d in found):
            return list(reversed(found))
        await asyncio.sleep(0.05)
    raise AssertionError(f"deliveries never settled: {found}")


async def test_a_completed_generation_is_posted_signed_and_logged_as_delivered(
    vault_factory: Any, hook: Receiver
) -> None:
    vault = await make_vault(vault_factory)
    created = await vault.webhooks.add(hook.url, ["generation.completed"], secret="s3cret-s3cret-s3cret")
    record = await vault.wait((await vault.generate("Hello webhooks")).id)

    await hook.until(lambda: len(hook.ids()) == 1, "the event arrived")
    call = hook.calls[0]
    assert verify_signature("s3cret-s3cret-s3cret", call.headers, call.body)
    assert not verify_signature("another-secret-entirely", call.headers, call.body)
    assert call.headers["genvault-event-id"] == call.event["id"]
    assert call.headers["content-type"] == "application/json"
    assert call.event["type"] == "generation.completed"
    data = call.event["data"]
    assert (data["generation_id"], data["status"], data["model"]) == (record.id, "complete", record.model)
    assert data["usage"]["output_tokens"] == record.usage.output_tokens
    assert "Hello webhooks" not in call.body.decode()  # never the prompt or the output

    [delivery] = await delivered(vault, created.id, 1)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    assert delivery.event_id == call.event["id"]
    assert delivery.payload == call.event


async def test_a_failing_receiver_gets_the_event_again_after_a_500_and_a_timeout(
    vault_factory: Any, hook: Receiver
) -> None:
    vault = await make_vault(vault_factory, webhook_timeout_seconds=5.0)
    answers = iter(["500", "hang"])

    async def flaky(call: Call) -> int:
        step = next(answers, "ok")
        if step == "500":
            return 500
        if step == "hang":
            return await hook.hang()
        return 200

    hook.answer = flaky
    created = await vault.webhooks.add(hook.url, ["generation.completed"])
    await vault.wait((await vault.generate("retry me")).id)

    [delivery] = await delivered(vault, created.id, 1)
    assert delivery.status == "delivered"
    assert delivery.attempts >= 3
    assert delivery.log[0]["status_code"] == 500
    assert delivery.log[0]["error"] == "HTTP 500"
    assert delivery.log[1]["status_code"] is None
    assert "timed out" in delivery.log[1]["error"]
    assert delivery.log[-1]["status_code"] == 200
    # The same event each time (receivers deduplicate by its id).
    assert {c.event["id"] for c in hook.calls} == {delivery.event_id}


async def test_a_delivery_that_keeps_failing_ends_dead_and_a_retry_sends_it_again(
    vault_factory: Any, hook: Receiver
) -> None:
    vault = await make_vault(vault_factory, webhook_max_attempts=2)
    failing = True

    async def answer(call: Call) -> int:
        return 503 if failing else 200

    hook.answer = answer
    created = await vault.webhooks.add(hook.url, ["generation.completed"])
    await vault.wait((await vault.generate("doomed")).id)
    [dead] = await delivered(vault, created.id, 1)
    assert (dead.status, dead.attempts, dead.last_status_code) == ("dead", 2, 503)
    assert len(hook.calls) == 2

    failing = False
    retried = await vault.webhooks.retry(dead.id)
    assert (retried.status, retried.attempts) == ("pending", 0)
    [done] = await delivered(vault, created.id, 1)
    assert (done.status, done.attempts, done.last_status_code) == ("delivered", 1, 200)
    assert [e["status_code"] for e in done.log] == [503, 503, 200]


async def test_the_events_of_one_chat_arrive_in_order_even_when_the_first_one_fails_for_a_while(
    vault_factory: Any, hook: Receiver
) -> None:
    vault = await make_vault(vault_factory)
    first_event: list[str] = []
    second_turn_done = False

    async def answer(call: Call) -> int:
        if not first_event:
            first_event.append(call.event["id"])
        # The first event fails until the second turn's event is in the outbox behind it.
        if call.event["id"] == first_event[0] and not second_turn_done:
            return 500
        return 200

    hook.answer = answer
    created = await vault.webhooks.add(hook.url, ALL_GENERATION_EVENTS)
    message = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "first"}]}
    one = await vault.chat("ordered", message=message)
    await vault.wait(one.generation.id)
    await hook.until(lambda: len(hook.calls) >= 2, "the first event failed twice")
    message = {"id": "u2", "role": "user", "parts": [{"type": "text", "text": "second"}]}
    two = await vault.chat("ordered", message=message)
    await vault.wait(two.generation.id)
    pending = await vault.webhooks.deliveries(created.id, status="pending")
    assert len(pending) == 2  # both waiting: the second behind the first
    second_turn_done = True

    deliveries = await delivered(vault, created.id, 2)
    assert [d.payload["data"]["generation_id"] for d in deliveries] == [one.generation.id, two.generation.id]
    arrivals = [(c.event["data"]["generation_id"], c.answered) for c in hook.calls]
    first_success = arrivals.index((one.generation.id, 200))
    assert arrivals[first_success + 1 :] == [(two.generation.id, 200)]
    assert all(gen == one.generation.id for gen, _ in arrivals[:first_success])


async def test_two_workers_never_send_one_delivery_twice(vault_factory: Any, hook: Receiver) -> None:
    vault = await make_vault(vault_factory)
    await vault.webhooks.aclose()  # this test drives the workers itself
    created = await vault.webhooks.add(hook.url, ALL_GENERATION_EVENTS)
    for n in range(6):
        await vault.wait((await vault.generate(f"prompt {n}")).id)
    workers = [
        Webhooks(vault.store, vault.settings, lambda n=n: f"worker-{n}")  # type: ignore[misc]
        for n in range(2)
    ]
    try:
        while True:
            sent = await asyncio.gather(*(w.deliver_due() for w in workers))
            if sum(sent) == 0:
                break
    finally:
        for worker in workers:
            await worker.aclose()
    ids = [c.event["id"] for c in hook.calls]
    assert len(ids) == 6
    assert len(set(ids)) == 6
    assert all(d.status == "delivered" for d in await vault.webhooks.deliveries(created.id))


async def test_chat_deletion_and_erasure_are_events_and_erasure_drops_the_users_pending_ones(
    vault_factory: Any, hook: Receiver
) -> None:
    vault = await make_vault(vault_factory)
    await vault.webhooks.aclose()  # nothing is sent until the test says
    created = await vault.webhooks.add(hook.url, ["generation.completed", "chat.deleted", "user.erased"])
    await vault.create_user("carol")
    message = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}
    turn = await vault.chat("carols", message=message, user_id="carol")
    await vault.wait(turn.generation.id, user_id="carol")
    await vault.delete_chat("carols", user_id="carol")
    kept = await vault.wait((await vault.generate("someone else's")).id)
    pending = await vault.webhooks.deliveries(created.id, status="pending")
    assert sorted(d.event for d in pending) == ["chat.deleted", "generation.completed", "generation.completed"]

    receipt = await vault.erase_user("carol")
    pending = await vault.webhooks.deliveries(created.id, status="pending")
    # carol's events went with her data; the erasure is an event of its own.
    assert sorted(d.event for d in pending) == ["generation.completed", "user.erased"]
    erased = next(d for d in pending if d.event == "user.erased")
    assert erased.payload["data"] == {
        "user_id": "carol",
        "audit_id": receipt.audit_id,
        "erased_at": receipt.erased_at.isoformat(),
    }
    assert (await vault.erase_user("carol")).counts["users"] == 0
    assert len(await vault.webhooks.deliveries(created.id, status="pending")) == 2  # no second event

    await vault.webhooks.start()
    await delivered(vault, created.id, 2)
    assert sorted(c.event["type"] for c in hook.calls) == ["generation.completed", "user.erased"]
    assert next(c for c in hook.calls if c.event["type"] == "generation.completed").event["data"]["generation_id"] == (
        kept.id
    )
    # Once told, the log keeps the pseudonym, not the id.
    log = {d.event: d for d in await vault.webhooks.deliveries(created.id)}
    assert "carol" not in log["user.erased"].model_dump_json()
    assert log["user.erased"].payload["data"]["user_hash"].startswith("sha256:")


async def test_a_cancelled_generation_and_an_inactive_webhook(vault_factory: Any, hook: Receiver) -> None:
    vault: Vault = await vault_factory(
        providers={"offline": tm.TestProvider(tokens_per_second=5)}, settings_overrides=FAST
    )
    created = await vault.webhooks.add(hook.url, ALL_GENERATION_EVENTS)
    off = await vault.webhooks.add(hook.url + "?off", ALL_GENERATION_EVENTS)
    await vault.webhooks.update(off.id, active=False)
    record = await vault.generate("a long answer " * 20)
    await vault.cancel(record.id)
    [delivery] = await delivered(vault, created.id, 1)
    assert delivery.payload["type"] == "generation.cancelled"
    assert delivery.payload["data"]["status"] == "cancelled"
    assert await vault.webhooks.deliveries(off.id) == []


# -- HTTP: admins only, bad input refused ---------------------------------------------------------


@pytest.fixture
async def api(vault_factory: Any) -> AsyncIterator[dict[str, Any]]:
    vault = await vault_factory(settings_overrides={**FAST, "auth": "api_key"})
    await vault.webhooks.aclose()
    keys = {}
    for name, admin in (("root", True), ("bob", False)):
        await vault.create_user(name, is_admin=admin)
        async with vault.store.write() as conn:
            keys[name] = (await create_key(conn, name, "test"))[1]
    transport = httpx.ASGITransport(app=create_app(vault=vault))
    async with httpx.AsyncClient(transport=transport, base_url="http://genvault.test") as http:
        yield {"http": http, "keys": keys, "vault": vault}


def as_(api: dict[str, Any], who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api['keys'][who]}"}


async def test_the_webhook_api_does_crud_lists_deliveries_and_retries_for_admins(api: dict[str, Any]) -> None:
    http, root = api["http"], as_(api, "root")
    response = await http.post(
        "/api/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "events": ["generation.completed", "chat.deleted"]},
        headers=root,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["secret"].startswith("whsec_")
    listed = (await http.get("/api/webhooks", headers=root)).json()
    assert [w["id"] for w in listed] == [created["id"]]
    assert "secret" not in listed[0]
    patched = await http.patch(f"/api/webhooks/{created['id']}", json={"active": False}, headers=root)
    assert patched.json()["active"] is False

    vault: Vault = api["vault"]
    await vault.webhooks.update(created["id"], active=True)
    await vault.wait((await vault.generate("x", user_id="root")).id, user_id="root")
    deliveries = (await http.get(f"/api/webhooks/{created['id']}/deliveries", headers=root)).json()
    assert [d["event"] for d in deliveries] == ["generation.completed"]
    delivery_id = deliveries[0]["id"]
    conflict = await http.post(f"/api/webhooks/{created['id']}/deliveries/{delivery_id}/retry", headers=root)
    assert conflict.status_code == 409  # still pending
    # Nothing listens on port 9: one pass fails it for good (max attempts 1 here).
    vault.settings.webhook_max_attempts = 1
    assert await vault.webhooks.deliver_due() == 1
    dead = (await http.get(f"/api/webhooks/{created['id']}/deliveries?status=dead", headers=root)).json()
    assert [d["id"] for d in dead] == [delivery_id]
    assert dead[0]["attempts"] == 1
    assert dead[0]["last_error"]
    retried = await http.post(f"/api/webhooks/{created['id']}/deliveries/{delivery_id}/retry", headers=root)
    assert retried.status_code == 200
    assert retried.json()["status"] == "pending"

    assert (await http.delete(f"/api/webhooks/{created['id']}", headers=root)).status_code == 204
    assert (await http.get(f"/api/webhooks/{created['id']}", headers=root)).status_code == 404
    assert (await http.get("/api/webhooks", headers=root)).json() == []


BAD_BODIES = [
    {"url": "ftp://example.com/x", "events": ["generation.completed"]},
    {"url": "http:///nohost", "events": ["generation.completed"]},
    {"url": "http://example.com/x", "events": []},
    {"url": "http://example.com/x", "events": ["generation.exploded"]},
    {"url": "http://example.com/x", "events": "generation.completed"},
    {"url": "http://example.com/x", "events": ["chat.deleted"], "secret": "short"},
    {"url": "http://example.com/x", "events": ["chat.deleted"], "extra": 1},
    {"url": "http://example.com/" + "x" * 2000, "events": ["chat.deleted"]},
    {"events": ["chat.deleted"]},
]


@pytest.mark.parametrize("body", BAD_BODIES)
async def test_bad_webhook_input_is_a_4xx_and_writes_nothing(api: dict[str, Any], body: dict[str, Any]) -> None:
    http, root = api["http"], as_(api, "root")
    response = await http.post("/api/webhooks", json=body, headers=root)
    assert response.status_code in (400, 422), response.text  # 422: the body's shape (FastAPI)
    assert response.json()["error"]["message"]
    assert (await http.get("/api/webhooks", headers=root)).json() == []


async def test_bad_ids_and_states_are_4xx(api: dict[str, Any]) -> None:
    http, root = api["http"], as_(api, "root")
    assert (await http.get("/api/webhooks/wh_missing", headers=root)).status_code == 404
    assert (await http.get("/api/webhooks/wh_missing/deliveries", headers=root)).status_code == 404
    assert (await http.post("/api/webhooks/wh_missing/deliveries/1/retry", headers=root)).status_code == 404
    assert (await http.post("/api/webhooks/wh_x/deliveries/abc/retry", headers=root)).status_code in (400, 422)
    created = (
        await http.post("/api/webhooks", json={"url": "http://h/x", "events": ["chat.deleted"]}, headers=root)
    ).json()
    path = f"/api/webhooks/{created['id']}"
    assert (await http.get(f"{path}/deliveries?status=lost", headers=root)).status_code in (400, 422)
    assert (await http.get(f"{path}/deliveries?limit=0", headers=root)).status_code in (400, 422)
    assert (await http.patch(path, json={"events": ["nope"]}, headers=root)).status_code == 400
    assert (await http.patch(path, json={"active": "maybe"}, headers=root)).status_code in (400, 422)
    assert (await http.post(f"{path}/deliveries/999999/retry", headers=root)).status_code == 404
    assert (await http.get(path, headers=root)).json()["events"] == ["chat.deleted"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/webhooks"),
        ("POST", "/api/webhooks"),
        ("GET", "/api/webhooks/{id}"),
        ("PATCH", "/api/webhooks/{id}"),
        ("DELETE", "/api/webhooks/{id}"),
        ("GET", "/api/webhooks/{id}/deliveries"),
        ("POST", "/api/webhooks/{id}/deliveries/1/retry"),
    ],
)
async def test_only_admins_manage_webhooks(api: dict[str, Any], method: str, path: str) -> None:
    http = api["http"]
    hook = await api["vault"].webhooks.add("http://h/x", ["chat.deleted"])
    body = {"url": "http://h/y", "events": ["chat.deleted"]} if method in ("POST", "PATCH") else None
    url = path.format(id=hook.id)
    assert (await http.request(method, url, json=body, headers=as_(api, "bob"))).status_code == 403
    assert (await http.request(method, url, json=body)).status_code == 401
    assert [w.id for w in await api["vault"].webhooks.all()] == [hook.id]
    assert (await api["vault"].webhooks.get(hook.id)).url == "http://h/x"


async def test_a_webhook_added_by_another_process_gets_events_once_this_one_has_read_it(
    vault_factory: Any, hook: Receiver
) -> None:
    here = await make_vault(vault_factory)
    assert not here.webhooks.wants("complete")  # no subscriber: a finalize writes no outbox row
    other = await vault_factory(deliver_webhooks=False, settings_overrides=FAST)
    created = await other.webhooks.add(hook.url, ["generation.completed"])
    # `wants` is also true of every event while this process's last reading is stale (a worker
    # late under load): wait for a fresh reading, which wants only what is subscribed.
    await hook.until(
        lambda: here.webhooks.wants("complete") and not here.webhooks.wants("error"),
        "this process read the new subscription, and only what is subscribed",
    )
    record = await here.wait((await here.generate("seen by the new webhook")).id)
    await hook.until(lambda: len(hook.ids()) == 1, "the event arrived")
    assert hook.calls[0].event["data"]["generation_id"] == record.id
    [delivery] = await delivered(other, created.id, 1)
    assert delivery.status == "delivered"
