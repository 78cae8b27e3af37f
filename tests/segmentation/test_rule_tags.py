"""Rule tags (#19, seed 000's 客户标签体系): the nightly run tags members by behaviour — 生日月, 高客单,
周末客, favourite category — and untags those who no longer qualify; manual tags win; the rule, not
each tag, is in the audit trail; the tags reach the member list, campaigns, the 360 and the export."""

import csv
import datetime as dt
import io
import threading
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from audit.models import AuditedMemberTag
from campaigns.services.campaigns import campaign_estimate
from members.models import MemberTag, TagRule
from members.services.tags import member_tag_add
from segmentation.models import MemberCategory
from segmentation.services import rule_tags_recompute
from tests.factories import CampaignBenefitFactory, CampaignFactory, MemberFactory, OrderFactory, TagRuleFactory
from tests.workspace.builders import role_user, two_stores
from workspace.resources import EXPORT_COLUMNS

LOCAL = ZoneInfo(settings.TIME_ZONE)
NOW = dt.datetime(2026, 6, 10, 3, 0, tzinfo=LOCAL)  # a Wednesday night in June
Kind = TagRule.Kind


@pytest.fixture(autouse=True)
def no_shipped_rules(db):
    """The rules a new installation ships (``members/0028``, inactive) out of the way: each test
    defines its own."""
    TagRule.objects.all().delete()


def tagged(name: str) -> set[int]:
    return set(MemberTag.objects.filter(name=name).values_list("member_id", flat=True))


def paid(member, days_ago: float, amount: str, refunded: str = "0.00"):
    return OrderFactory(
        member=member,
        paid_at=NOW - dt.timedelta(days=days_ago),
        amount=Decimal(amount),
        refunded_amount=Decimal(refunded),
    )


@pytest.mark.django_db
def test_birthday_month_follows_the_calendar():
    TagRuleFactory(name="生日月", kind=Kind.BIRTHDAY_MONTH, average_at_least=None)
    june, july = MemberFactory(birthday=dt.date(1990, 6, 28)), MemberFactory(birthday=dt.date(1992, 7, 1))
    MemberFactory(birthday=None)
    MemberFactory(birthday=dt.date(1990, 6, 3), is_active=False)
    rule_tags_recompute(now=NOW)
    assert tagged("生日月") == {june.pk}
    counts = rule_tags_recompute(now=NOW + dt.timedelta(days=25))  # 5 July
    assert tagged("生日月") == {july.pk}
    assert (counts.added, counts.removed) == (1, 1)


@pytest.mark.django_db
def test_high_average_order_counts_net_amounts_in_the_window():
    rule = TagRuleFactory(name="高客单", average_at_least=Decimal("80.00"), min_orders=2, window_days=180)
    big = MemberFactory()
    paid(big, 3, "100.00")
    paid(big, 30, "70.00")  # average 85
    refunded = MemberFactory()
    paid(refunded, 3, "120.00", refunded="60.00")  # 60 net
    paid(refunded, 9, "90.00")  # average 75
    once = MemberFactory()
    paid(once, 2, "500.00")  # one order only
    old = MemberFactory()
    paid(old, 200, "300.00")
    paid(old, 190, "300.00")  # outside the window
    rule_tags_recompute(now=NOW)
    assert tagged("高客单") == {big.pk}
    rule.refresh_from_db()
    assert (rule.member_count, rule.computed_at) == (1, NOW)


@pytest.mark.django_db
def test_weekend_shoppers_by_the_brands_local_weekday():
    TagRuleFactory(name="周末客", kind=Kind.WEEKEND, average_at_least=None, weekend_share_at_least=60, min_orders=3)
    saturday_late = dt.datetime(2026, 6, 6, 23, 30, tzinfo=LOCAL)  # 15:30 UTC, Saturday both ways
    sunday_early = dt.datetime(2026, 6, 7, 1, 0, tzinfo=LOCAL)  # Saturday 17:00 UTC
    monday_early = dt.datetime(2026, 6, 8, 0, 30, tzinfo=LOCAL)  # Sunday 16:30 UTC: a weekday here
    weekender, weekday = MemberFactory(), MemberFactory()
    for moment in (saturday_late, sunday_early, monday_early):
        OrderFactory(member=weekender, paid_at=moment)
    for moment in (monday_early, monday_early + dt.timedelta(days=1), saturday_late):
        OrderFactory(member=weekday, paid_at=moment)
    rule_tags_recompute(now=NOW)
    assert tagged("周末客") == {weekender.pk}  # 2 of 3 at weekends (67%) against 1 of 3


@pytest.mark.django_db
def test_favourite_category_tags_follow_the_nightly_preference():
    TagRuleFactory(name="偏好·", kind=Kind.FAVOURITE_CATEGORY, average_at_least=None)
    tea, coffee = MemberFactory(), MemberFactory()
    for member, rank, category in ((tea, 1, "果茶"), (tea, 2, "咖啡"), (coffee, 1, "咖啡|拿铁")):
        MemberCategory.objects.create(
            member=member, rank=rank, category=category, net_amount=Decimal("10.00"), computed_at=NOW
        )
    rule_tags_recompute(now=NOW)
    assert set(MemberTag.objects.values_list("member_id", "name")) == {
        (tea.pk, "偏好·果茶"),
        (coffee.pk, "偏好·咖啡 拿铁"),
    }
    # the member's taste changes: the old tag goes, the new one comes
    MemberCategory.objects.filter(member=tea, rank=1).update(category="奶茶")
    rule_tags_recompute(now=NOW)
    assert set(MemberTag.objects.filter(member=tea).values_list("name", flat=True)) == {"偏好·奶茶"}


@pytest.mark.django_db
def test_manual_tags_win_and_a_rule_tag_staff_add_becomes_theirs():
    TagRuleFactory(name="高客单", average_at_least=Decimal("80.00"), min_orders=1)
    clerk = role_user("staff", two_stores().ours, username="clerk")
    by_hand, by_rule = MemberFactory(), MemberFactory()
    member_tag_add(member=by_hand, name="高客单", actor=clerk)  # staff's, and the member does not qualify
    paid(by_rule, 1, "100.00")
    rule_tags_recompute(now=NOW)
    assert MemberTag.objects.get(member=by_hand).rule_id is None  # left alone
    assert MemberTag.objects.get(member=by_rule).rule_id is not None
    member_tag_add(member=by_rule, name="高客单", actor=clerk)  # staff confirm it
    paid(by_rule, 0.5, "1.00", refunded="0.00")
    OrderFactory._meta.model.objects.filter(member=by_rule).update(refunded_amount=0, amount=Decimal("5.00"))
    rule_tags_recompute(now=NOW)  # no longer qualifies, but the tag is staff's now
    tag = MemberTag.objects.get(member=by_rule)
    assert (tag.rule_id, tag.added_by) == (None, clerk)


@pytest.mark.django_db
def test_a_switched_off_or_deleted_rule_takes_its_tags_away_and_only_its_own():
    rule = TagRuleFactory(name="高客单", average_at_least=Decimal("10.00"), min_orders=1)
    member = MemberFactory()
    paid(member, 1, "50.00")
    member_tag_add(member=member, name="企业客户")
    rule_tags_recompute(now=NOW)
    assert set(MemberTag.objects.values_list("name", flat=True)) == {"高客单", "企业客户"}
    TagRule.objects.filter(pk=rule.pk).update(is_active=False)
    counts = rule_tags_recompute(now=NOW)
    assert (counts.rules, counts.removed) == (0, 1)
    assert set(MemberTag.objects.values_list("name", flat=True)) == {"企业客户"}
    TagRule.objects.filter(pk=rule.pk).update(is_active=True)
    rule_tags_recompute(now=NOW)
    rule.delete()
    assert set(MemberTag.objects.values_list("name", flat=True)) == {"企业客户"}


@pytest.mark.django_db
def test_a_second_run_changes_nothing_and_queries_do_not_grow_with_members():
    TagRuleFactory(name="高客单", average_at_least=Decimal("10.00"), min_orders=1)
    TagRuleFactory(name="生日月", kind=Kind.BIRTHDAY_MONTH, average_at_least=None)

    def run() -> tuple:
        with CaptureQueriesContext(connection) as queries:
            counts = rule_tags_recompute(now=NOW)
        return counts, len(queries)

    for _ in range(3):
        paid(MemberFactory(birthday=dt.date(1990, 6, 1)), 1, "20.00")
    first, few = run()
    for _ in range(30):
        paid(MemberFactory(birthday=dt.date(1990, 6, 1)), 1, "20.00")
    second, many = run()
    again, _queries = run()
    assert (first.added, second.added, again.added, again.removed) == (6, 60, 0, 0)
    assert few == many


@pytest.mark.django_db
def test_rule_tags_are_not_in_the_audit_trail_but_the_rule_is():
    TagRuleFactory(name="高客单", average_at_least=Decimal("10.00"), min_orders=1)
    member = MemberFactory()
    paid(member, 1, "50.00")
    rule_tags_recompute(now=NOW)
    member_tag_add(member=member, name="企业客户")
    events = list(AuditedMemberTag.pgh_event_model.objects.values_list("pgh_label", "name"))
    assert events == [("created", "企业客户")]
    from audit.models import AuditedTagRule

    assert AuditedTagRule.pgh_event_model.objects.filter(pgh_label="created", name="高客单").exists()


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_tag_once():
    TagRuleFactory(name="高客单", average_at_least=Decimal("10.00"), min_orders=1)
    members = [MemberFactory() for _ in range(5)]
    for member in members:
        paid(member, 1, "50.00")
    barrier, results, errors = threading.Barrier(2), [], []

    def run():
        try:
            barrier.wait(10)
            results.append(rule_tags_recompute(now=NOW))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert sorted(r.added for r in results) == [0, 5]
    assert tagged("高客单") == {m.pk for m in members}


# --- where the tags are used -------------------------------------------------------------------------


@pytest.mark.django_db
def test_rule_tags_filter_the_member_list_and_show_as_auto_in_the_360(client):
    stores = two_stores()
    TagRuleFactory(name="高客单", average_at_least=Decimal("80.00"), min_orders=1)
    big = stores.our_member
    paid(big, 1, "100.00")
    small = MemberFactory(home_store=stores.ours)
    paid(small, 1, "20.00")
    rule_tags_recompute(now=NOW)
    operator = role_user("operator", username="op")
    client.force_login(operator)
    listed = client.get(reverse("admin:members_member_changelist"), {"tag": "高客单"})
    assert list(listed.context["cl"].result_list) == [big]
    with translation.override("zh-hans"):
        page = client.get(
            reverse("admin:members_member_change", args=[big.pk]), HTTP_ACCEPT_LANGUAGE="zh-hans", follow=True
        ).content.decode()
    assert "高客单" in page and "rule-tag" in page and "自动" in page


@pytest.mark.django_db
def test_a_campaign_narrowed_by_a_rule_tag_reaches_the_members_the_rule_tagged(segments, place):
    TagRuleFactory(name="高客单", average_at_least=Decimal("80.00"), min_orders=1)
    big, small = MemberFactory(), MemberFactory()
    paid(big, 1, "100.00")
    paid(small, 1, "20.00")
    for member in (big, small):
        place(member, "champions")
    rule_tags_recompute(now=NOW)
    campaign = CampaignFactory(member_tags="高客单")
    campaign.segments.set([segments["champions"]])
    CampaignBenefitFactory(campaign=campaign)
    assert campaign_estimate(campaign=campaign).reach == 1


@pytest.mark.django_db
def test_the_member_export_carries_every_tag(client):
    stores = two_stores()
    TagRuleFactory(name="高客单", average_at_least=Decimal("80.00"), min_orders=1)
    member = stores.our_member
    paid(member, 1, "100.00")
    rule_tags_recompute(now=NOW)
    member_tag_add(member=member, name="企业客户")
    client.force_login(role_user("operator", username="op"))
    data = {"format": "0", "resource": "0"} | {f"memberresource_{name}": "on" for name in EXPORT_COLUMNS}
    with CaptureQueriesContext(connection) as few:
        response = client.post(reverse("admin:members_member_export"), data)
    assert response.status_code == 200
    rows = {row["mobile"]: row for row in csv.DictReader(io.StringIO(response.content.decode("utf-8-sig")))}
    assert rows[member.mobile]["tags"] == "企业客户|高客单"
    for _ in range(10):
        member_tag_add(member=MemberFactory(home_store=stores.ours), name="企业客户")
    with CaptureQueriesContext(connection) as many:
        client.post(reverse("admin:members_member_export"), data)
    assert len(many) == len(few)


@pytest.mark.django_db
def test_a_new_installation_ships_four_rules_switched_off():
    from importlib import import_module

    from django.apps import apps

    import_module("members.migrations.0028_default_tag_rules").install(apps, None)
    shipped = {rule.name: (rule.kind, rule.is_active) for rule in TagRule.objects.all()}
    assert shipped == {
        "生日月": (Kind.BIRTHDAY_MONTH, False),
        "高客单": (Kind.HIGH_AVERAGE_ORDER, False),
        "周末客": (Kind.WEEKEND, False),
        "偏好·": (Kind.FAVOURITE_CATEGORY, False),
    }
    assert rule_tags_recompute(now=NOW).rules == 0


@pytest.mark.django_db
def test_an_analyst_export_leaves_out_the_birthday_month_tag(client):
    stores = two_stores()
    TagRuleFactory(name="生日月", kind=Kind.BIRTHDAY_MONTH, average_at_least=None)
    member = stores.our_member
    member.birthday = timezone.localdate().replace(year=1990, day=1)
    member.save(update_fields=["birthday"])
    rule_tags_recompute()
    member_tag_add(member=member, name="企业客户")
    data = {"format": "0", "resource": "0"} | {f"memberresource_{name}": "on" for name in EXPORT_COLUMNS}
    shown = {}
    for role in ("operator", "analyst"):
        client.force_login(role_user(role, username=role))
        response = client.post(reverse("admin:members_member_export"), data)
        rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
        shown[role] = "+".join(row["tags"] for row in rows if row["tags"])
    assert shown == {"operator": "企业客户|生日月", "analyst": "企业客户"}
