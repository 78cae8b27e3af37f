"""The member 360's sentences: why a member is in their segment in one line, and how far they are
from the next tier — written for the clerk at the counter, in the language of the page.

- ``segment_sentence``: ``R = 45 days > 30, F = 4 ≥ 3, M = ¥820 ≥ ¥500 → Loyal`` from
  ``segmentation.selectors.segment_explain`` (thresholds mode compares with the scheme's limits,
  quintile mode gives each score).
- ``tier_steps``: each way to reach the next tier (``members.apis.selectors.member_profile``, the
  tier rules' own figures), each condition with where the member stands and a percentage.
"""

from decimal import Decimal

from django.utils.translation import get_language
from django.utils.translation import gettext as _

from members.apis.selectors import NextTier
from segmentation.scoring import THRESHOLDS


def yuan(amount) -> str:
    """``Decimal("820.00")`` → ``820``, ``Decimal("820.50")`` → ``820.50``."""
    amount = Decimal(amount)
    return str(amount.quantize(Decimal(1))) if amount == amount.to_integral_value() else str(amount)


def segment_name(segment: dict | None) -> str:
    if not segment:
        return ""
    chinese = (get_language() or "").lower().startswith("zh")
    return (segment["name_zh"] if chinese else segment["name_en"]) or segment["slug"]


def segment_sentence(explanation: dict) -> str:
    """Why the member is in their segment, in one line."""
    if not explanation.get("computed"):
        return explanation.get("message", "")
    values, scores = explanation["values"], explanation["scores"]
    if values["recency_days"] is None:
        parts = [_("no order in the last %(days)s days") % {"days": explanation["window_days"]}]
    elif explanation["mode"] == THRESHOLDS:
        limits = explanation["thresholds"]
        parts = [
            _("R = %(days)s days %(op)s %(limit)s")
            % {
                "days": values["recency_days"],
                "op": "≤" if scores["r"]["high"] else ">",
                "limit": limits["r_max_days"],
            },
            _("F = %(count)s %(op)s %(limit)s")
            % {"count": values["frequency"], "op": "≥" if scores["f"]["high"] else "<", "limit": limits["f_min"]},
            _("M = ¥%(amount)s %(op)s ¥%(limit)s")
            % {
                "amount": yuan(values["monetary"]),
                "op": "≥" if scores["m"]["high"] else "<",
                "limit": yuan(limits["m_min"]),
            },
        ]
    else:
        parts = [
            _("R = %(days)s days (score %(score)s)") % {"days": values["recency_days"], "score": scores["r"]["label"]},
            _("F = %(count)s (score %(score)s)") % {"count": values["frequency"], "score": scores["f"]["label"]},
            _("M = ¥%(amount)s (score %(score)s)")
            % {"amount": yuan(values["monetary"]), "score": scores["m"]["label"]},
        ]
    name = segment_name(explanation["segment"]) or _("no segment")
    return f"{_(', ').join(parts)} → {name}"


def _percent(value, target) -> int:
    if not target:
        return 100
    return max(0, min(100, int(Decimal(value) * 100 / Decimal(target))))


def tier_steps(next_tier: NextTier | None) -> list[list[dict]]:
    """Each rule of the next tier (any one is enough) as its conditions (all must hold): ``text``
    and ``percent``."""
    if next_tier is None:
        return []
    steps = []
    for requirement in next_tier.requirements:
        conditions = []
        days = requirement.window_days
        if requirement.min_spend is not None:
            conditions.append(
                {
                    "text": _("¥%(spend)s of ¥%(target)s spent in %(days)s days, ¥%(left)s to go")
                    % {
                        "spend": yuan(requirement.spend),
                        "target": yuan(requirement.min_spend),
                        "days": days,
                        "left": yuan(requirement.spend_remaining),
                    },
                    "percent": _percent(requirement.spend, requirement.min_spend),
                }
            )
        if requirement.min_orders is not None:
            conditions.append(
                {
                    "text": _("%(orders)s of %(target)s orders in %(days)s days")
                    % {"orders": requirement.orders, "target": requirement.min_orders, "days": days},
                    "percent": _percent(requirement.orders, requirement.min_orders),
                }
            )
        if requirement.needs_score:
            conditions.append({"text": _("and the RFM score the tier rule asks for"), "percent": None})
        steps.append(conditions)
    return steps
