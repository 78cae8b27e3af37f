"""The nightly rollup of the activity metrics (issue #19; ``workspace.activity_rollup``).

Read live, DAU, WAU and retention cost seconds to tens of seconds at a few million interactions a
month (``bench/activity.py``): the report pages and the dashboard read these small tables instead,
written each night for the days that have ended, set-based and idempotently (the rows of a day,
week or cohort are deleted and written again in one transaction).

- ``ActivityRollup``: members active on a day (``period`` "day") or in a calendar week (``period``
  "week", starting on its Monday; the current week counts the days that have ended), per segment
  the members were in when the rollup ran (their current segment then; None: no segment).
- ``RetentionRollup``: the members who registered on a day, per segment, and how many came back
  the next day / within 7 / within 30 days, counting the activity of the days up to ``observed_until``.

No foreign-key constraints: a rollup row outlives a segment's removal, and nothing writes these
rows but the rollup.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _


class ActivityRollup(models.Model):
    class Period(models.TextChoices):
        DAY = "day", _("Day")
        WEEK = "week", _("Week")

    id = models.BigAutoField(primary_key=True)
    period = models.CharField(_("period"), max_length=4, choices=Period.choices)
    start = models.DateField(_("start"))
    segment = models.ForeignKey(
        "segmentation.Segment",
        verbose_name=_("segment"),
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    active = models.PositiveIntegerField(_("active members"))
    computed_at = models.DateTimeField(_("computed at"))

    class Meta:
        ordering = ["period", "start"]
        verbose_name = _("activity rollup")
        verbose_name_plural = _("activity rollups")
        indexes = [models.Index(fields=["period", "start"], name="activityrollup_period_start")]

    def __str__(self):
        return f"{self.get_period_display()} {self.start:%Y-%m-%d}: {self.active}"


class RetentionRollup(models.Model):
    id = models.BigAutoField(primary_key=True)
    day = models.DateField(_("registered on"))
    segment = models.ForeignKey(
        "segmentation.Segment",
        verbose_name=_("segment"),
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    new_members = models.PositiveIntegerField(_("new members"))
    retained_1 = models.PositiveIntegerField(_("back the next day"))
    retained_7 = models.PositiveIntegerField(_("back within 7 days"))
    retained_30 = models.PositiveIntegerField(_("back within 30 days"))
    observed_until = models.DateField(_("activity counted until"))
    computed_at = models.DateTimeField(_("computed at"))

    class Meta:
        ordering = ["day"]
        verbose_name = _("retention rollup")
        verbose_name_plural = _("retention rollups")
        indexes = [models.Index(fields=["day"], name="retentionrollup_day")]

    def __str__(self):
        return f"{self.day:%Y-%m-%d}: {self.retained_1}/{self.new_members}"
