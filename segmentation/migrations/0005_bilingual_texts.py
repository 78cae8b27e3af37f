"""Both languages for what operators read: a scheme's name and description, a segment's strategy
(``name``/``description``/``strategy`` hold the Chinese, the new ``*_en`` fields the English; a
segment already had ``name_zh``/``name_en``). A segment's names become optional one at a time (the
model asks for one of them); every text falls back to the other language when empty.

The shipped schemes (0002) get both languages: their rows are rewritten only where they still hold
the text 0002 wrote (English only, or "中文 / English" in one field), so an operator's edits stay.
Unapplying joins the two languages of those rows back into one field as "中文 / English".
"""

from django.db import migrations, models

# slug: (中文名, English name, 中文说明, English description, the description 0002 wrote)
SCHEMES = {
    "rfm-default": (
        "RFM 八类(默认)",
        "Eight classic segments (default)",
        "R ≤ 30 天为高,F ≥ 3 单为高,M ≥ 500 元为高(种子 001)。",
        "R is high if R ≤ 30 days, F high if F ≥ 3 orders, M high if M ≥ 500 yuan (seed 001).",
        "PRODUCT.md: R high if R ≤ 30 days, F high if F ≥ 3, M high if M ≥ 500 yuan (seed 001).",
    ),
    "seed-000-five-layers": (
        "五层客户分层",
        "Five customer layers (seed 000)",
        "五分位打分:4–5 分为高,3 分为中。规则自上而下依次匹配。",
        "Quintile scores; high = 4–5, medium = 3. Rules are tried top to bottom.",
        "Quintile scores; high = 4–5, medium = 3. Rules are tried top to bottom.",
    ),
    "seed-002-four-quadrants": (
        "R×M 四象限",
        "Four quadrants on R×M (seed 002)",
        "五分位打分:3–5 分为高。不使用 F。",
        "Quintile scores; high = 3–5. F is not used.",
        "Quintile scores; high = 3–5. F is not used.",
    ),
}

# segment slug: (中文策略, English strategy) — the slugs are unique across the shipped schemes,
# except no_purchase, which has the same strategy in all three.
STRATEGIES = {
    "no_purchase": ("欢迎券与首单激励。", "Welcome coupon and first-order incentive."),
    "champions": ("VIP 服务、新品抢先体验、双倍积分", "VIP service, early access, double points"),
    "loyal_at_risk": ("关怀消息、定向优惠、征求反馈", "Care messages, targeted offers, ask for feedback"),
    "big_spenders": ("消费频次奖励、关联商品推荐", "Frequency rewards, related products"),
    "win_back": ("流失预警、挽回券、店员跟进", "Churn alert, win-back coupon, staff follow-up"),
    "loyal_low_spend": ("套餐组合、积分体系、向上销售", "Bundles, points system, upsell"),
    "promising": ("新客引导、首次复购激励", "Onboarding, first-repeat incentive"),
    "need_attention": ("唤醒优惠、消费挑战", "Wake-up offers, challenges"),
    "lost": ("大规模召回、问卷调研", "Large-scale recall, survey"),
    "high_value_active": ("VIP 关怀、专属权益", "VIP care, exclusive benefits"),
    "new_customer": ("新手礼包、体验引导", "Welcome pack, guided first experience"),
    "growing": ("激励复购、限时优惠", "Repeat-purchase rewards, limited-time offers"),
    "reluctant_high_value": ("流失挽回、专属礼包", "Win-back, exclusive gift pack"),
    "dormant": ("唤醒提醒、再激活", "Wake-up reminders, reactivation"),
    "key_maintain": ("提供专属服务,提升忠诚度", "Exclusive service, loyalty"),
    "key_develop": ("提高客单价,推荐关联商品", "Raise basket size, related products"),
    "key_win_back": ("主动联系,了解流失原因", "Reach out, learn why they left"),
    "general_keep": ("低成本维护", "Low-cost upkeep"),
}


def _plain(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def shipped(current: str, chinese: str, english: str, *older: str) -> bool:
    """Whether ``current`` is still a text the migrations wrote (alone, joined, or an older one)."""
    return _plain(current) in {_plain(t) for t in (chinese, english, f"{chinese}/{english}", *older)}


def split_languages(apps, schema_editor):
    Scheme = apps.get_model("segmentation", "Scheme")
    Segment = apps.get_model("segmentation", "Segment")
    for scheme in Scheme.objects.filter(slug__in=list(SCHEMES)):
        name_zh, name_en, description_zh, description_en, older = SCHEMES[scheme.slug]
        if not scheme.name_en and shipped(scheme.name, name_zh, name_en):
            scheme.name, scheme.name_en = name_zh, name_en
        if not scheme.description_en and shipped(scheme.description, description_zh, description_en, older):
            scheme.description, scheme.description_en = description_zh, description_en
        scheme.save(update_fields=["name", "name_en", "description", "description_en"])
    for segment in Segment.objects.filter(scheme__slug__in=list(SCHEMES), slug__in=list(STRATEGIES)):
        chinese, english = STRATEGIES[segment.slug]
        if not segment.strategy_en and shipped(segment.strategy, chinese, english):
            segment.strategy, segment.strategy_en = chinese, english
            segment.save(update_fields=["strategy", "strategy_en"])


def join_languages(apps, schema_editor):
    Scheme = apps.get_model("segmentation", "Scheme")
    Segment = apps.get_model("segmentation", "Segment")
    for scheme in Scheme.objects.filter(slug__in=list(SCHEMES)):
        if scheme.name_en:
            scheme.name = f"{scheme.name} / {scheme.name_en}"[:100]
        if scheme.description_en:
            scheme.description = f"{scheme.description} / {scheme.description_en}"
        scheme.save(update_fields=["name", "description"])
    for segment in Segment.objects.filter(scheme__slug__in=list(SCHEMES)).exclude(strategy_en=""):
        segment.strategy = f"{segment.strategy} / {segment.strategy_en}"
        segment.save(update_fields=["strategy"])


class Migration(migrations.Migration):
    dependencies = [("segmentation", "0004_drop_recompute_lock")]

    operations = [
        migrations.AddField(
            model_name="scheme",
            name="name_en",
            field=models.CharField(
                blank=True,
                help_text="Shown on English pages; empty: the name above.",
                max_length=100,
                verbose_name="name (English)",
            ),
        ),
        migrations.AddField(
            model_name="scheme",
            name="description_en",
            field=models.TextField(
                blank=True,
                help_text="Shown on English pages; empty: the description above.",
                verbose_name="description (English)",
            ),
        ),
        migrations.AddField(
            model_name="segment",
            name="strategy_en",
            field=models.TextField(
                blank=True,
                help_text="Shown on English pages; empty: the strategy above.",
                verbose_name="strategy (English)",
            ),
        ),
        migrations.AlterField(
            model_name="segment",
            name="name_zh",
            field=models.CharField(blank=True, max_length=50, verbose_name="Chinese name"),
        ),
        migrations.AlterField(
            model_name="segment",
            name="name_en",
            field=models.CharField(blank=True, max_length=80, verbose_name="English name"),
        ),
        migrations.RunPython(split_languages, join_languages),
    ]
