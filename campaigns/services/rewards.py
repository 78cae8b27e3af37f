"""The points catalogue (积分兑换): what a member may redeem, at which price, and redeeming it.

Price
    A member pays the lowest price that applies to them: the reward's base ``points_price`` and
    the ``RewardPrice`` rows for their current segment (``MemberRfm``) or their tier. One SQL
    expression (``_member_price``) says it, for the catalogue and for the redemption alike.

Who may redeem (the refusals, each a field-level ``ValidationError``)
    ``member`` ``member_inactive`` (blocked or erased); ``reward`` ``inactive``, ``not_started``,
    ``ended``, ``not_eligible`` (exclusive to segments the member is not in now), ``out_of_stock``,
    ``limit_reached`` (the member's own limit); ``points`` ``insufficient_points`` (the ledger's
    own refusal). The catalogue (``rewards_for_member``) lists every active reward open to the
    member, each with their price and the first refusal, if any (``reward_refusal``).

Redeeming (``reward_redeem``)
    One durable transaction. Locks, in this order: the member's points account
    (``members.lock_objects``), then the reward row (``select_for_update``), then — inside
    ``coupon_grant``, for coupon rewards — the coupon template row: the order of every campaign
    grant too (points account, then template), so nothing waits in a circle. Under the reward lock
    the stock (``redeemed_count`` under a ``CheckConstraint``) and the member's count are read fresh
    and cannot change before the commit, so concurrent redemptions of the last items sell exactly
    the stock. The points are taken through the points ledger (``points_redeem_locked``: the lots
    expiring first, never below zero, key ``reward:<key>``), the coupon issued (key
    ``reward:<key>:coupon``), the count raised and the redemption written with the ledger entry and
    the coupon. A refusal writes nothing.

Retries
    ``idempotency_key`` is unique on the redemption, with a fingerprint of what was asked (member,
    reward, channel, store): the same key and the same request return the first redemption (its
    ``replayed`` set); the same key for anything else raises ``IdempotencyConflict``. Callers scope
    the client's key (``me:<member>:<key>``, ``pos:<store>:<key>``).

Reversing (``reward_redemption_reverse``, staff)
    A coupon redemption whose coupon is still unused can be undone: the coupon is revoked, the
    points come back through the ledger (``points_return_locked``: a ``reversal`` credit naming the
    redemption's debit), the stock goes back up and the redemption becomes ``reversed`` (it no longer
    counts against the member's limit). Same locks and order as a redemption; reversing twice
    returns the first reversal; a used coupon or a product redemption is refused.

Collecting (``reward_redemption_collect``)
    A product redemption is ``pending`` until staff hand the product over at a counter: one
    conditional ``UPDATE`` makes it ``collected``; collecting it again at the same store changes
    nothing (a retry), at another store is refused (``already_collected``).
"""

import hashlib
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, Least
from django.utils import timezone
from django.utils.translation import gettext as _g
from django.utils.translation import gettext_lazy as _

from campaigns.models import Reward, RewardPrice, RewardRedemption
from campaigns.services.coupons import CouponUnavailable, coupon_grant, coupon_revoke
from members.lock_objects import points_account_lock
from members.models import Member, PointsAccount, Store
from members.services.errors import IdempotencyConflict
from members.services.points import points_redeem_locked, points_return_locked
from segmentation.models import MemberRfm

__all__ = [
    "MAX_KEY_LENGTH",
    "member_reward_redemptions",
    "reward_redeem",
    "reward_redemption_collect",
    "reward_redemption_reverse",
    "reward_refusal",
    "rewards_for_member",
]

MAX_KEY_LENGTH = 90  # the points entry's key is ``reward:<key>`` (at most 100)
Channel = RewardRedemption.Channel
Status = RewardRedemption.Status


def _invalid(field: str, message, code: str) -> ValidationError:
    return ValidationError({field: ValidationError(message, code=code)})


def _conflict(key: str) -> IdempotencyConflict:
    return IdempotencyConflict(
        {
            "idempotency_key": ValidationError(
                _("The idempotency key %(key)s was already used for a different redemption.") % {"key": key},
                code="conflict",
            )
        }
    )


def _key(value: str) -> str:
    value = (value or "").strip()
    if not value:
        raise _invalid("idempotency_key", _("An idempotency key is required."), "required")
    if len(value) > MAX_KEY_LENGTH:
        raise _invalid(
            "idempotency_key",
            _("An idempotency key has at most %(n)s characters.") % {"n": MAX_KEY_LENGTH},
            "max_length",
        )
    return value


# --- the catalogue -----------------------------------------------------------------------------------


def member_segment_id(member_id: int) -> int | None:
    """The member's current segment (``MemberRfm``), or None."""
    return MemberRfm.objects.filter(member_id=member_id).values_list("segment_id", flat=True).first()


def _member_price(*, segment_id: int | None, tier_id: int | None):
    """The lowest price of the reward (``OuterRef("pk")``) for a member of ``segment_id`` and ``tier_id``."""
    applies = Q()
    if segment_id is not None:
        applies |= Q(segment_id=segment_id)
    if tier_id is not None:
        applies |= Q(tier_id=tier_id)
    if not applies:
        return F("points_price")
    lowest = (
        RewardPrice.objects.filter(applies, reward_id=OuterRef("pk"))
        .order_by("points_price")
        .values("points_price")[:1]
    )
    return Least(F("points_price"), Coalesce(Subquery(lowest), F("points_price")))


def _priced(*, member_id: int, segment_id: int | None, tier_id: int | None) -> QuerySet[Reward]:
    """Rewards with ``member_price``, ``open_to_member`` and ``member_redeemed`` (how many the member has)."""
    through = Reward.exclusive_segments.through
    open_to_all = ~Exists(through.objects.filter(reward_id=OuterRef("pk")))
    open_to_member = open_to_all
    if segment_id is not None:
        open_to_member = open_to_all | Exists(through.objects.filter(reward_id=OuterRef("pk"), segment_id=segment_id))
    redeemed = (
        RewardRedemption.objects.filter(reward_id=OuterRef("pk"), member_id=member_id)
        .exclude(status=Status.REVERSED)
        .order_by()
        .values("reward_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Reward.objects.annotate(
        member_price=_member_price(segment_id=segment_id, tier_id=tier_id),
        open_to_member=open_to_member,
        member_redeemed=Coalesce(Subquery(redeemed, output_field=IntegerField()), Value(0)),
    )


def rewards_for_member(*, member: Member, now: datetime | None = None) -> QuerySet[Reward]:
    """The active rewards open to ``member`` that have not ended, cheapest for them first, each with
    ``member_price``, ``member_redeemed`` and the member's points as ``member_balance``: one query
    (and one for the member's segment). ``member`` needs only ``pk`` and ``tier_id``."""
    now = now or timezone.now()
    balance = PointsAccount.objects.filter(member_id=member.pk).values("balance")
    return (
        _priced(member_id=member.pk, segment_id=member_segment_id(member.pk), tier_id=member.tier_id)
        .filter(is_active=True, open_to_member=True)
        .filter(Q(ends_at__isnull=True) | Q(ends_at__gt=now))
        .annotate(member_balance=Coalesce(Subquery(balance, output_field=IntegerField()), Value(0)))
        .select_related("coupon_template", "product")
        .order_by("member_price", "id")
    )


def points_balance(member_id: int) -> int:
    return PointsAccount.objects.filter(member_id=member_id).values_list("balance", flat=True).first() or 0


def reward_refusal(reward: Reward, *, balance: int | None, now: datetime | None = None) -> ValidationError | None:
    """Why the member cannot redeem ``reward`` (annotated by ``_priced``) now, or None. ``balance``
    None: the points are not checked (the ledger checks them when it takes them)."""
    now = now or timezone.now()
    if not reward.is_active:
        return _invalid("reward", _("This reward is not available."), "inactive")
    if reward.starts_at is not None and now < reward.starts_at:
        return _invalid("reward", _("This reward cannot be redeemed yet."), "not_started")
    if reward.ends_at is not None and now >= reward.ends_at:
        return _invalid("reward", _("This reward cannot be redeemed any more."), "ended")
    if not reward.open_to_member:
        return _invalid("reward", _("This reward is not available to this member."), "not_eligible")
    if reward.stock is not None and reward.redeemed_count >= reward.stock:
        return _invalid("reward", _("This reward is out of stock."), "out_of_stock")
    if reward.limit_per_member is not None and reward.member_redeemed >= reward.limit_per_member:
        return _invalid("reward", _("This member has redeemed this reward as often as allowed."), "limit_reached")
    if balance is not None and balance < reward.member_price:
        return _invalid(
            "points",
            _("Insufficient points: %(balance)s available, %(points)s asked.")
            % {"balance": balance, "points": reward.member_price},
            "insufficient_points",
        )
    return None


def member_reward_redemptions(*, member_id: int) -> QuerySet[RewardRedemption]:
    """The member's redemptions, newest first, with the reward, coupon and stores fetched."""
    return (
        RewardRedemption.objects.filter(member_id=member_id)
        .select_related("reward__product", "coupon", "store", "collected_store")
        .order_by("-created_at", "-id")
    )


# --- redeeming ---------------------------------------------------------------------------------------


def _fingerprint(*, member_id: int, reward_id: int, channel: str, store_id: int | None) -> str:
    return hashlib.sha256(f"{member_id}|{reward_id}|{channel}|{store_id or ''}".encode()).hexdigest()


def _existing(key: str, fingerprint: str) -> RewardRedemption | None:
    redemption = RewardRedemption.objects.select_related("reward", "coupon").filter(idempotency_key=key).first()
    if redemption is None:
        return None
    if redemption.request_fingerprint != fingerprint:
        raise _conflict(key)
    redemption.replayed = True
    return redemption


def reward_redeem(
    *,
    member: Member,
    reward: Reward,
    idempotency_key: str,
    channel: str,
    store: Store | None = None,
    actor=None,
) -> RewardRedemption:
    """Redeem ``reward`` for ``member`` with their points (see the module doc). Returns the
    redemption; ``replayed`` is True when it is the first one of the same key."""
    if channel not in Channel.values:
        raise ValueError(f"unknown channel {channel!r}")
    key = _key(idempotency_key)
    fingerprint = _fingerprint(
        member_id=member.pk, reward_id=reward.pk, channel=channel, store_id=store.pk if store else None
    )
    existing = _existing(key, fingerprint)
    if existing is not None:
        return existing
    try:
        with transaction.atomic(durable=True):
            account = points_account_lock(member_id=member.pk)
            existing = _existing(key, fingerprint)  # a concurrent retry of this key committed first
            if existing is not None:
                return existing
            return _redeem_locked(
                account=account,
                member_id=member.pk,
                reward_id=reward.pk,
                key=key,
                fingerprint=fingerprint,
                channel=channel,
                store=store,
                actor=actor,
            )
    except IntegrityError:
        existing = _existing(key, fingerprint)
        if existing is None:
            raise
        return existing


def _redeem_locked(
    *,
    account: PointsAccount,
    member_id: int,
    reward_id: int,
    key: str,
    fingerprint: str,
    channel: str,
    store: Store | None,
    actor,
) -> RewardRedemption:
    Reward.objects.select_for_update().filter(pk=reward_id).values_list("pk", flat=True).get()
    member = Member.objects.only("pk", "is_active", "tier_id").get(pk=member_id)
    if not member.is_active:
        raise _invalid("member", _("This member is blocked: they cannot redeem rewards."), "member_inactive")
    # A new statement after the lock: it sees the stock and the member's redemptions as committed now.
    reward = (
        _priced(member_id=member_id, segment_id=member_segment_id(member_id), tier_id=member.tier_id)
        .select_related("coupon_template")
        .get(pk=reward_id)
    )
    refusal = reward_refusal(reward, balance=None)
    if refusal is not None:
        raise refusal
    price = reward.member_price
    reason = _g("Points reward %(reward)s") % {"reward": reward.name}
    entry = points_redeem_locked(
        account=account,
        points=price,
        idempotency_key=f"reward:{key}",
        reason=reason,
        actor=actor,
        reference=f"reward:{reward.pk}",
    )
    coupon = None
    if reward.kind == Reward.Kind.COUPON:
        try:
            coupon = coupon_grant(
                template=reward.coupon_template,
                member=member,
                source=f"reward:{reward.slug}",
                idempotency_key=f"reward:{key}:coupon",
            )
        except CouponUnavailable as exc:
            message = next(iter(exc.message_dict.values()))[0]
            raise _invalid("reward", message, "unavailable") from None
    now = timezone.now()
    Reward.objects.filter(pk=reward.pk).update(redeemed_count=F("redeemed_count") + 1, updated_at=now)
    redemption = RewardRedemption.objects.create(
        member=member,
        reward=reward,
        points=price,
        points_entry=entry,
        coupon=coupon,
        channel=channel,
        store=store,
        status=Status.ISSUED if coupon is not None else Status.PENDING,
        idempotency_key=key,
        request_fingerprint=fingerprint,
    )
    redemption.replayed = False
    return redemption


# --- collecting --------------------------------------------------------------------------------------


def reward_redemption_collect(*, redemption: RewardRedemption, store: Store | None) -> RewardRedemption:
    """Mark a product redemption collected at ``store`` (None: in the admin). Collecting it again at
    the same store returns it unchanged; a coupon redemption, or one collected elsewhere, is refused."""
    now = timezone.now()
    changed = RewardRedemption.objects.filter(pk=redemption.pk, status=Status.PENDING).update(
        status=Status.COLLECTED, collected_at=now, collected_store=store, updated_at=now
    )
    fresh = RewardRedemption.objects.select_related("reward__product", "coupon", "store", "collected_store").get(
        pk=redemption.pk
    )
    if changed:
        return fresh
    if fresh.status == Status.ISSUED:
        raise _invalid("redemption", _("A coupon reward is not collected at the counter."), "not_a_product")
    if fresh.collected_store_id != (store.pk if store else None):
        raise _invalid("redemption", _("This reward was collected already."), "already_collected")
    return fresh


# --- reversing ---------------------------------------------------------------------------------------


def reward_redemption_reverse(*, redemption: RewardRedemption, actor=None, reason: str = "") -> RewardRedemption:
    """Undo a coupon redemption whose coupon is unused: coupon revoked, points and stock given back."""
    with transaction.atomic(durable=True):
        account = points_account_lock(member_id=redemption.member_id)
        Reward.objects.select_for_update().filter(pk=redemption.reward_id).values_list("pk", flat=True).get()
        fresh = RewardRedemption.objects.select_related("points_entry", "coupon", "reward").get(pk=redemption.pk)
        if fresh.status == Status.REVERSED:
            return fresh
        if fresh.coupon is None:
            raise _invalid("redemption", _("Only a coupon reward can be reversed."), "not_reversible")
        text = reason or _g("Points reward %(reward)s reversed") % {"reward": fresh.reward.name}
        coupon_revoke(coupon=fresh.coupon, reason=text)  # refused when the coupon was used
        entry = points_return_locked(
            account=account,
            entry=fresh.points_entry,
            idempotency_key=f"{fresh.points_entry.idempotency_key}:return"[:100],
            reason=text,
            actor=actor,
        )
        now = timezone.now()
        Reward.objects.filter(pk=fresh.reward_id).update(redeemed_count=F("redeemed_count") - 1, updated_at=now)
        RewardRedemption.objects.filter(pk=fresh.pk).update(
            status=Status.REVERSED, reversed_at=now, reversal_entry=entry, updated_at=now
        )
        fresh.refresh_from_db()
        return fresh
