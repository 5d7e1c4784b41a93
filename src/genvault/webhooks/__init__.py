"""Webhooks: an admin subscribes URLs to events; events go to an outbox table in the transaction
of the event itself, and a worker per process delivers them, signed, at least once.

See `_service` for the delivery guarantees and `_signing` for the signature.
"""

from genvault.webhooks._events import (
    EVENTS,
    enqueue,
    enqueue_chat_deleted,
    enqueue_generation,
    enqueue_user_erased,
    generation_data,
)
from genvault.webhooks._service import Delivery, DeliveryStatus, Webhook, WebhookCreated, Webhooks
from genvault.webhooks._signing import sign, verify

__all__ = [
    "EVENTS",
    "Delivery",
    "DeliveryStatus",
    "Webhook",
    "WebhookCreated",
    "Webhooks",
    "enqueue",
    "enqueue_chat_deleted",
    "enqueue_generation",
    "enqueue_user_erased",
    "generation_data",
    "sign",
    "verify",
]
