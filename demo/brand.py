"""The demo brand: the last three weeks of a tea chain's life on Huiyuan, played through the services.

``seed_demo`` writes the two years before the *go-live day* in bulk, as an import of the old till's
history would (no loyalty effects). From the go-live day to the as-of date, ``DemoBrand.play`` moves a
clock (``time-machine``) through every event in time order and lets the real services do what the
brand's tills, staff, mini-program and scheduler would, so every ledger and report has rows:

* **go-live** (the evening before the first live day): seed 002's tier ladder (普通会员 → 银卡 →
  金卡, which an RFM score also opens → 黑金卡), the loyalty program, the playbook's segment offers
  and referral rules switched on, the playbook's automations (entering 重要挽留用户 → a win-back
  coupon and a staff follow-up switched on; 30 days without a purchase, high frequency with low
  spend, related products after a champion's order and the birthday greeting ready to switch on) and
  its tag rules (生日月, 高客单, 周末客, favourite category) switched on; the
  first RFM run; every imported member given the tier their history earns; balances carried over from the old
  membership card (dated when they were earned, so that some expire during the three weeks);
* **every day**: new members register (through a referral code where the history says so, and
  their first order completes the referral), orders and refunds come in through ``order_record`` /
  ``refund_record`` (tier upgrades, points earned and taken back), a few members top up at the
  counter with the offer their segment gets and pay later orders from the wallet, others redeem
  points for a drink, coupons are brought to the counter and redeemed, staff work through their
  follow-up tasks; one referral is reversed when its first order is refunded in full;
* **campaigns**: on the first live morning the operator launches three playbook campaigns (win
  back; lost, piloted in Shanghai; loyal at risk) for 14 days with their 10% control groups;
  members who got a coupon may come back for it — on top of the orders they would have placed anyway — so the effect
  reports measure a real uplift against the control group. A VIP campaign for champions starts
  two weeks in (piloted in Hangzhou) and is still running;
* **every night**: the periodic jobs (points expiry, coupon expiry, rule tags, campaign windows,
  tier downgrades, trigger sweep, outbox), and a weekly RFM recompute, so segments move and the
  migration matrix and segment history have something to compare. The orders' lines are written at
  the end (``seed_demo``), then the product preference and the rule tags that read it.

What operators name (the automations) carries a Chinese and an English name; what the brand's
staff write down (follow-up reasons and outcomes, ledger reasons) is in Chinese, as they would.

Everything random comes from ``random.Random(seed)``: the same arguments give the same story.
Celery tasks run inline (eagerly) while the clock moves, so that what they do happens at the
simulated time.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import logging
import random
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal

import time_machine
from celery import current_app
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Count, Sum
from django.utils import timezone

from campaigns.models import (
    Campaign,
    CampaignGrant,
    Coupon,
    FollowUpTask,
    OutboxMessage,
    ReferralRewardRule,
    TopUpOffer,
    Trigger,
    TriggerFiring,
)
from campaigns.playbook import playbook_trigger_names
from campaigns.services.campaigns import campaign_end, campaign_launch, campaigns_advance
from campaigns.services.coupons import coupon_redeem, coupons_expire
from campaigns.services.followups import followup_complete
from campaigns.services.offers import member_top_up_offers, offer_top_up
from campaigns.services.triggers import trigger_save
from campaigns.tasks import campaign_run_task, outbox_flush_task, triggers_sweep_task
from members.demo_data import DemoMember, DemoOrder, DemoRefund
from members.models import (
    LoyaltyProgram,
    Member,
    Order,
    PointsEntry,
    PointsLot,
    Referral,
    Store,
    TagRule,
    Tier,
    TierChange,
    TierRule,
    Wallet,
    WalletEntry,
)
from members.selectors import wallet_restricted_bonuses
from members.services.members import member_register
from members.services.orders import order_record, refund_record
from members.services.points import points_adjust, points_expire, points_redeem
from members.services.referrals import referral_register
from members.services.tiers import tier_downgrade_due, tiers_assign_missing
from members.services.wallet import wallet_spend, wallet_top_up
from segmentation.models import RfmRun
from segmentation.services import rule_tags_recompute, segment_recompute

LIVE_DAYS = 21  # the weeks played through the services, ending on the as-of date
RECOMPUTE_EVERY_DAYS = 7
QUIET_LOGGERS = ("celery.app.trace", "campaigns.messages", "campaigns", "members", "segmentation")
OPERATOR = "admin"  # the operator who acts in the story; ``demo_admin`` gives it a password

# seed 002: 普通做法 "消费满XX元升级为银卡、金卡"; RFM 做法 "根据RFM分值自动调整会员等级和权益".
# code: (name, rank, points ×, birthday ×, discount, free shipping, priority, retention days, rules)
# A rule is (window days, min spend, min orders, min RFM score); the default scheme's score is
# the number of high dimensions (0–3), so 3 is a champion.
TIERS = {
    "regular": ("普通会员", 0, "1.00", "1.00", "1.00", False, False, 90, []),
    "silver": ("银卡", 1, "1.20", "2.00", "0.98", False, False, 90, [(365, "300", None, None)]),
    "gold": ("金卡", 2, "1.50", "2.00", "0.95", True, False, 90, [(365, "1200", None, None), (365, None, 3, 3)]),
    "black-gold": ("黑金卡", 3, "2.00", "2.00", "0.90", True, True, 120, [(365, "3000", 12, 3)]),
}

# Switched on at go-live; the other three automations are there, ready to switch on.
ACTIVE_TRIGGER_KINDS = (Trigger.Kind.ENTERED_SEGMENT,)
LAUNCHED_ON_GO_LIVE = ("playbook-win-back", "playbook-lost", "playbook-loyal-at-risk")
# Piloted in one city first: the recall of lost members, and the champions' VIP month.
PILOT_CITY = {"playbook-lost": "上海", "playbook-champions": "杭州"}
LAUNCHED_LATER = "playbook-champions"  # two weeks in; still running at the end
CAMPAIGN_DAYS = 14
# How likely a treated member brings the campaign's coupon back to the counter.
COME_BACK = {"playbook-win-back": 0.35, "playbook-lost": 0.12, "playbook-loyal-at-risk": 0.28}

OLD_CARD_SHARE = 0.12  # of the members who bought a year ago: balances carried over from the old card
TOP_UP_SHARE = 0.03  # of live orders: the member tops up at the counter first
REDEEM_SHARE = 0.25  # of live orders by a member with enough points: a drink paid with points
REDEEM_POINTS = 300
FOLLOW_UP_DONE_SHARE = 0.6  # of open tasks, each night
FOLLOW_UP_OUTCOMES = (
    "已电话联系,顾客表示最近搬家,会去新门店",
    "已联系,顾客对上次出品不满意,已致歉并说明挽回券",
    "顾客表示工作忙,周末会来",
    "未接通,已发短信提醒",
)


@dataclass(order=True)
class _Event:
    at: dt.datetime
    sequence: int
    kind: str = field(compare=False)
    payload: object = field(compare=False)


@contextmanager
def _tasks_inline():
    """Run Celery tasks at once, in this process and at the simulated time, without a log line
    for each task and each message the log channel "sends"."""
    conf = current_app.conf
    saved = conf.task_always_eager, conf.task_eager_propagates
    conf.task_always_eager, conf.task_eager_propagates = True, True
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        conf.task_always_eager, conf.task_eager_propagates = saved
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


class DemoBrand:
    """One play of the story; ``play()`` runs it and returns what it made (see ``summary``)."""

    def __init__(self, *, data, live, live_from: int, seed: int, progress=None):
        self.data = data
        self.calendar = data.calendar
        self.live = live
        self.live_from = live_from
        self.rng = random.Random(seed)  # noqa: S311 (a story, not a secret)
        self.progress = progress
        self.queue: list[_Event] = []
        self.sequence = itertools.count()
        self.member_ids: dict[int, int] = {}  # DemoMember.index → Member id, for the live members
        self.order_ids: dict[int, int] = {}  # DemoOrder.number → Order id
        self.stores = {index: Store.objects.get(pk=pk) for index, pk in enumerate(live.store_ids)}
        self.topped_up: set[int] = set()
        self.referral_reversed = False
        self.clock = None

    # --- the clock ---------------------------------------------------------------------------------
    def moment(self, day: int, second: int = 0) -> dt.datetime:
        """Local time ``second`` seconds after midnight of ``day`` (the day after the last one too)."""
        last = self.calendar.last_day
        return self.calendar.moment(min(day, last), second) + dt.timedelta(days=max(day - last, 0))

    def at(self, moment: dt.datetime) -> None:
        self.clock.move_to(moment)

    def schedule(self, at: dt.datetime, kind: str, payload) -> None:
        if at <= self.moment(self.calendar.last_day, 86_399):
            heapq.heappush(self.queue, _Event(at, next(self.sequence), kind, payload))

    # --- the play ----------------------------------------------------------------------------------
    def play(self) -> dict:
        go_live = self.moment(self.live_from) - dt.timedelta(hours=2)
        settings.DEBUG = False  # no list of every query in memory (and its cost) for thousands of them
        with connection.cursor() as cursor:
            # Thousands of short transactions: a demo need not wait for the disk at each commit
            # (a crash loses the last moments of the story, never its consistency).
            cursor.execute("SET synchronous_commit TO off")
        with time_machine.travel(go_live, tick=False) as clock, _tasks_inline():
            self.clock = clock
            self.operator = self._operator()
            self._configure()
            self.at(go_live)
            segment_recompute(as_of=self.calendar.dates[self.live_from - 1])
            tiers_assign_missing(as_of=timezone.now())
            self._carry_over_old_card_points(go_live)
            self.at(go_live)
            self._switch_automations_on()
            for member in self.live.members:
                self.schedule(self.moment(member.registered_day, member.registered_second), "register", member)
            for order, refund in self.live.orders:
                self.schedule(self.moment(order.day, order.second), "order", (order, refund))
            for refund in self.live.refunds:
                self.schedule(self.moment(refund.day, refund.second), "refund", refund)
            for day in range(self.live_from, self.calendar.last_day + 1):
                if day == self.live_from:
                    self.at(self.moment(day, 9 * 3600))
                    for slug in LAUNCHED_ON_GO_LIVE:
                        self._launch(slug)
                if day == self.live_from + 14:
                    self.at(self.moment(day, 9 * 3600))
                    self._launch(LAUNCHED_LATER, come_back=False)
                self._play_until(self.moment(day + 1))
                self._nightly(day)
                if self.progress is not None:
                    self.progress.update(1)
            self._end()
        return self.summary()

    def _play_until(self, end: dt.datetime) -> None:
        while self.queue and self.queue[0].at < end:
            event = heapq.heappop(self.queue)
            self.at(event.at)
            getattr(self, f"_on_{event.kind}")(event.payload)

    # --- go-live -----------------------------------------------------------------------------------
    def _operator(self):
        user, _created = get_user_model().objects.get_or_create(
            username=OPERATOR, defaults={"is_staff": True, "is_superuser": True}
        )
        if _created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        return user

    def _configure(self) -> None:
        program = LoyaltyProgram.current()
        program.points_per_yuan, program.points_life_months = Decimal("1.00"), 12
        program.save()
        for code, (name, rank, points, birthday, discount, shipping, priority, retention, rules) in TIERS.items():
            tier, _created = Tier.objects.update_or_create(
                code=code,
                defaults={
                    "name": name,
                    "rank": rank,
                    "points_multiplier": Decimal(points),
                    "birthday_points_multiplier": Decimal(birthday),
                    "discount_rate": Decimal(discount),
                    "free_shipping": shipping,
                    "priority_service": priority,
                    "retention_days": retention,
                    "is_active": True,
                },
            )
            tier.rules.all().delete()
            for window, spend, orders, score in rules:
                TierRule.objects.create(
                    tier=tier,
                    window_days=window,
                    min_spend=Decimal(spend) if spend else None,
                    min_orders=orders,
                    min_rfm_score=score,
                )
        for offer in TopUpOffer.objects.all():  # the playbook's segment offers (seed 002)
            offer.is_active = True
            offer.save(update_fields=["is_active", "updated_at"])
        for rule in ReferralRewardRule.objects.all():
            rule.is_active = True
            rule.save(update_fields=["is_active", "updated_at"])

    def _switch_automations_on(self) -> None:
        """Seed 002's automations (自动化营销的精准触发) as the playbook ships them, after the first
        run: entering a segment from then on fires, not the initial placing of everyone. The others
        stay ready to switch on. The playbook's tag rules (生日月, 高客单, 周末客, favourite category)
        are switched on, and the nightly run tags members."""
        for trigger in Trigger.objects.filter(name__in=playbook_trigger_names()):
            trigger.is_active = trigger.kind in ACTIVE_TRIGGER_KINDS
            trigger_save(trigger=trigger)
        TagRule.objects.update(is_active=True)

    def _carry_over_old_card_points(self, go_live: dt.datetime) -> None:
        """Balances from the old membership card, each dated when it was earned there: the ones
        earned a little under a year before the go-live expire during the three weeks."""
        first_live_day = self.live_from
        candidates = [
            member
            for member in self.data.members()[: self.live.written_members]
            if member.order_count and member.first_day < first_live_day - 330
        ]
        for member in candidates:
            if self.rng.random() >= OLD_CARD_SHARE:
                continue
            earned = go_live - dt.timedelta(days=365 - self.rng.randrange(2, LIVE_DAYS), hours=-12)
            self.at(earned)
            points_adjust(
                member=Member.objects.get(pk=self.live.first_member_id + member.index),
                points=self.rng.randrange(20, 90) * 10,
                reason="旧会员卡积分迁移",
                actor=self.operator,
                idempotency_key=f"demo-old-card:{member.index}",
            )

    # --- campaigns ---------------------------------------------------------------------------------
    def _launch(self, slug: str, *, come_back: bool = True) -> None:
        campaign = Campaign.objects.get(slug=slug)
        now = timezone.now()
        campaign.starts_at, campaign.ends_at = now, now + dt.timedelta(days=CAMPAIGN_DAYS)
        # As the playbook installed it (a replayed story finds it ended): a draft, nothing spent.
        campaign.status, campaign.launched_at, campaign.ended_at = Campaign.Status.DRAFT, None, None
        campaign.spent_count, campaign.spent_money = 0, Decimal("0.00")
        campaign.save()
        if slug in PILOT_CITY:
            campaign.stores.set(Store.objects.filter(city=PILOT_CITY[slug], is_active=True))
        campaign_launch(campaign=campaign)
        campaign_run_task(campaign.pk)  # the operator's "run now"
        if not come_back:
            return
        chance = COME_BACK[slug]
        coupons = Coupon.objects.filter(campaign=campaign, status=Coupon.Status.ISSUED).select_related("template")
        for coupon in coupons.order_by("pk"):
            if self.rng.random() >= chance:
                continue
            day = self.calendar.dates.index(timezone.localdate()) + self.rng.randrange(1, CAMPAIGN_DAYS)
            second = self.rng.randrange(10 * 3600, 21 * 3600)
            at = self.moment(min(day, self.calendar.last_day), second)
            if at < coupon.valid_until:
                self.schedule(at, "coupon_visit", coupon.pk)

    # --- the day's events --------------------------------------------------------------------------
    def _member(self, index: int) -> Member:
        pk = self.member_ids.get(index, self.live.first_member_id + index)
        return Member.objects.select_related("home_store").get(pk=pk)

    def _on_register(self, m: DemoMember) -> None:
        member = member_register(
            mobile=m.mobile,
            name=m.name,
            gender=m.gender,
            birthday=m.birthday,
            registered_at=timezone.now(),
            channel=m.channel,
            home_store=self.stores[m.home_store],
            openid=m.openid,
            referral_code=m.referral_code,
        )
        self.member_ids[m.index] = member.pk
        if m.referrer is not None:
            referrer = Member.objects.filter(pk=self.member_ids.get(m.referrer, self.live.first_member_id + m.referrer))
            code = referrer.values_list("referral_code", flat=True).first()
            if code:
                referral_register(referee=member, code=code)

    def _on_order(self, payload: tuple[DemoOrder, DemoRefund | None]) -> None:
        demo_order, refund = payload
        member = self._member(demo_order.member)
        amount = Decimal(demo_order.cents).scaleb(-2)
        if self.rng.random() < TOP_UP_SHARE and member.pk not in self.topped_up:
            self._top_up(member, reference=demo_order.external_id)
        order = order_record(
            external_id=demo_order.external_id,
            member=member,
            store=self.stores[demo_order.store],
            paid_at=timezone.now(),
            amount=amount,
        ).order
        self.order_ids[demo_order.number] = order.pk
        self._pay_and_redeem(member, order)
        if refund is not None:
            self.schedule(self.moment(refund.day, refund.second), "refund", refund)

    def _pay_and_redeem(self, member: Member, order: Order) -> None:
        if member.pk in self.topped_up:
            wallet = Wallet.objects.filter(member=member).first()
            # A bonus limited to some products (the sleeping offer's, for 唤醒商品) cannot pay an order
            # recorded without lines: only the principal and the unrestricted bonus can.
            restricted = (
                sum((bonus.remaining for bonus in wallet_restricted_bonuses(wallet_id=wallet.pk)), Decimal(0))
                if wallet
                else 0
            )
            if wallet is not None and wallet.total - restricted >= order.amount:
                wallet_spend(
                    member=member,
                    amount=order.amount,
                    idempotency_key=f"demo-pay:{order.external_id}",
                    reason="储值支付",
                    reference=order.external_id,
                )
        if self.rng.random() < REDEEM_SHARE:
            usable = PointsLot.objects.filter(member=member, remaining__gt=0, expires_at__gt=timezone.now())
            if (usable.aggregate(points=Sum("remaining"))["points"] or 0) >= REDEEM_POINTS:
                points_redeem(
                    member=member,
                    points=REDEEM_POINTS,
                    idempotency_key=f"demo-redeem:{order.external_id}",
                    reason="积分兑换:中杯饮品一杯",
                    reference=order.external_id,
                )

    def _top_up(self, member: Member, *, reference: str) -> None:
        """At the counter: the offer the member's segment gets (seed 002), else a plain top-up."""
        key = f"demo-top-up:{reference}"
        offers = member_top_up_offers(member_id=member.pk)
        if offers:
            offer = TopUpOffer.objects.get(pk=offers[0].pk)
            offer_top_up(member=member, offer=offer, amount_paid=offer.min_amount, idempotency_key=key)
        else:
            wallet_top_up(
                member=member,
                amount_paid=Decimal(self.rng.choice((100, 200, 500))),
                idempotency_key=key,
                actor=self.operator,
                reason="门店储值",
            )
        self.topped_up.add(member.pk)

    def _on_refund(self, refund: DemoRefund) -> None:
        order_id = self.order_ids.get(refund.order, self.live.first_order_id + refund.order)
        order = Order.objects.get(pk=order_id)
        refund_record(
            external_id=refund.external_id,
            order=order,
            amount=Decimal(refund.cents).scaleb(-2),
            refunded_at=timezone.now(),
            reason=refund.reason,
        )

    def _on_coupon_visit(self, coupon_id: int) -> None:
        coupon = Coupon.objects.select_related("template", "member__home_store").get(pk=coupon_id)
        if coupon.status != Coupon.Status.ISSUED or coupon.valid_until <= timezone.now():
            return
        member = coupon.member
        store = member.home_store if member.home_store and member.home_store.is_active else None
        store = store or next(s for s in self.stores.values() if s.is_active)
        minimum = coupon.template.min_spend or Decimal(0)
        amount = (minimum + Decimal(self.rng.randrange(5, 120))).quantize(Decimal("0.01"))
        order = order_record(
            external_id=f"DEMO-C-{coupon_id:09d}", member=member, store=store, paid_at=timezone.now(), amount=amount
        ).order
        coupon_redeem(member=member, coupon=coupon, order=order, idempotency_key=f"demo-coupon:{coupon_id}")

    def _on_referral_refund(self, order_id: int) -> None:
        order = Order.objects.get(pk=order_id)
        refund_record(
            external_id=f"DEMO-R-REFERRAL-{order_id}",
            order=order,
            amount=order.amount - order.refunded_amount,
            refunded_at=timezone.now(),
            reason="顾客取消订单",
        )

    # --- the night ---------------------------------------------------------------------------------
    def _nightly(self, day: int) -> None:
        """What the scheduler runs in the night after ``day`` (config/periodic.py), in its order."""
        night = self.moment(day + 1)
        self.at(min(night + dt.timedelta(minutes=15), timezone.now() + dt.timedelta(minutes=15)))
        coupons_expire(as_of=timezone.now())
        points_expire(as_of=timezone.now())
        if (day - self.live_from + 1) % RECOMPUTE_EVERY_DAYS == 0 or day == self.calendar.last_day:
            self.at(night + dt.timedelta(minutes=90))
            segment_recompute(as_of=self.calendar.dates[day])
        self.at(night + dt.timedelta(hours=2))
        rule_tags_recompute(now=timezone.now())
        tier_downgrade_due(as_of=timezone.now())
        campaigns_advance(now=timezone.now())
        triggers_sweep_task()
        outbox_flush_task()
        self._staff_follow_up()
        self._reverse_one_referral(day)

    def _staff_follow_up(self) -> None:
        since = timezone.now() - dt.timedelta(days=1)
        for task in FollowUpTask.objects.filter(status=FollowUpTask.Status.OPEN, created_at__lt=since).order_by("pk"):
            if self.rng.random() < FOLLOW_UP_DONE_SHARE:
                followup_complete(task=task, outcome=self.rng.choice(FOLLOW_UP_OUTCOMES), actor=self.operator)

    def _reverse_one_referral(self, day: int) -> None:
        """Once: the first order of a member referred the day before is cancelled the next
        afternoon, so the referral and its rewards are taken back (seed 002's 推荐 rules)."""
        if self.referral_reversed or day + 1 > self.calendar.last_day:
            return
        referral = (
            Referral.objects.filter(status=Referral.Status.COMPLETED, qualifying_order__refunded_amount=0)
            .order_by("completed_at")
            .first()
        )
        if referral is not None:
            self.schedule(self.moment(day + 1, 15 * 3600), "referral_refund", referral.qualifying_order_id)
            self.referral_reversed = True

    def _end(self) -> None:
        self._play_until(self.moment(self.calendar.last_day + 1))
        for campaign in Campaign.objects.filter(slug__in=LAUNCHED_ON_GO_LIVE).exclude(status=Campaign.Status.ENDED):
            campaign_end(campaign=campaign)

    # --- what it made ------------------------------------------------------------------------------
    def summary(self) -> dict:
        points = Counter(dict(PointsEntry.objects.values_list("kind").annotate(n=Count("pk")).values_list("kind", "n")))
        return {
            "tiers": dict(Tier.objects.annotate(n=Count("members")).values_list("name", "n")),
            "tier_changes": TierChange.objects.count(),
            "points_earned": points[PointsEntry.Kind.EARN],
            "points_redeemed": points[PointsEntry.Kind.REDEEM],
            "points_expired": points[PointsEntry.Kind.EXPIRE],
            "wallet_entries": WalletEntry.objects.count(),
            "referrals_completed": Referral.objects.filter(status=Referral.Status.COMPLETED).count(),
            "referrals_reversed": Referral.objects.filter(status=Referral.Status.REVERSED).count(),
            "coupons_issued": Coupon.objects.count(),
            "coupons_redeemed": Coupon.objects.filter(status=Coupon.Status.REDEEMED).count(),
            "campaigns_ended": Campaign.objects.filter(status=Campaign.Status.ENDED).count(),
            "campaign_grants": CampaignGrant.objects.count(),
            "trigger_firings": TriggerFiring.objects.filter(status=TriggerFiring.Status.FIRED).count(),
            "messages": OutboxMessage.objects.count(),
            "follow_ups": FollowUpTask.objects.count(),
            "rfm_runs": RfmRun.objects.filter(status=RfmRun.Status.SUCCEEDED).count(),
        }
