"""The points catalogue (积分兑换, seeds 001 and 002): rewards members buy with their points.

- ``Reward`` — a coupon (one coupon of a ``CouponTemplate``, issued at once) or a product of the
  catalogue (``members.Product``, collected at the counter) for a base ``points_price``. Optional
  ``stock`` (counted in ``redeemed_count`` under a database ``CheckConstraint``), a limit per
  member, a window, and ``exclusive_segments`` (专属兑换: only members now in one of them; none:
  everyone).
- ``RewardPrice`` — a lower (or other) price for the members of a segment or of a tier; a member
  pays the lowest price that applies to them, the base price included.
- ``RewardRedemption`` — one redemption: the points paid (and their ledger entry), the coupon
  issued or the product's collection status, where and through which channel. Its
  ``idempotency_key`` is unique: a retry returns it. Staff may reverse a coupon redemption while
  the coupon is unused (``reversed``: the points given back, the stock too).

Writes go through ``campaigns.services.rewards``.
"""

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from campaigns.models.bilingual import LocalTexts, english_description, english_name
from campaigns.models.coupons import Coupon, CouponTemplate
from members.models import Member, PointsEntry, Product, Store, Tier, TimeStampedModel

__all__ = ["Reward", "RewardPrice", "RewardRedemption"]


class Reward(LocalTexts, TimeStampedModel):
    class Kind(models.TextChoices):
        COUPON = "coupon", _("Coupon")
        PRODUCT = "product", _("Product (collected at the counter)")

    name = models.CharField(_("name"), max_length=200)
    name_en = english_name()
    slug = models.SlugField(_("slug"), max_length=64, unique=True, help_text=_("A stable name for the reward."))
    description = models.TextField(_("description"), blank=True)
    description_en = english_description()
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices, default=Kind.COUPON)
    coupon_template = models.ForeignKey(
        CouponTemplate,
        verbose_name=_("coupon"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("Coupon rewards: the coupon the member gets."),
    )
    product = models.ForeignKey(
        Product,
        verbose_name=_("product"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("Product rewards: what the member collects at the counter."),
    )
    points_price = models.PositiveIntegerField(
        _("points price"),
        validators=[MinValueValidator(1)],
        help_text=_("The base price; segment and tier prices may be lower."),
    )
    stock = models.PositiveIntegerField(
        _("stock"), null=True, blank=True, help_text=_("How many can be redeemed in all; empty for no limit.")
    )
    redeemed_count = models.PositiveIntegerField(_("redeemed"), default=0, editable=False)
    limit_per_member = models.PositiveSmallIntegerField(
        _("limit per member"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_("How many one member may redeem; empty for no limit."),
    )
    starts_at = models.DateTimeField(_("starts at"), null=True, blank=True)
    ends_at = models.DateTimeField(_("ends at"), null=True, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    exclusive_segments = models.ManyToManyField(
        "segmentation.Segment",
        verbose_name=_("exclusive to segments"),
        blank=True,
        related_name="+",
        help_text=_("Only members now in one of these segments may redeem it; leave empty for everyone."),
    )

    class Meta:
        ordering = ["points_price", "id"]
        verbose_name = _("points reward")
        verbose_name_plural = _("points rewards")
        constraints = [
            models.CheckConstraint(condition=Q(points_price__gte=1), name="reward_points_price_gte_1"),
            models.CheckConstraint(
                condition=Q(stock__isnull=True) | Q(redeemed_count__lte=F("stock")),
                name="reward_redeemed_within_stock",
                violation_error_message=_("More redeemed than the stock allows."),
            ),
            models.CheckConstraint(
                condition=~Q(kind="coupon") | Q(coupon_template__isnull=False, product__isnull=True),
                name="reward_coupon_has_template",
                violation_error_message=_("A coupon reward needs a coupon (and no product)."),
            ),
            models.CheckConstraint(
                condition=~Q(kind="product") | Q(product__isnull=False, coupon_template__isnull=True),
                name="reward_product_has_product",
                violation_error_message=_("A product reward needs a product (and no coupon)."),
            ),
            models.CheckConstraint(
                condition=Q(limit_per_member__isnull=True) | Q(limit_per_member__gte=1),
                name="reward_limit_per_member_gte_1",
            ),
            models.CheckConstraint(
                condition=Q(starts_at__isnull=True) | Q(ends_at__isnull=True) | Q(ends_at__gt=F("starts_at")),
                name="reward_window",
                violation_error_message=_("The end must be after the start."),
            ),
        ]

    @property
    def stock_left(self) -> int | None:
        return None if self.stock is None else max(self.stock - self.redeemed_count, 0)


class RewardPrice(TimeStampedModel):
    """The price of ``reward`` for the members of a segment or of a tier (one of the two)."""

    reward = models.ForeignKey(Reward, verbose_name=_("reward"), on_delete=models.CASCADE, related_name="prices")
    segment = models.ForeignKey(
        "segmentation.Segment",
        verbose_name=_("segment"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
    )
    tier = models.ForeignKey(
        Tier, verbose_name=_("tier"), on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    points_price = models.PositiveIntegerField(_("points price"), validators=[MinValueValidator(1)])

    class Meta:
        ordering = ["reward", "points_price", "id"]
        verbose_name = _("segment or tier price")
        verbose_name_plural = _("segment and tier prices")
        constraints = [
            models.CheckConstraint(condition=Q(points_price__gte=1), name="rewardprice_points_price_gte_1"),
            models.CheckConstraint(
                condition=Q(segment__isnull=False, tier__isnull=True) | Q(segment__isnull=True, tier__isnull=False),
                name="rewardprice_segment_xor_tier",
                violation_error_message=_("Choose a segment or a tier (one of them)."),
            ),
            models.UniqueConstraint(
                fields=["reward", "segment"],
                condition=Q(segment__isnull=False),
                name="rewardprice_one_per_segment",
                violation_error_message=_("This segment has a price already."),
            ),
            models.UniqueConstraint(
                fields=["reward", "tier"],
                condition=Q(tier__isnull=False),
                name="rewardprice_one_per_tier",
                violation_error_message=_("This tier has a price already."),
            ),
        ]

    def __str__(self):
        return f"{self.reward_id}: {self.points_price}"


class RewardRedemption(TimeStampedModel):
    class Channel(models.TextChoices):
        MINI_PROGRAM = "mini_program", _("Mini-program")
        POS = "pos", _("POS")
        ADMIN = "admin", _("Admin")

    class Status(models.TextChoices):
        ISSUED = "issued", _("Coupon issued")
        PENDING = "pending", _("To collect at the counter")
        COLLECTED = "collected", _("Collected")
        REVERSED = "reversed", _("Reversed (points given back)")

    member = models.ForeignKey(Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="+")
    reward = models.ForeignKey(Reward, verbose_name=_("reward"), on_delete=models.PROTECT, related_name="redemptions")
    points = models.PositiveIntegerField(_("points paid"))
    points_entry = models.OneToOneField(
        PointsEntry, verbose_name=_("points entry"), on_delete=models.PROTECT, related_name="reward_redemption"
    )
    coupon = models.OneToOneField(
        Coupon,
        verbose_name=_("coupon"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="reward_redemption",
    )
    channel = models.CharField(_("channel"), max_length=20, choices=Channel.choices)
    store = models.ForeignKey(
        Store, verbose_name=_("store"), on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    status = models.CharField(_("status"), max_length=20, choices=Status.choices)
    collected_at = models.DateTimeField(_("collected at"), null=True, blank=True)
    collected_store = models.ForeignKey(
        Store, verbose_name=_("collected at store"), on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reversed_at = models.DateTimeField(_("reversed at"), null=True, blank=True)
    reversal_entry = models.OneToOneField(
        PointsEntry,
        verbose_name=_("points given back"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="reward_redemption_reversed",
    )
    idempotency_key = models.CharField(_("idempotency key"), max_length=200, unique=True)
    request_fingerprint = models.CharField(_("request fingerprint"), max_length=64)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("reward redemption")
        verbose_name_plural = _("reward redemptions")
        indexes = [models.Index(fields=["member", "reward"], name="rewardredemption_member_reward")]
        permissions = [("reverse_rewardredemption", _("Can reverse a reward redemption (points given back)"))]
        constraints = [
            models.CheckConstraint(condition=Q(points__gte=1), name="rewardredemption_points_gte_1"),
            models.CheckConstraint(
                condition=~Q(status="collected") | Q(collected_at__isnull=False),
                name="rewardredemption_collected_has_time",
            ),
            models.CheckConstraint(
                condition=~Q(status="reversed") | Q(reversed_at__isnull=False, reversal_entry__isnull=False),
                name="rewardredemption_reversed_has_entry",
            ),
        ]

    def __str__(self):
        return f"{self.reward_id} / {self.member_id} ({self.get_status_display()})"
