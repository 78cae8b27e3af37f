"""Tiers (会员等级): ordered levels with benefits and qualification rules."""

from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from members.models.core import TimeStampedModel

__all__ = ["Tier"]


class Tier(TimeStampedModel):
    """A level. ``rank`` orders them: 0 is the entry level, higher is better."""

    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=50)
    rank = models.PositiveSmallIntegerField(
        _("rank"), unique=True, help_text=_("0 is the entry level; higher is better.")
    )
    points_multiplier = models.DecimalField(
        _("points multiplier"),
        max_digits=4,
        decimal_places=2,
        default=Decimal("1.00"),
        validators=[MinValueValidator(Decimal("0"))],
    )
    birthday_points_multiplier = models.DecimalField(
        _("birthday points multiplier"),
        max_digits=4,
        decimal_places=2,
        default=Decimal("1.00"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text=_("Applied on top of the tier multiplier to orders paid on the member's birthday."),
    )
    discount_rate = models.DecimalField(
        _("discount rate"),
        max_digits=3,
        decimal_places=2,
        default=Decimal("1.00"),
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(Decimal("1.00"))],
        help_text=_("Price factor: 0.95 means 5% off."),
    )
    free_shipping = models.BooleanField(_("free shipping"), default=False)
    priority_service = models.BooleanField(_("priority service"), default=False)

    class Meta:
        ordering = ["rank"]
        verbose_name = _("tier")
        verbose_name_plural = _("tiers")
        constraints = [
            models.CheckConstraint(condition=Q(points_multiplier__gte=0), name="tier_points_multiplier_gte_0"),
            models.CheckConstraint(
                condition=Q(discount_rate__gt=0) & Q(discount_rate__lte=1), name="tier_discount_rate_range"
            ),
        ]

    def __str__(self):
        return self.name
