"""Member tags in scheme rules (issue #19): a rule may require a manual tag staff gave the member
(``members.MemberTag``) — in the recompute, the per-order refresh and the explanation alike."""

import pytest

from members.models import MemberTag
from segmentation.models import MemberRfm, Segment, SegmentRule
from segmentation.rules import TAG_TABLE, rule_sql
from segmentation.selectors import scheme_preview, segment_explain
from segmentation.services import member_rfm_refresh, segment_recompute

from .builders import AS_OF, ago, member, order

pytestmark = pytest.mark.django_db


@pytest.fixture
def corporate(default_scheme) -> Segment:
    """A first rule: buyers tagged 企业客户 → 企业客户."""
    segment = Segment.objects.create(scheme=default_scheme, slug="corporate", name_zh="企业客户", name_en="Corporate")
    SegmentRule.objects.create(scheme=default_scheme, segment=segment, priority=1, kind="cell", tag="企业客户")
    return segment


def slug(who) -> str:
    return MemberRfm.objects.select_related("segment").get(member=who).segment.slug


def test_a_tagged_buyer_goes_to_the_tagged_segment(corporate):
    # given: two members with the same orders, one tagged by staff
    tagged, plain = member(), member()
    for who in (tagged, plain):
        order(who, days_ago=3, amount="800.00")
    MemberTag.objects.create(member=tagged, name="企业客户")
    MemberTag.objects.create(member=plain, name="周末客")
    # when
    segment_recompute(as_of=AS_OF)
    # then
    assert (slug(tagged), slug(plain)) == ("corporate", "big_spenders")
    assert scheme_preview(scheme=corporate.scheme, as_of=AS_OF)["sizes"]["corporate"] == 1


def test_the_explanation_says_which_tag_the_rule_needs(corporate):
    tagged = member()
    order(tagged, days_ago=3)
    MemberTag.objects.create(member=tagged, name="企业客户")
    segment_recompute(as_of=AS_OF)
    # when
    explanation = segment_explain(member=tagged)
    # then
    assert explanation["matched_rule"]["segment"] == "corporate"
    assert "企业客户" in explanation["matched_rule"]["description"]


def test_the_per_order_refresh_reads_the_tags(corporate):
    who = member()
    order(who, paid_at=ago(100))
    segment_recompute()
    assert slug(who) == "lost"
    MemberTag.objects.create(member=who, name="企业客户")
    # when: the member buys
    order(who, paid_at=ago(0))
    assert member_rfm_refresh(member_id=who.pk)
    # then
    assert slug(who) == "corporate"


def test_a_tag_with_quotes_and_backslashes_is_a_literal_not_sql(default_scheme):
    # given: a tag meant to break out of the string
    name = "O'Brien\\' OR 1=1 --"
    segment = Segment.objects.create(scheme=default_scheme, slug="odd", name_en="Odd")
    SegmentRule.objects.create(scheme=default_scheme, segment=segment, priority=1, kind="everyone_else", tag=name)
    tagged, plain = member(), member()
    for who in (tagged, plain):
        order(who, days_ago=3)
    MemberTag.objects.create(member=tagged, name=name)
    # when
    segment_recompute(as_of=AS_OF)
    # then: only the member carrying exactly that tag
    assert slug(tagged) == "odd"
    assert slug(plain) == "promising"
    assert MemberTag._meta.db_table == TAG_TABLE
    assert "E'O''Brien\\\\'' OR 1=1 --'" in rule_sql({"kind": "everyone_else", "tag": name}, high_level=1)


def test_a_tag_with_a_percent_sign_or_a_quote_works_in_the_recompute(default_scheme):
    # a % would be read as a placeholder by the driver, a quote would end the literal
    segment = Segment.objects.create(scheme=default_scheme, slug="discount", name_zh="九折客", name_en="Discount")
    SegmentRule.objects.create(scheme=default_scheme, segment=segment, priority=1, kind="cell", tag="9折%'s")
    tagged, plain = member(), member()
    for who in (tagged, plain):
        order(who, days_ago=3, amount="800.00")
    MemberTag.objects.create(member=tagged, name="9折%'s")
    segment_recompute(as_of=AS_OF)
    assert (slug(tagged), slug(plain)) == ("discount", "big_spenders")
