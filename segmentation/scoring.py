"""The RFM definitions of PRODUCT.md that do not need the database: the frozen scheme a run uses,
the as-of window in the brand's time zone, and how scores are labelled.

F and M may each have their own window (``f_window_days``, ``m_window_days``; seed 001 counts F
over a month and M over a year), and in thresholds mode each dimension may have a medium level
(高/中/低: ``r_mid_days``, ``f_mid_min``, ``m_mid_min``): such a dimension stores 2 = 高, 1 = 中,
0 = 低, a two-level one 1 = H, 0 = L as before (``SchemeSpec.levels`` says which is which).

Scores themselves are computed once, in SQL (``segmentation.services.rfm_sql``: for everyone in a
recompute, for a few members in the per-order refresh); explanations read the stored scores.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings

THRESHOLDS = "thresholds"
QUINTILES = "quintiles"


@dataclass(frozen=True)
class SchemeSpec:
    """Everything a run needs from a scheme, frozen (``RfmRun.params``)."""

    scheme_id: int | None
    mode: str
    window_days: int
    r_max_days: int
    f_min: int
    m_min: Decimal
    high_score: int
    rules: tuple[dict, ...]
    activity_kinds: tuple[int, ...] = ()  # interaction kinds that count for R, besides orders
    # F's and M's own windows (None: ``window_days``), seed 001's "F in a month, M over a year".
    f_window_days: int | None = None
    m_window_days: int | None = None
    # Thresholds mode, optional middle levels (中); None: that dimension is high/low only.
    r_mid_days: int | None = None
    f_mid_min: int | None = None
    m_mid_min: Decimal | None = None

    @property
    def high_level(self) -> int:
        """The lowest stored score that counts as high on a two-level dimension: 1 (thresholds:
        1 = H, 0 = L) or ``high_score``. Use ``levels`` for rules: a three-level dimension stores
        2 = 高, 1 = 中, 0 = 低."""
        return 1 if self.mode == THRESHOLDS else self.high_score

    @property
    def f_days(self) -> int:
        return self.f_window_days or self.window_days

    @property
    def m_days(self) -> int:
        return self.m_window_days or self.window_days

    @property
    def split_windows(self) -> bool:
        """Whether F or M has a window of its own (not ``window_days``)."""
        return self.f_days != self.window_days or self.m_days != self.window_days

    def has_middle(self, dim: str) -> bool:
        """Whether ``dim`` scores 高/中/低 (thresholds mode with that dimension's medium limit)."""
        limit = {"r": self.r_mid_days, "f": self.f_mid_min, "m": self.m_mid_min}[dim]
        return self.mode == THRESHOLDS and limit is not None

    @property
    def levels(self) -> dict[str, tuple[int, int]]:
        """Per dimension ``(medium_from, high_from)``: a stored score is high (H) from
        ``high_from``, medium (M, 中) from ``medium_from`` below that, low (L) under
        ``medium_from``. Two levels: both are the high level, so nothing is medium."""
        return {
            dim: ((1, 2) if self.has_middle(dim) else (self.high_level, self.high_level)) for dim in ("r", "f", "m")
        }

    def level(self, dim: str, score: int | None) -> str:
        """``H``, ``M`` or ``L`` for a stored score of ``dim`` ('' when there is none)."""
        if score is None:
            return ""
        medium_from, high_from = self.levels[dim]
        return "H" if score >= high_from else ("M" if score >= medium_from else "L")

    def label(self, dim: str, score: int | None) -> str:
        """What exports show for a score: ``H``/``M``/``L`` in thresholds mode, ``1``–``5`` else."""
        if score is None:
            return ""
        return self.level(dim, score) if self.mode == THRESHOLDS else str(score)

    @classmethod
    def from_scheme(cls, scheme) -> SchemeSpec:
        rules = tuple(
            {
                "id": rule.pk,
                "segment_id": rule.segment_id,
                "priority": rule.priority,
                "kind": rule.kind,
                "r": rule.r,
                "f": rule.f,
                "m": rule.m,
                "value": rule.value,
                **{
                    key: str(getattr(rule, key))
                    for key in ("p_alive_below", "p_alive_at_least", "clv_at_least")
                    if getattr(rule, key) is not None
                },
                **({"tag": rule.tag} if rule.tag else {}),
            }
            for rule in scheme.rules.order_by("priority", "id")
        )
        return cls(
            scheme_id=scheme.pk,
            mode=scheme.mode,
            window_days=scheme.window_days,
            r_max_days=scheme.r_max_days,
            f_min=scheme.f_min,
            m_min=Decimal(scheme.m_min),
            high_score=scheme.high_score,
            rules=rules,
            activity_kinds=tuple(sorted(set(scheme.activity_kinds or ()))),
            f_window_days=scheme.f_window_days or None,
            m_window_days=scheme.m_window_days or None,
            r_mid_days=scheme.r_mid_days,
            f_mid_min=scheme.f_mid_min,
            m_mid_min=None if scheme.m_mid_min is None else Decimal(scheme.m_mid_min),
        )

    def to_params(self) -> dict:
        return {
            "scheme_id": self.scheme_id,
            "mode": self.mode,
            "window_days": self.window_days,
            "r_max_days": self.r_max_days,
            "f_min": self.f_min,
            "m_min": str(self.m_min),
            "high_score": self.high_score,
            "rules": [dict(rule) for rule in self.rules],
            **({"activity_kinds": list(self.activity_kinds)} if self.activity_kinds else {}),
            # only when set, so a scheme without them freezes exactly what it did before
            **{
                key: (str(value) if isinstance(value, Decimal) else value)
                for key, value in (
                    ("f_window_days", self.f_window_days),
                    ("m_window_days", self.m_window_days),
                    ("r_mid_days", self.r_mid_days),
                    ("f_mid_min", self.f_mid_min),
                    ("m_mid_min", self.m_mid_min),
                )
                if value is not None
            },
        }

    @classmethod
    def from_params(cls, params: dict) -> SchemeSpec:
        return cls(
            scheme_id=params.get("scheme_id"),
            mode=params["mode"],
            window_days=int(params["window_days"]),
            r_max_days=int(params["r_max_days"]),
            f_min=int(params["f_min"]),
            m_min=Decimal(params["m_min"]),
            high_score=int(params["high_score"]),
            rules=tuple(params["rules"]),
            activity_kinds=tuple(int(kind) for kind in params.get("activity_kinds", ())),
            f_window_days=_int_or_none(params.get("f_window_days")),
            m_window_days=_int_or_none(params.get("m_window_days")),
            r_mid_days=_int_or_none(params.get("r_mid_days")),
            f_mid_min=_int_or_none(params.get("f_mid_min")),
            m_mid_min=None if params.get("m_mid_min") in (None, "") else Decimal(params["m_mid_min"]),
        )

    def windows(self, as_of: dt.date) -> tuple[Window, Window, Window]:
        """The window of the run (who counts as having bought: see ``rfm_sql``), F's and M's."""
        return window_for(as_of, self.window_days), window_for(as_of, self.f_days), window_for(as_of, self.m_days)


def _int_or_none(value) -> int | None:
    return None if value in (None, "") else int(value)


@dataclass(frozen=True)
class Window:
    """As of local date D with a window of W days: paid dates in (D − W, D], i.e. paid instants in
    ``[start, end)`` where ``start`` is local midnight of D − W + 1 and ``end`` local midnight of
    D + 1 (computed with zoneinfo, so daylight-saving zones are right too)."""

    as_of: dt.date
    start: dt.datetime
    end: dt.datetime


def brand_timezone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def window_for(as_of: dt.date, window_days: int) -> Window:
    tz = brand_timezone()
    end = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    start = dt.datetime.combine(as_of - dt.timedelta(days=window_days - 1), dt.time.min, tzinfo=tz)
    return Window(as_of=as_of, start=start.astimezone(dt.UTC), end=end.astimezone(dt.UTC))


def score_label(score: int | None, mode: str) -> str:
    """What exports show for a two-level scheme: ``H``/``L`` in thresholds mode, ``1``–``5`` in
    quintile mode (``SchemeSpec.label`` knows three-level dimensions too)."""
    if score is None:
        return ""
    if mode == THRESHOLDS:
        return "H" if score >= 1 else "L"
    return str(score)
