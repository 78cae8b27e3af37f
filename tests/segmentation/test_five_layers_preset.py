"""Seed 000's five layers read as their names promise (issue #19): 新客 are the members whose first
order was recent — a "first order within 30 days" rule tried before the score cells — and 休眠
only those who have not bought for long. Migration 0011 fixes the shipped preset, and leaves one
an operator has edited alone."""

import importlib

import pytest
from django.apps import apps as django_apps

from segmentation.models import MemberRfm, Scheme, SegmentRule
from segmentation.services import segment_recompute

from .builders import AS_OF, days_before, member, order

pytestmark = pytest.mark.django_db

MIGRATION = importlib.import_module("segmentation.migrations.0011_five_layers_new_customers_first")


def five_layers() -> Scheme:
    return Scheme.objects.get(slug="seed-000-five-layers")


def rules(scheme: Scheme) -> dict:
    return {
        rule.segment.slug: (rule.priority, rule.kind, rule.r, rule.f, rule.m, rule.value)
        for rule in SegmentRule.objects.filter(scheme=scheme).select_related("segment")
    }


@pytest.fixture
def brand(default_scheme):
    """Ten buyers: six regulars who bought in the last week (and first bought over a year ago), a
    newcomer whose first order was ten days ago, and three who last bought 40, 200 and 300 days ago."""
    people = {}
    for days in (1, 2, 3, 4, 5, 6):
        regular = member()
        order(regular, days_ago=500, amount="80.00")  # long ago: not new
        order(regular, days_ago=days, amount="60.00")
        people[f"regular-{days}"] = regular
    people["newcomer"] = member()
    order(people["newcomer"], days_ago=10, amount="35.00")
    for days in (40, 200, 300):
        people[f"last-{days}"] = member()
        order(people[f"last-{days}"], days_ago=600, amount="50.00")
        order(people[f"last-{days}"], days_ago=days, amount="50.00")
    people["never"] = member()
    return people


def placed(people) -> dict:
    return {
        key: MemberRfm.objects.select_related("segment").get(member=who).segment.slug for key, who in people.items()
    }


def test_a_member_who_first_bought_ten_days_ago_is_new_not_dormant(brand):
    # when
    segment_recompute(as_of=AS_OF, scheme=five_layers())
    # then
    slugs = placed(brand)
    assert slugs["newcomer"] == "new_customer"
    assert slugs["never"] == "no_purchase"
    assert slugs["last-300"] == "dormant"
    # nobody who bought in the last 30 days is 休眠, and only the newcomer is 新客
    assert all(slugs[key] != "dormant" for key in brand if key.startswith("regular"))
    assert [key for key, slug in slugs.items() if slug == "new_customer"] == ["newcomer"]


def test_the_preset_as_shipped_put_that_member_in_dormant(brand):
    # given: the preset as 0002 shipped it (what 0011 replaces)
    MIGRATION.restore_five_layers(django_apps, None)
    # when
    segment_recompute(as_of=AS_OF, scheme=five_layers())
    # then: among these buyers the newcomer's R scores 2 (not high), so only the catch-all holds
    assert placed(brand)["newcomer"] == "dormant"


def test_the_migration_changes_the_preset_as_shipped(default_scheme):
    # given
    MIGRATION.restore_five_layers(django_apps, None)
    assert rules(five_layers()) == MIGRATION.SHIPPED
    # when
    MIGRATION.fix_five_layers(django_apps, None)
    # then
    scheme = five_layers()
    assert rules(scheme) == MIGRATION.FIXED
    assert rules(scheme)["new_customer"] == (5, "first_order_within", "", "", "", 30)
    assert (scheme.description, scheme.description_en) == MIGRATION.FIXED_DESCRIPTION


def test_the_migration_leaves_an_edited_preset_alone(default_scheme):
    # given: the shipped preset, with one rule an operator changed and a description of their own
    MIGRATION.restore_five_layers(django_apps, None)
    scheme = five_layers()
    SegmentRule.objects.filter(scheme=scheme, segment__slug="growing").update(r="3-5", f="2-5")
    Scheme.objects.filter(pk=scheme.pk).update(description="我们自己的分层")
    edited = rules(scheme)
    # when
    MIGRATION.fix_five_layers(django_apps, None)
    # then
    assert rules(scheme) == edited
    assert five_layers().description == "我们自己的分层"


def test_the_builder_offers_first_order_within_and_orders_rules_by_priority(default_scheme):
    # the rule kind is one an operator can choose, and the new customers' rule comes before the cells
    scheme = five_layers()
    ordered = [rule.kind for rule in SegmentRule.objects.filter(scheme=scheme).order_by("priority", "id")]
    assert ordered[:3] == ["no_purchase", "first_order_within", "cell"]
    assert "first_order_within" in dict(SegmentRule.Kind.choices)


def test_the_first_order_rule_holds_whatever_the_scores(brand):
    # given: the newcomer spent a lot on their first visit (M high)
    order(brand["newcomer"], paid_at=days_before(9, hour=15), amount="2000.00")
    # when
    segment_recompute(as_of=AS_OF, scheme=five_layers())
    # then
    assert placed(brand)["newcomer"] == "new_customer"
