"""The default scheme of PRODUCT.md (active), and seed 000's five layers and seed 002's four
quadrants on R×M as ready-made alternatives (inactive). Reversible: unapplying deletes these three
schemes (and only them) when they have never been run."""

import importlib
from decimal import Decimal

from django.db import migrations

NO_PURCHASE = {
    "slug": "no_purchase",
    "name_zh": "未消费会员",
    "name_en": "No purchase yet",
    "colour": "#9e9e9e",
    "strategy": "Welcome coupon and first-order incentive.",
}

# (R, F, M, slug, 中文, English, default strategy, colour) — PRODUCT.md, section RFM.
DEFAULT_CELLS = [
    ("H", "H", "H", "champions", "重要价值用户", "Champions", "VIP service, early access, double points", "#2e7d32"),
    ("L", "H", "H", "loyal_at_risk", "重要保持用户", "Loyal at risk",
     "care messages, targeted offers, ask for feedback", "#f9a825"),
    ("H", "L", "H", "big_spenders", "重要发展用户", "Big spenders to grow",
     "frequency rewards, related products", "#1565c0"),
    ("L", "L", "H", "win_back", "重要挽留用户", "High value to win back",
     "churn alert, win-back coupon, staff follow-up", "#c62828"),
    ("H", "H", "L", "loyal_low_spend", "一般价值用户", "Loyal low spenders", "bundles, points system, upsell", "#66bb6a"),
    ("H", "L", "L", "promising", "一般发展用户", "New and promising", "onboarding, first-repeat incentive", "#42a5f5"),
    ("L", "H", "L", "need_attention", "一般保持用户", "Need reactivation", "wake-up offers, challenges", "#ffa726"),
    ("L", "L", "L", "lost", "流失用户", "Lost", "large-scale recall, survey", "#757575"),
]

# Seed 000: five layers, in quintile mode with "high" = score 4–5 (中 = 3). Rules in order; the
# last one catches everyone else, so every buyer lands somewhere.
FIVE_LAYERS = [
    # (slug, 中文, English, strategy, colour, [(kind, r, f, m)])
    ("high_value_active", "高价值活跃客户", "High-value active", "VIP关怀、专属权益 / VIP care, exclusive benefits",
     "#2e7d32", [("cell", "H", "H", "H")]),
    ("new_customer", "新客", "New customers", "新手礼包、体验引导 / welcome pack, guided first experience",
     "#42a5f5", [("cell", "H", "1-2", "1-2")]),
    ("growing", "潜力增长客户", "Growing potential", "激励复购、限时优惠 / repeat-purchase rewards, limited-time offers",
     "#1565c0", [("cell", "H", "", "")]),
    ("reluctant_high_value", "惜购客户", "High value slipping away",
     "流失挽回、专属礼包 / win-back, exclusive gift pack", "#c62828", [("cell", "L", "H", "H")]),
    ("dormant", "休眠客户", "Dormant", "唤醒提醒、再激活 / wake-up reminders, reactivation", "#757575",
     [("everyone_else", "", "", "")]),
]

# Seed 002: four quadrants on R×M (scores 1–5, high = 3 or more).
FOUR_QUADRANTS = [
    ("key_maintain", "重点维护", "Keep close (high R, high M)", "提供专属服务,提升忠诚度 / exclusive service, loyalty",
     "#2e7d32", [("cell", "H", "", "H")]),
    ("key_develop", "重点发展", "Develop (high R, low M)", "提高客单价,推荐关联商品 / raise basket size, related products",
     "#1565c0", [("cell", "H", "", "L")]),
    ("key_win_back", "重点挽回", "Win back (low R, high M)", "主动联系,了解流失原因 / reach out, learn why they left",
     "#c62828", [("cell", "L", "", "H")]),
    ("general_keep", "一般保持", "Maintain (low R, low M)", "低成本维护 / low-cost upkeep", "#757575",
     [("cell", "L", "", "L")]),
]

SLUGS = ("rfm-default", "seed-000-five-layers", "seed-002-four-quadrants")


def _segment(Segment, scheme, ordering, slug, name_zh, name_en, strategy, colour):
    return Segment.objects.create(
        scheme=scheme, slug=slug, name_zh=name_zh, name_en=name_en, strategy=strategy, colour=colour, ordering=ordering
    )


def create_schemes(apps, schema_editor):
    Scheme = apps.get_model("segmentation", "Scheme")
    Segment = apps.get_model("segmentation", "Segment")
    SegmentRule = apps.get_model("segmentation", "SegmentRule")

    default = Scheme.objects.create(
        name="RFM 八类 (默认) / Eight classic segments (default)",
        slug="rfm-default",
        description="PRODUCT.md: R high if R ≤ 30 days, F high if F ≥ 3, M high if M ≥ 500 yuan (seed 001).",
        mode="thresholds",
        window_days=365,
        r_max_days=30,
        f_min=3,
        m_min=Decimal("500.00"),
        high_score=3,
        is_active=True,
    )
    no_purchase = _segment(Segment, default, 90, **NO_PURCHASE)
    SegmentRule.objects.create(scheme=default, segment=no_purchase, priority=0, kind="no_purchase")
    for index, (r, f, m, slug, name_zh, name_en, strategy, colour) in enumerate(DEFAULT_CELLS, start=1):
        segment = _segment(Segment, default, index * 10, slug, name_zh, name_en, strategy, colour)
        SegmentRule.objects.create(scheme=default, segment=segment, priority=index * 10, kind="cell", r=r, f=f, m=m)

    for slug, name, description, high_score, layers in (
        (
            "seed-000-five-layers",
            "五层客户分层 / Five customer layers (seed 000)",
            "Quintile scores; high = 4–5, medium = 3. Rules are tried top to bottom.",
            4,
            FIVE_LAYERS,
        ),
        (
            "seed-002-four-quadrants",
            "R×M 四象限 / Four quadrants on R×M (seed 002)",
            "Quintile scores; high = 3–5. F is not used.",
            3,
            FOUR_QUADRANTS,
        ),
    ):
        scheme = Scheme.objects.create(
            name=name, slug=slug, description=description, mode="quintiles", window_days=365, high_score=high_score
        )
        no_purchase = _segment(Segment, scheme, 90, **NO_PURCHASE)
        SegmentRule.objects.create(scheme=scheme, segment=no_purchase, priority=0, kind="no_purchase")
        for index, (seg_slug, name_zh, name_en, strategy, colour, rules) in enumerate(layers, start=1):
            segment = _segment(Segment, scheme, index * 10, seg_slug, name_zh, name_en, strategy, colour)
            for kind, r, f, m in rules:
                SegmentRule.objects.create(
                    scheme=scheme, segment=segment, priority=index * 10, kind=kind, r=r, f=f, m=m
                )

    if any(field.name == "strategy_en" for field in Segment._meta.get_fields()):
        # A later state of the models (tests re-installing the schemes with the live registry):
        # give the texts both languages as 0005 does.
        importlib.import_module("segmentation.migrations.0005_bilingual_texts").split_languages(apps, schema_editor)
    if any(field.name == "tag" for field in SegmentRule._meta.get_fields()):
        # Later still: the five layers as 0011 fixed them (新客 by first order, before the cells).
        importlib.import_module("segmentation.migrations.0011_five_layers_new_customers_first").fix_five_layers(
            apps, schema_editor
        )


def delete_schemes(apps, schema_editor):
    Scheme = apps.get_model("segmentation", "Scheme")
    Scheme.objects.filter(slug__in=SLUGS, runs__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("segmentation", "0001_initial")]

    operations = [migrations.RunPython(create_schemes, delete_schemes)]
