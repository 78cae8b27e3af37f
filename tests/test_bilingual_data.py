"""Chinese first (issue #17), the data part: what the migrations and the setup ship is stored in
Chinese and English and shown in the user's language; segments are shown by name, never by slug;
an operator's own rows need one language only and fall back to it."""

import importlib
import re

import pytest
from django.apps import apps as django_apps
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.utils import translation
from django.utils.html import escape
from django.utils.translation import gettext
from django_celery_beat.models import PeriodicTask

from campaigns.models import Campaign, CouponTemplate, ReferralRewardRule, Reward, TopUpOffer, Trigger
from campaigns.playbook import (
    CAMPAIGNS,
    COUPON_TEMPLATES,
    REFERRAL_RULES,
    REWARDS,
    TOP_UP_OFFERS,
    playbook_install,
)
from config.periodic import SCHEDULES
from segmentation.models import Scheme, Segment
from tests.factories import install_default_scheme

pytestmark = pytest.mark.django_db

SEGMENTATION_0005 = importlib.import_module("segmentation.migrations.0005_bilingual_texts")
CAMPAIGNS_0004 = importlib.import_module("campaigns.migrations.0004_bilingual_texts")
CJK = re.compile(r"[\u4e00-\u9fff]")


def chinese(text: str) -> bool:
    return bool(CJK.search(text or ""))


def english(text: str) -> bool:
    """English, and only English: letters, no Chinese, no "中文 / English" left over."""
    return bool(re.search(r"[A-Za-z]{3}", text or "")) and not chinese(text)


def both(row, field: str) -> bool:
    return chinese(getattr(row, field)) and english(getattr(row, f"{field}_en"))


@pytest.fixture
def shipped(db):
    install_default_scheme()
    playbook_install()


@pytest.fixture
def staff(client, admin_user, settings):
    settings.LANGUAGE_CODE = "zh-hans"
    client.force_login(admin_user)
    return client


def get(client, url: str, language: str) -> str:
    """The page in ``language``: Chinese at /admin/…, English at /en/admin/…"""
    client.cookies["django_language"] = language
    prefix = "" if language == "zh-hans" else "/en"
    response = client.get(prefix + url, HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200, (url, response.status_code)
    html = response.content.decode()
    assert f'lang="{language}"' in html
    return html


def cell(html: str, label: str, language: str) -> list[str]:
    """The texts of a change list's column (the frame labels each cell with its column's name)."""
    with translation.override(language):
        label = escape(gettext(label))
    cells = re.findall(rf'<t[dh] [^>]*data-label="{re.escape(label)}"[^>]*>(.*?)</t[dh]>', html, re.S)
    return [re.sub(r"<[^>]+>", "", text).strip() for text in cells]


# --- what is stored ----------------------------------------------------------------------------


def test_the_shipped_schemes_and_segments_are_stored_in_both_languages(shipped):
    schemes = Scheme.objects.filter(slug__in=list(SEGMENTATION_0005.SCHEMES)).prefetch_related("segments")
    assert schemes.count() == 3
    for scheme in schemes:
        assert both(scheme, "name") and both(scheme, "description"), scheme.slug
        for segment in scheme.segments.all():
            assert chinese(segment.name_zh) and english(segment.name_en), segment.slug
            assert both(segment, "strategy"), segment.slug


def test_the_playbook_is_stored_in_both_languages(shipped):
    templates = CouponTemplate.objects.filter(slug__in=list(COUPON_TEMPLATES))
    assert templates.count() == len(COUPON_TEMPLATES)
    assert all(both(template, "name") for template in templates)
    assert both(templates.get(slug="playbook-activation-pack"), "gift_description")
    offers = TopUpOffer.objects.filter(code__in=list(TOP_UP_OFFERS))
    assert offers.count() == len(TOP_UP_OFFERS) and all(both(offer, "name") for offer in offers)
    assert both(offers.get(code="sleeping-300-50"), "restriction_note")
    rules = ReferralRewardRule.objects.filter(slug__in=list(REFERRAL_RULES))
    assert rules.count() == len(REFERRAL_RULES) and all(both(rule, "name") for rule in rules)
    rewards = Reward.objects.filter(slug__in=list(REWARDS))
    assert rewards.count() == len(REWARDS) and all(both(reward, "name") for reward in rewards)
    campaigns = Campaign.objects.filter(slug__startswith="playbook-")
    assert campaigns.count() == len(CAMPAIGNS)
    for campaign in campaigns:
        assert both(campaign, "name") and both(campaign, "description") and both(campaign, "strategy"), campaign.slug


def test_every_periodic_schedule_has_its_chinese():
    with translation.override("zh-hans"):
        for schedule in SCHEDULES:
            assert chinese(gettext(schedule.name)), schedule.name
            assert chinese(gettext(schedule.description)), schedule.description


def test_the_migrations_split_what_an_older_install_wrote_and_keep_what_operators_edited(shipped):
    # given rows as the first migrations wrote them ("中文 / English" in one field, strategies in
    # English), and rows an operator has rewritten
    Scheme.objects.filter(slug="rfm-default").update(
        name="RFM 八类 (默认) / Eight classic segments (default)", name_en="", description_en=""
    )
    Segment.objects.filter(scheme__slug="rfm-default", slug="win_back").update(
        strategy="churn alert, win-back coupon, staff follow-up", strategy_en=""
    )
    Segment.objects.filter(scheme__slug="rfm-default", slug="lost").update(
        strategy="我们自己的召回方案", strategy_en=""
    )
    CouponTemplate.objects.filter(slug="playbook-win-back-50").update(name="挽回券 ¥50 / Win-back ¥50 off", name_en="")
    CouponTemplate.objects.filter(slug="playbook-care-30").update(name="关怀券(门店版)", name_en="")
    Campaign.objects.filter(slug="playbook-win-back").update(
        name="重要挽留用户:挽回券 + 店员跟进 / Win back: coupon and staff follow-up",
        name_en="",
        strategy="churn alert, win-back coupon, staff follow-up",
        strategy_en="",
    )
    # when the data migrations run
    SEGMENTATION_0005.split_languages(django_apps, None)
    CAMPAIGNS_0004.split_languages(django_apps, None)
    # then the shipped texts are split in two languages, and the operator's stay as they were
    scheme = Scheme.objects.get(slug="rfm-default")
    assert (scheme.name, scheme.name_en) == ("RFM 八类(默认)", "Eight classic segments (default)")
    win_back = Segment.objects.get(scheme=scheme, slug="win_back")
    assert (win_back.strategy, win_back.strategy_en) == (
        "流失预警、挽回券、店员跟进",
        "Churn alert, win-back coupon, staff follow-up",
    )
    lost = Segment.objects.get(scheme=scheme, slug="lost")
    assert (lost.strategy, lost.strategy_en) == ("我们自己的召回方案", "")
    template = CouponTemplate.objects.get(slug="playbook-win-back-50")
    assert (template.name, template.name_en) == ("挽回券 ¥50", "Win-back ¥50 off")
    assert CouponTemplate.objects.values_list("name", "name_en").get(slug="playbook-care-30") == ("关怀券(门店版)", "")
    campaign = Campaign.objects.get(slug="playbook-win-back")
    assert (campaign.name_en, campaign.strategy, campaign.strategy_en) == (
        "Win back: coupon and staff follow-up",
        "流失预警、挽回券、店员跟进",
        "Churn alert, win-back coupon, staff follow-up",
    )


# --- what is shown -----------------------------------------------------------------------------


def test_names_follow_the_language_and_fall_back_to_the_other(shipped):
    segment = Segment.objects.get(scheme__slug="rfm-default", slug="win_back")
    scheme = segment.scheme
    own = Segment.objects.create(scheme=scheme, slug="tea_lovers", name_zh="爱喝茶的", ordering=99)
    english_only = CouponTemplate.objects.create(
        slug="own-en", name="Staff pick", kind="free_shipping", validity="days_after_grant", valid_days=7
    )
    with translation.override("zh-hans"):
        assert str(segment) == "重要挽留用户" and str(scheme) == "RFM 八类(默认)"
        assert segment.display_strategy == "流失预警、挽回券、店员跟进"
        assert str(own) == "爱喝茶的" and str(english_only) == "Staff pick"
        assert str(segment.rules.get()).endswith("→ 重要挽留用户")
    with translation.override("en"):
        assert str(segment) == "High value to win back" and str(scheme) == "Eight classic segments (default)"
        assert segment.display_strategy == "Churn alert, win-back coupon, staff follow-up"
        assert str(own) == "爱喝茶的"  # no English name: the Chinese one, never the slug
        assert segment.name_with_scheme == "Eight classic segments (default) · High value to win back"


def test_a_segment_needs_a_name_in_one_language_only(shipped):
    scheme = Scheme.objects.get(slug="rfm-default")
    Segment(scheme=scheme, slug="english_only", name_en="Tea lovers").full_clean()
    with pytest.raises(ValidationError) as error:
        Segment(scheme=scheme, slug="nameless").full_clean()
    assert "name_zh" in error.value.message_dict


@pytest.mark.parametrize(
    ("language", "coupon", "offer_segments", "rule_segment"),
    [
        ("zh-hans", "挽回券 ¥50", "一般保持用户、流失用户", "重要价值用户"),
        ("en", "Win-back ¥50 off", "Need reactivation, Lost", "Champions"),
    ],
)
def test_the_playbook_pages_show_the_users_language_and_segment_names(
    staff, shipped, language, coupon, offer_segments, rule_segment, django_assert_max_num_queries
):
    client = staff
    other = {"zh-hans": "Win-back ¥50 off", "en": "挽回券 ¥50"}[language]
    with django_assert_max_num_queries(12):
        html = get(client, "/admin/campaigns/coupontemplate/", language)
    names = cell(html, "name", language)
    assert any(coupon in name for name in names) and not any(other in name for name in names)

    with django_assert_max_num_queries(12):
        html = get(client, "/admin/campaigns/topupoffer/", language)
    assert offer_segments in cell(html, "segments", language)
    assert not any("need_attention" in text for text in cell(html, "segments", language))

    html = get(client, "/admin/campaigns/referralrewardrule/", language)
    assert rule_segment in cell(html, "referrer's segment", language)

    offer = TopUpOffer.objects.get(code="sleeping-300-50")
    html = get(client, f"/admin/campaigns/topupoffer/{offer.pk}/change/", language)
    expected = "RFM 八类(默认) · 流失用户" if language == "zh-hans" else "Eight classic segments (default) · Lost"
    assert expected in html  # the chooser names the scheme and the segment, not the slug


def test_the_trigger_list_names_the_segment_in_the_users_language(staff, shipped):
    segment = Segment.objects.get(scheme__slug="rfm-default", slug="win_back")
    Trigger.objects.all().delete()  # only this one in the list (not the playbook's)
    Trigger.objects.create(
        name="进入重要挽留",
        name_en="Entered win back",
        kind=Trigger.Kind.ENTERED_SEGMENT,
        segment=segment,
        create_followup=True,
        followup_reason="请电话关怀",
    )
    html = get(staff, "/admin/campaigns/trigger/", "zh-hans")
    assert cell(html, "when", "zh-hans") == ["重要挽留用户"]
    assert cell(html, "name", "zh-hans") == ["进入重要挽留"]
    html = get(staff, "/admin/campaigns/trigger/", "en")
    assert cell(html, "when", "en") == ["High value to win back"]
    assert cell(html, "name", "en") == ["Entered win back"]


def test_periodic_tasks_are_shown_in_the_users_language_and_keep_their_key(staff):
    call_command("setup_periodic_tasks", verbosity=0)
    html = get(staff, "/admin/django_celery_beat/periodictask/", "zh-hans")
    assert "重算 RFM 分群" in html and "Recompute RFM segments" not in html
    assert "每晚按当前启用的方案" in html
    assert "在 01:30" in cell(html, "schedule", "zh-hans")  # the crontab in words, not "30 1 * * *"
    task = PeriodicTask.objects.get(name="Recompute RFM segments")
    html = get(staff, f"/admin/django_celery_beat/periodictask/{task.pk}/change/", "zh-hans")
    assert "重算 RFM 分群" in html and 'name="name"' not in html  # shown, not edited

    # an operator switches it off: its key stays, so the setup command still finds it
    staff.cookies["django_language"] = "zh-hans"
    response = staff.post(
        f"/admin/django_celery_beat/periodictask/{task.pk}/change/",
        {
            "regtask": task.task,
            "task": task.task,
            "crontab": task.crontab_id,
            "args": "[]",
            "kwargs": "{}",
            "priority": "",
            "headers": "{}",
        },
        HTTP_ACCEPT_LANGUAGE="zh-hans",
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    task.refresh_from_db()
    assert task.name == "Recompute RFM segments" and not task.enabled

    html = get(staff, "/admin/django_celery_beat/periodictask/", "en")
    assert "Recompute RFM segments" in html and "重算 RFM 分群" not in html
    assert "At 01:30" in cell(html, "schedule", "en")
    own = PeriodicTask.objects.create(
        name="夜间备份", task="members.tasks.reconcile_task", interval=None, crontab=task.crontab
    )
    assert "夜间备份" in get(staff, "/admin/django_celery_beat/periodictask/", "en")  # an operator's own, as typed
    assert own.name == "夜间备份"
