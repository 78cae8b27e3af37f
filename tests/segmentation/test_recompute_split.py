"""A run split across workers (a chord of member-id ranges) gives exactly the one-piece run's numbers."""

import pytest

from segmentation.models import MemberRfm, RfmRun, RfmStagingRow, Scheme
from segmentation.services import segment_recompute
from segmentation.tasks import segment_recompute_task

from .builders import AS_OF, RFM_FIELDS, mixed_data

pytestmark = pytest.mark.django_db


def results() -> list:
    return list(MemberRfm.objects.order_by("member_id").values_list("member_id", "as_of", *RFM_FIELDS))


@pytest.mark.parametrize("scheme_slug", ["rfm-default", "seed-002-four-quadrants"])
def test_a_run_split_across_workers_gives_the_same_numbers(default_scheme, scheme_slug):
    # given
    mixed_data(seed=11)
    scheme = Scheme.objects.get(slug=scheme_slug)
    Scheme.objects.update(is_active=False)
    Scheme.objects.filter(pk=scheme.pk).update(is_active=True)
    single = segment_recompute(as_of=AS_OF)
    expected = results()
    # when: the task splits the run into 3 member-id ranges (a chord, run eagerly in tests)
    run_id = segment_recompute_task.delay(as_of=AS_OF.isoformat(), chunks=3).get()
    # then
    split = RfmRun.objects.get(pk=run_id)
    assert (split.status, split.chunks, split.is_current) == (RfmRun.Status.SUCCEEDED, 3, True)
    assert results() == expected
    assert len(expected) == 40
    assert (split.segment_stats, split.cut_points) == (single.segment_stats, single.cut_points)
    assert not RfmStagingRow.objects.exists()
