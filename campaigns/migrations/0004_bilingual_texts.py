"""Both languages for the texts operators read: ``name``/``description``/``strategy``/the gift and the
restriction note keep the Chinese (or what an operator wrote), the new ``*_en`` fields hold the
English, optional; pages show the user's language and fall back to the other.

The playbook's rows (0002) get both languages where they still hold what the playbook wrote — "中文 /
English" in one field, or only the Chinese (a new install, whose 0002 ran before these fields
existed) — so an operator's edits stay. A playbook campaign's description and strategy follow its
segment's (segmentation 0005). Unapplying joins the languages of those rows back as "中文 / English".
"""

from django.db import migrations, models

from campaigns.playbook import CAMPAIGNS, COUPON_TEMPLATES, REFERRAL_RULES, TOP_UP_OFFERS


def _plain(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def _shipped(current: str, chinese: str, english: str) -> bool:
    return _plain(current) in {_plain(chinese), _plain(english), _plain(f"{chinese}/{english}")}


def _split(row, field: str, chinese: str, english: str) -> bool:
    """Set ``field`` and ``field_en`` to the two languages if the row still holds the shipped text."""
    if getattr(row, f"{field}_en") or not _shipped(getattr(row, field), chinese, english):
        return False
    setattr(row, field, chinese)
    setattr(row, f"{field}_en", english)
    return True


def split_languages(apps, schema_editor):
    CouponTemplate = apps.get_model("campaigns", "CouponTemplate")
    TopUpOffer = apps.get_model("campaigns", "TopUpOffer")
    ReferralRewardRule = apps.get_model("campaigns", "ReferralRewardRule")
    Campaign = apps.get_model("campaigns", "Campaign")

    for template in CouponTemplate.objects.filter(slug__in=list(COUPON_TEMPLATES)):
        (name, name_en), *_rest, gift = COUPON_TEMPLATES[template.slug]
        changed = _split(template, "name", name, name_en)
        if gift:
            changed |= _split(template, "gift_description", *gift)
        if changed:
            template.save(update_fields=["name", "name_en", "gift_description", "gift_description_en"])
    for offer in TopUpOffer.objects.filter(code__in=list(TOP_UP_OFFERS)):
        (name, name_en), *_rest, note, _tags = TOP_UP_OFFERS[offer.code]
        changed = _split(offer, "name", name, name_en)
        if note:
            changed |= _split(offer, "restriction_note", *note)
        if changed:
            offer.save(update_fields=["name", "name_en", "restriction_note", "restriction_note_en"])
    for rule in ReferralRewardRule.objects.filter(slug__in=list(REFERRAL_RULES)):
        if _split(rule, "name", *REFERRAL_RULES[rule.slug][0]):
            rule.save(update_fields=["name", "name_en"])
    by_slug = {f"playbook-{slug}".replace("_", "-"): slug for slug in CAMPAIGNS}
    for campaign in Campaign.objects.filter(slug__in=list(by_slug)).prefetch_related("segments"):
        changed = _split(campaign, "name", *CAMPAIGNS[by_slug[campaign.slug]][0])
        segment = next((s for s in campaign.segments.all() if s.slug == by_slug[campaign.slug]), None)
        if segment is not None and segment.strategy_en:
            for field in ("description", "strategy"):
                changed |= _split(campaign, field, segment.strategy, segment.strategy_en)
        if changed:
            campaign.save(update_fields=["name", "name_en", "description", "description_en", "strategy", "strategy_en"])


def join_languages(apps, schema_editor):
    keys = (
        ("CouponTemplate", "slug", list(COUPON_TEMPLATES), ("name", "gift_description")),
        ("TopUpOffer", "code", list(TOP_UP_OFFERS), ("name", "restriction_note")),
        ("ReferralRewardRule", "slug", list(REFERRAL_RULES), ("name",)),
        (
            "Campaign",
            "slug",
            [f"playbook-{s}".replace("_", "-") for s in CAMPAIGNS],
            ("name", "description", "strategy"),
        ),
    )
    for model_name, key, values, fields in keys:
        for row in apps.get_model("campaigns", model_name).objects.filter(**{f"{key}__in": values}):
            for field in fields:
                if getattr(row, f"{field}_en"):
                    limit = row._meta.get_field(field).max_length
                    joined = f"{getattr(row, field)} / {getattr(row, f'{field}_en')}"
                    setattr(row, field, joined[:limit] if limit else joined)
            row.save(update_fields=list(fields))


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0003_points_multiplier_moved_to_members"),
        ("segmentation", "0005_bilingual_texts"),
    ]

    operations = [
        migrations.AddField(
            model_name="campaign",
            name="description_en",
            field=models.TextField(
                blank=True,
                help_text="Shown on English pages; empty: the description above.",
                verbose_name="description (English)",
            ),
        ),
        migrations.AddField(
            model_name="campaign",
            name="name_en",
            field=models.CharField(
                blank=True,
                help_text="Shown on English pages; empty: the name above.",
                max_length=200,
                verbose_name="name (English)",
            ),
        ),
        migrations.AddField(
            model_name="campaign",
            name="strategy_en",
            field=models.TextField(
                blank=True,
                help_text="Shown on English pages; empty: the strategy above.",
                verbose_name="strategy (English)",
            ),
        ),
        migrations.AddField(
            model_name="coupontemplate",
            name="description_en",
            field=models.TextField(
                blank=True,
                help_text="Shown on English pages; empty: the description above.",
                verbose_name="description (English)",
            ),
        ),
        migrations.AddField(
            model_name="coupontemplate",
            name="gift_description_en",
            field=models.CharField(
                blank=True,
                help_text="Shown on English pages; empty: the gift above.",
                max_length=200,
                verbose_name="gift (English)",
            ),
        ),
        migrations.AddField(
            model_name="coupontemplate",
            name="name_en",
            field=models.CharField(
                blank=True,
                help_text="Shown on English pages; empty: the name above.",
                max_length=200,
                verbose_name="name (English)",
            ),
        ),
        migrations.AddField(
            model_name="referralrewardrule",
            name="name_en",
            field=models.CharField(
                blank=True,
                help_text="Shown on English pages; empty: the name above.",
                max_length=200,
                verbose_name="name (English)",
            ),
        ),
        migrations.AddField(
            model_name="topupoffer",
            name="description_en",
            field=models.TextField(
                blank=True,
                help_text="Shown on English pages; empty: the description above.",
                verbose_name="description (English)",
            ),
        ),
        migrations.AddField(
            model_name="topupoffer",
            name="name_en",
            field=models.CharField(
                blank=True,
                help_text="Shown on English pages; empty: the name above.",
                max_length=200,
                verbose_name="name (English)",
            ),
        ),
        migrations.AddField(
            model_name="topupoffer",
            name="restriction_note_en",
            field=models.TextField(
                blank=True,
                help_text="Shown on English pages; empty: the restriction above.",
                verbose_name="restriction (English)",
            ),
        ),
        migrations.AddField(
            model_name="trigger",
            name="description_en",
            field=models.TextField(
                blank=True,
                help_text="Shown on English pages; empty: the description above.",
                verbose_name="description (English)",
            ),
        ),
        migrations.AddField(
            model_name="trigger",
            name="name_en",
            field=models.CharField(
                blank=True,
                help_text="Shown on English pages; empty: the name above.",
                max_length=200,
                verbose_name="name (English)",
            ),
        ),
        migrations.RunPython(split_languages, join_languages),
    ]
