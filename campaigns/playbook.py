"""The seeds' playbook: what a new installation starts with, all of it inactive.

- one draft campaign per segment of the default scheme, with the strategy of PRODUCT.md's table
  and benefits to match (coupon templates created here), a 10% control group and a per-member cap
  of one;
- seed 002's stored-value offers (new members 200→+20; champions 1000→+150 and double points for
  30 days; sleeping members 300→+50, only with the wake-up products), inactive;
- seed 001's stamp card for 重要发展用户 (big spenders to grow): 满5次送1次 — the fifth order within
  90 days gives a free-item coupon and 100 打卡积分 — inactive;
- seed 002's referral reward rules (champion referrer: both a ¥50 coupon and 1,000 points; others:
  both a ¥20 coupon; a sleeping referrer also gets an activation pack), inactive;
- the points catalogue (seeds 001 and 002, 积分兑换): a ¥20 coupon for 500 points (400 for
  champions) and a ¥50 coupon exclusive to champions for 1,500 points, once each, inactive
  (``playbook_rewards_install``; ``migrations/0009_playbook_rewards`` adds them to older installs).
- seed 002's four automations and seed 001's birthday care, as triggers, inactive (``TRIGGERS``):
  entering 重要挽留用户 gives a ¥50 win-back coupon and a staff follow-up; 30 days without a
  purchase gives a ¥15 "我们想你了" coupon; three days after a champion's order, the products
  related to it (the message carries ``related_products``, ``campaigns.services.triggers``); F high
  and M low gets the bundle coupon; 重要保持用户 get a birthday greeting with a ¥30 coupon three
  days before their birthday.

Every name, description and note is given in Chinese and English (``name`` and ``name_en`` …);
``migrations/0004_bilingual_texts`` splits the rows an older install wrote as "中文 / English".

``playbook_install(apps=None)`` is idempotent (everything is found by its slug or code and never
overwritten, so an operator's edits survive) and works with the live registry or a migration's
historical ``apps``. ``playbook_uninstall`` removes what is still unused, for a reversible migration.
"""

from __future__ import annotations

from decimal import Decimal

from django.apps import apps as live_apps

DEFAULT_SCHEME = "rfm-default"
CONTROL_PERCENT = 10

# slug: ((中文名, English name), kind, amount, percent_off, max_discount, min_spend, valid_days, gift)
COUPON_TEMPLATES = {
    "playbook-welcome-10": (("新人首单券 ¥10", "Welcome ¥10 off"), "fixed_amount", "10", None, None, "30", 14, ""),
    "playbook-first-repeat-10": (
        ("复购券 ¥10", "First repeat ¥10 off"),
        "fixed_amount",
        "10",
        None,
        None,
        "50",
        14,
        "",
    ),
    "playbook-frequency-20": (
        ("回购奖励 ¥20", "Come-back reward ¥20 off"),
        "fixed_amount",
        "20",
        None,
        None,
        "100",
        30,
        "",
    ),
    "playbook-care-30": (("关怀券 ¥30", "We care ¥30 off"), "fixed_amount", "30", None, None, "200", 30, ""),
    "playbook-win-back-50": (("挽回券 ¥50", "Win-back ¥50 off"), "fixed_amount", "50", None, None, "200", 30, ""),
    "playbook-bundle-15pct": (("套餐85折", "Bundle 15% off"), "percentage", None, 15, "30", "150", 30, ""),
    "playbook-wake-up-15": (("唤醒券 ¥15", "Wake-up ¥15 off"), "fixed_amount", "15", None, None, "80", 21, ""),
    "playbook-miss-you-15": (("我们想你了 ¥15", "We miss you ¥15 off"), "fixed_amount", "15", None, None, "60", 14, ""),
    "playbook-birthday-30": (("生日券 ¥30", "Birthday ¥30 off"), "fixed_amount", "30", None, None, "100", 14, ""),
    "playbook-recall-20": (("召回券 ¥20", "Recall ¥20 off"), "fixed_amount", "20", None, None, "100", 30, ""),
    "playbook-referral-50": (("推荐奖励 ¥50", "Referral ¥50 off"), "fixed_amount", "50", None, None, "100", 60, ""),
    "playbook-referral-20": (("推荐奖励 ¥20", "Referral ¥20 off"), "fixed_amount", "20", None, None, "50", 60, ""),
    "playbook-activation-pack": (
        ("激活礼包", "Activation pack"),
        "gift_item",
        None,
        None,
        None,
        "0",
        30,
        ("激活礼包:唤醒商品试用装", "Activation pack: wake-up product samples"),
    ),
    "playbook-stamp-free-item": (
        ("集点卡:满5次送1次", "Stamp card: the next one free"),
        "gift_item",
        None,
        None,
        None,
        "0",
        30,
        ("免费兑换一份同款商品", "One item free"),
    ),
}

# slug: ((中文名, English name), segment slug, stamps required, window days, coupon template, bonus points)
STAMP_CARDS = {
    "playbook-big-spenders-stamps": (
        ("重要发展用户集点卡:满5次送1次", "Big spenders to grow: buy 5 times, get 1 free"),
        "big_spenders",
        5,
        90,
        "playbook-stamp-free-item",
        100,
    ),
}

# segment slug: ((中文名, English name), [(benefit kind, fields)])
CAMPAIGNS = {
    "champions": (
        ("重要价值用户:VIP 双倍积分", "Champions: VIP double points"),
        [
            ("points_multiplier", {"multiplier": Decimal("2.00"), "multiplier_days": 30}),
            ("message", {"message_template": "champions_vip_early_access"}),
        ],
    ),
    "loyal_at_risk": (
        ("重要保持用户:关怀与定向优惠", "Loyal at risk: care and targeted offer"),
        [
            ("coupon", {"coupon_template": "playbook-care-30"}),
            ("message", {"message_template": "loyal_at_risk_care_feedback"}),
        ],
    ),
    "big_spenders": (
        ("重要发展用户:回购奖励", "Big spenders: frequency reward"),
        [
            ("coupon", {"coupon_template": "playbook-frequency-20"}),
            ("message", {"message_template": "big_spenders_related_products"}),
        ],
    ),
    "win_back": (
        ("重要挽留用户:挽回券 + 店员跟进", "Win back: coupon and staff follow-up"),
        [
            ("coupon", {"coupon_template": "playbook-win-back-50"}),
            ("follow_up", {"follow_up_reason": "重要挽留用户:电话关怀,了解流失原因"}),
            ("message", {"message_template": "win_back_coupon"}),
        ],
    ),
    "loyal_low_spend": (
        ("一般价值用户:套餐与积分", "Loyal low spenders: bundles and points"),
        [
            ("coupon", {"coupon_template": "playbook-bundle-15pct"}),
            ("points_multiplier", {"multiplier": Decimal("1.50"), "multiplier_days": 30}),
            ("message", {"message_template": "loyal_low_spend_bundle"}),
        ],
    ),
    "promising": (
        ("一般发展用户:复购激励", "New and promising: first-repeat incentive"),
        [
            ("coupon", {"coupon_template": "playbook-first-repeat-10"}),
            ("message", {"message_template": "promising_onboarding"}),
        ],
    ),
    "need_attention": (
        ("一般保持用户:唤醒优惠", "Need reactivation: wake-up offer"),
        [
            ("coupon", {"coupon_template": "playbook-wake-up-15"}),
            ("top_up_offer", {"top_up_offer": "sleeping-300-50"}),
            ("message", {"message_template": "need_attention_wake_up"}),
        ],
    ),
    "lost": (
        ("流失用户:大规模召回 + 问卷", "Lost: recall and survey"),
        [
            ("coupon", {"coupon_template": "playbook-recall-20"}),
            ("message", {"message_template": "lost_recall_survey"}),
        ],
    ),
    "no_purchase": (
        ("未消费会员:首单激励", "No purchase yet: first-order incentive"),
        [
            ("coupon", {"coupon_template": "playbook-welcome-10"}),
            ("message", {"message_template": "no_purchase_welcome"}),
        ],
    ),
}

# code: ((中文名, English name), segments, min_amount, bonus, multiplier, multiplier_days, restriction, tags)
TOP_UP_OFFERS = {
    "new-member-200-20": (
        ("新会员首次储值 200 送 20", "New members: top up 200, get 20"),
        ["promising", "no_purchase"],
        "200",
        "20",
        None,
        None,
        "",
        "",
    ),
    "champions-1000-150": (
        ("高价值会员储值 1000 送 150 + 积分翻倍", "Champions: top up 1000, get 150 and double points"),
        ["champions"],
        "1000",
        "150",
        Decimal("2.00"),
        30,
        "",
        "",
    ),
    "sleeping-300-50": (
        ("沉睡会员储值 300 送 50(限唤醒商品)", "Sleeping members: top up 300, get 50 (wake-up products only)"),
        ["lost", "need_attention"],
        "300",
        "50",
        None,
        None,
        ("赠送金额仅限搭配唤醒商品使用", "The bonus is usable only with the chosen wake-up products."),
        "唤醒商品",
    ),
}

# slug: ((中文名, English name), referrer segment or None, referrer coupon, referee coupon,
#        referrer points, referee points, extra)
REFERRAL_RULES = {
    "referral-champions": (
        ("高价值会员推荐:双方各 ¥50 券 + 1000 积分", "Champion referrer: ¥50 coupon and 1,000 points each"),
        "champions",
        "playbook-referral-50",
        "playbook-referral-50",
        1000,
        1000,
        None,
    ),
    "referral-default": (
        ("普通会员推荐:双方各 ¥20 券", "Other referrers: a ¥20 coupon each"),
        None,
        "playbook-referral-20",
        "playbook-referral-20",
        0,
        0,
        None,
    ),
    "referral-sleeping-lost": (
        ("沉睡会员推荐(流失):¥20 券 + 激活礼包", "Sleeping referrer (lost): ¥20 coupons and an activation pack"),
        "lost",
        "playbook-referral-20",
        "playbook-referral-20",
        0,
        0,
        "playbook-activation-pack",
    ),
    "referral-sleeping-need-attention": (
        (
            "沉睡会员推荐(一般保持):¥20 券 + 激活礼包",
            "Sleeping referrer (need reactivation): ¥20 coupons and an activation pack",
        ),
        "need_attention",
        "playbook-referral-20",
        "playbook-referral-20",
        0,
        0,
        "playbook-activation-pack",
    ),
}


# slug: ((中文名, English name), coupon template, base points price, {segment: price}, exclusive to, per member)
REWARDS = {
    "points-coupon-20": (
        ("500 积分兑 ¥20 券(重要价值用户 400 积分)", "¥20 off for 500 points (400 for champions)"),
        "playbook-frequency-20",
        500,
        {"champions": 400},
        [],
        None,
    ),
    "points-champions-50": (
        ("重要价值用户专享:1500 积分兑 ¥50 券", "Champions only: ¥50 off for 1,500 points"),
        "playbook-referral-50",
        1500,
        {},
        ["champions"],
        1,
    ),
}

# The triggers, all inactive; found by their Chinese name (a trigger has no slug). Each: names and
# descriptions in Chinese and English, the kind, and the fields of ``Trigger`` it sets; ``segment``
# and ``coupon_template`` name a default-scheme segment and a coupon template above by slug.
# Scores in the pattern are the default scheme's (thresholds: 1 high, 0 low).
TRIGGERS = {
    "playbook-win-back-entered": {
        "names": ("进入重要挽留:挽回券 + 店员跟进", "Entered win back: win-back coupon and staff follow-up"),
        "descriptions": (
            "会员进入「重要挽留用户」时(曾经高消费、久未到店),立即发放 ¥50 挽回券并通知,"
            "同时给会员所属门店建一条店员跟进任务(3 天内电话关怀,了解流失原因)。",
            "When a member enters 'High value to win back' (spent a lot, has not come for long), give a ¥50 "
            "win-back coupon with a message, and open a follow-up task for their home store (call within 3 "
            "days and learn why they left).",
        ),
        "kind": "entered_segment",
        "segment": "win_back",
        "coupon_template": "playbook-win-back-50",
        "message_template": "win_back_coupon",
        "create_followup": True,
        "followup_due_days": 3,
        "followup_reason": "进入重要挽留用户:电话关怀,了解流失原因",
        "cap": (1, 90),
    },
    "playbook-miss-you-30": {
        "names": ("30 天未购:「我们想你了」券", "30 days without a purchase: 'we miss you' coupon"),
        "descriptions": (
            "会员最近一次购买已满 30 天(且未退款),发放 ¥15「我们想你了」券并通知;再次购买后又满 30 天会再次触发,"
            "每 60 天最多一次。",
            "A member's last purchase is 30 days old: give a ¥15 'we miss you' coupon with a message. A member "
            "who buys again and lapses again gets it again, at most once in 60 days.",
        ),
        "kind": "inactivity",
        "inactivity_days": 30,
        "coupon_template": "playbook-miss-you-15",
        "message_template": "we_miss_you",
        "cap": (1, 60),
    },
    "playbook-champions-related-products": {
        "names": ("重要价值用户下单3天后推荐关联商品", "Champions: related products 3 days after an order"),
        "descriptions": (
            "重要价值用户下单3天后,推送与该订单商品关联的商品(常被同一批会员一起购买):"
            "消息模板可使用 {related_products}(关联商品名称)。",
            "Three days after a champion's order, send the products bought together with it by the same "
            "members: the message template may use {related_products} (the related products' names).",
        ),
        "kind": "after_order",
        "segment": "champions",
        "delay_days": 3,
        "message_template": "champions_related_products",
        "cap": (1, 30),
    },
    "playbook-frequent-low-spend-bundle": {
        "names": ("高频低额:推荐套餐", "Frequent, low spend: bundle offer"),
        "descriptions": (
            "每次重算后,购买频次高但金额低的会员(F 高、M 低)收到套餐 85 折券和套餐推荐,提升客单价;每 30 天最多一次。",
            "After each recompute, members who buy often but spend little (F high, M low) get a 15%-off "
            "bundle coupon and a bundle suggestion, to raise the basket size; at most once in 30 days.",
        ),
        "kind": "pattern",
        "f_min_score": 1,
        "m_max_score": 0,
        "coupon_template": "playbook-bundle-15pct",
        "message_template": "loyal_low_spend_bundle",
        "cap": (1, 30),
    },
    "playbook-birthday-loyal-at-risk": {
        "names": ("重要保持用户生日关怀", "Loyal at risk: birthday greeting"),
        "descriptions": (
            "「重要保持用户」生日前 3 天发送生日祝福和 ¥30 生日券(14 天有效),每年一次。清空「分群」即可问候所有会员。",
            "Three days before the birthday of a member in 'Loyal at risk', send a birthday greeting with a "
            "¥30 birthday coupon (valid 14 days), once a year. Clear the segment to greet every member.",
        ),
        "kind": "birthday",
        "segment": "loyal_at_risk",
        "birthday_days_before": 3,
        "coupon_template": "playbook-birthday-30",
        "message_template": "birthday_greeting",
        "cap": (1, 300),  # once a year comes from the cause; a year's cap would refuse next year's earlier sweep
    },
}


def playbook_trigger_names() -> list[str]:
    """The playbook's triggers' Chinese names (how they are found)."""
    return [spec["names"][0] for spec in TRIGGERS.values()]


def _models(apps):
    if apps is None:
        apps = live_apps
    return {
        name: apps.get_model(app, name)
        for app, name in (
            ("campaigns", "CouponTemplate"),
            ("campaigns", "Campaign"),
            ("campaigns", "CampaignBenefit"),
            ("campaigns", "TopUpOffer"),
            ("campaigns", "ReferralRewardRule"),
            ("campaigns", "Trigger"),
            ("segmentation", "Segment"),
        )
    } | _optional_models(apps, ("campaigns", "StampCard"))


def _optional_models(apps, *names) -> dict:
    """Models an older migration state does not have yet (stamp cards arrived in 0007)."""
    found = {}
    for app, name in names:
        try:
            found[name] = apps.get_model(app, name)
        except LookupError:
            continue
    return found


def _fields(model, values: dict) -> dict:
    """``values`` without the fields ``model`` does not have yet (a migration's historical model
    before the English fields were added; 0004 fills them in then)."""
    names = {field.name for field in model._meta.get_fields()}
    return {key: value for key, value in values.items() if key in names}


def playbook_install(apps=None) -> dict[str, int]:
    """Create what is missing of the playbook, inactive. Returns how many of each were created."""
    m = _models(apps)
    created = {
        "coupon_templates": 0,
        "campaigns": 0,
        "top_up_offers": 0,
        "referral_rules": 0,
        "stamp_cards": 0,
        "triggers": 0,
    }
    segments = {s.slug: s for s in m["Segment"].objects.filter(scheme__slug=DEFAULT_SCHEME)}

    templates, created["coupon_templates"] = _install_coupon_templates(m)

    offers = {}
    for code, ((name, name_en), seg_slugs, min_amount, bonus, multiplier, days, note, tags) in TOP_UP_OFFERS.items():
        note_zh, note_en = note or ("", "")
        offers[code], new = m["TopUpOffer"].objects.get_or_create(
            code=code,
            defaults=_fields(
                m["TopUpOffer"],
                {
                    "name": name,
                    "name_en": name_en,
                    "min_amount": Decimal(min_amount),
                    "bonus_amount": Decimal(bonus),
                    "points_multiplier": multiplier,
                    "multiplier_days": days,
                    "restriction_note": note_zh,
                    "restriction_note_en": note_en,
                    "product_tags": tags,
                    "per_member_limit": 1,
                    "is_active": False,
                },
            ),
        )
        if new:
            offers[code].segments.set([segments[s] for s in seg_slugs if s in segments])
            created["top_up_offers"] += 1

    for segment_slug, ((name, name_en), benefits) in CAMPAIGNS.items():
        segment = segments.get(segment_slug)
        if segment is None:
            continue
        campaign, new = m["Campaign"].objects.get_or_create(
            slug=f"playbook-{segment_slug}".replace("_", "-"),
            defaults=_fields(
                m["Campaign"],
                {
                    "name": name,
                    "name_en": name_en,
                    "description": segment.strategy,
                    "description_en": getattr(segment, "strategy_en", ""),
                    "strategy": segment.strategy,
                    "strategy_en": getattr(segment, "strategy_en", ""),
                    "status": "draft",
                    "target_kind": "segment",
                    "control_percent": CONTROL_PERCENT,
                    "per_member_cap": 1,
                },
            ),
        )
        if not new:
            continue
        created["campaigns"] += 1
        campaign.segments.set([segment])
        for kind, fields in benefits:
            values = dict(fields)
            if "coupon_template" in values:
                values["coupon_template"] = templates[values["coupon_template"]]
            if "top_up_offer" in values:
                values["top_up_offer"] = offers[values["top_up_offer"]]
            m["CampaignBenefit"].objects.create(campaign=campaign, kind=kind, **values)

    for slug, (
        (name, name_en),
        seg_slug,
        referrer_tpl,
        referee_tpl,
        referrer_pts,
        referee_pts,
        extra,
    ) in REFERRAL_RULES.items():
        if seg_slug is not None and seg_slug not in segments:
            continue
        _rule, new = m["ReferralRewardRule"].objects.get_or_create(
            slug=slug,
            defaults=_fields(
                m["ReferralRewardRule"],
                {
                    "name": name,
                    "name_en": name_en,
                    "referrer_segment": segments[seg_slug] if seg_slug else None,
                    "referrer_coupon_template": templates[referrer_tpl],
                    "referee_coupon_template": templates[referee_tpl],
                    "referrer_points": referrer_pts,
                    "referee_points": referee_pts,
                    "referrer_extra_template": templates[extra] if extra else None,
                    "is_active": False,
                },
            ),
        )
        created["referral_rules"] += new

    for slug, ((name, name_en), seg_slug, required, window, template, points) in STAMP_CARDS.items():
        if "StampCard" not in m or seg_slug not in segments:
            continue
        card, new = m["StampCard"].objects.get_or_create(
            slug=slug,
            defaults={
                "name": name,
                "name_en": name_en,
                "description": segments[seg_slug].strategy,
                "description_en": getattr(segments[seg_slug], "strategy_en", ""),
                "stamps_required": required,
                "window_days": window,
                "coupon_template": templates[template],
                "bonus_points": points,
                "is_active": False,
            },
        )
        if new:
            card.segments.set([segments[seg_slug]])
            created["stamp_cards"] += 1
    created["triggers"] = _install_triggers(m, segments)
    if _has_model(apps, "campaigns", "Reward"):  # not yet in ``0002_playbook``'s historical apps
        created["rewards"] = playbook_rewards_install(apps)
    return created


def _install_coupon_templates(m) -> tuple[dict, int]:
    """The playbook's coupon templates by slug, creating the missing ones; and how many were new."""
    templates, created = {}, 0
    for slug, ((name, name_en), kind, amount, percent, cap, min_spend, days, gift) in COUPON_TEMPLATES.items():
        gift_zh, gift_en = gift or ("", "")
        templates[slug], new = m["CouponTemplate"].objects.get_or_create(
            slug=slug,
            defaults=_fields(
                m["CouponTemplate"],
                {
                    "name": name,
                    "name_en": name_en,
                    "kind": kind,
                    "amount": Decimal(amount) if amount else None,
                    "percent_off": percent,
                    "max_discount": Decimal(cap) if cap else None,
                    "min_spend": Decimal(min_spend),
                    "validity": "days_after_grant",
                    "valid_days": days,
                    "gift_description": gift_zh,
                    "gift_description_en": gift_en,
                    "is_active": True,  # issues only through campaigns and rules, which start inactive
                },
            ),
        )
        created += new
    return templates, created


def _has_model(apps, app_label: str, name: str) -> bool:
    try:
        (apps or live_apps).get_model(app_label, name)
    except LookupError:
        return False
    return True


def playbook_rewards_install(apps=None) -> int:
    """Create the playbook's points rewards that are missing (inactive), with their segment prices and
    exclusive segments, using the playbook's coupon templates. Returns how many were created."""
    apps = apps or live_apps
    reward_model = apps.get_model("campaigns", "Reward")
    price_model = apps.get_model("campaigns", "RewardPrice")
    template_model = apps.get_model("campaigns", "CouponTemplate")
    segments = {
        s.slug: s for s in apps.get_model("segmentation", "Segment").objects.filter(scheme__slug=DEFAULT_SCHEME)
    }
    created = 0
    for slug, ((name, name_en), template_slug, price, prices, exclusive, per_member) in REWARDS.items():
        template = template_model.objects.filter(slug=template_slug).first()
        if template is None or any(segment not in segments for segment in [*prices, *exclusive]):
            continue
        reward, new = reward_model.objects.get_or_create(
            slug=slug,
            defaults={
                "name": name,
                "name_en": name_en,
                "kind": "coupon",
                "coupon_template": template,
                "points_price": price,
                "limit_per_member": per_member,
                "is_active": False,
            },
        )
        if not new:
            continue
        created += 1
        for segment, points in prices.items():
            price_model.objects.create(reward=reward, segment=segments[segment], points_price=points)
        reward.exclusive_segments.set([segments[segment] for segment in exclusive])
    return created


def playbook_install_triggers(apps=None) -> int:
    """Create the playbook's triggers that are missing, with the coupon templates they give (for an
    installation that has the rest)."""
    m = _models(apps)
    return _install_triggers(m, {s.slug: s for s in m["Segment"].objects.filter(scheme__slug=DEFAULT_SCHEME)})


def _install_triggers(m, segments) -> int:
    """The playbook's triggers, inactive; found by their name (a trigger has no slug). Not from the
    first data migration (its historical trigger has no English texts yet): ``0013`` adds them, and
    ``0016`` the ones a trigger kind of ``0015`` (birthday) or a coupon template was missing for. A
    trigger whose segment is not in the default scheme (an operator removed it) is left out."""
    fields = {field.name for field in m["Trigger"]._meta.get_fields()}
    if "name_en" not in fields:
        return 0
    templates, _new = _install_coupon_templates(m)
    created = 0
    for spec in TRIGGERS.values():
        spec = dict(spec)
        (name, name_en), (description, description_en) = spec.pop("names"), spec.pop("descriptions")
        cap_count, cap_days = spec.pop("cap")
        seg_slug, template_slug = spec.pop("segment", None), spec.pop("coupon_template", None)
        if (seg_slug and seg_slug not in segments) or not set(spec) <= fields:
            continue
        if m["Trigger"].objects.filter(name=name).exists():
            continue
        m["Trigger"].objects.create(
            **spec,
            name=name,
            name_en=name_en,
            description=description,
            description_en=description_en,
            segment=segments[seg_slug] if seg_slug else None,
            coupon_template=templates[template_slug] if template_slug else None,
            cap_count=cap_count,
            cap_days=cap_days,
            is_active=False,
        )
        created += 1
    return created


def playbook_uninstall(apps=None) -> None:
    """Remove the playbook's rows that were never used (for unapplying the data migration)."""
    m = _models(apps)
    if _has_model(apps, "campaigns", "Reward"):
        reward_model = (apps or live_apps).get_model("campaigns", "Reward")
        unused_rewards = reward_model.objects.filter(
            slug__in=list(REWARDS), is_active=False, redeemed_count=0, redemptions__isnull=True
        )
        (apps or live_apps).get_model("campaigns", "RewardPrice").objects.filter(
            reward_id__in=unused_rewards.values("pk")
        ).delete()
        for reward in unused_rewards:
            reward.exclusive_segments.clear()
            reward.delete()
    m["Trigger"].objects.filter(name__in=playbook_trigger_names(), is_active=False, firings__isnull=True).delete()
    campaign_slugs = [f"playbook-{slug}".replace("_", "-") for slug in CAMPAIGNS]
    unused = m["Campaign"].objects.filter(slug__in=campaign_slugs, status="draft", grants__isnull=True)
    m["CampaignBenefit"].objects.filter(campaign_id__in=unused.values("pk")).delete()
    unused.delete()
    m["ReferralRewardRule"].objects.filter(slug__in=list(REFERRAL_RULES), is_active=False).delete()
    if "StampCard" in m:
        m["StampCard"].objects.filter(slug__in=list(STAMP_CARDS), is_active=False, stamps__isnull=True).delete()
    offered = set(
        m["CampaignBenefit"].objects.filter(top_up_offer__isnull=False).values_list("top_up_offer_id", flat=True)
    )
    m["TopUpOffer"].objects.filter(code__in=list(TOP_UP_OFFERS), uses__isnull=True, is_active=False).exclude(
        pk__in=offered
    ).delete()
    used_ids = set(
        m["CampaignBenefit"].objects.filter(coupon_template__isnull=False).values_list("coupon_template_id", flat=True)
    )
    for field in ("referrer_coupon_template_id", "referee_coupon_template_id", "referrer_extra_template_id"):
        used_ids |= set(m["ReferralRewardRule"].objects.values_list(field, flat=True))
    if _has_model(apps, "campaigns", "Reward"):
        reward_model = (apps or live_apps).get_model("campaigns", "Reward")
        used_ids |= set(reward_model.objects.values_list("coupon_template_id", flat=True))
    if "StampCard" in m:
        used_ids |= set(m["StampCard"].objects.values_list("coupon_template_id", flat=True))
    m["CouponTemplate"].objects.filter(slug__in=list(COUPON_TEMPLATES), issued_count=0).exclude(
        pk__in=[pk for pk in used_ids if pk is not None]
    ).delete()
