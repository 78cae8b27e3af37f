"""Triggers: each cause fires once (retries, sweeps, racing workers), inactivity once per lapse,
after-order after its delay, frequency caps, patterns."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from campaigns.models import Coupon, CouponTemplate, FollowUpTask, OutboxMessage, Trigger, TriggerFiring
from campaigns.services.triggers import (
    forget_active_triggers,
    trigger_fire,
    triggers_fire_for_transition,
    triggers_schedule_for_order,
    watched_segment_ids,
)
from campaigns.subscribers import on_order_recorded_schedule_triggers, on_segment_changed_fire_triggers
from campaigns.tasks import triggers_sweep_task
from members.events import order_recorded
from segmentation.events import segment_changed
from segmentation.models import MemberRfm, SegmentTransition
from tests.campaigns.conftest import run_in_threads
from tests.factories import MemberFactory, OrderFactory, StoreFactory

Status = TriggerFiring.Status


@pytest.fixture(autouse=True)
def fresh_trigger_index():
    forget_active_triggers()
    yield
    forget_active_triggers()


def coupon_template(slug="win-back-20", **fields) -> CouponTemplate:
    defaults = {
        "name": "挽回券 ¥20",
        "kind": CouponTemplate.Kind.FIXED_AMOUNT,
        "amount": Decimal("20.00"),
        "valid_days": 14,
    }
    return CouponTemplate.objects.create(slug=slug, **{**defaults, **fields})


@pytest.fixture
def win_back_trigger(segments) -> Trigger:
    return Trigger.objects.create(
        name="Entered win_back",
        kind=Trigger.Kind.ENTERED_SEGMENT,
        segment=segments["win_back"],
        coupon_template=coupon_template(),
        message_template="win_back_coupon",
        create_followup=True,
        followup_due_days=2,
        followup_reason="Call: high-value member slipping away",
        is_active=True,
    )


def enter(member, slug, segments, rfm_run, place) -> SegmentTransition:
    """The member moves into ``slug`` (as a recompute or the per-order refresh records it)."""
    place(member, slug)
    return SegmentTransition.objects.create(
        run=rfm_run, member=member, from_segment=segments["loyal_at_risk"], to_segment=segments[slug]
    )


def publish_transition(transition: SegmentTransition) -> None:
    on_segment_changed_fire_triggers(
        transition_id=transition.pk,
        run_id=transition.run_id,
        member_id=transition.member_id,
        from_segment_id=transition.from_segment_id,
        to_segment_id=transition.to_segment_id,
        from_slug="loyal_at_risk",
        to_slug="win_back",
        source="run",
    )


def sweep(now=None) -> dict:
    """The hourly sweep as the scheduler runs it (its tasks run at once in the tests)."""
    return triggers_sweep_task(now.isoformat() if now else None)


def given(member):
    return {
        "coupons": Coupon.objects.filter(member=member).count(),
        "messages": OutboxMessage.objects.filter(member=member).count(),
        "tasks": FollowUpTask.objects.filter(member=member).count(),
    }


# --- entered a segment -------------------------------------------------------------------------


@pytest.mark.django_db
def test_entering_win_back_gives_one_coupon_one_message_and_one_task_even_when_handled_twice(
    win_back_trigger, segments, rfm_run, place
):
    # given a member of store S-HZ enters win_back
    store = StoreFactory(code="S-HZ")
    member = MemberFactory(home_store=store)
    transition = enter(member, "win_back", segments, rfm_run, place)
    # when the event is handled, handled again (a retried task), and the sweep runs too
    publish_transition(transition)
    publish_transition(transition)
    triggers_fire_for_transition(transition_id=transition.pk)
    sweep()
    # then the member got exactly one of each
    assert given(member) == {"coupons": 1, "messages": 1, "tasks": 1}
    firing = TriggerFiring.objects.get(trigger=win_back_trigger)
    assert firing.status == Status.FIRED
    assert firing.cause_key == f"transition:{transition.pk}"
    coupon = Coupon.objects.get(member=member)
    assert coupon.template.slug == "win-back-20"
    assert coupon.idempotency_key == f"trigger:{firing.pk}"
    message = OutboxMessage.objects.get(member=member)
    assert message.template == "win_back_coupon"
    assert message.payload["coupon_code"] == coupon.code
    task = FollowUpTask.objects.get(member=member)
    assert task.store == store
    assert task.reason == "Call: high-value member slipping away"
    assert task.due_date == timezone.localdate() + dt.timedelta(days=2)
    assert task.status == FollowUpTask.Status.OPEN
    assert firing.coupon == coupon and firing.message == message and firing.followup == task


@pytest.mark.django_db
def test_the_subscriber_is_connected_to_segment_changed_and_ignores_unwatched_segments(
    win_back_trigger, segments, rfm_run, place
):
    # given
    assert on_segment_changed_fire_triggers in segment_changed.handlers
    assert on_order_recorded_schedule_triggers in order_recorded.handlers
    member = MemberFactory()
    transition = enter(member, "lost", segments, rfm_run, place)
    # when a member enters a segment no trigger watches
    publish_transition(transition)
    # then nothing happens
    assert not TriggerFiring.objects.exists()
    assert given(member) == {"coupons": 0, "messages": 0, "tasks": 0}


@pytest.mark.django_db
def test_a_member_who_left_the_segment_before_the_task_ran_is_skipped(win_back_trigger, segments, rfm_run, place):
    # given the member entered win_back, then bought and left it before the task ran
    member = MemberFactory()
    transition = enter(member, "win_back", segments, rfm_run, place)
    place(member, "champions")
    # when
    triggers_fire_for_transition(transition_id=transition.pk)
    # then
    firing = TriggerFiring.objects.get()
    assert firing.status == Status.SKIPPED
    assert firing.skip_reason == "no longer in the segment"
    assert given(member) == {"coupons": 0, "messages": 0, "tasks": 0}


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_on_one_transition_fire_once(segments, rfm_run, place):
    # given
    trigger = Trigger.objects.create(
        name="Entered win_back",
        kind=Trigger.Kind.ENTERED_SEGMENT,
        segment=segments["win_back"],
        coupon_template=coupon_template(),
        message_template="win_back_coupon",
        create_followup=True,
        is_active=True,
    )
    member = MemberFactory()
    transition = enter(member, "win_back", segments, rfm_run, place)
    # when two workers handle the same transition at the same moment
    results = run_in_threads(2, lambda _i: triggers_fire_for_transition(transition_id=transition.pk))
    # then
    assert not [r for r in results if isinstance(r, Exception)], results
    assert TriggerFiring.objects.filter(trigger=trigger).count() == 1
    assert given(member) == {"coupons": 1, "messages": 1, "tasks": 1}


@pytest.mark.django_db
def test_the_sweep_fires_transitions_whose_event_was_lost(win_back_trigger, segments, rfm_run, place):
    # given a transition whose event never reached a worker
    member = MemberFactory()
    enter(member, "win_back", segments, rfm_run, place)
    # when
    counts = sweep()
    # then
    assert counts == {"entered_segment": 1}
    assert given(member) == {"coupons": 1, "messages": 1, "tasks": 1}


@pytest.mark.django_db
def test_no_coupon_left_means_no_message_but_still_a_follow_up(segments, rfm_run, place):
    # given the coupon's issue limit is used up
    template = coupon_template(issue_limit=1)
    Coupon.objects.create(
        template=template,
        member=MemberFactory(),
        granted_at=timezone.now(),
        valid_from=timezone.now(),
        valid_until=timezone.now() + dt.timedelta(days=1),
        idempotency_key="earlier",
    )
    CouponTemplate.objects.filter(pk=template.pk).update(issued_count=1)
    Trigger.objects.create(
        name="Entered win_back",
        kind=Trigger.Kind.ENTERED_SEGMENT,
        segment=segments["win_back"],
        coupon_template=template,
        message_template="win_back_coupon",
        create_followup=True,
        is_active=True,
    )
    member = MemberFactory()
    transition = enter(member, "win_back", segments, rfm_run, place)
    # when
    (firing,) = triggers_fire_for_transition(transition_id=transition.pk)
    # then
    assert firing.status == Status.FIRED
    assert "coupon_unavailable" in firing.granted
    assert given(member) == {"coupons": 0, "messages": 0, "tasks": 1}


# --- frequency caps ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_frequency_cap_allows_one_firing_per_window(win_back_trigger, segments, rfm_run, place):
    # given at most one firing per 30 days
    assert (win_back_trigger.cap_count, win_back_trigger.cap_days) == (1, 30)
    member = MemberFactory()
    now = timezone.now()
    first = enter(member, "win_back", segments, rfm_run, place)
    second = enter(member, "win_back", segments, rfm_run, place)
    third = enter(member, "win_back", segments, rfm_run, place)
    # when the member enters win_back twice within 10 days, and again 31 days after the first
    a = trigger_fire(trigger=win_back_trigger, member_id=member.pk, cause_key=f"transition:{first.pk}", now=now)
    b = trigger_fire(
        trigger=win_back_trigger,
        member_id=member.pk,
        cause_key=f"transition:{second.pk}",
        now=now + dt.timedelta(days=10),
    )
    c = trigger_fire(
        trigger=win_back_trigger,
        member_id=member.pk,
        cause_key=f"transition:{third.pk}",
        now=now + dt.timedelta(days=31),
    )
    # then the second is capped, the third fires
    assert (a.status, b.status, c.status) == (Status.FIRED, Status.SKIPPED, Status.FIRED)
    assert b.skip_reason == "frequency cap"
    assert Coupon.objects.filter(member=member).count() == 2


@pytest.mark.django_db
def test_a_larger_cap_allows_that_many(segments, rfm_run, place):
    trigger = Trigger.objects.create(
        name="Entered win_back",
        kind=Trigger.Kind.ENTERED_SEGMENT,
        segment=segments["win_back"],
        message_template="hello",
        cap_count=2,
        cap_days=7,
        is_active=True,
    )
    member = MemberFactory()
    statuses = [
        trigger_fire(
            trigger=trigger,
            member_id=member.pk,
            cause_key=f"transition:{enter(member, 'win_back', segments, rfm_run, place).pk}",
        ).status
        for _ in range(3)
    ]
    assert statuses == [Status.FIRED, Status.FIRED, Status.SKIPPED]
    assert OutboxMessage.objects.filter(member=member).count() == 2


@pytest.mark.django_db(transaction=True)
def test_the_cap_holds_when_two_causes_fire_at_once(segments, rfm_run, place):
    # given two different transitions of one member, fired by two workers at once
    trigger = Trigger.objects.create(
        name="Entered win_back",
        kind=Trigger.Kind.ENTERED_SEGMENT,
        segment=segments["win_back"],
        message_template="hello",
        cap_count=1,
        cap_days=30,
        is_active=True,
    )
    member = MemberFactory()
    transitions = [enter(member, "win_back", segments, rfm_run, place) for _ in range(2)]
    # when
    results = run_in_threads(
        2, lambda i: trigger_fire(trigger=trigger, member_id=member.pk, cause_key=f"transition:{transitions[i].pk}")
    )
    # then one fired and one was capped
    assert sorted(r.status for r in results) == [Status.FIRED, Status.SKIPPED]
    assert OutboxMessage.objects.filter(member=member).count() == 1


# --- inactivity --------------------------------------------------------------------------------


@pytest.fixture
def miss_you_trigger(db) -> Trigger:
    return Trigger.objects.create(
        name="30 days without a purchase",
        kind=Trigger.Kind.INACTIVITY,
        inactivity_days=30,
        coupon_template=coupon_template(slug="miss-you-10", amount=Decimal("10.00")),
        message_template="we_miss_you",
        is_active=True,
    )


@pytest.mark.django_db
def test_inactivity_fires_once_per_lapse(miss_you_trigger):
    # given a member whose last purchase was 31 days ago, and members who bought recently
    now = timezone.now()
    lapsed = MemberFactory()
    first_order = OrderFactory(member=lapsed, paid_at=now - dt.timedelta(days=31))
    recent = MemberFactory()
    OrderFactory(member=recent, paid_at=now - dt.timedelta(days=10))
    came_back = MemberFactory()
    OrderFactory(member=came_back, paid_at=now - dt.timedelta(days=31))
    OrderFactory(member=came_back, paid_at=now - dt.timedelta(days=3))
    # when the sweep runs, and runs again an hour later
    sweep(now=now)
    sweep(now=now + dt.timedelta(hours=1))
    # then only the lapsed member got the coupon, once
    assert Coupon.objects.filter(member=lapsed).count() == 1
    assert Coupon.objects.filter(member__in=[recent, came_back]).count() == 0
    assert TriggerFiring.objects.get(member=lapsed).cause_key == f"lapse:{first_order.pk}"
    # when the member buys again the next day and lapses again for 30 days
    second_order = OrderFactory(member=lapsed, paid_at=now + dt.timedelta(days=1))
    sweep(now=now + dt.timedelta(days=20))
    assert Coupon.objects.filter(member=lapsed).count() == 1
    sweep(now=now + dt.timedelta(days=31, hours=1))
    sweep(now=now + dt.timedelta(days=31, hours=2))
    # then the new lapse fired once more
    assert Coupon.objects.filter(member=lapsed).count() == 2
    assert sorted(TriggerFiring.objects.filter(member=lapsed).values_list("cause_key", flat=True)) == sorted(
        [f"lapse:{first_order.pk}", f"lapse:{second_order.pk}"]
    )
    assert OutboxMessage.objects.filter(member=lapsed, template="we_miss_you").count() == 2


@pytest.mark.django_db
def test_a_fully_refunded_last_order_does_not_count_as_a_purchase(miss_you_trigger):
    now = timezone.now()
    member = MemberFactory()
    OrderFactory(member=member, paid_at=now - dt.timedelta(days=32))
    OrderFactory(
        member=member,
        paid_at=now - dt.timedelta(days=5),
        amount=Decimal("50.00"),
        refunded_amount=Decimal("50.00"),
        status="refunded",
    )
    sweep(now=now)
    assert Coupon.objects.filter(member=member).count() == 1


@pytest.mark.django_db
def test_an_inactive_trigger_does_not_fire(miss_you_trigger):
    Trigger.objects.filter(pk=miss_you_trigger.pk).update(is_active=False)
    member = MemberFactory()
    OrderFactory(member=member, paid_at=timezone.now() - dt.timedelta(days=31))
    assert sweep() == {}
    assert not TriggerFiring.objects.exists()


# --- after an order ----------------------------------------------------------------------------


@pytest.fixture
def recommendation_trigger(segments) -> Trigger:
    return Trigger.objects.create(
        name="A champion bought: recommend 3 days later",
        kind=Trigger.Kind.AFTER_ORDER,
        delay_days=3,
        segment=segments["champions"],
        message_template="related_products",
        cap_count=None,
        cap_days=None,
        is_active=True,
    )


@pytest.mark.django_db
def test_after_order_fires_once_after_the_delay(recommendation_trigger, place, django_capture_on_commit_callbacks):
    # given a champion and a member of another segment buy now
    now = timezone.now()
    champion, other = MemberFactory(), MemberFactory()
    place(champion, "champions")
    place(other, "promising")
    order = OrderFactory(member=champion, paid_at=now)
    other_order = OrderFactory(member=other, paid_at=now)
    # when the event is handled (twice: a retry)
    with django_capture_on_commit_callbacks(execute=True):
        on_order_recorded_schedule_triggers(order_id=order.pk, member_id=champion.pk, store_id=order.store_id)
        on_order_recorded_schedule_triggers(order_id=order.pk, member_id=champion.pk, store_id=order.store_id)
        on_order_recorded_schedule_triggers(order_id=other_order.pk, member_id=other.pk, store_id=other.home_store_id)
    # then a firing waits, due in 3 days; nothing is sent yet
    firing = TriggerFiring.objects.get()
    assert firing.member == champion
    assert firing.status == Status.PENDING
    assert firing.due_at == order.paid_at + dt.timedelta(days=3)
    assert not OutboxMessage.objects.exists()
    # when the sweep runs the next day, nothing; three days later, it fires; again, nothing more
    sweep(now=now + dt.timedelta(days=1))
    assert not OutboxMessage.objects.exists()
    sweep(now=now + dt.timedelta(days=3, minutes=5))
    sweep(now=now + dt.timedelta(days=3, minutes=65))
    triggers_schedule_for_order(order_id=order.pk, now=now + dt.timedelta(days=4))
    # then
    firing.refresh_from_db()
    assert firing.status == Status.FIRED
    assert OutboxMessage.objects.filter(member=champion, template="related_products").count() == 1
    assert not OutboxMessage.objects.filter(member=other).exists()


@pytest.mark.django_db
def test_after_order_skips_a_refunded_order(recommendation_trigger, place):
    now = timezone.now()
    champion = MemberFactory()
    place(champion, "champions")
    order = OrderFactory(member=champion, paid_at=now, amount=Decimal("80.00"))
    triggers_schedule_for_order(order_id=order.pk, now=now)
    type(order).objects.filter(pk=order.pk).update(refunded_amount=Decimal("80.00"), status="refunded")
    sweep(now=now + dt.timedelta(days=3, minutes=1))
    firing = TriggerFiring.objects.get()
    assert firing.status == Status.SKIPPED
    assert firing.skip_reason == "order refunded"
    assert not OutboxMessage.objects.exists()


# --- patterns ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_pattern_fires_for_matching_scores_once_per_run(segments, rfm_run, place):
    # given F high and M low (thresholds mode: 1 = high, 0 = low)
    trigger = Trigger.objects.create(
        name="F high, M low: bundle offer",
        kind=Trigger.Kind.PATTERN,
        f_min_score=1,
        m_max_score=0,
        message_template="bundle_offer",
        is_active=True,
    )
    frequent_small, big_spender = MemberFactory(), MemberFactory()
    for member, f, m in ((frequent_small, 1, 0), (big_spender, 1, 1)):
        place(member, "loyal_low_spend")
        MemberRfm.objects.filter(member_id=member.pk).update(r_score=1, f_score=f, m_score=m)
    # when the sweep runs twice
    sweep()
    sweep()
    # then only the matching member got the offer, once
    assert list(TriggerFiring.objects.values_list("member_id", "cause_key")) == [
        (frequent_small.pk, f"pattern:{rfm_run.pk}:{frequent_small.pk}")
    ]
    assert OutboxMessage.objects.filter(template="bundle_offer").count() == 1
    assert trigger.firings.get().status == Status.FIRED


# --- the admin ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_trigger_admin_pages_render_with_bounded_queries(
    staff_client, win_back_trigger, miss_you_trigger, segments, rfm_run, place, django_assert_max_num_queries
):
    # given some firings
    for _ in range(3):
        member = MemberFactory()
        triggers_fire_for_transition(transition_id=enter(member, "win_back", segments, rfm_run, place).pk)
    # when / then
    with django_assert_max_num_queries(10):
        response = staff_client.get("/admin/campaigns/trigger/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Entered win_back" in page and "30 days without a purchase" in page
    assert f'data-label="when">{segments["win_back"].name_en}</td>' in page  # the segment's name, not its slug
    with django_assert_max_num_queries(10):
        response = staff_client.get("/admin/campaigns/triggerfiring/")
    assert response.status_code == 200
    page = response.content.decode()
    assert page.count('data-label="cause">segment change #') == 3
    assert staff_client.get(f"/admin/campaigns/trigger/{win_back_trigger.pk}/change/").status_code == 200


@pytest.mark.django_db
def test_trigger_admin_refuses_a_trigger_that_does_nothing_or_lacks_its_segment(staff_client):
    response = staff_client.post(
        "/admin/campaigns/trigger/add/",
        {
            "name": "Nothing",
            "kind": "entered_segment",
            "followup_due_days": 3,
            "cap_count": 1,
            "cap_days": 30,
        },
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "A trigger must do something" in page
    assert "Choose the segment members enter." in page
    assert not Trigger.objects.filter(name="Nothing").exists()  # (the playbook's inactive trigger is there)


@pytest.mark.django_db
def test_switching_a_trigger_off_in_the_admin_stops_it_at_once(
    staff_client, win_back_trigger, segments, rfm_run, place, django_capture_on_commit_callbacks
):
    # given the index of active triggers is cached with the win_back trigger in it
    assert segments["win_back"].pk in watched_segment_ids()
    # when an operator deactivates it
    response = staff_client.post(
        "/admin/campaigns/trigger/", {"action": "deactivate", "_selected_action": [win_back_trigger.pk]}
    )
    # then it is off, and a member entering win_back right after gets nothing
    assert response.status_code == 302
    win_back_trigger.refresh_from_db()
    assert not win_back_trigger.is_active
    member = MemberFactory()
    with django_capture_on_commit_callbacks(execute=True):
        publish_transition(enter(member, "win_back", segments, rfm_run, place))
    assert given(member) == {"coupons": 0, "messages": 0, "tasks": 0}
    # when it is activated again, the next member entering win_back gets the coupon at once
    response = staff_client.post(
        "/admin/campaigns/trigger/", {"action": "activate", "_selected_action": [win_back_trigger.pk]}
    )
    assert response.status_code == 302
    other = MemberFactory()
    with django_capture_on_commit_callbacks(execute=True):
        publish_transition(enter(other, "win_back", segments, rfm_run, place))
    assert given(other) == {"coupons": 1, "messages": 1, "tasks": 1}


@pytest.mark.django_db
def test_a_fired_triggers_message_is_delivered_after_the_task(
    win_back_trigger, segments, rfm_run, place, django_capture_on_commit_callbacks
):
    # given
    member = MemberFactory()
    transition = enter(member, "win_back", segments, rfm_run, place)
    # when the event is handled by the task
    with django_capture_on_commit_callbacks(execute=True):
        publish_transition(transition)
    # then the message went out through the default (log) channel
    message = OutboxMessage.objects.get(member=member)
    assert message.status == OutboxMessage.Status.SENT


# --- granting through a campaign -----------------------------------------------------------------


@pytest.mark.django_db
def test_a_trigger_grants_through_its_campaign_and_holds_out_its_control_group(segments, rfm_run, place):
    # given a running campaign on win_back that holds out half, and a trigger granting through it
    from campaigns.models import Campaign, CampaignBenefit, CampaignGrant, in_control_group

    campaign = Campaign.objects.create(
        name="Win back", slug="win-back", status=Campaign.Status.RUNNING, control_percent=50, per_member_cap=5
    )
    campaign.segments.add(segments["win_back"])
    CampaignBenefit.objects.create(campaign=campaign, kind=CampaignBenefit.Kind.POINTS, points=100)
    Trigger.objects.create(
        name="Entered win_back",
        kind=Trigger.Kind.ENTERED_SEGMENT,
        segment=segments["win_back"],
        coupon_template=coupon_template(),
        message_template="win_back_coupon",
        create_followup=True,
        campaign=campaign,
        is_active=True,
    )
    members = [MemberFactory() for _ in range(12)]
    treated = next(m for m in members if not in_control_group(campaign_id=campaign.pk, member_id=m.pk, percent=50))
    control = next(m for m in members if in_control_group(campaign_id=campaign.pk, member_id=m.pk, percent=50))
    # when both enter win_back
    (treated_firing,) = triggers_fire_for_transition(
        transition_id=enter(treated, "win_back", segments, rfm_run, place).pk
    )
    (control_firing,) = triggers_fire_for_transition(
        transition_id=enter(control, "win_back", segments, rfm_run, place).pk
    )
    # then the treated member got the campaign's grant and the trigger's coupon (counted for the campaign)
    assert treated_firing.granted["campaign"]["status"] == "granted"
    grant = CampaignGrant.objects.get(member=treated)
    assert grant.cause == f"trigger:{treated_firing.pk}"
    assert Coupon.objects.get(member=treated).campaign == campaign
    assert given(treated) == {"coupons": 1, "messages": 1, "tasks": 1}
    # and the control member got nothing at all, but is recorded as held out
    assert control_firing.status == Status.FIRED
    assert control_firing.granted["campaign"]["status"] == "control"
    assert CampaignGrant.objects.get(member=control).is_control
    assert given(control) == {"coupons": 0, "messages": 0, "tasks": 0}
