"""The seeds' automations as shipped in the playbook (inactive), switched on, do what the seeds say;
and the birthday trigger greets once a year, a few days ahead, 29 February included."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.utils import timezone

from campaigns.models import Coupon, FollowUpTask, OutboxMessage, Trigger, TriggerFiring
from campaigns.playbook import playbook_install
from campaigns.services.triggers import birthday_candidates, forget_active_triggers, triggers_fire_for_transition
from campaigns.tasks import triggers_sweep_task
from segmentation.models import MemberRfm, SegmentTransition
from tests.factories import MemberFactory, OrderFactory

LOCAL = ZoneInfo(settings.TIME_ZONE)


@pytest.fixture(autouse=True)
def fresh_trigger_index():
    forget_active_triggers()
    yield
    forget_active_triggers()


@pytest.fixture
def playbook(segments):
    playbook_install()
    return {t.name_en: t for t in Trigger.objects.select_related("coupon_template", "segment")}


def switch_on(trigger: Trigger) -> Trigger:
    Trigger.objects.filter(pk=trigger.pk).update(is_active=True)
    forget_active_triggers()
    trigger.refresh_from_db()
    return trigger


def at_local(year, month, day, hour=11) -> dt.datetime:
    return dt.datetime(year, month, day, hour, tzinfo=LOCAL)


def sweep(now: dt.datetime) -> dict:
    return triggers_sweep_task(now.isoformat())


# --- what the playbook ships ------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_playbook_ships_the_seeds_five_automations_inactive_in_chinese_and_english(playbook):
    shipped = {t.name_en: (t.kind, t.segment.slug if t.segment else None, t.is_active) for t in playbook.values()}
    assert shipped == {
        "Entered win back: win-back coupon and staff follow-up": ("entered_segment", "win_back", False),
        "30 days without a purchase: 'we miss you' coupon": ("inactivity", None, False),
        "Champions: related products 3 days after an order": ("after_order", "champions", False),
        "Frequent, low spend: bundle offer": ("pattern", None, False),
        "Loyal at risk: birthday greeting": ("birthday", "loyal_at_risk", False),
    }
    assert all(t.name and t.description and t.description_en for t in playbook.values())
    assert all("\u4e00" <= t.name[0] <= "\u9fff" or t.name[0].isdigit() for t in playbook.values())
    birthday = playbook["Loyal at risk: birthday greeting"]
    assert (birthday.birthday_days_before, birthday.coupon_template.slug) == (3, "playbook-birthday-30")
    assert playbook["30 days without a purchase: 'we miss you' coupon"].inactivity_days == 30


@pytest.mark.django_db
def test_entering_win_back_gives_the_win_back_coupon_and_a_follow_up_for_the_home_store(
    playbook, segments, rfm_run, place
):
    trigger = switch_on(playbook["Entered win back: win-back coupon and staff follow-up"])
    member = MemberFactory()
    place(member, "win_back")
    transition = SegmentTransition.objects.create(
        run=rfm_run, member=member, from_segment=segments["champions"], to_segment=segments["win_back"]
    )
    triggers_fire_for_transition(transition_id=transition.pk)
    coupon = Coupon.objects.get(member=member)
    assert (coupon.template.slug, coupon.template.amount) == ("playbook-win-back-50", Decimal("50.00"))
    task = FollowUpTask.objects.get(member=member)
    assert (task.store_id, "电话关怀" in task.reason) == (member.home_store_id, True)
    assert OutboxMessage.objects.get(member=member).template == "win_back_coupon"
    assert trigger.firings.get().status == TriggerFiring.Status.FIRED


@pytest.mark.django_db
def test_thirty_days_without_a_purchase_gives_the_we_miss_you_coupon(playbook):
    switch_on(playbook["30 days without a purchase: 'we miss you' coupon"])
    now = timezone.now()
    lapsed, regular = MemberFactory(), MemberFactory()
    OrderFactory(member=lapsed, paid_at=now - dt.timedelta(days=31))
    OrderFactory(member=regular, paid_at=now - dt.timedelta(days=12))
    sweep(now)
    assert list(Coupon.objects.values_list("member_id", "template__slug")) == [(lapsed.pk, "playbook-miss-you-15")]
    assert OutboxMessage.objects.get().template == "we_miss_you"


@pytest.mark.django_db
def test_frequent_low_spenders_get_the_bundle_coupon(playbook, place):
    switch_on(playbook["Frequent, low spend: bundle offer"])
    frequent_small, champion = MemberFactory(), MemberFactory()
    place(frequent_small, "loyal_low_spend")
    place(champion, "champions")
    MemberRfm.objects.filter(member=frequent_small).update(r_score=1, f_score=1, m_score=0)
    MemberRfm.objects.filter(member=champion).update(r_score=1, f_score=1, m_score=1)
    sweep(timezone.now())
    assert list(Coupon.objects.values_list("member_id", "template__slug")) == [
        (frequent_small.pk, "playbook-bundle-15pct")
    ]


# --- birthdays --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_loyal_member_is_greeted_three_days_before_the_birthday_once_a_year(playbook, place):
    switch_on(playbook["Loyal at risk: birthday greeting"])
    loyal = MemberFactory(birthday=dt.date(1990, 6, 15))
    other_segment = MemberFactory(birthday=dt.date(1990, 6, 15))
    later_birthday = MemberFactory(birthday=dt.date(1991, 6, 20))
    no_birthday = MemberFactory(birthday=None)
    for member in (loyal, later_birthday, no_birthday):
        place(member, "loyal_at_risk")
    place(other_segment, "champions")

    sweep(at_local(2026, 6, 11))  # four days before: not yet
    assert not Coupon.objects.exists()
    sweep(at_local(2026, 6, 12, 0))  # three days before, but just after midnight: not yet
    assert not Coupon.objects.exists()
    sweep(at_local(2026, 6, 12, 15))  # three days before, in the afternoon
    sweep(at_local(2026, 6, 12, 16))  # the next hourly sweep
    sweep(at_local(2026, 6, 15))  # and on the day
    coupon = Coupon.objects.get()
    assert (coupon.member_id, coupon.template.slug) == (loyal.pk, "playbook-birthday-30")
    message = OutboxMessage.objects.get()
    assert (message.member_id, message.template, message.payload["coupon_code"]) == (
        loyal.pk,
        "birthday_greeting",
        coupon.code,
    )
    assert TriggerFiring.objects.get().cause_key == f"birthday:2026:{loyal.pk}"

    sweep(at_local(2027, 6, 12, hour=10))  # a year later, at an earlier hour: greeted again
    assert Coupon.objects.filter(member=loyal).count() == 2


@pytest.mark.django_db
def test_a_sweep_that_missed_the_day_still_greets_before_the_birthday_but_not_after(playbook, place):
    trigger = switch_on(playbook["Loyal at risk: birthday greeting"])
    Trigger.objects.filter(pk=trigger.pk).update(segment=None)  # greet every member
    trigger.refresh_from_db()
    member = MemberFactory(birthday=dt.date(1985, 3, 10))
    late = MemberFactory(birthday=dt.date(1985, 3, 8))
    assert birthday_candidates(trigger, now=at_local(2026, 3, 9)) == [(member.pk, f"birthday:2026:{member.pk}")]
    assert birthday_candidates(trigger, now=at_local(2026, 3, 10)) == [(member.pk, f"birthday:2026:{member.pk}")]
    assert late.pk not in [m for m, _cause in birthday_candidates(trigger, now=at_local(2026, 3, 9))]


@pytest.mark.django_db
def test_birthdays_across_new_year_and_on_29_february(playbook):
    trigger = switch_on(playbook["Loyal at risk: birthday greeting"])
    Trigger.objects.filter(pk=trigger.pk).update(segment=None)
    trigger.refresh_from_db()
    new_year = MemberFactory(birthday=dt.date(2000, 1, 2))
    leap_day = MemberFactory(birthday=dt.date(1996, 2, 29))
    # 30 December 2026: 2 January 2027 is three days away
    assert birthday_candidates(trigger, now=at_local(2026, 12, 30)) == [(new_year.pk, f"birthday:2027:{new_year.pk}")]
    # 2027 has no 29 February: greeted three days before the 28th; in 2028, before the 29th
    assert [m for m, _c in birthday_candidates(trigger, now=at_local(2027, 2, 25))] == [leap_day.pk]
    assert birthday_candidates(trigger, now=at_local(2028, 2, 25)) == []
    assert birthday_candidates(trigger, now=at_local(2028, 2, 26)) == [(leap_day.pk, f"birthday:2028:{leap_day.pk}")]


@pytest.mark.django_db
def test_a_blocked_member_is_not_greeted(playbook):
    trigger = switch_on(playbook["Loyal at risk: birthday greeting"])
    Trigger.objects.filter(pk=trigger.pk).update(segment=None)
    trigger.refresh_from_db()
    MemberFactory(birthday=dt.date(1990, 5, 5), is_active=False)
    assert birthday_candidates(trigger, now=at_local(2026, 5, 4)) == []


@pytest.mark.django_db
def test_switching_a_trigger_back_on_skips_what_came_due_while_it_was_off(playbook, place):
    from campaigns.services.triggers import trigger_set_active, triggers_schedule_for_order

    trigger = switch_on(playbook["Champions: related products 3 days after an order"])
    trigger_set_active(trigger_ids=[trigger.pk], active=True)
    member = MemberFactory()
    place(member, "champions")
    order = OrderFactory(member=member, paid_at=timezone.now() - dt.timedelta(days=1))
    [firing] = triggers_schedule_for_order(order_id=order.pk)
    assert firing.status == TriggerFiring.Status.PENDING
    trigger_set_active(trigger_ids=[trigger.pk], active=False)  # off over the due day
    trigger_set_active(trigger_ids=[trigger.pk], active=True)  # on again, later
    Trigger.objects.filter(pk=trigger.pk).update(activated_at=timezone.now() + dt.timedelta(days=5))
    sweep(timezone.now() + dt.timedelta(days=6))
    firing.refresh_from_db()
    assert (firing.status, firing.skip_reason) == (TriggerFiring.Status.SKIPPED, "came due while switched off")
    assert not OutboxMessage.objects.exists()
