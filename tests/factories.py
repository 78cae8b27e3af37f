"""factory_boy factories for every model of members, segmentation and campaigns, and the builders
the tests share.

A factory makes a row the database accepts and ``full_clean()`` passes (``tests/test_factories.py``
checks both for every model, and fails when a model has no factory). It writes the row directly:
ledgers, balances and counters are not kept in step with each other the way services keep them.
A test about a rule calls the service (``order_record``, ``wallet_top_up``…); a test that only
needs a row to exist uses a factory.

Builders at the end: ``install_default_scheme`` (the data migration's schemes), ``tier_ladder``
(the test brand's tiers, the root ``ladder`` fixture) and ``record_order`` (an order recorded as
the POS records it). Money is ``Decimal`` with two places; unique fields come from sequences.
"""

import datetime as dt
import hashlib
import importlib
import itertools
from decimal import Decimal

import factory
from django.apps import apps as django_apps
from django.contrib.auth import get_user_model
from django.utils import timezone

from campaigns.models import (
    Campaign,
    CampaignBenefit,
    CampaignEffect,
    CampaignGrant,
    Coupon,
    CouponTemplate,
    FollowUpTask,
    OfferTopUp,
    OutboxMessage,
    ReferralRewardRule,
    Reward,
    RewardPrice,
    RewardRedemption,
    Stamp,
    StampCard,
    StampCompletion,
    TopUpOffer,
    Trigger,
    TriggerFiring,
)
from members.models import (
    ApiIdempotencyRecord,
    ImportJob,
    Interaction,
    LoyaltyProgram,
    Member,
    MemberPointsMultiplier,
    MemberRfmScore,
    MemberTag,
    MemberTierStatus,
    Order,
    OrderLine,
    PointsAccount,
    PointsEntry,
    PointsLot,
    Product,
    Referral,
    Refund,
    RefundLine,
    RestrictedBonus,
    RestrictedBonusMove,
    StaffAccess,
    Store,
    StoreApiKey,
    StoreStaff,
    TagRule,
    Tier,
    TierChange,
    TierRule,
    TopUpIntent,
    Wallet,
    WalletEntry,
)
from members.services.orders import order_record
from segmentation.models import (
    ClvRun,
    MemberCategory,
    MemberClv,
    MemberRfm,
    RelatedProduct,
    RfmRun,
    RfmStagingRow,
    Scheme,
    Segment,
    SegmentRule,
    SegmentSnapshot,
    SegmentTransition,
)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class StaffUserFactory(factory.django.DjangoModelFactory):
    """A staff user, for the ``actor`` and ``created_by`` of rows staff make."""

    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"staff{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password("pw-staff-1")
    is_staff = True


# --- members: stores, members, orders ---------------------------------------------------------


class StoreFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Store
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"S{n:03d}")
    name = factory.Sequence(lambda n: f"门店{n}")
    city = "上海"


class MemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Member

    # 166…: a prefix no test writes by hand (they use 138/139 numbers such as 13900002213), so a
    # sequence that has run long in one worker never collides with them
    mobile = factory.Sequence(lambda n: f"166{n:08d}")
    name = factory.Sequence(lambda n: f"会员{n}")
    registered_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=400))
    home_store = factory.SubFactory(StoreFactory)


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Order

    external_id = factory.Sequence(lambda n: f"ORD-{n:08d}")
    member = factory.SubFactory(MemberFactory)
    store = factory.SelfAttribute("member.home_store")
    paid_at = factory.LazyFunction(timezone.now)
    amount = Decimal("38.00")


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    sku = factory.Sequence(lambda n: f"SKU-{n:06d}")
    name = factory.Sequence(lambda n: f"茶饮 {n}")
    category = "奶茶"
    tags = factory.LazyFunction(list)


class OrderLineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OrderLine

    order = factory.SubFactory(OrderFactory)
    product = factory.SubFactory(ProductFactory)
    quantity = 1
    amount = Decimal("18.00")


class RefundFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Refund

    external_id = factory.Sequence(lambda n: f"REF-{n:08d}")
    order = factory.SubFactory(OrderFactory)
    store = factory.SelfAttribute("order.store")  # external ids are unique per store: the order's
    amount = Decimal("1.00")
    refunded_at = factory.LazyFunction(timezone.now)


class RefundLineFactory(factory.django.DjangoModelFactory):
    """A refund line (the order line's refunded quantity and amount are not moved: ``refund_record`` does that)."""

    class Meta:
        model = RefundLine

    order_line = factory.SubFactory(OrderLineFactory)
    refund = factory.SubFactory(RefundFactory, order=factory.SelfAttribute("..order_line.order"))
    quantity = 1
    amount = Decimal("1.00")


# --- members: stored value --------------------------------------------------------------------


class WalletFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Wallet

    member = factory.SubFactory(MemberFactory)
    principal = Decimal("0.00")
    bonus = Decimal("0.00")


class WalletEntryFactory(factory.django.DjangoModelFactory):
    """A top-up entry (the wallet's cached balances are not moved: ``wallet_top_up`` does that)."""

    class Meta:
        model = WalletEntry

    wallet = factory.SubFactory(WalletFactory)
    kind = WalletEntry.Kind.TOP_UP
    principal_delta = Decimal("100.00")
    bonus_delta = Decimal("0.00")
    amount = factory.LazyAttribute(lambda entry: entry.principal_delta + entry.bonus_delta)
    principal_after = factory.LazyAttribute(lambda entry: entry.wallet.principal + entry.principal_delta)
    bonus_after = factory.LazyAttribute(lambda entry: entry.wallet.bonus + entry.bonus_delta)
    reason = "top-up at the till"
    idempotency_key = factory.Sequence(lambda n: f"wallet-entry-{n}")
    request_fingerprint = factory.LazyAttribute(lambda entry: _sha256(entry.idempotency_key))


class RestrictedBonusFactory(factory.django.DjangoModelFactory):
    """A bonus for 唤醒商品 granted by a top-up (cached balances not moved: ``wallet_top_up`` does that)."""

    class Meta:
        model = RestrictedBonus

    top_up = factory.SubFactory(WalletEntryFactory, bonus_delta=Decimal("50.00"))
    wallet = factory.SelfAttribute("top_up.wallet")
    tags = factory.LazyFunction(lambda: ["唤醒商品"])
    amount = factory.SelfAttribute("top_up.bonus_delta")
    remaining = factory.SelfAttribute("amount")


class RestrictedBonusMoveFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RestrictedBonusMove

    bonus = factory.SubFactory(RestrictedBonusFactory)
    entry = factory.SelfAttribute("bonus.top_up")
    delta = factory.SelfAttribute("bonus.amount")


# --- members: the REST API's rows -------------------------------------------------------------


class StoreApiKeyFactory(factory.django.DjangoModelFactory):
    """A key row; its secret is unknown (``store_api_key_create`` returns one you can send)."""

    class Meta:
        model = StoreApiKey

    store = factory.SubFactory(StoreFactory)
    name = factory.Sequence(lambda n: f"POS {n}")
    prefix = factory.Sequence(lambda n: f"k{n:07d}")
    secret_hash = factory.LazyAttribute(lambda key: _sha256(key.prefix))
    scopes = "orders,members:read"


class TopUpIntentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TopUpIntent

    member = factory.SubFactory(MemberFactory)
    out_trade_no = factory.Sequence(lambda n: f"HY{n:014d}")
    amount = Decimal("100.00")
    bonus = Decimal("0.00")
    expires_at = factory.LazyFunction(lambda: timezone.now() + dt.timedelta(hours=2))


class ApiIdempotencyRecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ApiIdempotencyRecord

    store = factory.SubFactory(StoreFactory)
    member = None
    key = factory.Sequence(lambda n: f"idem-{n}")
    operation = "orders:create"
    request_hash = factory.LazyAttribute(lambda record: _sha256(record.key))
    response_status = 201
    response_body = factory.Sequence(lambda n: {"id": n})


# --- members: points and referrals ------------------------------------------------------------


class LoyaltyProgramFactory(factory.django.DjangoModelFactory):
    """The one program row (``LoyaltyProgram.current()`` makes it with the defaults too)."""

    class Meta:
        model = LoyaltyProgram
        django_get_or_create = ("id",)

    id = LoyaltyProgram.SINGLETON_ID


class PointsAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PointsAccount

    member = factory.SubFactory(MemberFactory)
    balance = 0
    debt = 0


class PointsEntryFactory(factory.django.DjangoModelFactory):
    """A staff adjustment (the account's balance is not moved: ``points_adjust`` does that)."""

    class Meta:
        model = PointsEntry

    member = factory.SubFactory(MemberFactory)
    kind = PointsEntry.Kind.ADJUST
    points = 100
    balance_after = factory.SelfAttribute("points")
    reason = "goodwill"
    idempotency_key = factory.Sequence(lambda n: f"points-entry-{n}")


class PointsLotFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PointsLot

    source_entry = factory.SubFactory(PointsEntryFactory)
    member = factory.SelfAttribute("source_entry.member")
    points = factory.SelfAttribute("source_entry.points")
    remaining = factory.SelfAttribute("points")
    earned_at = factory.LazyFunction(timezone.now)
    expires_at = factory.LazyAttribute(lambda lot: lot.earned_at + dt.timedelta(days=365))


class ReferralFactory(factory.django.DjangoModelFactory):
    """A pending referral: the referee registered with the referrer's code."""

    class Meta:
        model = Referral

    referrer = factory.SubFactory(MemberFactory)
    referee = factory.SubFactory(MemberFactory)
    code = factory.SelfAttribute("referrer.referral_code")


# --- members: tiers ---------------------------------------------------------------------------


class TierFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tier

    code = factory.Sequence(lambda n: f"tier-{n}")
    name = factory.Sequence(lambda n: f"等级{n}")
    rank = factory.Sequence(lambda n: 1000 + n)  # clear of the ladders' 0, 1, 2…


class TierRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TierRule

    tier = factory.SubFactory(TierFactory)
    window_days = 365
    min_spend = Decimal("500.00")


class TierChangeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TierChange

    member = factory.SubFactory(MemberFactory)
    from_tier = None
    to_tier = factory.SubFactory(TierFactory)
    reason = TierChange.Reason.MANUAL
    detail = "set by staff"


class MemberTierStatusFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MemberTierStatus

    member = factory.SubFactory(MemberFactory)
    tier = factory.SubFactory(TierFactory)
    last_qualified_at = factory.LazyFunction(timezone.now)


class MemberRfmScoreFactory(factory.django.DjangoModelFactory):
    """The member's R + F + M, as segmentation keeps it for tier rules."""

    class Meta:
        model = MemberRfmScore

    member = factory.SubFactory(MemberFactory)
    score = 12


class StoreStaffFactory(factory.django.DjangoModelFactory):
    """A user working at a store (store managers and staff see its members)."""

    class Meta:
        model = StoreStaff

    user = factory.SubFactory(StaffUserFactory)
    store = factory.SubFactory(StoreFactory)


class StaffAccessFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StaffAccess

    user = factory.SubFactory(StaffUserFactory)
    member = factory.SubFactory(MemberFactory)
    kind = StaffAccess.Kind.MOBILE_REVEALED


class MemberPointsMultiplierFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MemberPointsMultiplier

    member = factory.SubFactory(MemberFactory)
    multiplier = Decimal("2.00")
    starts_at = factory.LazyFunction(timezone.now)
    ends_at = factory.LazyAttribute(lambda multiplier: multiplier.starts_at + dt.timedelta(days=7))
    source = "campaign:double-points"
    idempotency_key = factory.Sequence(lambda n: f"multiplier-{n}")


# --- segmentation -----------------------------------------------------------------------------


class SchemeFactory(factory.django.DjangoModelFactory):
    """An inactive thresholds scheme (``scheme_activate`` makes one the active one)."""

    class Meta:
        model = Scheme

    name = factory.Sequence(lambda n: f"Scheme {n}")
    slug = factory.Sequence(lambda n: f"scheme-{n}")
    mode = Scheme.Mode.THRESHOLDS


class SegmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Segment

    scheme = factory.SubFactory(SchemeFactory)
    slug = factory.Sequence(lambda n: f"segment-{n}")
    name_zh = factory.Sequence(lambda n: f"分群{n}")
    name_en = factory.Sequence(lambda n: f"Segment {n}")


class SegmentRuleFactory(factory.django.DjangoModelFactory):
    """R, F and M high: a cell rule."""

    class Meta:
        model = SegmentRule

    segment = factory.SubFactory(SegmentFactory)
    scheme = factory.SelfAttribute("segment.scheme")
    priority = factory.Sequence(lambda n: 10 + n % 1000)
    kind = SegmentRule.Kind.CELL
    r = "H"
    f = "H"
    m = "H"


class RfmRunFactory(factory.django.DjangoModelFactory):
    """A finished run (not the current one: at most one run is)."""

    class Meta:
        model = RfmRun

    scheme = factory.SubFactory(SchemeFactory)
    as_of = factory.LazyFunction(timezone.localdate)
    status = RfmRun.Status.SUCCEEDED
    started_at = factory.LazyFunction(timezone.now)
    finished_at = factory.SelfAttribute("started_at")


class MemberRfmFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MemberRfm

    member = factory.SubFactory(MemberFactory)
    run = factory.SubFactory(RfmRunFactory)
    as_of = factory.SelfAttribute("run.as_of")
    recency_days = 10
    first_order_days = 200
    frequency = 3
    monetary = Decimal("600.00")
    r_score = 1
    f_score = 1
    m_score = 1
    segment = factory.SubFactory(SegmentFactory, scheme=factory.SelfAttribute("..run.scheme"))


class ClvRunFactory(factory.django.DjangoModelFactory):
    """A finished CLV run (not the current one: at most one run is) with plausible parameters."""

    class Meta:
        model = ClvRun

    as_of = factory.LazyFunction(timezone.localdate)
    status = ClvRun.Status.SUCCEEDED
    phase = ClvRun.Phase.DONE
    started_at = factory.LazyFunction(timezone.now)
    finished_at = factory.SelfAttribute("started_at")
    member_count = 100
    repeat_member_count = 60
    params = factory.LazyFunction(
        lambda: {
            "bgnbd": {"r": 0.8, "alpha": 40.0, "a": 0.6, "b": 2.4},
            "gamma_gamma": {"p": 6.0, "q": 4.0, "gamma": 15.0},
        }
    )


class MemberClvFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MemberClv

    member = factory.SubFactory(MemberFactory)
    run = factory.SubFactory(ClvRunFactory)
    frequency = 3
    recency_days = 120
    age_days = 200
    monetary_mean = Decimal("45.00")
    p_alive = 0.8
    expected_purchases_30 = 0.4
    expected_purchases_90 = 1.1
    expected_purchases_365 = 3.9
    expected_spend = Decimal("46.20")
    clv = Decimal("170.35")


class RfmStagingRowFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RfmStagingRow

    run_id = factory.Sequence(lambda n: n + 1)  # plain ids: a staging row has no foreign keys
    member_id = factory.Sequence(lambda n: n + 1)
    recency_days = 10
    first_order_days = 200
    frequency = 3
    monetary = Decimal("600.00")


class SegmentSnapshotFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SegmentSnapshot

    run = factory.SubFactory(RfmRunFactory)
    segment = factory.SubFactory(SegmentFactory, scheme=factory.SelfAttribute("..run.scheme"))
    member_count = 2
    member_ids = [1, 2]


class SegmentTransitionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SegmentTransition

    run = factory.SubFactory(RfmRunFactory)
    member = factory.SubFactory(MemberFactory)
    from_segment = None
    to_segment = factory.SubFactory(SegmentFactory, scheme=factory.SelfAttribute("..run.scheme"))
    source = SegmentTransition.Source.RUN


# --- campaigns --------------------------------------------------------------------------------


class CampaignFactory(factory.django.DjangoModelFactory):
    """A draft campaign on segments (none chosen yet)."""

    class Meta:
        model = Campaign

    name = factory.Sequence(lambda n: f"Campaign {n}")
    slug = factory.Sequence(lambda n: f"campaign-{n}")


class CampaignEffectFactory(CampaignFactory):
    """A campaign seen through its effect report (a proxy of ``Campaign``)."""

    class Meta:
        model = CampaignEffect


class CouponTemplateFactory(factory.django.DjangoModelFactory):
    """¥10 off, valid for 30 days after it is granted."""

    class Meta:
        model = CouponTemplate

    name = factory.Sequence(lambda n: f"¥10 off #{n}")
    slug = factory.Sequence(lambda n: f"coupon-template-{n}")
    kind = CouponTemplate.Kind.FIXED_AMOUNT
    amount = Decimal("10.00")
    validity = CouponTemplate.Validity.DAYS_AFTER_GRANT
    valid_days = 30


class CampaignBenefitFactory(factory.django.DjangoModelFactory):
    """100 points."""

    class Meta:
        model = CampaignBenefit

    campaign = factory.SubFactory(CampaignFactory)
    kind = CampaignBenefit.Kind.POINTS
    points = 100


class CampaignGrantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CampaignGrant

    campaign = factory.SubFactory(CampaignFactory)
    member = factory.SubFactory(MemberFactory)
    cause = factory.Sequence(lambda n: f"run:{n}")
    sequence = 1
    granted_at = factory.LazyFunction(timezone.now)
    cost = Decimal("1.00")


class CouponFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Coupon

    template = factory.SubFactory(CouponTemplateFactory)
    member = factory.SubFactory(MemberFactory)
    granted_at = factory.LazyFunction(timezone.now)
    valid_from = factory.SelfAttribute("granted_at")
    valid_until = factory.LazyAttribute(lambda coupon: coupon.granted_at + dt.timedelta(days=30))
    source = "test"
    idempotency_key = factory.Sequence(lambda n: f"coupon-{n}")


class FollowUpTaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FollowUpTask

    member = factory.SubFactory(MemberFactory)
    store = factory.SelfAttribute("member.home_store")
    reason = "call the member"
    due_date = factory.LazyFunction(lambda: timezone.localdate() + dt.timedelta(days=3))
    dedupe_key = factory.Sequence(lambda n: f"followup-{n}")


class TopUpOfferFactory(factory.django.DjangoModelFactory):
    """Top up ¥100, get ¥10: for everyone, once per member."""

    class Meta:
        model = TopUpOffer

    name = factory.Sequence(lambda n: f"Top up 100 get 10 #{n}")
    code = factory.Sequence(lambda n: f"offer-{n}")
    min_amount = Decimal("100.00")
    bonus_amount = Decimal("10.00")


class OfferTopUpFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OfferTopUp

    offer = factory.SubFactory(TopUpOfferFactory)
    member = factory.SubFactory(MemberFactory)
    sequence = 1
    amount_paid = factory.SelfAttribute("offer.min_amount")
    bonus = factory.SelfAttribute("offer.bonus_amount")
    product_tags = factory.SelfAttribute("offer.product_tags")
    product_categories = factory.SelfAttribute("offer.product_categories")
    idempotency_key = factory.Sequence(lambda n: f"offer-top-up-{n}")


class RewardFactory(factory.django.DjangoModelFactory):
    """A ¥10 coupon for 500 points, for everyone, no stock limit."""

    class Meta:
        model = Reward

    name = factory.Sequence(lambda n: f"积分换券 #{n}")
    slug = factory.Sequence(lambda n: f"reward-{n}")
    kind = Reward.Kind.COUPON
    coupon_template = factory.SubFactory(CouponTemplateFactory)
    points_price = 500


class RewardPriceFactory(factory.django.DjangoModelFactory):
    """400 points for the members of a tier."""

    class Meta:
        model = RewardPrice

    reward = factory.SubFactory(RewardFactory)
    tier = factory.SubFactory(TierFactory)
    points_price = 400


class RewardRedemptionFactory(factory.django.DjangoModelFactory):
    """A redemption row as written (the ledger is not moved: ``reward_redeem`` does that)."""

    class Meta:
        model = RewardRedemption

    member = factory.SubFactory(MemberFactory)
    reward = factory.SubFactory(RewardFactory)
    points = 500
    points_entry = factory.SubFactory(
        PointsEntryFactory,
        member=factory.SelfAttribute("..member"),
        kind=PointsEntry.Kind.REDEEM,
        points=-500,
        balance_after=0,
        reason="积分兑换",
    )
    channel = RewardRedemption.Channel.MINI_PROGRAM
    status = RewardRedemption.Status.PENDING
    idempotency_key = factory.Sequence(lambda n: f"reward-redemption-{n}")
    request_fingerprint = "0" * 64


class ReferralRewardRuleFactory(factory.django.DjangoModelFactory):
    """An inactive default rule (at most one active rule per segment, and one default)."""

    class Meta:
        model = ReferralRewardRule

    name = factory.Sequence(lambda n: f"Referral rule {n}")
    slug = factory.Sequence(lambda n: f"referral-rule-{n}")
    referrer_points = 200
    referee_points = 100


class OutboxMessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OutboxMessage

    member = factory.SubFactory(MemberFactory)
    channel = "log"
    template = "welcome"
    payload = factory.Sequence(lambda n: {"n": n})
    dedupe_key = factory.Sequence(lambda n: f"message-{n}")


class TriggerFactory(factory.django.DjangoModelFactory):
    """An inactive trigger: a message after 60 days without a purchase."""

    class Meta:
        model = Trigger

    name = factory.Sequence(lambda n: f"Trigger {n}")
    kind = Trigger.Kind.INACTIVITY
    inactivity_days = 60
    message_template = "win_back"


class TriggerFiringFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TriggerFiring

    trigger = factory.SubFactory(TriggerFactory)
    member = factory.SubFactory(MemberFactory)
    cause_key = factory.Sequence(lambda n: f"lapse:{n}")
    due_at = factory.LazyFunction(timezone.now)


# --- builders ---------------------------------------------------------------------------------


def install_default_scheme() -> Scheme:
    """The data migration's schemes (a transactional test elsewhere may have flushed them),
    installed with the live app registry; the default one, ``rfm-default``, active."""
    if not Scheme.objects.filter(slug="rfm-default").exists():
        migration = importlib.import_module("segmentation.migrations.0002_default_schemes")
        migration.create_schemes(django_apps, None)
    scheme = Scheme.objects.get(slug="rfm-default")
    if not scheme.is_active:
        Scheme.objects.update(is_active=False)
        Scheme.objects.filter(pk=scheme.pk).update(is_active=True)
        scheme.refresh_from_db()
    return scheme


def tier_ladder() -> dict[str, Tier]:
    """The test brand's tiers, by name:

    - ``entry`` 普通会员 (rank 0, ×1);
    - ``silver`` 银卡 (rank 1, ×1.5): ¥500 in 30 days, or 5 orders in 90 days;
    - ``gold`` 金卡 (rank 2, ×2): ¥1000 in 365 days, or 10 orders in 180 days.

    Silver and gold are kept 90 days after a member stops qualifying.
    """
    entry = Tier.objects.create(code="basic", name="普通会员", rank=0)
    silver = Tier.objects.create(
        code="silver", name="银卡", rank=1, retention_days=90, points_multiplier=Decimal("1.50")
    )
    gold = Tier.objects.create(code="gold", name="金卡", rank=2, retention_days=90, points_multiplier=Decimal("2.00"))
    TierRule.objects.create(tier=silver, window_days=30, min_spend=Decimal("500.00"))
    TierRule.objects.create(tier=silver, window_days=90, min_orders=5)
    TierRule.objects.create(tier=gold, window_days=365, min_spend=Decimal("1000.00"))
    TierRule.objects.create(tier=gold, window_days=180, min_orders=10)
    return {"entry": entry, "silver": silver, "gold": gold}


_order_numbers = itertools.count(1)


def record_order(member, amount="38.00", paid_at=None, *, external_id=None, store=None):
    """An order recorded the way the POS records it (``order_record``: tier, points, referral),
    at the member's home store, paid five minutes ago unless told. Returns what ``order_record``
    returns (``.order``, ``.created``)."""
    return order_record(
        external_id=external_id or f"POS-{next(_order_numbers)}",
        member=member,
        store=store or member.home_store,
        paid_at=paid_at or timezone.now() - dt.timedelta(minutes=5),
        amount=amount,
    )


class ImportJobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ImportJob

    kind = ImportJob.Kind.MEMBERS
    file_name = "members.csv"
    stored_name = factory.Sequence(lambda n: f"{n:032x}")
    created_by = factory.SubFactory(StaffUserFactory)


class InteractionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Interaction

    member = factory.SubFactory(MemberFactory)
    kind = Interaction.Kind.CHECK_IN
    source = Interaction.Source.POS
    occurred_at = factory.LazyFunction(timezone.now)
    event_id = factory.Sequence(lambda n: f"event-{n}")


# --- campaigns: stamp cards -------------------------------------------------------------------


class StampCardFactory(factory.django.DjangoModelFactory):
    """满5次送1次: five orders within 90 days give 100 points (inactive until switched on)."""

    class Meta:
        model = StampCard

    name = factory.Sequence(lambda n: f"集点卡 {n}")
    slug = factory.Sequence(lambda n: f"stamp-card-{n}")
    stamps_required = 5
    window_days = 90
    bonus_points = 100
    is_active = False


class StampCompletionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StampCompletion

    card = factory.SubFactory(StampCardFactory)
    member = factory.SubFactory(MemberFactory)
    completed_at = factory.LazyFunction(timezone.now)


class StampFactory(factory.django.DjangoModelFactory):
    """An unused stamp of an order of the member."""

    class Meta:
        model = Stamp

    card = factory.SubFactory(StampCardFactory)
    order = factory.SubFactory(OrderFactory)
    member = factory.SelfAttribute("order.member")
    paid_at = factory.SelfAttribute("order.paid_at")


# --- segmentation: product preference -----------------------------------------------------------


class MemberCategoryFactory(factory.django.DjangoModelFactory):
    """A member's favourite category, as the nightly step writes it."""

    class Meta:
        model = MemberCategory

    member = factory.SubFactory(MemberFactory)
    rank = 1
    category = "奶茶"
    net_amount = Decimal("120.00")
    computed_at = factory.LazyFunction(timezone.now)


class RelatedProductFactory(factory.django.DjangoModelFactory):
    """B is often bought by those who buy A."""

    class Meta:
        model = RelatedProduct

    product = factory.SubFactory(ProductFactory)
    rank = 1
    related = factory.SubFactory(ProductFactory)
    support = 3
    lift = 2.5
    computed_at = factory.LazyFunction(timezone.now)


class TagRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TagRule

    name = factory.Sequence(lambda n: f"高客单{n}")
    kind = TagRule.Kind.HIGH_AVERAGE_ORDER
    average_at_least = Decimal("80.00")
    min_orders = 2
    is_active = True


class MemberTagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MemberTag

    member = factory.SubFactory(MemberFactory)
    name = factory.Sequence(lambda n: f"标签{n}")


# --- workspace: the activity rollup -----------------------------------------------------------


class ActivityRollupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "workspace.ActivityRollup"

    period = "day"
    start = factory.LazyFunction(lambda: timezone.localdate() - dt.timedelta(days=1))
    active = 3
    computed_at = factory.LazyFunction(timezone.now)


class RetentionRollupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "workspace.RetentionRollup"

    day = factory.LazyFunction(lambda: timezone.localdate() - dt.timedelta(days=2))
    new_members = 4
    retained_1 = 2
    retained_7 = 3
    retained_30 = 3
    observed_until = factory.LazyFunction(lambda: timezone.localdate() - dt.timedelta(days=1))
    computed_at = factory.LazyFunction(timezone.now)
