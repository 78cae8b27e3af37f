"""The scheme builder: the change form's live preview of segment sizes on current data (the unsaved
form is measured and rolled back), how many members would change segment, activation after a
confirmation; the runs' labels, figures and segment names on the runs' and matrix pages."""

from unittest import mock

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone, translation

from segmentation.models import MemberRfm, RfmRun, Scheme, Segment
from segmentation.selectors import scheme_preview, scheme_preview_changes
from segmentation.services import segment_recompute

from .builders import member
from .builders import order as order_on

pytestmark = pytest.mark.django_db

#: The builder measures on today's data, so the runs here are as of today.
TODAY = timezone.localdate()
AS_OF = TODAY


def order(who, *, days_ago: int, amount: str):
    return order_on(who, days_ago=days_ago, amount=amount, as_of=TODAY)


@pytest.fixture
def computed(default_scheme):
    """Six members after a run of the default scheme: recent and old buyers, big and small, one who never bought."""
    people = {
        "champion": member(mobile="13900000001"),
        "loyal_lapsed": member(mobile="13900000002"),
        "new": member(mobile="13900000003"),
        "lost": member(mobile="13900000004"),
        "never": member(mobile="13900000005"),
        "recent_small": member(mobile="13900000006"),
    }
    for days in (2, 10, 20, 25):
        order(people["champion"], days_ago=days, amount="300.00")
    for days in (100, 120, 140):
        order(people["loyal_lapsed"], days_ago=days, amount="300.00")
    order(people["new"], days_ago=3, amount="50.00")
    order(people["lost"], days_ago=300, amount="20.00")
    order(people["recent_small"], days_ago=40, amount="40.00")
    run = segment_recompute(as_of=AS_OF)
    return {"people": people, "run": run, "scheme": default_scheme}


def change_form_data(scheme: Scheme, **overrides) -> dict:
    """The scheme's change form as the browser would post it, unchanged unless ``overrides``."""
    data = {
        "name": scheme.name,
        "name_en": scheme.name_en,
        "slug": scheme.slug,
        "description": scheme.description,
        "description_en": scheme.description_en,
        "mode": scheme.mode,
        "window_days": scheme.window_days,
        "r_max_days": scheme.r_max_days,
        "f_min": scheme.f_min,
        "m_min": str(scheme.m_min),
        "high_score": scheme.high_score,
    }
    segments = list(scheme.segments.order_by("ordering", "id"))
    data |= {
        "segments-TOTAL_FORMS": len(segments),
        "segments-INITIAL_FORMS": len(segments),
        "segments-MIN_NUM_FORMS": 0,
        "segments-MAX_NUM_FORMS": 1000,
    }
    for index, segment in enumerate(segments):
        prefix = f"segments-{index}-"
        data |= {
            prefix + "id": segment.pk,
            prefix + "scheme": scheme.pk,
            prefix + "ordering": segment.ordering,
            prefix + "slug": segment.slug,
            prefix + "name_zh": segment.name_zh,
            prefix + "name_en": segment.name_en,
            prefix + "colour": segment.colour,
            prefix + "strategy": segment.strategy,
            prefix + "strategy_en": segment.strategy_en,
        }
    rules = list(scheme.rules.order_by("priority", "id"))
    data |= {
        "rules-TOTAL_FORMS": len(rules),
        "rules-INITIAL_FORMS": len(rules),
        "rules-MIN_NUM_FORMS": 0,
        "rules-MAX_NUM_FORMS": 1000,
    }
    for index, rule in enumerate(rules):
        prefix = f"rules-{index}-"
        data |= {
            prefix + "id": rule.pk,
            prefix + "scheme": scheme.pk,
            prefix + "priority": rule.priority,
            prefix + "kind": rule.kind,
            prefix + "r": rule.r,
            prefix + "f": rule.f,
            prefix + "m": rule.m,
            prefix + "value": rule.value or "",
            prefix + "segment": rule.segment_id,
        }
    return data | overrides


def live_url(scheme) -> str:
    return reverse("admin:segmentation_scheme_live_preview", args=[scheme.pk])


def sizes(response) -> dict[str, int]:
    """slug → members, from the panel's context."""
    return {segment["slug"]: segment["count"] for segment in response.context["preview"]["segments"]}


# --- the selector ------------------------------------------------------------------------------


def test_the_preview_counts_agree_with_the_plain_preview_and_no_one_changes_for_the_current_scheme(computed):
    scheme = computed["scheme"]
    # when
    preview = scheme_preview_changes(scheme=scheme, as_of=AS_OF)
    # then: the sizes are scheme_preview's; everyone is where the run put them
    assert {s["slug"]: s["count"] for s in preview["segments"]} == scheme_preview(scheme=scheme, as_of=AS_OF)["sizes"]
    assert preview["members"] == 6
    assert preview["changing"] == 0
    assert preview["moves"] == []
    current = {s["slug"]: s["current"] for s in preview["segments"]}
    assert current["champions"] == 1 and current["no_purchase"] == 1


def test_another_scheme_counts_the_members_who_would_change_segment_by_slug(computed):
    # given: the five layers share only "no_purchase" with the default scheme
    other = Scheme.objects.get(slug="seed-000-five-layers")
    # when
    preview = scheme_preview_changes(scheme=other, as_of=AS_OF)
    # then: everyone but the member who never bought changes segment
    assert preview["changing"] == 5
    assert preview["changing_share"] == pytest.approx(5 / 6)
    assert sum(move["count"] for move in preview["moves"]) == 5
    with translation.override("zh-hans"):
        named = scheme_preview_changes(scheme=other, as_of=AS_OF)
    assert {s["name"] for s in named["segments"]} >= {"未消费会员"}


def test_the_preview_reads_a_bounded_number_of_queries(computed, django_assert_max_num_queries):
    # given: more members and orders do not add queries
    for index in range(20):
        order(member(mobile=f"1370000{index:04d}"), days_ago=index * 7, amount="120.00")
    # then
    with django_assert_max_num_queries(4):
        scheme_preview_changes(scheme=computed["scheme"], as_of=AS_OF)


# --- the builder's live preview ----------------------------------------------------------------


def test_the_change_form_carries_the_live_preview_panel_and_the_activate_button(staff_client, computed):
    other = Scheme.objects.get(slug="seed-000-five-layers")
    # when
    page = staff_client.get(reverse("admin:segmentation_scheme_change", args=[other.pk]))
    # then
    body = page.content.decode()
    assert 'id="scheme-live-preview"' in body
    assert f'hx-post="{live_url(other)}"' in body
    assert reverse("admin:segmentation_scheme_activate", args=[other.pk]) in body


def test_the_saved_scheme_is_measured_with_names_not_slugs(staff_client, computed):
    scheme = computed["scheme"]
    # when
    with translation.override("zh-hans"):
        response = staff_client.get(live_url(scheme), HTTP_ACCEPT_LANGUAGE="zh-hans")
    # then
    body = response.content.decode()
    assert response.status_code == 200
    assert response.context["unsaved"] is False
    assert "重要价值用户" in body and ">champions<" not in body
    assert 'data-changing="0"' in body


def test_unsaved_edits_change_the_sizes_and_nothing_is_saved(staff_client, computed):
    scheme = computed["scheme"]
    before = sizes(staff_client.get(live_url(scheme)))
    logged = LogEntry.objects.count()
    # when: R is high up to 400 days (was 30), unsaved
    response = staff_client.post(live_url(scheme), change_form_data(scheme, r_max_days=400))
    # then
    after = sizes(response)
    assert response.status_code == 200
    assert response.context["unsaved"] is True
    assert after != before
    assert sum(after.values()) == sum(before.values()) == 6
    preview = response.context["preview"]
    assert preview["changing"] > 0
    assert sum(move["count"] for move in preview["moves"]) == preview["changing"]
    scheme.refresh_from_db()
    assert scheme.r_max_days == 30
    assert LogEntry.objects.count() == logged
    assert MemberRfm.objects.filter(run=computed["run"]).count() == 6


def test_moving_a_rule_to_another_segment_is_counted_as_changes(staff_client, computed):
    scheme = computed["scheme"]
    data = change_form_data(scheme)
    champions = Segment.objects.get(scheme=scheme, slug="champions")
    lost = Segment.objects.get(scheme=scheme, slug="lost")
    index = next(i for i in range(data["rules-TOTAL_FORMS"]) if data[f"rules-{i}-segment"] == champions.pk)
    # when: the champions' rule sends them to "lost"
    response = staff_client.post(live_url(scheme), {**data, f"rules-{index}-segment": lost.pk})
    # then
    after = sizes(response)
    assert after["champions"] == 0
    assert response.context["preview"]["changing"] == 1
    assert scheme.rules.get(pk=data[f"rules-{index}-id"]).segment == champions


def test_an_invalid_form_says_so_and_saves_nothing(staff_client, computed):
    scheme = computed["scheme"]
    # when
    response = staff_client.post(live_url(scheme), change_form_data(scheme, window_days=0))
    # then
    assert response.status_code == 200
    assert response.context["invalid"] is True
    assert "The form has errors" in response.content.decode()
    scheme.refresh_from_db()
    assert scheme.window_days == 365


def test_the_live_preview_costs_the_same_whatever_the_number_of_members(
    staff_client, computed, django_assert_max_num_queries
):
    scheme = computed["scheme"]
    data = change_form_data(scheme, f_min=2)
    with django_assert_max_num_queries(120) as few:
        staff_client.post(live_url(scheme), data)
    for index in range(30):
        order(member(mobile=f"1360000{index:04d}"), days_ago=index * 5, amount="80.00")
    with django_assert_max_num_queries(120) as many:
        staff_client.post(live_url(scheme), data)
    assert len(many.captured_queries) == len(few.captured_queries)


def test_viewers_without_change_permission_see_the_saved_scheme_only(client, django_user_model, computed):
    viewer = django_user_model.objects.create_user("viewer", password="pw-viewer-1", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_scheme"))
    client.force_login(viewer)
    scheme = computed["scheme"]
    # when
    response = client.post(live_url(scheme), change_form_data(scheme, r_max_days=400))
    # then
    assert response.status_code == 200
    assert response.context["unsaved"] is False
    assert client.get(reverse("admin:segmentation_scheme_activate", args=[scheme.pk])).status_code == 403


# --- activation --------------------------------------------------------------------------------


def test_activation_asks_first_showing_how_many_members_would_change(
    staff_client, computed, django_capture_on_commit_callbacks
):
    other = Scheme.objects.get(slug="seed-000-five-layers")
    url = reverse("admin:segmentation_scheme_activate", args=[other.pk])
    # when
    confirm = staff_client.get(url)
    # then: nothing changed yet
    assert confirm.status_code == 200
    assert confirm.context["preview"]["changing"] == 5
    assert "5 members (83.3%) would change segment." in confirm.content.decode()
    assert Scheme.objects.get(is_active=True) == computed["scheme"]
    # when: confirmed, and recompute now
    with (
        mock.patch("segmentation.tasks.segment_recompute_task.delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        done = staff_client.post(url, {"_recompute": "1"})
    # then
    assert done.status_code == 302
    assert Scheme.objects.get(is_active=True) == other
    delay.assert_called_once_with()


def test_activating_without_recompute_queues_nothing(staff_client, computed, django_capture_on_commit_callbacks):
    other = Scheme.objects.get(slug="seed-000-five-layers")
    with (
        mock.patch("segmentation.tasks.segment_recompute_task.delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        staff_client.post(reverse("admin:segmentation_scheme_activate", args=[other.pk]), {"_activate": "1"})
    assert Scheme.objects.get(is_active=True) == other
    delay.assert_not_called()


# --- runs and the migration matrix -------------------------------------------------------------


@pytest.fixture
def two_runs(computed):
    order(computed["people"]["lost"], days_ago=1, amount="900.00")
    second = segment_recompute(as_of=AS_OF)
    return computed["run"], second


def test_the_matrix_labels_runs_apart_and_preselects_the_last_two(staff_client, two_runs):
    first, second = two_runs
    # when
    page = staff_client.get(reverse("admin:segmentation_rfmrun_matrix"))
    # then
    form = page.context["form"]
    labels = [label for _value, label in form.fields["from_run"].choices if _value]
    assert len(labels) == len(set(labels)) == 2
    assert all(f"(#{run.pk})" in " ".join(labels) for run in (first, second))
    table = page.context["table"]
    assert table is not None
    assert table["moved"] == 1 and table["members"] == 6
    body = page.content.decode()
    assert "Lost" in body and "1 of 6 members (16.7%) changed segment." in body
    assert ">lost<" not in body


def test_runs_show_people_figures_and_segment_names(staff_client, two_runs):
    _first, second = two_runs
    RfmRun.objects.filter(pk=second.pk).update(duration="0:00:00.0995")
    # when
    listing = staff_client.get(reverse("admin:segmentation_rfmrun_changelist")).content.decode()
    page = staff_client.get(reverse("admin:segmentation_rfmrun_change", args=[second.pk])).content.decode()
    # then
    assert "0.1 s" in listing and "0:00:00.0995" not in listing
    assert "Champions" in page and "16.7%" in page and "¥" in page
    assert "0:00:00" not in page


def test_the_matrix_and_runs_speak_chinese(staff_client, two_runs):
    with translation.override("zh-hans"):
        url = reverse("admin:segmentation_rfmrun_matrix")
        page = staff_client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "流失用户" in page and "计算日" in page and "换了分群" in page
