"""Where operators see the CLV: the admin's "fit now" with its progress, the run page with the
parameters and the holdout check, the member 360 (P(alive), expected value, one line of
explanation) and the dashboard (CLV by segment, the P(alive) distribution, the calibration chart)."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

import segmentation.clv_tasks  # noqa: F401 - registers the task in this process, as the worker does
from segmentation.models import ClvRun, MemberClv
from segmentation.services import segment_recompute
from segmentation.services.clv import clv_fit
from tests.factories import StoreFactory
from tests.workspace.builders import role_user

from .clv_simulation import Truth, simulate

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(default_scheme):
    """300 simulated members whose histories end today (the admin fits as of today)."""
    return simulate(members=300, as_of=timezone.localdate(), truth=Truth(), seed=5)


def test_an_operator_fits_from_the_admin_and_follows_the_progress(client, history, django_capture_on_commit_callbacks):
    # given
    client.force_login(role_user("operator"))
    page = client.get(reverse("admin:segmentation_clvrun_changelist"))
    assert page.status_code == 200 and b'id="clv-fit-form"' in page.content

    # when: "fit now" with a horizon of 180 days at 5 % a year (the task runs as the commit ends)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:segmentation_clvrun_fit"), {"as_of": "", "horizon_days": "180", "discount_rate": "0.05"}
        )

    # then: the run's page, where the progress is shown; the run finished with those settings
    run = ClvRun.objects.get()
    assert response.status_code == 302 and response.url == reverse("admin:segmentation_clvrun_change", args=[run.pk])
    assert (run.status, run.phase, run.horizon_days, str(run.discount_rate)) == ("succeeded", "done", 180, "0.0500")
    assert MemberClv.objects.count() == 300
    detail = client.get(response.url).content.decode()
    assert 'data-status="succeeded"' in detail and "100%" in detail
    assert "BG/NBD: <code>r</code> = " in detail and "Gamma-Gamma: <code>p</code> = " in detail
    progress = client.get(reverse("admin:segmentation_clvrun_progress", args=[run.pk])).content.decode()
    assert 'id="clv-progress"' in progress and "hx-get" not in progress  # finished: no more polling


def test_a_running_run_polls_its_progress(client, default_scheme):
    # given a run in its fitting step
    run = ClvRun.objects.create(as_of=dt.date(2025, 6, 30), started_at=timezone.now(), phase=ClvRun.Phase.FITTING)
    client.force_login(role_user("operator"))
    # when
    fragment = client.get(reverse("admin:segmentation_clvrun_progress", args=[run.pk])).content.decode()
    # then
    assert 'hx-trigger="every 2s"' in fragment and "(2/6)" in fragment and "33%" in fragment


def test_staff_cannot_start_a_run(client, default_scheme):
    client.force_login(role_user("staff", StoreFactory()))
    assert client.post(reverse("admin:segmentation_clvrun_fit"), {}).status_code == 403
    assert not ClvRun.objects.exists()


def test_the_360_and_the_dashboard_show_the_scores(client, history):
    # given a CLV run and an RFM run
    clv_fit()
    segment_recompute()
    client.force_login(role_user("operator"))
    score = MemberClv.objects.order_by("-frequency", "member_id").first()

    # when
    page = client.get(reverse("admin:members_member_change", args=[score.member_id])).content.decode()

    # then: P(alive), the expected value and the sentence that explains them
    assert f'id="member-p-alive">{round(score.p_alive * 100)}%<' in page
    assert 'id="member-clv-value">¥' in page
    assert f"Came back {score.frequency} times" in page

    # when
    dashboard = client.get(reverse("admin:index")).content.decode()

    # then: CLV by segment, the P(alive) distribution and the calibration chart
    assert 'id="clv-by-segment"' in dashboard and 'id="chart-p-alive"' in dashboard
    assert 'id="chart-calibration"' in dashboard


def test_the_360_of_a_member_without_scores_says_so(client, history):
    # given: no CLV run yet
    client.force_login(role_user("operator"))
    person = history["people"][0]
    # when
    page = client.get(reverse("admin:members_member_change", args=[person.pk])).content.decode()
    # then
    assert 'id="member-clv-explanation"' in page and "No lifetime value yet" in page
