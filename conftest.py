"""Shared fixtures for the whole suite.

Rows come from the factories and builders of ``tests/factories.py``; the fixtures here are the ones
tests of several apps ask for by name: a logged-in staff client, the default segmentation scheme
the test brand's tier ladder, and members put in segments: ``place`` writes a member's
``MemberRfm`` row directly (as a recompute would leave it), so a test says "this member is a
champion" in one line without building a year of orders.
"""

from decimal import Decimal

import pytest
from celery._state import _set_task_join_will_block
from django.urls import clear_url_caches
from django.utils import timezone, translation

from segmentation.models import MemberRfm, RfmRun, Scheme, Segment
from tests.factories import install_default_scheme, tier_ladder


@pytest.fixture(autouse=True)
def _default_language(settings):
    """Every test starts in the default language: a request or command that activated another
    one (LocaleMiddleware leaves it active on the thread) must not leak into the next test."""
    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.deactivate()
    # The URL resolver keeps its reverse map per language; built while a test had changed
    # LANGUAGE_CODE, it would give later tests the wrong prefix (/en/admin/… for the default).
    clear_url_caches()


@pytest.fixture(autouse=True)
def _task_joins_allowed():
    """Celery keeps "a task is running here, so do not wait for results" in one global, not per
    thread: two threads queueing eager tasks at once (a concurrency test's orders) can leave it set,
    and a later test's ``.get()`` would be refused. Each test starts and ends with it cleared."""
    _set_task_join_will_block(False)
    yield
    _set_task_join_will_block(False)


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("operator", "operator@example.com", "pw-operator-1")
    client.force_login(user)
    return client


@pytest.fixture
def default_scheme(db) -> Scheme:
    """The data migration's default scheme (``rfm-default``), active."""
    return install_default_scheme()


@pytest.fixture
def ladder(db) -> dict:
    """The test brand's tiers: ``entry``, ``silver`` and ``gold`` (see ``tier_ladder``)."""
    return tier_ladder()


@pytest.fixture
def segments(default_scheme) -> dict[str, Segment]:
    """The default scheme's segments by slug."""
    return {segment.slug: segment for segment in default_scheme.segments.all()}


@pytest.fixture
def rfm_run(default_scheme) -> RfmRun:
    now = timezone.now()
    return RfmRun.objects.create(
        scheme=default_scheme,
        as_of=timezone.localdate(),
        status=RfmRun.Status.SUCCEEDED,
        started_at=now,
        finished_at=now,
        is_current=True,
    )


@pytest.fixture
def place(segments, rfm_run):
    """``place(member, "champions")``: put the member in a segment of the default scheme."""

    def put(member, slug: str) -> MemberRfm:
        segment = segments[slug]
        row, _created = MemberRfm.objects.update_or_create(
            member_id=member.pk,
            defaults={
                "run_id": rfm_run.pk,
                "as_of": rfm_run.as_of,
                "recency_days": None if slug == "no_purchase" else 10,
                "frequency": 0 if slug == "no_purchase" else 3,
                "monetary": Decimal("0.00") if slug == "no_purchase" else Decimal("600.00"),
                "segment_id": segment.pk,
            },
        )
        return row

    return put


@pytest.fixture
def place_many(segments, rfm_run):
    """``place_many(member_ids, "lost")``: one bulk insert."""

    def put(member_ids, slug: str) -> None:
        segment = segments[slug]
        MemberRfm.objects.bulk_create(
            [
                MemberRfm(
                    member_id=member_id,
                    run_id=rfm_run.pk,
                    as_of=rfm_run.as_of,
                    recency_days=200,
                    frequency=1,
                    monetary=Decimal("50.00"),
                    segment_id=segment.pk,
                )
                for member_id in member_ids
            ]
        )

    return put
