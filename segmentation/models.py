"""RFM segmentation: schemes, their segments and rules, runs, current results, history.

The definitions are PRODUCT.md's (section *RFM*); how they are computed is in
``segmentation.services.recompute``. What is stored, and why:

- ``Scheme`` — the window, the scoring mode and its parameters. Exactly one scheme is active: a
  partial ``UniqueConstraint`` allows at most one, ``scheme_activate`` switches atomically and the
  data migration creates the default one active.
- ``Segment`` — what operators see (names and strategy in Chinese and English, colour; the slug is
  for exports and the API only); ``SegmentRule`` — how members
  get there. Rules are tried in ``priority`` order (then id); the first that holds wins.
- ``RfmRun`` — one recompute: as-of date, status, timings, counts and averages per segment, and
  ``params``: a frozen copy of the scheme, its rules and the quintile cut points the run used.
  The per-order refresh between runs scores with exactly those, so editing a scheme never changes
  results until the next run.
- ``MemberRfm`` — the current result, one row per member (its primary key is the member).
  **Scores**: in quintile mode ``r_score``/``f_score``/``m_score`` are 1–5; in thresholds mode
  they are ``1`` for high (H) and ``0`` for low (L) — so "high" is always ``score >= run's high
  level`` (1 in thresholds mode, the scheme's ``high_score`` in quintile mode) and the export
  writes H/L. A member with nothing in the window (F = M = 0) has the lowest scores (L, or 1);
  one who never bought has no recency either (NULL) and goes to ``no_purchase``.
  The table is replaced by every run in one transaction (see the recompute module); its foreign
  keys are not database constraints on purpose (``db_constraint=False``): checking three
  foreign keys per row costs more than the whole computation at a million members, and the only
  writer copies ids it has just read in the same transaction.
- ``SegmentSnapshot`` — history, compactly: per run and segment, the array of its member ids
  (``bigint[]``: 8 bytes per member per run before TOAST compresses it, against ~80 MB per million
  members for a row per member and run). The migration matrix between any two runs is one SQL
  statement over two runs' snapshots (``selectors.segment_migration_matrix``), which ``unnest``
  reads without parsing text.
- ``SegmentTransition`` — every member whose segment changed: by a run (``source=run``) or by the
  per-order refresh (``source=live``). Each one is published once as ``segment_changed``.
- ``MemberCategory`` and ``RelatedProduct`` — product preference, computed by the nightly run of
  ``segmentation.services.products`` (set-based): each member's top three product categories by
  net spend, and each product's top related products by co-purchase. Replaced whole each night.
"""

import re
from decimal import Decimal

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from members.formatting import local_name
from members.models import Interaction, Member, Product, TimeStampedModel
from members.models.tags import TAG_NAME_MAX_LENGTH
from segmentation.rules import CLV_TABLE, describe_rule

SCORE_CONDITION_RE = re.compile(r"^(|H|M|L|[1-5]|[1-5]-[1-5])$")


class Scheme(TimeStampedModel):
    class Mode(models.TextChoices):
        THRESHOLDS = "thresholds", _("Thresholds (high/low)")
        QUINTILES = "quintiles", _("Quintiles (scores 1–5)")

    name = models.CharField(_("name"), max_length=100)
    name_en = models.CharField(
        _("name (English)"), max_length=100, blank=True, help_text=_("Shown on English pages; empty: the name above.")
    )
    slug = models.SlugField(_("slug"), max_length=50, unique=True)
    description = models.TextField(_("description"), blank=True)
    description_en = models.TextField(
        _("description (English)"), blank=True, help_text=_("Shown on English pages; empty: the description above.")
    )
    mode = models.CharField(_("scoring mode"), max_length=20, choices=Mode.choices, default=Mode.THRESHOLDS)
    window_days = models.PositiveSmallIntegerField(
        _("window (days)"),
        default=365,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text=_("F and M count orders paid in the last N days up to the as-of date."),
    )
    f_window_days = models.PositiveSmallIntegerField(
        _("F window (days)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text=_("F counts the orders paid in the last N days (seed 001: 30). Empty: the window above."),
    )
    m_window_days = models.PositiveSmallIntegerField(
        _("M window (days)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text=_("M adds up the spend of the last N days (seed 001: 365). Empty: the window above."),
    )
    r_max_days = models.PositiveSmallIntegerField(
        _("R high at most (days)"), default=30, help_text=_("Thresholds mode: R is high when R ≤ this.")
    )
    r_mid_days = models.PositiveSmallIntegerField(
        _("R medium at most (days)"),
        null=True,
        blank=True,
        help_text=_(
            "Thresholds mode, optional: R is medium (中) when it is not high and R ≤ this. Empty: high/low only."
        ),
    )
    f_min = models.PositiveSmallIntegerField(
        _("F high from (orders)"),
        default=3,
        validators=[MinValueValidator(1)],
        help_text=_("Thresholds mode: F is high when F ≥ this."),
    )
    f_mid_min = models.PositiveSmallIntegerField(
        _("F medium from (orders)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_(
            "Thresholds mode, optional: F is medium (中) when it is not high and F ≥ this. Empty: high/low only."
        ),
    )
    m_min = models.DecimalField(
        _("M high from (yuan)"),
        max_digits=14,
        decimal_places=2,
        default=Decimal("500.00"),
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text=_("Thresholds mode: M is high when M ≥ this."),
    )
    m_mid_min = models.DecimalField(
        _("M medium from (yuan)"),
        max_digits=14,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text=_(
            "Thresholds mode, optional: M is medium (中) when it is not high and M ≥ this. Empty: high/low only."
        ),
    )
    high_score = models.PositiveSmallIntegerField(
        _("high from score"),
        default=3,
        validators=[MinValueValidator(2), MaxValueValidator(5)],
        help_text=_("Quintile mode: a score counts as high (H) from this value."),
    )
    activity_kinds = ArrayField(
        models.PositiveSmallIntegerField(choices=Interaction.Kind.choices),
        verbose_name=_("interactions that count for R"),
        default=list,
        blank=True,
        help_text=_(
            "R is the days since the last order or, when chosen, the last of these interactions (seed 001: "
            "关键互动). F and M still count orders only; a member who never bought stays lowest."
        ),
    )
    is_active = models.BooleanField(_("active"), default=False, editable=False)

    class Meta:
        ordering = ["-is_active", "name"]
        verbose_name = _("segmentation scheme")
        verbose_name_plural = _("segmentation schemes")
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"],
                condition=Q(is_active=True),
                name="scheme_one_active",
                violation_error_message=_("Only one scheme can be active."),
            ),
            models.CheckConstraint(condition=Q(window_days__gte=1), name="scheme_window_positive"),
            models.CheckConstraint(condition=Q(f_min__gte=1), name="scheme_f_min_positive"),
            models.CheckConstraint(condition=Q(m_min__gt=0), name="scheme_m_min_positive"),
            models.CheckConstraint(condition=Q(high_score__gte=2, high_score__lte=5), name="scheme_high_score_2_5"),
            models.CheckConstraint(
                condition=Q(r_mid_days__isnull=True) | Q(r_mid_days__gt=models.F("r_max_days")),
                name="scheme_r_mid_above_high",
            ),
            models.CheckConstraint(
                condition=Q(f_mid_min__isnull=True) | Q(f_mid_min__gte=1, f_mid_min__lt=models.F("f_min")),
                name="scheme_f_mid_below_high",
            ),
            models.CheckConstraint(
                condition=Q(m_mid_min__isnull=True) | Q(m_mid_min__gt=0, m_mid_min__lt=models.F("m_min")),
                name="scheme_m_mid_below_high",
            ),
        ]

    def __str__(self):
        return self.display_name

    @property
    def display_name(self) -> str:
        """The name in the page's language (the other one when that is empty)."""
        return local_name(self.name, self.name_en, self.slug)

    @property
    def display_description(self) -> str:
        return local_name(self.description, self.description_en)

    @property
    def high_level(self) -> int:
        """The lowest stored score that counts as high (H) on a two-level dimension."""
        return 1 if self.mode == self.Mode.THRESHOLDS else self.high_score

    def has_middle(self, dim: str) -> bool:
        """Whether dimension ``dim`` (r, f or m) scores 高/中/低 (thresholds mode with its middle limit)."""
        limit = {"r": self.r_mid_days, "f": self.f_mid_min, "m": self.m_mid_min}[dim]
        return self.mode == self.Mode.THRESHOLDS and limit is not None

    def clean(self):
        errors = {}
        if self.r_mid_days is not None and self.r_max_days is not None and self.r_mid_days <= self.r_max_days:
            errors["r_mid_days"] = _("Medium R must allow more days than high R.")
        if self.f_mid_min is not None and self.f_min is not None and self.f_mid_min >= self.f_min:
            errors["f_mid_min"] = _("Medium F must start below high F.")
        if self.m_mid_min is not None and self.m_min is not None and self.m_mid_min >= self.m_min:
            errors["m_mid_min"] = _("Medium M must start below high M.")
        if errors:
            raise ValidationError(errors)


class Segment(TimeStampedModel):
    scheme = models.ForeignKey(Scheme, verbose_name=_("scheme"), on_delete=models.CASCADE, related_name="segments")
    slug = models.SlugField(_("slug"), max_length=50, help_text=_("What exports and the API carry."))
    name_zh = models.CharField(_("Chinese name"), max_length=50, blank=True)
    name_en = models.CharField(_("English name"), max_length=80, blank=True)
    colour = models.CharField(
        _("colour"),
        max_length=7,
        default="#607d8b",
        validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$", _("A colour like #1e88e5."))],
    )
    ordering = models.PositiveSmallIntegerField(_("ordering"), default=0)
    strategy = models.TextField(_("strategy"), blank=True)
    strategy_en = models.TextField(
        _("strategy (English)"), blank=True, help_text=_("Shown on English pages; empty: the strategy above.")
    )

    class Meta:
        ordering = ["scheme", "ordering", "id"]
        verbose_name = _("segment")
        verbose_name_plural = _("segments")
        constraints = [
            models.UniqueConstraint(
                fields=["scheme", "slug"],
                name="segment_slug_unique_in_scheme",
                violation_error_message=_("A scheme cannot have two segments with the same slug."),
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def name(self) -> str:
        """The name in the page's language: the other language's when that one is empty, else the slug."""
        return local_name(self.name_zh, self.name_en, self.slug)

    @property
    def display_strategy(self) -> str:
        return local_name(self.strategy, self.strategy_en)

    @property
    def name_with_scheme(self) -> str:
        """ "Scheme · segment", for choosers that offer the segments of several schemes (select the
        scheme with the segments)."""
        return f"{self.scheme.display_name} · {self.name}"

    def clean(self):
        if not (self.name_zh.strip() or self.name_en.strip()):
            raise ValidationError({"name_zh": _("Give the segment a name, in Chinese or in English.")})


def validate_score_condition(value: str) -> None:
    if not SCORE_CONDITION_RE.match(value or ""):
        raise ValidationError(_("Leave empty for any, or write H, M (medium), L, a score 1–5 or a range such as 2-4."))
    if "-" in value:
        low, high = (int(part) for part in value.split("-"))
        if low > high:
            raise ValidationError(_("A range goes from low to high, such as 2-4."))


class SegmentRule(TimeStampedModel):
    """One way into a segment. The kinds:

    - ``no_purchase`` — the member never bought (on or before the as-of date);
    - ``cell`` — the member bought, and each of R, F, M meets its condition;
    - ``first_order_within`` — the first order ever was in the last ``value`` days (R/F/M
      conditions, when given, must hold too);
    - ``frequency_at_least`` — F ≥ ``value`` (plus the R/F/M conditions);
    - ``everyone_else`` — always holds (use it last, as a catch-all).

    A condition on R, F or M is empty (any), ``H`` or ``L`` (score at or above / below the high
    level), ``M`` (中, medium: thresholds mode, on a dimension with a medium limit), a score
    ``1``–``5`` or a range ``2-4`` (quintile mode only). ``tag``, when given, also requires the
    member to carry that manual tag (``members.MemberTag``).
    """

    class Kind(models.TextChoices):
        NO_PURCHASE = "no_purchase", _("Never bought")
        CELL = "cell", _("R/F/M cell")
        FIRST_ORDER_WITHIN = "first_order_within", _("First order within the last N days")
        FREQUENCY_AT_LEAST = "frequency_at_least", _("F ≥ N")
        EVERYONE_ELSE = "everyone_else", _("Everyone else")

    KINDS_WITH_VALUE = (Kind.FIRST_ORDER_WITHIN, Kind.FREQUENCY_AT_LEAST)

    scheme = models.ForeignKey(Scheme, verbose_name=_("scheme"), on_delete=models.CASCADE, related_name="rules")
    segment = models.ForeignKey(Segment, verbose_name=_("segment"), on_delete=models.CASCADE, related_name="rules")
    priority = models.PositiveSmallIntegerField(_("priority"), default=100, help_text=_("Lower is tried first."))
    kind = models.CharField(_("kind"), max_length=30, choices=Kind.choices, default=Kind.CELL)
    r = models.CharField(_("R"), max_length=3, blank=True, validators=[validate_score_condition])
    f = models.CharField(_("F"), max_length=3, blank=True, validators=[validate_score_condition])
    m = models.CharField(_("M"), max_length=3, blank=True, validators=[validate_score_condition])
    value = models.PositiveIntegerField(
        _("N"), null=True, blank=True, help_text=_("Days or orders, for the kinds that need a number.")
    )
    p_alive_below = models.DecimalField(
        _("P(alive) below"),
        max_digits=4,
        decimal_places=3,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("1"))],
        help_text=_("Only members whose P(alive) from the current CLV run is below this (0–1)."),
    )
    p_alive_at_least = models.DecimalField(
        _("P(alive) at least"),
        max_digits=4,
        decimal_places=3,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("1"))],
        help_text=_("Only members whose P(alive) is at least this (0–1)."),
    )
    clv_at_least = models.DecimalField(
        _("CLV at least (yuan)"),
        max_digits=14,
        decimal_places=2,
        null=True,
        blank=True,
        help_text=_("Only members whose CLV from the current CLV run is at least this."),
    )
    tag = models.CharField(
        _("member tag"),
        max_length=TAG_NAME_MAX_LENGTH,
        blank=True,
        validators=[RegexValidator(r"^[^,，;；|]*$", _("A tag cannot hold , ; or |."))],
        help_text=_("Only members who carry this tag (added by staff or by a tag rule). Empty: any member."),
    )

    class Meta:
        ordering = ["scheme", "priority", "id"]
        verbose_name = _("segment rule")
        verbose_name_plural = _("segment rules")
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind__in=["first_order_within", "frequency_at_least"]) | Q(value__gte=1),
                name="segmentrule_value_when_needed",
                violation_error_message=_("This kind of rule needs N (1 or more)."),
            ),
        ]

    def __str__(self):
        return f"#{self.priority} {self.describe()} → {self.segment.name if self.segment_id else '?'}"

    def describe(self) -> str:
        return describe_rule(
            {
                "kind": self.kind,
                "r": self.r,
                "f": self.f,
                "m": self.m,
                "value": self.value,
                "priority": self.priority,
                "p_alive_below": self.p_alive_below,
                "p_alive_at_least": self.p_alive_at_least,
                "clv_at_least": self.clv_at_least,
                "tag": self.tag,
            }
        )

    def clean(self):
        errors = {}
        if self.segment_id and self.scheme_id and self.segment.scheme_id != self.scheme_id:
            errors["segment"] = _("Choose a segment of this scheme.")
        if self.kind in self.KINDS_WITH_VALUE and not self.value:
            errors["value"] = _("This kind of rule needs N (1 or more).")
        if self.scheme_id and self.scheme.mode == Scheme.Mode.THRESHOLDS:
            for name in ("r", "f", "m"):
                condition = getattr(self, name)
                if condition not in ("", "H", "M", "L"):
                    errors[name] = _("In thresholds mode a condition is H, M (medium), L or empty.")
                elif condition == "M" and not self.scheme.has_middle(name):
                    errors[name] = _("M (medium) needs the scheme's medium limit for this dimension.")
        elif self.scheme_id and "M" in (self.r, self.f, self.m):
            for name in ("r", "f", "m"):
                if getattr(self, name) == "M":
                    errors[name] = _("M (medium) is for thresholds mode; in quintile mode write a score range.")
        if self.kind in (self.Kind.NO_PURCHASE, self.Kind.EVERYONE_ELSE) and (self.r or self.f or self.m):
            errors["kind"] = _("This kind of rule takes no R/F/M conditions.")
        if errors:
            raise ValidationError(errors)


class RfmRun(TimeStampedModel):
    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    scheme = models.ForeignKey(Scheme, verbose_name=_("scheme"), on_delete=models.PROTECT, related_name="runs")
    as_of = models.DateField(_("as of"))
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(_("started at"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    duration = models.DurationField(_("duration"), null=True, blank=True)
    chunks = models.PositiveSmallIntegerField(_("chunks"), default=1)
    member_count = models.PositiveIntegerField(_("members"), default=0)
    buyer_count = models.PositiveIntegerField(_("bought in the window"), default=0)
    transition_count = models.PositiveIntegerField(_("segment changes"), default=0)
    segment_stats = models.JSONField(
        _("per segment"), default=dict, blank=True, help_text=_("Count and average R, F, M per segment slug.")
    )
    cut_points = models.JSONField(_("cut points"), default=dict, blank=True)
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    is_current = models.BooleanField(_("current"), default=False, help_text=_("Its results are the ones shown."))
    events_published_at = models.DateTimeField(_("events published at"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = _("RFM run")
        verbose_name_plural = _("RFM runs")
        constraints = [
            models.UniqueConstraint(fields=["is_current"], condition=Q(is_current=True), name="rfmrun_one_current"),
        ]

    def __str__(self):
        return f"{self.scheme} @ {self.as_of} ({self.get_status_display()})"


class MemberRfm(TimeStampedModel):
    """The current result of a member (see the module docstring for how scores are stored)."""

    member = models.OneToOneField(
        Member,
        verbose_name=_("member"),
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="rfm",
        db_constraint=False,
    )
    run = models.ForeignKey(
        RfmRun,
        verbose_name=_("run"),
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    as_of = models.DateField(_("as of"))
    recency_days = models.IntegerField(_("R (days)"), null=True, blank=True)
    first_order_days = models.IntegerField(_("days since first order"), null=True, blank=True)
    frequency = models.IntegerField(_("F (orders)"), default=0)
    monetary = models.DecimalField(_("M (yuan)"), max_digits=14, decimal_places=2, default=Decimal("0.00"))
    r_score = models.SmallIntegerField(_("R score"), null=True, blank=True)
    f_score = models.SmallIntegerField(_("F score"), null=True, blank=True)
    m_score = models.SmallIntegerField(_("M score"), null=True, blank=True)
    segment = models.ForeignKey(
        Segment,
        verbose_name=_("segment"),
        on_delete=models.DO_NOTHING,
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
    )
    source_version = models.DateTimeField(
        _("orders seen up to"),
        null=True,
        blank=True,
        help_text=_("Set by the per-order refresh: the latest change among the orders it saw (empty after a run)."),
    )

    class Meta:
        ordering = ["member_id"]
        verbose_name = _("member RFM")
        verbose_name_plural = _("member RFM")

    def __str__(self):
        return f"{self.member_id}: {self.segment.name if self.segment_id else '—'}"


class RfmStagingRow(models.Model):
    """Per-member aggregates of a run split across workers, before scoring (see the recompute
    module). Rows live only while their run is in progress; on PostgreSQL the table is UNLOGGED."""

    pk = models.CompositePrimaryKey("run_id", "member_id")
    run_id = models.BigIntegerField(_("run"))
    member_id = models.BigIntegerField(_("member"))
    recency_days = models.IntegerField(_("R (days)"), null=True)
    first_order_days = models.IntegerField(_("days since first order"), null=True)
    frequency = models.IntegerField(_("F (orders)"))
    monetary = models.DecimalField(_("M (yuan)"), max_digits=14, decimal_places=2)

    class Meta:
        verbose_name = _("RFM staging row")
        verbose_name_plural = _("RFM staging rows")

    def __str__(self):
        return f"{self.run_id}/{self.member_id}"


class SegmentSnapshot(TimeStampedModel):
    """Which members a run put in a segment: ``member_ids``, in no particular order."""

    run = models.ForeignKey(RfmRun, verbose_name=_("run"), on_delete=models.CASCADE, related_name="snapshots")
    segment = models.ForeignKey(
        Segment, verbose_name=_("segment"), on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    member_count = models.PositiveIntegerField(_("members"))
    member_ids = ArrayField(models.BigIntegerField(), verbose_name=_("member ids"))

    class Meta:
        ordering = ["run", "segment"]
        verbose_name = _("segment snapshot")
        verbose_name_plural = _("segment snapshots")
        constraints = [
            models.UniqueConstraint(fields=["run", "segment"], name="segmentsnapshot_unique"),
        ]


class SegmentTransition(TimeStampedModel):
    class Source(models.TextChoices):
        RUN = "run", _("Recompute")
        LIVE = "live", _("Order or refund")

    # Not database constraints, for the same reason as MemberRfm's: a first run writes a row per member.
    run = models.ForeignKey(
        RfmRun, verbose_name=_("run"), on_delete=models.CASCADE, related_name="transitions", db_constraint=False
    )
    member = models.ForeignKey(
        Member,
        verbose_name=_("member"),
        on_delete=models.CASCADE,
        related_name="segment_transitions",
        db_constraint=False,
        db_index=False,
    )
    from_segment = models.ForeignKey(
        Segment,
        verbose_name=_("from"),
        on_delete=models.DO_NOTHING,
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    to_segment = models.ForeignKey(
        Segment,
        verbose_name=_("to"),
        on_delete=models.DO_NOTHING,
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    source = models.CharField(_("source"), max_length=10, choices=Source.choices, default=Source.RUN)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("segment transition")
        verbose_name_plural = _("segment transitions")
        indexes = [models.Index(fields=["member", "created_at"], name="segtransition_member_created")]

    def __str__(self):
        before = self.from_segment.name if self.from_segment_id else "—"
        after = self.to_segment.name if self.to_segment_id else "—"
        return f"{self.member_id}: {before} → {after}"


class ClvRun(TimeStampedModel):
    """One customer-lifetime-value fit (``segmentation.services.clv``): BG/NBD on the purchase-day
    summaries of every member who bought by ``as_of``, Gamma-Gamma on those who came back.

    ``params`` holds the fitted parameters in the shape ``export_clv --params`` writes
    (``{"bgnbd": {"r", "alpha", "a", "b"}, "gamma_gamma": {"p", "q", "gamma"}}``); ``calibration``
    the holdout check (see ``segmentation.clv_sql``); ``phase`` the step a running fit is at,
    committed as it goes so the admin can show progress."""

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    class Phase(models.TextChoices):
        QUEUED = "queued", _("Queued")
        SUMMARISING = "summarising", _("Summarising purchases")
        FITTING = "fitting", _("Fitting BG/NBD and Gamma-Gamma")
        SCORING = "scoring", _("Scoring members")
        CALIBRATING = "calibrating", _("Checking against a holdout period")
        WRITING = "writing", _("Writing scores")
        DONE = "done", _("Done")

    as_of = models.DateField(_("as of"))
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.RUNNING)
    phase = models.CharField(_("step"), max_length=20, choices=Phase.choices, default=Phase.QUEUED)
    started_at = models.DateTimeField(_("started at"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    horizon_days = models.PositiveSmallIntegerField(
        _("CLV horizon (days)"),
        default=365,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text=_("CLV adds up the expected spend of the next N days."),
    )
    discount_rate = models.DecimalField(
        _("annual discount rate"),
        max_digits=5,
        decimal_places=4,
        default=Decimal("0.1000"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("1"))],
        help_text=_("Expected spend is discounted by this rate for each year ahead: 0.10 is 10 % a year."),
    )
    holdout_days = models.PositiveSmallIntegerField(
        _("holdout (days)"),
        default=90,
        help_text=_("The calibration check fits on the data up to N days before the as-of date and compares."),
    )
    member_count = models.PositiveIntegerField(_("members fitted"), default=0)
    repeat_member_count = models.PositiveIntegerField(_("members with repeat purchases"), default=0)
    params = models.JSONField(_("fitted parameters"), default=dict, blank=True)
    log_likelihood = models.FloatField(_("log-likelihood (BG/NBD)"), null=True, blank=True)
    gg_log_likelihood = models.FloatField(_("log-likelihood (Gamma-Gamma)"), null=True, blank=True)
    fit_seconds = models.FloatField(_("fitting time (s)"), null=True, blank=True)
    seconds = models.FloatField(_("total time (s)"), null=True, blank=True)
    calibration = models.JSONField(_("calibration"), default=dict, blank=True)
    is_current = models.BooleanField(_("current"), default=False, help_text=_("Its scores are the ones shown."))
    error = models.TextField(_("error"), blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = _("CLV run")
        verbose_name_plural = _("CLV runs")
        constraints = [
            models.UniqueConstraint(fields=["is_current"], condition=Q(is_current=True), name="clvrun_one_current"),
            models.CheckConstraint(condition=Q(discount_rate__gte=0, discount_rate__lte=1), name="clvrun_rate_0_1"),
            models.CheckConstraint(condition=Q(horizon_days__gte=1), name="clvrun_horizon_positive"),
        ]

    def __str__(self):
        return f"CLV @ {self.as_of} ({self.get_status_display()})"


class MemberClv(models.Model):
    """A member's scores from the current CLV run (one row per member who had bought by its as-of
    date). Replaced whole by every run (a new table swapped in, like ``MemberRfm``); its foreign
    keys are not database constraints for the same reason as ``MemberRfm``'s."""

    member = models.OneToOneField(
        Member,
        verbose_name=_("member"),
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="clv",
        db_constraint=False,
    )
    run = models.ForeignKey(
        ClvRun,
        verbose_name=_("run"),
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    frequency = models.IntegerField(_("repeat purchase days"))
    recency_days = models.IntegerField(_("days from first to last purchase"))
    age_days = models.IntegerField(_("days since first purchase"))
    monetary_mean = models.DecimalField(
        _("mean repeat day spend"), max_digits=14, decimal_places=2, null=True, blank=True
    )
    p_alive = models.FloatField(_("P(alive)"))
    expected_purchases_30 = models.FloatField(_("expected purchases, 30 days"))
    expected_purchases_90 = models.FloatField(_("expected purchases, 90 days"))
    expected_purchases_365 = models.FloatField(_("expected purchases, 365 days"))
    expected_spend = models.DecimalField(_("expected spend per purchase"), max_digits=14, decimal_places=2)
    clv = models.DecimalField(_("CLV"), max_digits=14, decimal_places=2)

    class Meta:
        db_table = CLV_TABLE
        ordering = ["member_id"]
        verbose_name = _("member CLV")
        verbose_name_plural = _("member CLV")

    def __str__(self):
        return f"{self.member_id}: {self.p_alive:.0%} / ¥{self.clv}"


class MemberCategory(models.Model):
    """One of a member's favourite product categories (rank 1 is *the* favourite): net spend on
    order lines paid in the last 365 days (refunds netted), top three, from the nightly run
    (``segmentation.services.products.member_categories_recompute``). Rows change only when a
    member's ranking does; a member without lines in the window has none. The member foreign key
    is not a database constraint, for the reason ``MemberRfm``'s is not (the only writer copies ids
    it has just read)."""

    member = models.ForeignKey(
        Member,
        verbose_name=_("member"),
        on_delete=models.CASCADE,
        related_name="favourite_categories",
        db_constraint=False,
        db_index=False,
    )
    rank = models.PositiveSmallIntegerField(_("rank"), help_text=_("1 is the favourite."))
    category = models.CharField(_("category"), max_length=50)
    net_amount = models.DecimalField(_("net spend (yuan)"), max_digits=14, decimal_places=2)
    computed_at = models.DateTimeField(_("computed at"))

    class Meta:
        ordering = ["member_id", "rank"]
        verbose_name = _("favourite category")
        verbose_name_plural = _("favourite categories")
        indexes = [models.Index(fields=["category", "rank"], name="membercategory_category_rank")]
        constraints = [
            models.UniqueConstraint(fields=["member", "rank"], name="membercategory_member_rank"),
            models.CheckConstraint(condition=Q(rank__gte=1), name="membercategory_rank_gte_1"),
        ]

    def __str__(self):
        return f"{self.member_id} #{self.rank}: {self.category}"


class RelatedProduct(models.Model):
    """``related`` is one of the products most bought by the members who bought ``product`` (within
    the last 365 days, refunded lines left out): ``support`` such members, ``lift`` how much more
    often than chance (support × buyers ÷ (buyers of the product × buyers of the related one));
    ranked by lift, then support. From the nightly run
    (``segmentation.services.products.related_products_recompute``), top K per product with at least
    a minimum support."""

    product = models.ForeignKey(
        Product, verbose_name=_("product"), on_delete=models.CASCADE, related_name="+", db_index=False
    )
    rank = models.PositiveSmallIntegerField(_("rank"))
    related = models.ForeignKey(Product, verbose_name=_("related product"), on_delete=models.CASCADE, related_name="+")
    support = models.PositiveIntegerField(_("members who bought both"))
    lift = models.FloatField(_("lift"))
    computed_at = models.DateTimeField(_("computed at"))

    class Meta:
        ordering = ["product_id", "rank"]
        verbose_name = _("related product")
        verbose_name_plural = _("related products")
        constraints = [
            models.UniqueConstraint(fields=["product", "rank"], name="relatedproduct_product_rank"),
            models.CheckConstraint(condition=Q(rank__gte=1), name="relatedproduct_rank_gte_1"),
            models.CheckConstraint(condition=~Q(related=models.F("product")), name="relatedproduct_not_itself"),
        ]

    def __str__(self):
        return f"{self.product_id} #{self.rank}: {self.related_id}"
