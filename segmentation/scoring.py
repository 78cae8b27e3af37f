"""The RFM definitions of PRODUCT.md that do not need the database: the frozen scheme a run uses,
the as-of window in the brand's time zone, and how scores are labelled.

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

    @property
    def high_level(self) -> int:
        """The lowest stored score that counts as high: 1 (thresholds: 1 = H, 0 = L) or ``high_score``."""
        return 1 if self.mode == THRESHOLDS else self.high_score

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
        )


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
    """What exports show: ``H``/``L`` in thresholds mode, ``1``–``5`` in quintile mode."""
    if score is None:
        return ""
    if mode == THRESHOLDS:
        return "H" if score >= 1 else "L"
    return str(score)
