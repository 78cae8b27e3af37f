"""Campaigns: targeting, budgets and caps under concurrency, control groups, transitions, status."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from campaigns.models import (
    Campaign,
    CampaignBenefit,
    CampaignGrant,
    Coupon,
    CouponTemplate,
    FollowUpTask,
    OutboxMessage,
    in_control_group,
)
from campaigns.services.campaigns import (
    GrantStatus,
    campaign_end,
    campaign_estimate,
    campaign_grant_to_member,
    campaign_grants_for_transition,
    campaign_launch,
    campaign_pause,
    campaign_run_batch,
    campaigns_advance,
)
from campaigns.tasks import campaign_run_task
from members.models import PointsEntry, Tier
from members.services.points import points_for_order
from tests.campaigns.conftest import run_in_threads
from tests.factories import MemberFactory, OrderFactory, StoreFactory


def coupon_template(amount: str = "20.00", **fields) -> CouponTemplate:
    return CouponTemplate.objects.create(
        name=f"¥{amount} off",
        slug=f"tpl-{CouponTemplate.objects.count() + 1}",
        amount=Decimal(amount),
        **fields,
    )


def make_campaign(segments=(), *, benefits=(("coupon", {}),), launch=True, **fields) -> Campaign:
    fields.setdefault("slug", f"c-{Campaign.objects.count() + 1}")
    fields.setdefault("name", fields["slug"])
    campaign = Campaign.objects.create(**fields)
    campaign.segments.set(segments)
    for kind, extra in benefits:
        if kind in ("coupon", "free_shipping") and "coupon_template" not in extra:
            extra = {**extra, "coupon_template": coupon_template()}
        CampaignBenefit.objects.create(campaign=campaign, kind=kind, **extra)
    if launch:
        campaign_launch(campaign=campaign)
    return campaign


# --- targeting -------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_campaign_grants_to_its_target_segment_only(segments, place):
    # given: two champions, a lost member and a member never computed
    champions = [MemberFactory(), MemberFactory()]
    for member in champions:
        place(member, "champions")
    lost = MemberFactory()
    place(lost, "lost")
    MemberFactory()
    campaign = make_campaign([segments["champions"]], benefits=[("coupon", {}), ("points", {"points": 300})])

    # when
    counts = campaign_run_batch(campaign_id=campaign.pk).counts

    # then
    assert counts == {GrantStatus.GRANTED: 2}
    assert set(Coupon.objects.values_list("member_id", flat=True)) == {m.pk for m in champions}
    rewards = PointsEntry.objects.filter(kind=PointsEntry.Kind.CAMPAIGN_REWARD)
    assert sorted(rewards.values_list("member_id", "points")) == sorted((m.pk, 300) for m in champions)
    campaign.refresh_from_db()
    assert campaign.spent_count == 2
    assert campaign.spent_money == Decimal("46.00")  # (¥20 coupon + 300 points at ¥0.01) × 2


@pytest.mark.django_db
def test_narrowing_by_store_tier_and_registration(segments, place):
    # given
    store, other_store = StoreFactory(code="SH1"), StoreFactory(code="BJ1")
    gold = Tier.objects.create(code="gold", name="Gold", rank=2)
    recent = timezone.now() - dt.timedelta(days=10)
    fits = MemberFactory(home_store=store, tier=gold, registered_at=recent)
    wrong_store = MemberFactory(home_store=other_store, tier=gold, registered_at=recent)
    wrong_tier = MemberFactory(home_store=store, tier=None, registered_at=recent)
    too_old = MemberFactory(home_store=store, tier=gold, registered_at=timezone.now() - dt.timedelta(days=400))
    for member in (fits, wrong_store, wrong_tier, too_old):
        place(member, "champions")
    campaign = make_campaign(
        [segments["champions"]], launch=False, registered_after=timezone.localdate() - dt.timedelta(days=30)
    )
    campaign.stores.set([store])
    campaign.tiers.set([gold])
    campaign_launch(campaign=campaign)

    # when
    outcomes = {
        m.pk: campaign_grant_to_member(campaign=campaign, member=m, cause="manual").status
        for m in (fits, wrong_store, wrong_tier, too_old)
    }

    # then
    assert outcomes == {
        fits.pk: GrantStatus.GRANTED,
        wrong_store.pk: GrantStatus.NOT_TARGETED,
        wrong_tier.pk: GrantStatus.NOT_TARGETED,
        too_old.pk: GrantStatus.NOT_TARGETED,
    }
    assert campaign_estimate(campaign=campaign).reach == 1


@pytest.mark.django_db
def test_nothing_is_granted_unless_running_and_in_window(segments, place):
    member = MemberFactory()
    place(member, "champions")
    draft = make_campaign([segments["champions"]], launch=False)
    later = make_campaign([segments["champions"]], starts_at=timezone.now() + dt.timedelta(days=1))
    paused = make_campaign([segments["champions"]])
    campaign_pause(campaign=paused)

    statuses = [campaign_grant_to_member(campaign=c, member=member, cause="x").status for c in (draft, later, paused)]

    assert later.status == Campaign.Status.SCHEDULED
    assert statuses == [GrantStatus.NOT_RUNNING] * 3
    assert not Coupon.objects.exists()


# --- budgets and caps ------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_count_budget_holds_under_concurrent_grants(default_scheme, segments, place):
    # given: 8 targeted members, a budget of 3 grants
    members = [MemberFactory() for _ in range(8)]
    for member in members:
        place(member, "champions")
    campaign = make_campaign([segments["champions"]], budget_count=3)

    # when: all 8 are granted at once
    results = run_in_threads(
        8, lambda i: campaign_grant_to_member(campaign=campaign, member=members[i], cause="race").status
    )

    # then
    assert sorted(results) == sorted([GrantStatus.GRANTED] * 3 + [GrantStatus.BUDGET_EXHAUSTED] * 5), results
    campaign.refresh_from_db()
    assert campaign.spent_count == 3
    assert Coupon.objects.count() == 3
    assert CampaignGrant.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_money_budget_holds_under_concurrent_grants(default_scheme, segments, place):
    # given: a ¥20 coupon each, ¥50 of budget: two grants fit, a third would overspend
    members = [MemberFactory() for _ in range(6)]
    for member in members:
        place(member, "champions")
    campaign = make_campaign([segments["champions"]], budget_money=Decimal("50.00"))

    # when
    results = run_in_threads(
        6, lambda i: campaign_grant_to_member(campaign=campaign, member=members[i], cause="race").status
    )

    # then
    assert results.count(GrantStatus.GRANTED) == 2, results
    campaign.refresh_from_db()
    assert campaign.spent_money == Decimal("40.00")
    assert Coupon.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_per_member_cap_holds_under_concurrent_grants(default_scheme, segments, place):
    # given: at most 2 grants per member, 6 different causes arrive at once
    member = MemberFactory()
    place(member, "champions")
    campaign = make_campaign([segments["champions"]], per_member_cap=2)

    # when
    results = run_in_threads(
        6, lambda i: campaign_grant_to_member(campaign=campaign, member=member, cause=f"cause-{i}").status
    )

    # then
    assert results.count(GrantStatus.GRANTED) == 2, results
    assert results.count(GrantStatus.CAP_REACHED) == 4, results
    assert sorted(CampaignGrant.objects.values_list("sequence", flat=True)) == [1, 2]
    assert Coupon.objects.filter(member=member).count() == 2


@pytest.mark.django_db(transaction=True)
def test_the_same_cause_racing_itself_grants_once(default_scheme, segments, place):
    member = MemberFactory()
    place(member, "champions")
    campaign = make_campaign([segments["champions"]], per_member_cap=5)

    results = run_in_threads(
        4, lambda i: campaign_grant_to_member(campaign=campaign, member=member, cause="same").status
    )

    assert results.count(GrantStatus.GRANTED) == 1, results
    assert results.count(GrantStatus.ALREADY_GRANTED) == 3
    assert Coupon.objects.count() == 1


@pytest.mark.django_db
def test_a_coupon_running_out_rolls_the_whole_grant_back(segments, place):
    # given: the coupon may be issued once; the campaign also gives points
    first, second = MemberFactory(), MemberFactory()
    place(first, "champions")
    place(second, "champions")
    template = coupon_template(issue_limit=1)
    campaign = make_campaign(
        [segments["champions"]], benefits=[("points", {"points": 100}), ("coupon", {"coupon_template": template})]
    )

    # when
    counts = campaign_run_batch(campaign_id=campaign.pk).counts

    # then: the second member got nothing at all, and the budget counts one grant
    assert counts == {GrantStatus.GRANTED: 1, GrantStatus.BENEFIT_UNAVAILABLE: 1}
    assert PointsEntry.objects.filter(kind=PointsEntry.Kind.CAMPAIGN_REWARD).count() == 1
    campaign.refresh_from_db()
    assert campaign.spent_count == 1
    assert CampaignGrant.objects.count() == 1


# --- control group ---------------------------------------------------------------------------------------


def test_control_membership_is_stable_and_near_the_percentage():
    # given: 1,000 members, a 20% control group
    member_ids = range(1, 1001)

    # when
    held_out = {m for m in member_ids if in_control_group(campaign_id=7, member_id=m, percent=20)}
    again = {m for m in member_ids if in_control_group(campaign_id=7, member_id=m, percent=20)}
    other_campaign = {m for m in member_ids if in_control_group(campaign_id=8, member_id=m, percent=20)}

    # then
    assert held_out == again
    assert 160 <= len(held_out) <= 240
    assert held_out != other_campaign
    assert not any(in_control_group(campaign_id=7, member_id=m, percent=0) for m in member_ids)


@pytest.mark.django_db
def test_a_campaign_never_grants_to_its_control_group(segments, place_many):
    # given: 120 targeted members, 30% held out
    members = MemberFactory.create_batch(120)
    place_many([m.pk for m in members], "lost")
    campaign = make_campaign(
        [segments["lost"]],
        control_percent=30,
        benefits=[("coupon", {}), ("message", {"message_template": "recall"})],
    )

    # when
    counts = campaign_run_batch(campaign_id=campaign.pk).counts

    # then
    control = {m.pk for m in members if in_control_group(campaign_id=campaign.pk, member_id=m.pk, percent=30)}
    treated = {m.pk for m in members} - control
    assert 0 < len(control) < 120
    assert counts == {GrantStatus.GRANTED: len(treated), GrantStatus.CONTROL: len(control)}
    assert set(Coupon.objects.values_list("member_id", flat=True)) == treated
    assert set(OutboxMessage.objects.values_list("member_id", flat=True)) == treated
    assert set(CampaignGrant.objects.filter(is_control=True).values_list("member_id", flat=True)) == control
    assert not CampaignGrant.objects.filter(is_control=True, cost__gt=0).exists()
    campaign.refresh_from_db()
    assert campaign.spent_count == len(treated)


# --- batch runs, transitions -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_running_the_batch_task_twice_grants_once(segments, place, django_capture_on_commit_callbacks):
    # given: a win-back campaign with a coupon, a follow-up and a message
    members = [MemberFactory(), MemberFactory(), MemberFactory()]
    for member in members:
        place(member, "win_back")
    campaign = make_campaign(
        [segments["win_back"]],
        benefits=[
            ("coupon", {}),
            ("follow_up", {"follow_up_reason": "Call them"}),
            ("message", {"message_template": "win_back"}),
        ],
    )

    # when
    with django_capture_on_commit_callbacks(execute=False):
        first = campaign_run_task.delay(campaign.pk).get()
        second = campaign_run_task.delay(campaign.pk).get()

    # then
    assert first == {GrantStatus.GRANTED: 3}
    assert second == {}
    assert Coupon.objects.count() == 3
    assert FollowUpTask.objects.count() == 3
    assert OutboxMessage.objects.count() == 3
    message = OutboxMessage.objects.select_related("member").first()
    assert message.payload["coupon_codes"] == [Coupon.objects.get(member=message.member).code]
    assert FollowUpTask.objects.filter(store_id__in=[m.home_store_id for m in members]).count() == 3


@pytest.mark.django_db
def test_run_now_in_the_admin_runs_only_running_segment_campaigns(
    staff_client, segments, place, django_capture_on_commit_callbacks
):
    # given a running segment campaign with a message, a paused one and a transition campaign
    member = MemberFactory()
    place(member, "win_back")
    running = make_campaign(
        [segments["win_back"]], benefits=[("coupon", {}), ("message", {"message_template": "win_back"})]
    )
    paused = campaign_pause(campaign=make_campaign([segments["win_back"]]))
    transition = make_campaign(target_kind="transition", target_transition_to=segments["win_back"])
    # when an operator runs all three now
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            "/admin/campaigns/campaign/",
            {"action": "run_now", "_selected_action": [running.pk, paused.pk, transition.pk]},
            follow=True,
        )
    # then only the running segment campaign granted, and its message went out
    page = response.content.decode()
    assert page.count("Only running segment campaigns can be run.") == 2
    assert "1 campaign queued." in page
    assert list(CampaignGrant.objects.values_list("campaign_id", flat=True)) == [running.pk]
    assert OutboxMessage.objects.get(member=member).status == OutboxMessage.Status.SENT


@pytest.mark.django_db
def test_a_transition_campaign_grants_once_per_transition(segments, place):
    # given: a campaign for members entering win_back
    member, elsewhere = MemberFactory(), MemberFactory()
    place(member, "win_back")
    place(elsewhere, "lost")
    campaign = make_campaign(target_kind="transition", target_transition_to=segments["win_back"])
    win_back = segments["win_back"].pk

    # when: the same transition arrives twice, then a later one
    first = campaign_grants_for_transition(member_id=member.pk, to_segment_id=win_back, run_id=11)
    repeat = campaign_grants_for_transition(member_id=member.pk, to_segment_id=win_back, run_id=11)
    stale = campaign_grants_for_transition(member_id=elsewhere.pk, to_segment_id=win_back, run_id=11)

    # then
    assert [o.status for o in first] == [GrantStatus.GRANTED]
    assert [o.status for o in repeat] == [GrantStatus.ALREADY_GRANTED]
    assert [o.status for o in stale] == [GrantStatus.NOT_TARGETED]
    assert Coupon.objects.filter(member=member, campaign=campaign).count() == 1
    # a segment campaign's batch does not pick transition campaigns up
    assert campaign_run_batch(campaign_id=campaign.pk).counts == {}


@pytest.mark.django_db
def test_a_segment_changed_event_grants_the_transition_campaign(segments, place, django_capture_on_commit_callbacks):
    from segmentation.events import segment_changed

    member = MemberFactory()
    place(member, "win_back")
    campaign = make_campaign(target_kind="transition", target_transition_to=segments["win_back"])
    payload = {
        "transition_id": 1,
        "run_id": 5,
        "member_id": member.pk,
        "from_segment_id": segments["big_spenders"].pk,
        "to_segment_id": segments["win_back"].pk,
        "from_slug": "big_spenders",
        "to_slug": "win_back",
        "source": "run",
    }

    with django_capture_on_commit_callbacks(execute=True):
        segment_changed.publish(**payload)
    with django_capture_on_commit_callbacks(execute=True):
        segment_changed.publish(**payload)

    assert Coupon.objects.filter(member=member, campaign=campaign).count() == 1


@pytest.mark.django_db
def test_a_points_multiplier_benefit_doubles_order_points_for_its_days(segments, place):
    member = MemberFactory()
    place(member, "champions")
    campaign = make_campaign(
        [segments["champions"]], benefits=[("points_multiplier", {"multiplier": Decimal("2.00"), "multiplier_days": 7})]
    )
    campaign_grant_to_member(campaign=campaign, member=member, cause="batch")

    during = OrderFactory(member=member, amount=Decimal("100.00"), paid_at=timezone.now() + dt.timedelta(days=1))
    after = OrderFactory(member=member, amount=Decimal("100.00"), paid_at=timezone.now() + dt.timedelta(days=8))

    assert points_for_order(order=during) == 200
    assert points_for_order(order=after) == 100


# --- status and estimate ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_status_transitions_are_validated(segments):
    empty = Campaign.objects.create(name="empty", slug="empty")
    with pytest.raises(ValidationError) as launch_error:
        campaign_launch(campaign=empty)
    assert set(launch_error.value.error_dict) == {"segments", "benefits"}

    campaign = make_campaign([segments["lost"]])
    assert campaign.status == Campaign.Status.RUNNING and campaign.launched_at is not None
    campaign_pause(campaign=campaign)
    with pytest.raises(ValidationError):
        campaign_pause(campaign=campaign)
    campaign_launch(campaign=campaign)
    campaign_end(campaign=campaign)
    with pytest.raises(ValidationError):
        campaign_launch(campaign=campaign)
    assert campaign.status == Campaign.Status.ENDED


@pytest.mark.django_db
def test_scheduled_campaigns_start_and_end_on_time(segments):
    now = timezone.now()
    soon = make_campaign([segments["lost"]], starts_at=now + dt.timedelta(hours=1))
    closing = make_campaign([segments["lost"]], ends_at=now + dt.timedelta(hours=2))

    started, ended = campaigns_advance(now=now + dt.timedelta(hours=3))

    assert (started, ended) == (1, 1)
    soon.refresh_from_db()
    closing.refresh_from_db()
    assert soon.status == Campaign.Status.RUNNING
    assert closing.status == Campaign.Status.ENDED


@pytest.mark.django_db
def test_estimate_counts_reach_control_and_cost_within_budget(segments, place_many):
    # given: 100 lost members, 10% control, ¥20 each, ¥1,000 of budget
    members = MemberFactory.create_batch(100)
    place_many([m.pk for m in members], "lost")
    campaign = make_campaign([segments["lost"]], launch=False, control_percent=10, budget_money=Decimal("1000"))

    # when
    estimate = campaign_estimate(campaign=campaign)

    # then
    assert (estimate.reach, estimate.control) == (100, 10)
    assert estimate.unit_cost == Decimal("20.00")
    assert estimate.cost == Decimal("1000.00")  # 90 × ¥20 = ¥1,800, capped by the budget
    assert estimate.treated == 50
    assert estimate.limited_by_budget


@pytest.mark.django_db
def test_a_limited_batch_says_there_is_more_and_the_next_run_goes_on(segments, place_many):
    # given: 7 targeted members, batches of at most 3
    members = MemberFactory.create_batch(7)
    place_many([m.pk for m in members], "lost")
    campaign = make_campaign([segments["lost"]])

    # when
    runs = []
    while True:
        result = campaign_run_batch(campaign_id=campaign.pk, chunk_size=2, limit=3)
        runs.append(result)
        if not result.more:
            break

    # then
    assert [sum(r.counts.values()) for r in runs] == [3, 3, 1]
    assert Coupon.objects.count() == 7
