"""Domain events published by ``members`` after commit.

Higher apps (``segmentation``, ``campaigns``) and later parts of ``members`` (points, tiers,
referrals) subscribe in their ``AppConfig.ready()``; the services that publish never learn who
listens. They are not Django model signals: bulk writes (imports, seed data) publish their own
batch events on purpose.

Two phases:

- **after commit** (the default): handlers receive ids, never model instances, and run after the
  publishing transaction commits (immediately when there is no transaction). A failing handler
  is logged; the publisher's work stands.
- **in the transaction** (``subscribe(handler, in_transaction=True)``): handlers run at once,
  inside the publisher's transaction, and also receive ``instance`` (the row the event is about,
  as the publisher holds it). What they write commits or rolls back with the publisher's row, and
  a failure rolls the whole thing back. ``members`` uses this for its own consequences of an order
  (tier and points), so an order never exists without its points.

    from members.events import order_recorded

    @order_recorded.subscribe
    def earn_points(*, order_id, member_id, **_):
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
        self._in_transaction: list[Callable[..., object]] = []

    def subscribe(self, handler: Callable[..., object] | None = None, *, in_transaction: bool = False):
        """Register ``handler`` (usable as a decorator). Registering twice has no effect."""
        if handler is None:
            return lambda fn: self.subscribe(fn, in_transaction=in_transaction)
        handlers = self._in_transaction if in_transaction else self._handlers
        if handler not in handlers:
            handlers.append(handler)
        return handler

    def unsubscribe(self, handler: Callable[..., object]) -> None:
        for handlers in (self._handlers, self._in_transaction):
            if handler in handlers:
                handlers.remove(handler)

    @property
    def handlers(self) -> tuple[Callable[..., object], ...]:
        """The after-commit handlers."""
        return tuple(self._handlers)

    @property
    def in_transaction_handlers(self) -> tuple[Callable[..., object], ...]:
        return tuple(self._in_transaction)

    def publish(self, *, instance=None, **payload) -> None:
        """Run the in-transaction handlers now (with ``instance``), then every after-commit handler
        with ``payload`` once the current transaction commits.

        An in-transaction handler's exception propagates: the publisher's transaction rolls back.
        A failing after-commit handler is logged and does not stop the others: the publisher's work
        is already committed, and each subscriber owns its retries (usually by queueing a Celery task).
        """
        if self._in_transaction:
            if not transaction.get_connection().in_atomic_block:
                raise RuntimeError(f"{self.name} has in-transaction handlers: publish it inside transaction.atomic()")
            for handler in self._in_transaction:
                handler(instance=instance, **payload)
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
orders_imported = DomainEvent(
    "orders_imported",
    "Historical orders were bulk-imported (no per-order events). Payload: count, member_ids_from, member_ids_to.",
)

ALL_EVENTS = (member_registered, order_recorded, refund_recorded, orders_imported)
