"""Seed 000's five layers read as their names promise: 新客 are the members whose first order was in
the last 30 days (a ``first_order_within`` rule tried before the score cells), 潜力增长 the other
members who bought recently (R score 3–5: 近期激活), and 休眠 only those who have not bought for a
long time (R score 1–2) — 惜购 (R low, F and M high) is tried before 潜力增长.

What 0002 shipped made 新客 a score cell (R high, F and M 1–2) and 潜力增长 "R high" (4–5), so on
real data a member who first bought ten days ago with R score 3 fell through to the catch-all
休眠; on the demo brand (5,000 members, 50,000 orders, seed 42) 71 of the 393 members whose first
order was in the last 30 days were 休眠, and 169 members who had bought in the last 30 days.

Only a preset the operator has not edited is changed: the scheme must still be in quintile mode
with high = 4 and hold exactly the rules 0002 shipped (per segment: priority, kind, R/F/M, N, no
CLV or tag condition); its description changes only where it still reads as shipped. Unapplying
puts the shipped rules back under the same condition (the rules must be exactly these).
"""

from django.db import migrations

SLUG = "seed-000-five-layers"

# segment slug: (priority, kind, r, f, m, value)
SHIPPED = {
    "no_purchase": (0, "no_purchase", "", "", "", None),
    "high_value_active": (10, "cell", "H", "H", "H", None),
    "new_customer": (20, "cell", "H", "1-2", "1-2", None),
    "growing": (30, "cell", "H", "", "", None),
    "reluctant_high_value": (40, "cell", "L", "H", "H", None),
    "dormant": (50, "everyone_else", "", "", "", None),
}
FIXED = {
    "no_purchase": (0, "no_purchase", "", "", "", None),
    "new_customer": (5, "first_order_within", "", "", "", 30),
    "high_value_active": (10, "cell", "H", "H", "H", None),
    "reluctant_high_value": (20, "cell", "L", "H", "H", None),
    "growing": (30, "cell", "3-5", "", "", None),
    "dormant": (50, "everyone_else", "", "", "", None),
}

# (中文, English) as 0005 left them, and as this migration writes them
SHIPPED_DESCRIPTION = (
    "五分位打分:4–5 分为高,3 分为中。规则自上而下依次匹配。",
    "Quintile scores; high = 4–5, medium = 3. Rules are tried top to bottom.",
)
FIXED_DESCRIPTION = (
    "五分位打分:4–5 分为高,3 分为中。首单在最近 30 天内的会员为新客(先于打分规则);"
    "近期消费(R 3–5 分)为潜力增长;长时间未消费(R 1–2 分)为休眠。规则自上而下依次匹配。",
    "Quintile scores; high = 4–5, medium = 3. Members whose first order was in the last 30 days are new "
    "customers (before any score rule); other recent buyers (R 3–5) are growing; those who have not "
    "bought for long (R 1–2) are dormant. Rules are tried top to bottom.",
)


def _rules_as(scheme, SegmentRule, expected: dict) -> dict | None:
    """The scheme's rules by segment slug when they are exactly ``expected`` (one per segment, no
    CLV or tag condition), else None."""
    rules = list(SegmentRule.objects.filter(scheme=scheme).select_related("segment"))
    found = {}
    for rule in rules:
        extras = [getattr(rule, name, None) for name in ("p_alive_below", "p_alive_at_least", "clv_at_least")]
        if any(value is not None for value in extras) or getattr(rule, "tag", ""):
            return None
        if rule.segment.slug in found:
            return None
        found[rule.segment.slug] = rule
        if (rule.priority, rule.kind, rule.r, rule.f, rule.m, rule.value) != expected.get(rule.segment.slug):
            return None
    return found if set(found) == set(expected) else None


def _rewrite(apps, source: dict, target: dict, source_description, target_description) -> None:
    Scheme = apps.get_model("segmentation", "Scheme")
    SegmentRule = apps.get_model("segmentation", "SegmentRule")
    scheme = Scheme.objects.filter(slug=SLUG, mode="quintiles", high_score=4).first()
    if scheme is None:
        return
    rules = _rules_as(scheme, SegmentRule, source)
    if rules is None:  # edited by an operator: left alone
        return
    for slug, rule in rules.items():
        rule.priority, rule.kind, rule.r, rule.f, rule.m, rule.value = target[slug]
        rule.save(update_fields=["priority", "kind", "r", "f", "m", "value", "updated_at"])
    changed = []
    if scheme.description == source_description[0]:
        scheme.description = target_description[0]
        changed.append("description")
    if getattr(scheme, "description_en", None) == source_description[1]:
        scheme.description_en = target_description[1]
        changed.append("description_en")
    if changed:
        scheme.save(update_fields=[*changed, "updated_at"])


def fix_five_layers(apps, schema_editor):
    _rewrite(apps, SHIPPED, FIXED, SHIPPED_DESCRIPTION, FIXED_DESCRIPTION)


def restore_five_layers(apps, schema_editor):
    _rewrite(apps, FIXED, SHIPPED, FIXED_DESCRIPTION, SHIPPED_DESCRIPTION)


class Migration(migrations.Migration):
    dependencies = [("segmentation", "0010_scheme_windows_levels_tags")]

    operations = [migrations.RunPython(fix_five_layers, restore_five_layers)]
