"""The admin pages an operator uses: schemes, runs, member results, transitions, the migration
matrix, previews and "recompute now"."""

from unittest import mock

import pytest
from django.urls import reverse
from django.utils import translation

from segmentation.models import MemberRfm, Scheme, Segment
from segmentation.services import segment_recompute

from .builders import AS_OF, member, order

pytestmark = pytest.mark.django_db


@pytest.fixture
def results(default_scheme):
    buyers = [member(mobile=f"1390000000{index}") for index in range(4)]
    for index, who in enumerate(buyers):
        order(who, days_ago=index * 40, amount="300.00")
    first = segment_recompute(as_of=AS_OF)
    order(buyers[3], days_ago=1, amount="600.00")
    second = segment_recompute(as_of=AS_OF)
    return {"buyers": buyers, "first": first, "second": second}


def test_the_scheme_page_edits_segments_and_rules_inline(staff_client, default_scheme):
    # when
    response = staff_client.get(reverse("admin:segmentation_scheme_change", args=[default_scheme.pk]))
    # then
    assert response.status_code == 200
    body = response.content.decode()
    assert "重要挽留用户" in body and "win_back" in body
    assert 'name="rules-0-priority"' in body
    assert reverse("admin:segmentation_scheme_preview", args=[default_scheme.pk]) in body


def test_the_preview_page_shows_sizes(staff_client, results):
    scheme = Scheme.objects.get(slug="seed-002-four-quadrants")
    response = staff_client.get(reverse("admin:segmentation_scheme_preview", args=[scheme.pk]))
    assert response.status_code == 200
    assert "Keep close (high R, high M)" in response.content.decode()  # segment names, in the page's language


def test_runs_are_read_only_with_their_segment_table(staff_client, results):
    run = results["second"]
    listing = staff_client.get(reverse("admin:segmentation_rfmrun_changelist"))
    page = staff_client.get(reverse("admin:segmentation_rfmrun_change", args=[run.pk]))
    assert listing.status_code == page.status_code == 200
    assert "Big spenders to grow" in page.content.decode()  # segment names, not slugs
    assert staff_client.get(reverse("admin:segmentation_rfmrun_add")).status_code == 403


def test_recompute_now_queues_the_task(staff_client, default_scheme, django_capture_on_commit_callbacks):
    with (
        mock.patch("segmentation.tasks.segment_recompute_task.delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = staff_client.post(reverse("admin:segmentation_rfmrun_recompute"))
    assert response.status_code == 302
    delay.assert_called_once_with()


def test_the_migration_matrix_page(staff_client, results):
    url = reverse("admin:segmentation_rfmrun_matrix")
    response = staff_client.get(url, {"from_run": results["first"].pk, "to_run": results["second"].pk})
    body = response.content.decode()
    assert response.status_code == 200
    assert 'id="migration-matrix"' in body and ">Lost<" in body


def test_member_results_list_filters_searches_and_stays_cheap(staff_client, results, django_assert_max_num_queries):
    url = reverse("admin:segmentation_memberrfm_changelist")
    lost = Segment.objects.get(scheme__slug="rfm-default", slug="lost")
    with django_assert_max_num_queries(12):
        response = staff_client.get(url, {"segment": lost.pk})
    assert response.status_code == 200
    assert response.context["cl"].result_count == MemberRfm.objects.filter(segment=lost).count() == 2
    found = staff_client.get(url, {"q": "+86 139-0000-0001"})
    assert [row.member.mobile for row in found.context["cl"].result_list] == ["13900000001"]


def test_member_result_page_explains_the_segment(staff_client, results):
    who = results["buyers"][1]
    response = staff_client.get(reverse("admin:segmentation_memberrfm_change", args=[who.pk]))
    body = response.content.decode()
    assert response.status_code == 200
    assert "Matched rule #80 (R=L F=L M=L) → Lost" in body


def test_transitions_list(staff_client, results):
    response = staff_client.get(reverse("admin:segmentation_segmenttransition_changelist"))
    assert response.status_code == 200
    assert "139****0003" in response.content.decode()  # members are named with their mobile masked


def test_activate_action(staff_client, default_scheme):
    other = Scheme.objects.get(slug="seed-002-four-quadrants")
    response = staff_client.post(
        reverse("admin:segmentation_scheme_changelist"),
        {"action": "activate", "_selected_action": [other.pk]},
    )
    assert response.status_code == 302
    assert Scheme.objects.get(is_active=True) == other


def test_the_admin_speaks_chinese(staff_client, results):
    with translation.override("zh-hans"):
        url = reverse("admin:segmentation_rfmrun_changelist")
    response = staff_client.get(url)
    body = response.content.decode()
    assert "迁移矩阵" in body
    assert "Recompute now" not in body and "Migration matrix" not in body
