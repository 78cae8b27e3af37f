"""Fixtures of the segmentation tests (``default_scheme`` is the root ``conftest.py``'s)."""

import pytest

from segmentation.models import Scheme


@pytest.fixture
def quintile_scheme(default_scheme) -> Scheme:
    """Seed 002's four quadrants on R×M (quintile scores, high = 3), made active."""
    scheme = Scheme.objects.get(slug="seed-002-four-quadrants")
    Scheme.objects.update(is_active=False)
    Scheme.objects.filter(pk=scheme.pk).update(is_active=True)
    scheme.refresh_from_db()
    return scheme


@pytest.fixture
def published():
    """Every ``segment_changed`` payload published while the test runs."""
    from segmentation.events import segment_changed

    seen = []

    def record(**payload):
        seen.append(payload)

    segment_changed.subscribe(record)
    yield seen
    segment_changed.unsubscribe(record)


@pytest.fixture(autouse=True)
def english():
    """Messages in English whatever an earlier request activated."""
    from django.utils import translation

    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def only_segmentation_subscribers():
    """Domain events reach only segmentation's own subscribers here: other apps' handlers are
    tested by their own suites (and a failing one would poison the test's transaction)."""
    from members.events import ALL_EVENTS
    from segmentation.events import segment_changed

    events = (*ALL_EVENTS, segment_changed)
    saved = {event: event.handlers for event in events}
    for event, handlers in saved.items():
        for handler in handlers:
            if not handler.__module__.startswith("segmentation"):
                event.unsubscribe(handler)
    yield
    for event, handlers in saved.items():
        for handler in event.handlers:
            event.unsubscribe(handler)
        for handler in handlers:
            event.subscribe(handler)
