"""Domain events published by ``members``, for the apps above it.

``members`` never wires its own steps through events: ``order_record`` calls the tier, referral and
points services it causes, in order (``members.services.orders``). Events only tell the higher apps
(``segmentation``, ``campaigns``) what happened; they subscribe in their ``AppConfig.ready()``
(each app lists its subscriptions in its ``subscribers`` module), and the services that publish
never learn who listens. They are not Django model signals: bulk writes (imports, seed data)
publish their own batch events on purpose.

Handlers receive ids, never model instances, and run after the publishing transaction commits
(immediately when there is no transaction). A failing handler is logged and does not stop the
others: the publisher's work stands, and each subscriber owns its retries (usually by queueing a
Celery task, with a periodic sweep for anything missed).

    from members.events import order_recorded

    @order_recorded.subscribe
    def refresh_segment(*, order_id, member_id, **_):
        ...
"""

import logging
from collections.abc import Callable

from django.db import transaction

logger = logging.getLogger(__name__)


class DomainEvent:
    def __init__(self, name: str, doc: str):
        self.name = name
        self.__doc__ = doc
        self._handlers: list[Callable[..., object]] = []

    def subscribe(self, handler: Callable[..., object]):
        """Register ``handler`` (usable as a decorator). Registering twice has no effect."""
        if handler not in self._handlers:
            self._handlers.append(handler)
        return handler

    def unsubscribe(self, handler: Callable[..., object]) -> None:
        if handler in self._handlers:
            self._handlers.remove(handler)

    @property
    def handlers(self) -> tuple[Callable[..., object], ...]:
        return tuple(self._handlers)

    def publish(self, **payload) -> None:
        """Run every handler with ``payload`` once the current transaction commits."""
        if self._handlers:
            transaction.on_commit(lambda: self._dispatch(payload))

    def _dispatch(self, payload: dict) -> None:
        for handler in self._handlers:
            try:
                handler(**payload)
            except Exception:
                logger.exception("%s handler %s failed for %s", self.name, handler.__qualname__, payload)

    def __repr__(self):
        return f"<DomainEvent {self.name}>"


member_registered = DomainEvent("member_registered", "A member joined. Payload: member_id.")
order_recorded = DomainEvent("order_recorded", "A new paid order was recorded. Payload: order_id, member_id, store_id.")
refund_recorded = DomainEvent("refund_recorded", "A refund was recorded. Payload: refund_id, order_id, member_id.")
referral_completed = DomainEvent(
    "referral_completed", "A referral completed; both sides got the program's points. Payload: referral_id."
)
referral_reversed = DomainEvent(
    "referral_reversed", "A completed referral was reversed (its order refunded in full). Payload: referral_id."
)
orders_imported = DomainEvent(
    "orders_imported",
    "Historical orders were bulk-imported (no per-order events). Payload: count, member_ids_from, member_ids_to.",
)
interactions_recorded = DomainEvent(
    "interactions_recorded",
    "New interactions of a member were stored (page views, check-ins…). Payload: member_id, kinds.",
)
member_erased = DomainEvent(
    "member_erased",
    "A member's personal data was erased (PIPL); the member stays, anonymised and inactive. Higher apps "
    "erase what they keep about the member (message texts, notes). Payload: member_id.",
)

ALL_EVENTS = (
    member_registered,
    member_erased,
    order_recorded,
    refund_recorded,
    referral_completed,
    referral_reversed,
    orders_imported,
    interactions_recorded,
)
