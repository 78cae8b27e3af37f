"""``MemberRfmScore`` — what tier rules read — is R + F + M of the member's current result, kept
by the recompute and by the per-order refresh (no row for a member without a result), while an
active tier has a rule with an RFM condition; otherwise the table stays empty."""

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from members.models import Member, MemberRfmScore, Tier, TierRule
from members.services.orders import order_record
from segmentation.models import MemberRfm, Scheme
from segmentation.services import members_rfm_refresh, segment_recompute
from segmentation.tasks import segment_recompute_task

from .builders import AS_OF, ago, local, member, mixed_data, order

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def rfm_tier_rule(request):
    """Tier rules read scores (an active tier with an RFM condition), unless a test says otherwise."""
    if "no_rfm_rule" in request.keywords:
        return None
    tier = Tier.objects.create(code="rfm-gold", name="RFM gold", rank=1)
    return TierRule.objects.create(tier=tier, window_days=365, min_rfm_score=3)


def expected_scores() -> dict:
    """R + F + M of every member's ``MemberRfm`` row, None for a member without one."""
    totals = {
        member_id: r + f + m
        for member_id, r, f, m in MemberRfm.objects.values_list("member_id", "r_score", "f_score", "m_score")
    }
    return {member_id: totals.get(member_id) for member_id in Member.objects.values_list("id", flat=True)}


def rfm_scores() -> dict:
    kept = dict(MemberRfmScore.objects.values_list("member_id", "score"))
    return {member_id: kept.get(member_id) for member_id in Member.objects.values_list("id", flat=True)}


def score(who) -> int | None:
    return MemberRfmScore.objects.filter(member=who).values_list("score", flat=True).first()


def use_scheme(slug: str) -> None:
    Scheme.objects.update(is_active=False)
    Scheme.objects.filter(slug=slug).update(is_active=True)


def test_the_score_is_the_number_of_high_scores_in_thresholds_mode(default_scheme):
    # given: a champion (H, H, H), a member who bought once long ago (L, L, L), one who never bought
    champion, lapsed, never = member(), member(), member()
    for days in (1, 2, 3):
        order(champion, days_ago=days, amount="200.00")
    order(lapsed, days_ago=400)
    # when
    segment_recompute(as_of=AS_OF)
    # then
    assert (score(champion), score(lapsed), score(never)) == (3, 0, 0)


@pytest.mark.parametrize("scheme_slug", ["rfm-default", "seed-002-four-quadrants", "seed-000-five-layers"])
def test_after_a_recompute_every_member_s_score_is_r_plus_f_plus_m(default_scheme, scheme_slug):
    # given: forty mixed members, and one registered after the as-of date (no result)
    mixed_data()
    late = member(registered=local(AS_OF + dt.timedelta(days=2)))
    use_scheme(scheme_slug)
    # when
    segment_recompute(as_of=AS_OF)
    # then
    scores = rfm_scores()
    assert scores == expected_scores()
    assert scores[late.pk] is None
    assert sum(1 for value in scores.values() if value is not None) == 40


def test_a_split_run_writes_the_scores_too(default_scheme):
    # given
    mixed_data(seed=3)
    use_scheme("seed-002-four-quadrants")
    # when
    segment_recompute_task.delay(as_of=AS_OF.isoformat(), chunks=3).get()
    # then
    assert rfm_scores() == expected_scores()
    assert len(set(rfm_scores().values())) > 2


def test_a_run_that_no_longer_covers_a_member_clears_the_score(default_scheme):
    # given: a member scored by a run, who registered ten days before it
    who = member(registered=local(AS_OF - dt.timedelta(days=10)))
    for days in (1, 2, 3):
        order(who, days_ago=days, amount="200.00")
    segment_recompute(as_of=AS_OF)
    assert score(who) == 3
    # when: a run as of a date before the member registered
    segment_recompute(as_of=AS_OF - dt.timedelta(days=30))
    # then
    assert score(who) is None
    assert rfm_scores() == expected_scores()


def test_a_run_leaves_members_and_unchanged_scores_unwritten(default_scheme):
    # given: a run, and where each member's row and score lie on disk
    mixed_data()
    segment_recompute(as_of=AS_OF)

    def row_versions() -> dict:
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, ctid::text FROM members_member")
            members = dict(cursor.fetchall())
            cursor.execute("SELECT member_id, ctid::text FROM members_memberrfmscore")
            return {"members": members, "scores": dict(cursor.fetchall())}

    before = row_versions()
    # when: the same run again
    segment_recompute(as_of=AS_OF)
    # then: no member row and no score row was rewritten
    assert row_versions() == before


@pytest.mark.no_rfm_rule
def test_without_an_rfm_tier_rule_no_scores_are_kept(default_scheme, django_capture_on_commit_callbacks):
    # given: scores left from when a rule read them
    mixed_data()
    MemberRfmScore.objects.create(member=Member.objects.first(), score=9)
    # when: a run, and an order's live refresh
    segment_recompute(as_of=AS_OF)
    who = member()
    with django_capture_on_commit_callbacks(execute=True):
        order_record(external_id="POS-N", member=who, store=who.home_store, paid_at=ago(0), amount="600.00")
    # then
    assert MemberRfm.objects.filter(member=who).exists()
    assert not MemberRfmScore.objects.exists()


def test_the_score_follows_an_order_s_live_refresh(default_scheme, django_capture_on_commit_callbacks):
    # given: a lapsed member (L, L, L) after last night's run
    who = member()
    order(who, paid_at=ago(400), amount="80.00")
    segment_recompute()
    assert score(who) == 0
    # when: they buy today (R high) for 600 yuan (M high)
    with django_capture_on_commit_callbacks(execute=True):
        order_record(external_id="POS-1", member=who, store=who.home_store, paid_at=ago(0), amount="600.00")
    # then
    assert MemberRfm.objects.get(member=who).segment.slug == "big_spenders"
    assert score(who) == 2
    assert rfm_scores() == expected_scores()


def test_a_batch_refresh_writes_every_refreshed_member_s_score(quintile_scheme):
    # given: a quintile run over ten buyers, then new orders for some and a newcomer
    buyers = [member() for _ in range(10)]
    for index, who in enumerate(buyers):
        order(who, paid_at=ago(index * 20 + 1), amount=f"{(index + 1) * 70}.00")
    segment_recompute()
    for who in buyers[5:]:
        order(who, paid_at=ago(0), amount="900.00")
    newcomer = member()
    order(newcomer, paid_at=ago(2), amount="450.00")
    before = score(buyers[9])
    # when
    written = members_rfm_refresh(member_ids=[who.pk for who in [*buyers, newcomer]])
    # then
    assert written == 11
    assert rfm_scores() == expected_scores()
    assert score(newcomer) is not None
    assert score(buyers[9]) > before


def test_a_run_keeps_the_score_of_a_row_an_order_refreshed_after_it_started(default_scheme):
    # given: a member whose row (and score) an order refreshed "after the next run started"
    who = member()
    order(who, paid_at=ago(400))
    segment_recompute()
    later = timezone.now() + dt.timedelta(hours=1)
    MemberRfm.objects.filter(member=who).update(updated_at=later, r_score=1, f_score=1, m_score=0)
    MemberRfmScore.objects.update_or_create(member=who, defaults={"score": 2})
    # when
    segment_recompute()
    # then: the fresher row wins, and the score stays with it
    assert score(who) == 2
    assert rfm_scores() == expected_scores()
