"""Stamp cards (集点卡, seed 001: 满5次送1次): buy N times within a window, get a reward.

- ``StampCard`` — what counts (every order, or only orders with a line of a product in
  ``category``; at least ``min_order_amount``; paid within the last ``window_days``), who collects
  (members of one of ``segments`` when the order is stamped; empty: everyone) and what the N-th
  stamp gives (a coupon of ``coupon_template`` and/or ``bonus_points``).
- ``Stamp`` — one per qualifying order per card: ``(card, order)`` is unique, so a retried task, a
  re-sent order or a second worker never stamps twice. ``void_at`` is set when a refund leaves the
  order no longer qualifying; ``completion`` when the stamp was used up for a reward.
- ``StampCompletion`` — N stamps turned into a reward. The reward's idempotency keys derive from
  the completion's id (``stamps:<id>:coupon``, ``stamps:<id>:points``), so a retry never issues
  twice. ``status`` records what became of it when a refund voided one of its stamps.

Writes go through ``campaigns.services.stamps``.
"""

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from campaigns.models.bilingual import LocalTexts, english_description, english_name
from campaigns.models.coupons import Coupon, CouponTemplate
from members.models import MONEY, Member, Order, PointsEntry, TimeStampedModel

__all__ = ["Stamp", "StampCard", "StampCompletion"]


class StampCard(LocalTexts, TimeStampedModel):
    name = models.CharField(_("name"), max_length=200)
    name_en = english_name()
    slug = models.SlugField(_("slug"), max_length=64, unique=True, help_text=_("A stable name for the card."))
    description = models.TextField(_("description"), blank=True)
    description_en = english_description()
    stamps_required = models.PositiveSmallIntegerField(
        _("stamps required"),
        default=5,
        validators=[MinValueValidator(2)],
        help_text=_("How many qualifying orders earn the reward (满N次送1次)."),
    )
    category = models.CharField(
        _("product category"),
        max_length=50,
        blank=True,
        help_text=_("Only orders with a line of a product in this category count; empty: every order."),
    )
    min_order_amount = models.DecimalField(
        _("minimum order amount"),
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text=_("Only orders of at least this amount (net of refunds) count; empty: any amount."),
        **MONEY,
    )
    window_days = models.PositiveSmallIntegerField(
        _("window (days)"),
        default=90,
        validators=[MinValueValidator(1)],
        help_text=_("Stamps older than this many days no longer count."),
    )
    coupon_template = models.ForeignKey(
        CouponTemplate,
        verbose_name=_("reward coupon"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="stamp_cards",
    )
    bonus_points = models.PositiveIntegerField(
        _("reward points"), default=0, help_text=_("Points given with the reward (打卡积分); 0 for none.")
    )
    segments = models.ManyToManyField(
        "segmentation.Segment",
        verbose_name=_("segments"),
        blank=True,
        related_name="stamp_cards",
        help_text=_("Only members in one of these segments collect stamps; empty: every member."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    starts_at = models.DateTimeField(_("starts at"), null=True, blank=True, help_text=_("Empty: at once."))
    ends_at = models.DateTimeField(_("ends at"), null=True, blank=True, help_text=_("Empty: no end."))

    class Meta:
        ordering = ["name", "id"]
        verbose_name = _("stamp card")
        verbose_name_plural = _("stamp cards")
        constraints = [
            models.CheckConstraint(condition=Q(stamps_required__gte=2), name="stampcard_at_least_two_stamps"),
            models.CheckConstraint(
                condition=Q(coupon_template__isnull=False) | Q(bonus_points__gt=0),
                name="stampcard_has_a_reward",
                violation_error_message=_("Give a reward: a coupon, points or both."),
            ),
            models.CheckConstraint(
                condition=Q(starts_at__isnull=True) | Q(ends_at__isnull=True) | Q(ends_at__gt=models.F("starts_at")),
                name="stampcard_valid_range",
                violation_error_message=_("The end must be after the start."),
            ),
        ]


class StampCompletion(TimeStampedModel):
    class Status(models.TextChoices):
        REWARDED = "rewarded", _("Rewarded")
        REVERSED = "reversed", _("Reversed (an order was refunded; the reward was taken back)")
        KEPT = "kept", _("Kept (an order was refunded, but the reward was already used)")

    card = models.ForeignKey(StampCard, verbose_name=_("card"), on_delete=models.PROTECT, related_name="completions")
    member = models.ForeignKey(
        Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="stamp_completions"
    )
    completed_at = models.DateTimeField(_("completed at"))
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.REWARDED)
    coupon = models.ForeignKey(
        Coupon, verbose_name=_("coupon"), on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    points_entry = models.ForeignKey(
        PointsEntry, verbose_name=_("points"), on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    note = models.CharField(_("note"), max_length=200, blank=True)

    class Meta:
        ordering = ["-completed_at", "-id"]
        verbose_name = _("stamp card completion")
        verbose_name_plural = _("stamp card completions")
        indexes = [models.Index(fields=["member", "card"], name="stampcompletion_member_card")]

    def __str__(self):
        return f"{self.card} · {self.member_id} · {self.completed_at:%Y-%m-%d}"


class Stamp(TimeStampedModel):
    card = models.ForeignKey(StampCard, verbose_name=_("card"), on_delete=models.PROTECT, related_name="stamps")
    member = models.ForeignKey(Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="stamps")
    order = models.ForeignKey(Order, verbose_name=_("order"), on_delete=models.PROTECT, related_name="stamps")
    paid_at = models.DateTimeField(_("order paid at"), help_text=_("The stamp counts until the window has passed."))
    void_at = models.DateTimeField(_("voided at"), null=True, blank=True)
    completion = models.ForeignKey(
        StampCompletion,
        verbose_name=_("used for"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="stamps",
    )

    class Meta:
        ordering = ["paid_at", "id"]
        verbose_name = _("stamp")
        verbose_name_plural = _("stamps")
        constraints = [models.UniqueConstraint(fields=["card", "order"], name="stamp_once_per_card_and_order")]
        indexes = [
            models.Index(
                fields=["member", "card", "paid_at"],
                condition=Q(void_at__isnull=True, completion__isnull=True),
                name="stamp_unused",
            ),
        ]

    def __str__(self):
        return f"{self.card} · {self.order_id}"
