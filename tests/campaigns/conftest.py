"""Fixtures of the campaigns tests: members put in segments of the default segmentation scheme
(``default_scheme``, from the root ``conftest.py``).

``place`` writes a member's ``MemberRfm`` row directly (as a recompute would leave it), so a test
says "this member is a champion" in one line without building a year of orders.
"""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connections
from django.utils import timezone

from segmentation.models import MemberRfm, RfmRun, Segment


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


def run_in_threads(count: int, work) -> list:
    """Run ``work(index)`` in ``count`` threads released together; returns results or exceptions."""
    import threading

    barrier = threading.Barrier(count)
    results: list = [None] * count

    def target(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = work(index)
        except Exception as exc:
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def days_ago(days: int) -> dt.datetime:
    return timezone.now() - dt.timedelta(days=days)
