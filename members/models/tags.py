"""Member tags (客户标签体系, seed 000): short labels on a member, one row per (member, name).

- **Manual tags** staff put on a member — 爱喝少糖, 企业客户, 过敏:坚果 — with who added them and when.
  Removing one deletes the row; the audit trail keeps both (who added, who removed, when).
- **Rule tags** (``rule`` set) that the nightly run computes from behaviour (``TagRule``: 生日月,
  高客单, 周末客, a favourite category). The run makes each rule's rows equal to the members who
  qualify, set-based (``segmentation.services.rule_tags``); they are not in the audit trail (the
  rule is). A manual tag of the same name wins: the run never overwrites it, and staff adding a tag
  a rule gave makes it theirs.

Tags of both kinds narrow campaigns and the member list, may be required by a segment rule
(``SegmentRule.tag``: rule tags computed at night are read by the next recompute or the member's
next order), and go out with the member export."""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from members.models.core import Member, TimeStampedModel

__all__ = ["MemberTag", "TagRule"]

TAG_NAME_MAX_LENGTH = 32


TAG_NAME_VALIDATOR = RegexValidator(r"^[^,，;；|]+$", _("A tag cannot hold , ; or |."))


class TagRule(TimeStampedModel):
    """A tag the nightly run gives every member who qualifies, and takes off those who no longer do."""

    class Kind(models.TextChoices):
        BIRTHDAY_MONTH = "birthday_month", _("Birthday this month (生日月)")
        HIGH_AVERAGE_ORDER = "high_average_order", _("High average order (高客单)")
        WEEKEND = "weekend", _("Buys mostly at weekends (周末客)")
        FAVOURITE_CATEGORY = "favourite_category", _("Favourite product category")

    name = models.CharField(
        _("tag"),
        max_length=TAG_NAME_MAX_LENGTH,
        unique=True,
        validators=[TAG_NAME_VALIDATOR],
        help_text=_(
            "The tag members get, e.g. 高客单. Favourite category: a prefix put before the category, e.g. 偏好· "
            "gives 偏好·果茶."
        ),
    )
    kind = models.CharField(_("rule"), max_length=30, choices=Kind.choices)
    is_active = models.BooleanField(_("active"), default=False)
    window_days = models.PositiveSmallIntegerField(
        _("over the last (days)"),
        default=180,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text=_("High average order and weekend: orders paid in this many days up to today count."),
    )
    min_orders = models.PositiveSmallIntegerField(
        _("at least (orders)"),
        default=3,
        validators=[MinValueValidator(1)],
        help_text=_("High average order and weekend: members with fewer orders in the window are left out."),
    )
    average_at_least = models.DecimalField(
        _("average order at least (yuan)"),
        max_digits=14,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text=_("High average order: the average net amount (after refunds) of the orders in the window."),
    )
    weekend_share_at_least = models.PositiveSmallIntegerField(
        _("weekend share at least (%)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text=_("Weekend: the share of the orders in the window paid on Saturday or Sunday (local time)."),
    )
    member_count = models.PositiveIntegerField(_("members"), default=0, editable=False)
    computed_at = models.DateTimeField(_("computed at"), null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = _("tag rule")
        verbose_name_plural = _("tag rules")
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind="high_average_order") | Q(average_at_least__isnull=False),
                name="tagrule_average_has_amount",
                violation_error_message=_("Give the average order amount."),
            ),
            models.CheckConstraint(
                condition=~Q(kind="weekend") | Q(weekend_share_at_least__isnull=False),
                name="tagrule_weekend_has_share",
                violation_error_message=_("Give the weekend share."),
            ),
        ]

    def __str__(self):
        return self.name


class MemberTag(TimeStampedModel):
    member = models.ForeignKey(
        Member, verbose_name=_("member"), on_delete=models.CASCADE, related_name="tags", db_index=False
    )
    name = models.CharField(
        _("tag"),
        max_length=TAG_NAME_MAX_LENGTH,
        validators=[TAG_NAME_VALIDATOR],
    )
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("added by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    rule = models.ForeignKey(
        TagRule,
        verbose_name=_("given by rule"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="member_tags",
        help_text=_("Empty: a tag staff added."),
    )

    class Meta:
        ordering = ["member", "name"]
        verbose_name = _("member tag")
        verbose_name_plural = _("member tags")
        indexes = [
            models.Index(fields=["name", "member"], name="membertag_name_member"),
            models.Index(fields=["rule", "member"], name="membertag_rule_member", condition=Q(rule__isnull=False)),
        ]
        constraints = [
            models.UniqueConstraint(fields=["member", "name"], name="membertag_member_name"),
            models.CheckConstraint(condition=~Q(name=""), name="membertag_name_not_blank"),
        ]

    def __str__(self):
        return self.name
