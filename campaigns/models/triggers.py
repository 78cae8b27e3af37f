"""Triggers: automatic rules that act on one member when something happens to them.

- ``Trigger`` — when (``kind``): a member *enters a segment*; has *not bought for N days*; bought
  (*after an order*, acting ``delay_days`` later, optionally only for members of a segment); their
  current R/F/M scores match a *pattern* (e.g. F high and M low); or their *birthday* is
  ``birthday_days_before`` days away (seed 001's 生日关怀; optionally only for a segment). What: a coupon, a message,
  a staff follow-up task, and/or a grant through a campaign (so the campaign's control group and
  effect report apply). At most ``cap_count`` firings per member in ``cap_days`` days.
- ``TriggerFiring`` — one firing for one *cause*: ``(trigger, cause_key)`` is unique, so a cause
  fires once however often a task is retried and whichever worker gets there first. Cause keys:
  ``transition:<SegmentTransition id>``, ``lapse:<id of the last order before the lapse>`` (a member
  who buys again and lapses again fires again), ``order:<Order id>``, and
  ``pattern:<RfmRun id>:<member id>`` (at most once per recompute; the cap spaces them further) and
  ``birthday:<year>:<member id>`` (once a year, for the birthday of that year).
  After-order firings are written ``pending`` with the time they are due, so a sweep fires them
  even if the delayed task was lost.

Evaluation is in ``campaigns.services.triggers``.
"""

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from campaigns.channel_registry import channel_names
from campaigns.models.bilingual import LocalTexts, english_description, english_name
from campaigns.models.campaigns import Campaign
from members.models import Member, TimeStampedModel

__all__ = ["CampaignEffect", "Trigger", "TriggerFiring"]

SCORE_VALIDATORS = [MinValueValidator(0), MaxValueValidator(5)]


class Trigger(LocalTexts, TimeStampedModel):
    class Kind(models.TextChoices):
        ENTERED_SEGMENT = "entered_segment", _("Entered a segment")
        INACTIVITY = "inactivity", _("No purchase for N days")
        AFTER_ORDER = "after_order", _("After an order (with a delay)")
        PATTERN = "pattern", _("R/F/M pattern")
        BIRTHDAY = "birthday", _("Birthday")

    name = models.CharField(_("name"), max_length=200)
    name_en = english_name()
    description = models.TextField(_("description"), blank=True)
    description_en = english_description()
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    is_active = models.BooleanField(_("active"), default=False)
    activated_at = models.DateTimeField(
        _("switched on at"),
        null=True,
        blank=True,
        editable=False,
        help_text=_("When it was last switched on: the sweep catches up on missed transitions from then on."),
    )

    # --- when ---
    segment = models.ForeignKey(
        "segmentation.Segment",
        verbose_name=_("segment"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text=_(
            "Entered a segment: the segment entered. After an order, pattern and birthday: only members "
            "currently in it (optional)."
        ),
    )
    inactivity_days = models.PositiveSmallIntegerField(
        _("days without a purchase"), null=True, blank=True, validators=[MinValueValidator(1)]
    )
    delay_days = models.PositiveSmallIntegerField(
        _("delay (days)"), null=True, blank=True, help_text=_("After an order: act this many days after it was paid.")
    )
    birthday_days_before = models.PositiveSmallIntegerField(
        _("days before the birthday"),
        default=0,
        validators=[MaxValueValidator(30)],
        help_text=_(
            "Birthday: act this many days before it (0: on the day). A member born on 29 February is greeted "
            "on 28 February in other years."
        ),
    )
    r_min_score = models.PositiveSmallIntegerField(
        _("R score at least"), null=True, blank=True, validators=SCORE_VALIDATORS
    )
    r_max_score = models.PositiveSmallIntegerField(
        _("R score at most"), null=True, blank=True, validators=SCORE_VALIDATORS
    )
    f_min_score = models.PositiveSmallIntegerField(
        _("F score at least"), null=True, blank=True, validators=SCORE_VALIDATORS
    )
    f_max_score = models.PositiveSmallIntegerField(
        _("F score at most"), null=True, blank=True, validators=SCORE_VALIDATORS
    )
    m_min_score = models.PositiveSmallIntegerField(
        _("M score at least"), null=True, blank=True, validators=SCORE_VALIDATORS
    )
    m_max_score = models.PositiveSmallIntegerField(
        _("M score at most"), null=True, blank=True, validators=SCORE_VALIDATORS
    )

    # --- what ---
    coupon_template = models.ForeignKey(
        "campaigns.CouponTemplate",
        verbose_name=_("coupon"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    message_template = models.CharField(
        _("message template"), max_length=100, blank=True, help_text=_("Empty: no message.")
    )
    message_channel = models.CharField(
        _("message channel"), max_length=30, blank=True, help_text=_("Empty: the default.")
    )
    create_followup = models.BooleanField(_("create a follow-up task"), default=False)
    followup_due_days = models.PositiveSmallIntegerField(_("follow-up due in (days)"), default=3)
    followup_reason = models.CharField(_("follow-up reason"), max_length=200, blank=True)
    campaign = models.ForeignKey(
        "campaigns.Campaign",
        verbose_name=_("grant through campaign"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="triggers",
        help_text=_("Optional: also grant this campaign's benefits (its control group and budget apply)."),
    )

    # --- how often ---
    cap_count = models.PositiveSmallIntegerField(
        _("at most (firings)"), null=True, blank=True, default=1, validators=[MinValueValidator(1)]
    )
    cap_days = models.PositiveSmallIntegerField(
        _("per (days)"), null=True, blank=True, default=30, validators=[MinValueValidator(1)]
    )

    class Meta:
        ordering = ["name", "id"]
        verbose_name = _("trigger")
        verbose_name_plural = _("triggers")
        indexes = [models.Index(fields=["kind", "is_active"], name="trigger_kind_active")]
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind="entered_segment") | Q(segment__isnull=False),
                name="trigger_entered_has_segment",
                violation_error_message=_("Choose the segment members enter."),
            ),
            models.CheckConstraint(
                condition=~Q(kind="inactivity") | Q(inactivity_days__gte=1),
                name="trigger_inactivity_has_days",
                violation_error_message=_("Give the number of days without a purchase."),
            ),
            models.CheckConstraint(
                condition=~Q(kind="after_order") | Q(delay_days__isnull=False),
                name="trigger_after_order_has_delay",
                violation_error_message=_("Give the delay in days (0 for at once)."),
            ),
            models.CheckConstraint(
                condition=~Q(kind="pattern")
                | Q(r_min_score__isnull=False)
                | Q(r_max_score__isnull=False)
                | Q(f_min_score__isnull=False)
                | Q(f_max_score__isnull=False)
                | Q(m_min_score__isnull=False)
                | Q(m_max_score__isnull=False),
                name="trigger_pattern_has_condition",
                violation_error_message=_("A pattern needs at least one score condition."),
            ),
            models.CheckConstraint(
                condition=Q(birthday_days_before__lte=30),
                name="trigger_birthday_days_before_30",
                violation_error_message=_("At most 30 days before the birthday."),
            ),
            models.CheckConstraint(
                condition=Q(cap_count__isnull=True, cap_days__isnull=True) | Q(cap_count__gte=1, cap_days__gte=1),
                name="trigger_cap_complete",
                violation_error_message=_("Give both the number of firings and the days, or neither."),
            ),
        ]

    def __str__(self):
        return self.display_name

    def clean(self):
        errors = {}
        if self.message_channel and self.message_channel not in channel_names():
            errors["message_channel"] = _("Unknown channel; choose one of %(names)s.") % {
                "names": ", ".join(channel_names())
            }
        if not (self.coupon_template_id or self.message_template or self.create_followup or self.campaign_id):
            errors["coupon_template"] = _(
                "A trigger must do something: a coupon, a message, a follow-up or a campaign."
            )
        for dimension in ("r", "f", "m"):
            low, high = getattr(self, f"{dimension}_min_score"), getattr(self, f"{dimension}_max_score")
            if low is not None and high is not None and low > high:
                errors[f"{dimension}_max_score"] = _("The upper bound is below the lower bound.")
        if errors:
            raise ValidationError(errors)

    def pattern_conditions(self) -> dict[str, int]:
        """The score bounds set, as ``{"f_score__gte": 1, "m_score__lte": 0, ...}``."""
        bounds = {}
        for dimension in ("r", "f", "m"):
            low, high = getattr(self, f"{dimension}_min_score"), getattr(self, f"{dimension}_max_score")
            if low is not None:
                bounds[f"{dimension}_score__gte"] = low
            if high is not None:
                bounds[f"{dimension}_score__lte"] = high
        return bounds


class TriggerFiring(TimeStampedModel):
    class Status(models.TextChoices):
        PENDING = "pending", _("Scheduled")
        FIRED = "fired", _("Fired")
        SKIPPED = "skipped", _("Skipped")

    trigger = models.ForeignKey(Trigger, verbose_name=_("trigger"), on_delete=models.CASCADE, related_name="firings")
    member = models.ForeignKey(Member, verbose_name=_("member"), on_delete=models.CASCADE, related_name="+")
    cause_key = models.CharField(_("cause"), max_length=100)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    due_at = models.DateTimeField(_("due at"), null=True, blank=True)
    fired_at = models.DateTimeField(_("fired at"), null=True, blank=True)
    skip_reason = models.CharField(_("skipped because"), max_length=200, blank=True)
    coupon = models.ForeignKey(
        "campaigns.Coupon", verbose_name=_("coupon"), on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    message = models.ForeignKey(
        "campaigns.OutboxMessage",
        verbose_name=_("message"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    followup = models.ForeignKey(
        "campaigns.FollowUpTask",
        verbose_name=_("follow-up task"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    granted = models.JSONField(_("granted"), default=dict, blank=True, help_text=_("What the firing gave."))

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("trigger firing")
        verbose_name_plural = _("trigger firings")
        indexes = [
            models.Index(fields=["trigger", "member", "fired_at"], name="triggerfiring_cap"),
            models.Index(fields=["due_at"], condition=Q(status="pending"), name="triggerfiring_pending_due"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["trigger", "cause_key"], name="triggerfiring_once_per_cause"),
            models.CheckConstraint(
                condition=~Q(status="fired") | Q(fired_at__isnull=False), name="triggerfiring_fired_has_time"
            ),
        ]

    def __str__(self):
        return f"{self.trigger_id} / {self.cause_key} ({self.get_status_display()})"


class CampaignEffect(Campaign):
    """Campaigns seen through their effect: the admin's home for the effect reports
    (``campaigns.admin.effect``). A proxy — no table of its own, only its view permission."""

    class Meta:
        proxy = True
        verbose_name = _("campaign effect")
        verbose_name_plural = _("campaign effects")
        default_permissions = ("view",)
