"""Fixtures of the segmentation tests."""

import pytest
from django.apps import apps as django_apps

from segmentation.models import Scheme


def _ensure_default_schemes() -> Scheme:
    """The data migration's schemes (a transactional test elsewhere may have flushed them)."""
    if not Scheme.objects.filter(slug="rfm-default").exists():
        from importlib import import_module

        migration = import_module("segmentation.migrations.0002_default_schemes")
        migration.create_schemes(django_apps, None)
    scheme = Scheme.objects.get(slug="rfm-default")
    if not scheme.is_active:
        Scheme.objects.update(is_active=False)
        Scheme.objects.filter(pk=scheme.pk).update(is_active=True)
        scheme.refresh_from_db()
    return scheme


@pytest.fixture
def default_scheme(db) -> Scheme:
    return _ensure_default_schemes()


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
