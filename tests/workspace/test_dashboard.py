"""The operator dashboard on the admin home (issue #17): its figures on crafted data, the filtered
member lists its numbers link to, its bounded query count, who gets it, and the recompute button."""

import datetime as dt
import re
import threading
from decimal import Decimal
from html import unescape

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from members.models import PointsEntry
from segmentation.models import MemberRfm, RfmRun, Segment
from segmentation.services import segment_recompute
from segmentation.services.recompute import _report_progress, recompute_progress
from tests.factories import (
    CampaignFactory,
    CampaignGrantFactory,
    MemberFactory,
    OrderFactory,
    PointsAccountFactory,
    PointsEntryFactory,
    StoreFactory,
    WalletEntryFactory,
    WalletFactory,
    install_default_scheme,
)
from workspace.admin.dashboard import run_labels
from workspace.dashboard import dashboard_data, dashboard_kpis, dashboard_period, segment_distribution

pytestmark = pytest.mark.django_db

INDEX = "admin:index"
CHANGELIST = "admin:members_member_changelist"


def days_ago(days: float) -> dt.datetime:
    return timezone.now() - dt.timedelta(days=days)


def kpi(kpis, key):
    return next(item for item in kpis if item.key == key)


def listed(client, url: str) -> set:
    response = client.get(url)
    assert response.status_code == 200
    assert "e=1" not in response.get("Location", "")
    return set(response.context["cl"].result_list)


def links(html: str, css_class: str) -> list[str]:
    return [unescape(href) for href in re.findall(rf'class="[^"]*{css_class}[^"]*" [^>]*href="([^"]+)"', html)]


# --- the figures ------------------------------------------------------------------------------


def test_kpis_against_the_previous_period():
    # given: the last 30 days and the 30 before
    store = StoreFactory()
    old = [MemberFactory(home_store=store, registered_at=days_ago(400)) for _ in range(2)]
    MemberFactory(home_store=store, registered_at=days_ago(45))  # new in the previous period
    a, d = (MemberFactory(home_store=store, registered_at=days_ago(days)) for days in (10, 20))  # new now
    OrderFactory(member=a, paid_at=days_ago(3), amount=Decimal("100.00"))
    OrderFactory(
        member=a,
        paid_at=days_ago(5),
        amount=Decimal("50.00"),
        refunded_amount=Decimal("20.00"),
        status="partially_refunded",
    )
    OrderFactory(member=d, paid_at=days_ago(8), amount=Decimal("40.00"))
    OrderFactory(  # refunded in full: counts nowhere
        member=old[0],
        paid_at=days_ago(2),
        amount=Decimal("200.00"),
        refunded_amount=Decimal("200.00"),
        status="refunded",
    )
    OrderFactory(member=old[1], paid_at=days_ago(40), amount=Decimal("80.00"))
    OrderFactory(member=old[1], paid_at=days_ago(70), amount=Decimal("999.00"))  # before both periods
    wallet = WalletFactory(member=a, principal=Decimal("300.00"), bonus=Decimal("50.00"))
    WalletEntryFactory(
        wallet=wallet,
        principal_delta=Decimal("100.00"),
        bonus_delta=Decimal("10.00"),
        principal_after=Decimal("300.00"),
        bonus_after=Decimal("50.00"),
    )
    PointsAccountFactory(member=a, balance=500)
    PointsAccountFactory(member=d, balance=70)
    before = PointsEntryFactory(member=a, points=200, balance_after=200)
    PointsEntry.objects.filter(pk=before.pk).update(created_at=days_ago(40))
    PointsEntryFactory(member=a, points=300, balance_after=500)
    # when
    kpis = dashboard_kpis(period=dashboard_period(days=30))
    # then
    members = kpi(kpis, "members")
    assert (members.value, members.previous, members.extra["new"]) == (5, 3, 2)
    assert (kpi(kpis, "new_members").value, kpi(kpis, "new_members").previous) == (2, 1)
    assert (kpi(kpis, "active").value, kpi(kpis, "active").previous) == (2, 1)
    assert kpi(kpis, "repurchase_rate").value == Decimal("0.5000")
    assert kpi(kpis, "repurchase_rate").previous == Decimal("0.0000")
    revenue = kpi(kpis, "revenue")
    assert (revenue.value, revenue.previous) == (Decimal("170.00"), Decimal("80.00"))
    assert revenue.change == Decimal("1.1250")
    assert revenue.rising is True
    aov = kpi(kpis, "average_order_value")
    assert (aov.value, aov.previous, aov.extra["orders"]) == (Decimal("56.67"), Decimal("80.00"), 3)
    assert aov.rising is False
    stored = kpi(kpis, "stored_value")
    assert (stored.value, stored.previous) == (Decimal("350.00"), Decimal("240.00"))
    assert (stored.extra["principal"], stored.extra["bonus"]) == (Decimal("300.00"), Decimal("50.00"))
    points = kpi(kpis, "points")
    assert (points.value, points.previous) == (570, 270)


@pytest.fixture
def two_runs():
    """Four members and two runs of the default scheme (thresholds: R ≤ 30, F ≥ 3, M ≥ ¥500), ten
    days apart: one becomes a champion (promising before), one new buyer (no purchase before)."""
    install_default_scheme()
    store = StoreFactory()
    champion, promising, lost, never = (MemberFactory(home_store=store) for _ in range(4))
    for days in (5, 10, 20):
        OrderFactory(member=champion, paid_at=days_ago(days), amount=Decimal("200.00"))
    OrderFactory(member=promising, paid_at=days_ago(3), amount=Decimal("50.00"))
    OrderFactory(member=lost, paid_at=days_ago(200), amount=Decimal("30.00"))
    first = segment_recompute(as_of=timezone.localdate() - dt.timedelta(days=10))
    second = segment_recompute(as_of=timezone.localdate())
    return {"champion": champion, "promising": promising, "lost": lost, "never": never, "runs": (first, second)}


def segment(slug: str) -> Segment:
    return Segment.objects.get(scheme__slug="rfm-default", slug=slug)


def test_segments_matrix_history_and_distributions(two_runs):
    # when
    data = dashboard_data()
    # then: members per segment of the current run, every segment listed, in the page's language
    counts = {row["slug"]: row["count"] for row in data["segments"]["segments"]}
    assert counts["champions"] == counts["promising"] == counts["lost"] == counts["no_purchase"] == 1
    assert sum(counts.values()) == data["segments"]["total"] == 4
    assert len(counts) == Segment.objects.filter(scheme__slug="rfm-default").count()
    champions = next(row for row in data["segments"]["segments"] if row["slug"] == "champions")
    assert champions["share"] == Decimal("0.2500")
    assert champions["name"] in ("重要价值用户", "Champions")
    # the matrix between the two runs: rows from, columns to
    heat = data["matrix"]
    assert (heat["from_run"], heat["to_run"]) == two_runs["runs"]
    cells = {(cell["from"], cell["to"]): cell["count"] for row in heat["rows"] for cell in row["cells"]}
    assert cells[(segment("promising").pk, segment("champions").pk)] == 1
    assert cells[(segment("no_purchase").pk, segment("promising").pk)] == 1
    assert cells[(segment("lost").pk, segment("lost").pk)] == 1
    assert sum(cells.values()) == 4
    assert heat["moved"] == 2
    # sizes over time from the runs' stats
    history = data["history"]
    assert [run.pk for run in history["runs"]] == [run.pk for run in two_runs["runs"]]
    champions_line = next(series for series in history["series"] if series["id"] == segment("champions").pk)
    assert champions_line["counts"] == [0, 1]
    # R, F, M histograms of the current results
    r_bars = {(bar["from"], bar["to"]): bar["count"] for bar in data["distributions"]["r"]}
    assert r_bars[(0, 30)] == 2 and r_bars[(181, 365)] == 1
    f_bars = {(bar["from"], bar["to"]): bar["count"] for bar in data["distributions"]["f"]}
    assert f_bars[(0, 0)] == 1 and f_bars[(1, 1)] == 2 and f_bars[(3, 5)] == 1  # the window is a year
    m_bars = {(bar["from"], bar["to"]): bar["count"] for bar in data["distributions"]["m"]}
    assert m_bars[(Decimal("500.00"), Decimal("999.99"))] == 1


def test_no_run_yet_shows_an_empty_dashboard(client, make_user):
    client.force_login(make_user("operator"))
    response = client.get(reverse(INDEX))
    assert response.status_code == 200
    dashboard = response.context["dashboard"]
    assert dashboard["segments"] == [] and dashboard["heatmap"] is None and dashboard["distributions"] == []
    assert segment_distribution(run=None)["total"] == 0


# --- the links: every number opens the members behind it ---------------------------------------


def test_numbers_link_to_the_filtered_member_list(client, make_user, two_runs):
    # given
    client.force_login(make_user("operator"))
    html = client.get(reverse(INDEX)).content.decode()
    champion, promising = two_runs["champion"], two_runs["promising"]
    # then: a segment opens its members
    champions_url = next(url for url in links(html, "segment-link") if f"segment={segment('champions').pk}" in url)
    assert listed(client, champions_url) == {champion}
    # a heat-map cell opens the members who made that move
    moved = links(html, "heat-link")
    first, second = two_runs["runs"]
    to_champions = f"moved={first.pk}.{segment('promising').pk}.{second.pk}.{segment('champions').pk}"
    assert listed(client, next(url for url in moved if to_champions in url)) == {champion}
    to_promising = f"moved={first.pk}.{segment('no_purchase').pk}.{second.pk}.{segment('promising').pk}"
    assert listed(client, next(url for url in moved if to_promising in url)) == {promising}
    # R, F and M bars open the members in that range
    rfm = links(html, "rfm-link")
    assert listed(client, next(url for url in rfm if "rfm__recency_days_to=30" in url)) == {champion, promising}
    assert listed(client, next(url for url in rfm if "rfm__frequency_from=3&" in url)) == {champion}
    assert listed(client, next(url for url in rfm if "rfm__monetary_from=500.00" in url)) == {champion}
    # the KPI cards: active members (bought in the period), new members
    active = re.search(r'href="([^"]+)"[^>]*data-kpi="active"', html).group(1)
    assert listed(client, unescape(active)) == {champion, promising}


def test_rfm_range_filters_by_hand(client, make_user, two_runs):
    client.force_login(make_user("operator"))
    url = reverse(CHANGELIST)
    assert listed(client, f"{url}?rfm__recency_days_from=100") == {two_runs["lost"]}
    assert listed(client, f"{url}?rfm__monetary_from=40&rfm__monetary_to=60") == {two_runs["promising"]}
    assert listed(client, f"{url}?rfm__frequency_to=0") == {two_runs["never"]}
    assert listed(client, f"{url}?bought=30-2") == {two_runs["champion"]}
    assert listed(client, f"{url}?rfm__frequency_from=abc") == set()


def test_store_staff_see_only_their_members_through_the_same_filters(client, make_user, stores, two_runs):
    # given: the champion is not in the staff member's store
    client.force_login(make_user("staff", stores.ours))
    url = f"{reverse(CHANGELIST)}?segment={segment('champions').pk}"
    # then
    assert listed(client, url) == set()


# --- who gets the dashboard ---------------------------------------------------------------------


@pytest.mark.parametrize("role", ["staff", "manager"])
def test_store_staff_and_managers_keep_the_counter(client, make_user, stores, role):
    client.force_login(make_user(role, stores.ours))
    response = client.get(reverse(INDEX))
    assert response.status_code == 200
    assert "dashboard" not in response.context
    html = response.content.decode()
    assert 'id="workspace-start"' in html and 'id="dashboard"' not in html


@pytest.mark.parametrize("role", ["operator", "analyst"])
def test_operators_and_analysts_get_the_dashboard(client, make_user, role, two_runs):
    client.force_login(make_user(role))
    html = client.get(reverse(INDEX)).content.decode()
    assert 'id="dashboard"' in html and 'id="workspace-q"' in html
    assert ('id="recompute-start"' in html) is (role == "operator")


def test_staff_cannot_reach_the_recompute_endpoints(client, make_user, stores):
    client.force_login(make_user("staff", stores.ours))
    assert client.get(reverse("admin:workspace_recompute_status")).status_code == 403
    assert client.post(reverse("admin:workspace_recompute_start")).status_code == 403


# --- bounded queries ----------------------------------------------------------------------------


def build(scale: int, store) -> None:
    for index in range(scale * 20):
        member = MemberFactory(home_store=store, registered_at=days_ago(5 + index % 80))
        for order in range(index % 4):
            OrderFactory(member=member, paid_at=days_ago(1 + (index * 7 + order * 13) % 90), amount=Decimal("60.00"))
        if index % 3 == 0:
            PointsAccountFactory(member=member, balance=index)
            PointsEntryFactory(member=member, points=index + 1, balance_after=index + 1)
            WalletFactory(member=member, principal=Decimal("10.00"))


def test_the_dashboard_takes_a_bounded_number_of_queries(client, make_user):
    # given: a running campaign and two runs
    install_default_scheme()
    store = StoreFactory()
    campaign = CampaignFactory(status="running", starts_at=days_ago(5))
    client.force_login(make_user("operator"))
    counts = []
    for scale in (1, 3):
        build(scale, store)
        CampaignGrantFactory(campaign=campaign, member=MemberFactory(home_store=store))
        segment_recompute(as_of=timezone.localdate() - dt.timedelta(days=7))
        segment_recompute(as_of=timezone.localdate())
        # when
        with CaptureQueriesContext(connection) as queries:
            response = client.get(reverse(INDEX))
        assert response.status_code == 200
        assert response.context["dashboard"]["segment_total"] == MemberRfm.objects.count()
        counts.append(len(queries))
    # then: the same number with three times the data, and not many
    assert counts[0] == counts[1], counts
    assert counts[1] <= 45, counts


# --- the recompute button -----------------------------------------------------------------------


def test_the_button_runs_a_recompute_and_the_box_shows_it_finished(
    client, make_user, two_runs, django_capture_on_commit_callbacks
):
    # given
    client.force_login(make_user("operator"))
    before = RfmRun.objects.count()
    # when: pressed (Celery runs eagerly in the tests)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:workspace_recompute_start"))
    # then: a new run, and the box says so with the new figures
    assert response.status_code == 200
    assert RfmRun.objects.count() == before + 1
    newest = RfmRun.objects.order_by("-id").first()
    assert newest.status == RfmRun.Status.SUCCEEDED
    after = two_runs["runs"][1].pk
    status = client.get(reverse("admin:workspace_recompute_status"), {"after": after})
    html = status.content.decode()
    assert 'data-state="finished"' in html and 'id="recompute-figures"' in html
    assert "hx-trigger" not in html  # polling stops
    # and before a newer run exists, the box keeps polling
    waiting = client.get(reverse("admin:workspace_recompute_status"), {"after": newest.pk}).content.decode()
    assert 'data-state="queued"' in waiting and 'hx-trigger="every 1s"' in waiting


def test_analysts_may_watch_but_not_start(client, make_user, two_runs):
    client.force_login(make_user("analyst"))
    assert client.get(reverse("admin:workspace_recompute_status")).status_code == 200
    assert client.post(reverse("admin:workspace_recompute_start")).status_code == 403
    assert client.get(reverse("admin:workspace_recompute_start")).status_code == 405


def test_progress_is_seen_by_other_sessions_while_a_recompute_runs(two_runs):
    # given: a recompute's session at the "indexes" step, in its own open transaction
    reported, release = threading.Event(), threading.Event()

    def recompute_session():
        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:
                cursor.execute("BEGIN")
                cursor.execute("SELECT set_config('application_name', %s, true)", ["huiyuan-rfm:4/6:indexes"])
                reported.set()
                release.wait(10)
                cursor.execute("ROLLBACK")
        finally:
            other.close()

    thread = threading.Thread(target=recompute_session)
    thread.start()
    try:
        assert reported.wait(10)
        # when / then
        progress = recompute_progress()
        assert (progress["phase"], progress["step"], progress["steps"]) == ("indexes", 4, 6)
    finally:
        release.set()
        thread.join()


def test_a_finished_recompute_no_longer_reports_progress(two_runs):
    # given: this session ran two recomputes (the fixture) and reports a step by hand
    assert recompute_progress() is None
    _report_progress("swapping")
    assert recompute_progress()["phase"] == "swapping"
    # when: another recompute runs to its end
    segment_recompute(as_of=timezone.localdate())
    # then
    assert recompute_progress() is None


def test_runs_of_the_same_day_are_told_apart_by_their_time(two_runs):
    # given: a third run on the same day as the second
    third = segment_recompute(as_of=timezone.localdate())
    runs = [*two_runs["runs"], third]
    # when
    labels = run_labels(runs)
    # then: every label differs, the earlier day's shows its date only
    assert len(set(labels.values())) == 3
    assert labels[runs[0].pk] == runs[0].as_of.isoformat()
    assert labels[third.pk].startswith(f"{third.as_of.isoformat()} (")
