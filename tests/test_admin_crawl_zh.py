"""Chinese first (issue #17): every admin page the demo operator can reach, in ``zh-hans``, shows no
untranslated English.

The crawl logs in as a user of the shipped operator role (``members.roles``), makes one row of every
model the admin registers (free text in Chinese, as a Chinese brand's data is), and requests the
dashboard, every change list, add form, change form and history page, and every extra page a model
admin adds (``get_urls``: reports, the migration matrix, the campaign and scheme builders, imports,
top-ups…), filling a page's object id with that model's row. A page the operator may not open (403,
or a redirect for a POST-only action) is not reachable and is skipped.

What a page *shows* is its text outside tags, scripts, styles and templates (attribute values, such
as URLs, classes and input values, are not read). The test fails with the English words left on
each page, after removing

- the identifiers of the rows the test made (store codes, order numbers, slugs, user names: data,
  not interface; rows the migrations ship are *not* excused — their names must be shown in the
  user's language), and
- ``ALLOWED``: names that stay as they are in a Chinese interface.
"""

import datetime as dt
import re
from collections import defaultdict
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group
from django.db import models
from django.test import override_settings
from django.urls import NoReverseMatch, clear_url_caches, reverse
from django.utils import timezone
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from campaigns.models import StampCard, StampCompletion
from segmentation.models import (
    ClvRun,
    MemberClv,
    MemberRfm,
    RfmRun,
    Scheme,
    Segment,
    SegmentRule,
    SegmentSnapshot,
    SegmentTransition,
)
from tests import factories
from tests.factories import install_default_scheme
from tests.workspace.builders import role_user, segment_with_orders

pytestmark = pytest.mark.django_db

# Words a Chinese operator reads as they are: acronyms of the trade, the product's name and the
# technical names the system pages cannot avoid. Kept short on purpose: each entry is a word that
# is not translated in Chinese software either.
ALLOWED = {
    "RFM",  # the method's name; 最近一次消费 R, 消费频率 F, 消费金额 M
    "R",
    "F",
    "M",
    "H",  # a score's level in a scheme: 高(H), 低(L)
    "L",
    "N",  # "N 天未消费": a number the operator sets
    "ROI",
    "CLV",  # customer lifetime value, 客户终身价值: the trade's acronym
    "BG",  # the models' names: BG/NBD, Gamma-Gamma (Fader, Hardie & Lee)
    "NBD",
    "Gamma",
    "API",
    "CSV",
    "JSON",
    "ID",
    "SKU",
    "POS",
    "QR",
    "URL",
    "UTC",
    "WeChat",  # 微信 in prose; the API's and the payment's name in technical labels
    "Huiyuan",  # the product's name, in the title bar
    "Celery",  # the task queue's name on the periodic-task pages
    "Axes",  # django-axes, the login guard: its app has no other name
    "VIP",  # VIP 会员: the loanword Chinese retail uses
    "Cron",  # the schedule syntax (crontab) on the schedule pages
    "PostgreSQL",
    "GBK",  # the encoding of a Chinese spreadsheet's CSV
    "UTF",  # UTF-8
    "BOM",  # UTF-8（带或不带 BOM）
    "SHA",  # SHA-256, the fingerprint of a request
    "LDAP",  # in Django's own Chinese for the user's "active" flag
    "RabbitMQ",  # celery-beat's priority help: the brokers' names
    "Redis",
    "Excel",
    "openid",  # 微信 openid: WeChat's own name for a user's id, in its Chinese documents too
    "AMQP",  # celery-beat's routing options
    "Control",  # keys, in Django's own Chinese: 按住 Control 键或 Mac 上的 Command 键来选择多项。
    "Command",
    "Mac",
}
ACRONYMS = {word for word in ALLOWED if word.isupper() and len(word) > 1}  # also in lower case: csv
# A code, not a word: with a digit or "_" (md5, ORD-0001, store_code, members.tasks.points_expire_task),
# eight capitals or more (a referral or coupon code: JPKDQNEA), or a masked secret (8U********).
CODE = re.compile(r"[A-Za-z0-9_.-]*[0-9_][A-Za-z0-9_.-]*|(?<![A-Za-z])[A-Z]{8,}(?![A-Za-z])|[A-Za-z0-9+/]*\*{4,}")
WORD = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)?")
# Not read: what is not shown, key caps (esc) and code (a CSV file's column headers are typed as
# they are: <code>store_code</code>).
INVISIBLE = {"script", "style", "template", "noscript", "textarea", "svg", "kbd", "code"}
ICON = "material-symbols"
# The top bar's language switcher names each language in its own (English, 简体中文), so that a
# reader of either finds theirs; a key cap shows the key's name (esc).
LANGUAGE_SWITCH = "/i18n/setlang/"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Text(HTMLParser):
    """The text a reader sees: text nodes outside ``INVISIBLE`` elements and icons (the icon font
    draws ``chevron_right`` as an arrow)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.hidden = 0
        self.stack = []  # (tag, hides its content)
        self.parts = []

    def handle_starttag(self, tag, attrs):
        if tag in VOID:
            return
        attributes = dict(attrs)
        hides = (
            tag in INVISIBLE
            or ICON in (attributes.get("class") or "")
            or (tag == "form" and (attributes.get("action") or "").endswith(LANGUAGE_SWITCH))
        )
        self.stack.append((tag, hides))
        self.hidden += hides

    def handle_endtag(self, tag):
        if tag not in {open_tag for open_tag, _hides in self.stack}:
            return
        while self.stack:
            open_tag, hides = self.stack.pop()
            self.hidden -= hides
            if open_tag == tag:
                break

    def handle_data(self, data):
        if not self.hidden and data.strip():
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    parser.close()
    return "\n".join(parser.parts)


def english_words(text: str, data: list[str]) -> set[str]:
    for value in data:  # longest first: "ORD-00000001" before "ORD"; whole words only
        text = re.sub(rf"(?<![A-Za-z0-9_.-]){re.escape(value)}(?![A-Za-z0-9_-])", " ", text)
    text = CODE.sub(" ", text)
    return {word for word in WORD.findall(text) if word not in ALLOWED and word.upper() not in ACRONYMS}


# --- the rows ------------------------------------------------------------------------------------


def build_rows(operator) -> dict:
    """One row of every model the admin shows, keyed by model; free text in Chinese."""
    now = timezone.now()
    store = factories.StoreFactory(code="SH01", name="静安店", city="上海")
    member = factories.MemberFactory(name="王芳", mobile="13800002213", home_store=store)
    other = factories.MemberFactory(name="李娜", mobile="13900003314", home_store=store)
    order = factories.OrderFactory(member=member, external_id="POS-1001", paid_at=now - dt.timedelta(days=3))
    wallet = factories.WalletFactory(member=member, principal=Decimal("1200.00"), bonus=Decimal("80.00"))
    tier = factories.TierFactory(code="vip", name="黑金卡")
    campaign = factories.CampaignFactory(name="春季回购", slug="spring", description="唤醒沉睡会员")
    coupon_template = factories.CouponTemplateFactory(name="满100减10", slug="minus-10", description="满100元可用")
    offer = factories.TopUpOfferFactory(name="充100送10", code="top-100", description="新客充值礼")
    reward = factories.RewardFactory(
        name="积分换券", slug="points-10", description="500积分兑换10元券", coupon_template=coupon_template
    )
    trigger = factories.TriggerFactory(name="60天未消费提醒", description="提醒沉睡会员", message_template="win_back")
    points_entry = factories.PointsEntryFactory(member=member, reason="门店补偿")
    stamp_card = StampCard.objects.create(
        name="满5次送1次", slug="stamps-5", description="集满五次送一杯", coupon_template=coupon_template
    )
    # segments as a recompute leaves them: the default scheme's run over two members' orders
    scheme = install_default_scheme()
    segment_with_orders(other)
    segment_with_orders(member, days_ago=(400, 20))
    run = RfmRun.objects.get(is_current=True)
    member_rfm = MemberRfm.objects.get(member=member)
    segment = member_rfm.segment
    clv_run = ClvRun.objects.create(
        as_of=timezone.localdate(),
        started_at=now,
        finished_at=now,
        status=ClvRun.Status.SUCCEEDED,
        phase=ClvRun.Phase.DONE,
        is_current=True,
        params={"bgnbd": {"r": 0.9, "alpha": 18.0, "a": 0.8, "b": 2.5}, "gamma_gamma": {"p": 6, "q": 4, "gamma": 15}},
        calibration={
            "holdout_days": 90,
            "calibration_end": "2026-09-01",
            "groups": [{"frequency": 0, "or_more": False, "members": 1, "expected": 0.5, "actual": 1.0}],
        },
    )
    rows = {
        "members.Store": store,
        "members.Member": member,
        "members.Order": order,
        "members.Refund": factories.RefundFactory(order=order, external_id="REF-1001", reason="顾客退货"),
        "members.Product": factories.OrderLineFactory(
            order=order,
            product__sku="MT-001",
            product__name="珍珠奶茶",
            product__category="奶茶",
            product__tags=["唤醒商品"],
        ).product,
        "members.Wallet": wallet,
        "members.TagRule": factories.TagRuleFactory(name="大额客"),
        "members.WalletEntry": factories.WalletEntryFactory(wallet=wallet, reason="门店充值"),
        "members.StoreApiKey": factories.StoreApiKeyFactory(store=store, name="静安收银机", scopes="orders"),
        "members.TopUpIntent": factories.TopUpIntentFactory(member=member),
        "members.ApiIdempotencyRecord": factories.ApiIdempotencyRecordFactory(
            store=store, key="idem-1", response_body={"订单": 1}
        ),
        "members.LoyaltyProgram": factories.LoyaltyProgramFactory(),
        "members.PointsAccount": factories.PointsAccountFactory(member=member, balance=120),
        "members.PointsEntry": points_entry,
        "members.PointsLot": factories.PointsLotFactory(source_entry=points_entry),
        "members.MemberPointsMultiplier": factories.MemberPointsMultiplierFactory(member=member, source="双倍积分日"),
        "members.Referral": factories.ReferralFactory(referrer=member, referee=other),
        "members.Interaction": factories.InteractionFactory(member=member, store=store, detail="门店签到"),
        "members.Tier": tier,
        "members.TierRule": factories.TierRuleFactory(tier=tier),
        "members.TierChange": factories.TierChangeFactory(member=member, to_tier=tier, detail="店长调整"),
        "members.MemberTierStatus": factories.MemberTierStatusFactory(member=member, tier=tier),
        "members.MemberRfmScore": factories.MemberRfmScoreFactory(member=member),
        "members.StoreStaff": factories.StoreStaffFactory(user=operator, store=store),
        "members.StaffAccess": factories.StaffAccessFactory(user=operator, member=member),
        "segmentation.Scheme": scheme,
        "segmentation.Segment": segment,
        "segmentation.SegmentRule": scheme.rules.first(),
        "segmentation.RfmRun": run,
        "segmentation.MemberRfm": member_rfm,
        "segmentation.SegmentSnapshot": SegmentSnapshot.objects.filter(run=run).first(),
        "segmentation.SegmentTransition": SegmentTransition.objects.filter(member=member).first(),
        "segmentation.ClvRun": clv_run,
        "segmentation.MemberClv": MemberClv.objects.create(
            member=member,
            run=clv_run,
            frequency=1,
            recency_days=380,
            age_days=400,
            monetary_mean=Decimal("88.00"),
            p_alive=0.42,
            expected_purchases_30=0.1,
            expected_purchases_90=0.3,
            expected_purchases_365=1.1,
            expected_spend=Decimal("90.00"),
            clv=Decimal("95.00"),
        ),
        "campaigns.Campaign": campaign,
        "campaigns.CampaignEffect": apps.get_model("campaigns", "CampaignEffect").objects.get(pk=campaign.pk),
        "campaigns.CampaignBenefit": factories.CampaignBenefitFactory(campaign=campaign),
        "campaigns.CampaignGrant": factories.CampaignGrantFactory(campaign=campaign, member=member, cause="run:1"),
        "campaigns.CouponTemplate": coupon_template,
        "campaigns.Coupon": factories.CouponFactory(template=coupon_template, member=member, source="春季回购"),
        "campaigns.FollowUpTask": factories.FollowUpTaskFactory(member=member, reason="电话回访"),
        "campaigns.TopUpOffer": offer,
        "campaigns.OfferTopUp": factories.OfferTopUpFactory(offer=offer, member=member),
        "campaigns.ReferralRewardRule": factories.ReferralRewardRuleFactory(name="推荐有礼", slug="referral"),
        "campaigns.Reward": reward,
        "campaigns.RewardRedemption": factories.RewardRedemptionFactory(reward=reward, member=member),
        "campaigns.OutboxMessage": factories.OutboxMessageFactory(
            member=member, channel="log", template="welcome", payload={"内容": "欢迎"}
        ),
        "campaigns.Trigger": trigger,
        "campaigns.TriggerFiring": factories.TriggerFiringFactory(trigger=trigger, member=member),
        "campaigns.StampCard": stamp_card,
        "campaigns.StampCompletion": StampCompletion.objects.create(
            card=stamp_card, member=member, completed_at=now, note="集满奖励"
        ),
        "auth.User": operator,
        "auth.Group": Group.objects.get(name="运营 operator"),
    }
    if "members.importjob" in {f"{m._meta.app_label}.{m._meta.model_name}" for m in apps.get_models()}:
        import_job = apps.get_model("members", "ImportJob")
        for kind, file_name in (
            ("stores", "门店.csv"),
            ("members", "会员名单.csv"),
            ("orders", "订单.csv"),
            ("products", "商品.csv"),
        ):
            job = import_job.objects.create(
                kind=kind,
                file_name=file_name,
                stored_name=f"crawl-{kind}",
                created_by=operator,
                language="zh-hans",
                status="succeeded",
            )  # the import pages of each list: ``job_id`` on the orders' admin is an orders job
            rows[f"members.ImportJob:{kind.removesuffix('s')}"] = job
    interval = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.DAYS)
    rows["django_celery_beat.IntervalSchedule"] = interval
    rows["django_celery_beat.CrontabSchedule"] = CrontabSchedule.objects.create(minute="0", hour="3")
    rows["django_celery_beat.ClockedSchedule"] = ClockedSchedule.objects.create(clocked_time=now)
    rows["django_celery_beat.SolarSchedule"] = SolarSchedule.objects.create(
        event="sunrise", latitude=Decimal("31.23"), longitude=Decimal("121.47")
    )
    rows["django_celery_beat.PeriodicTask"] = PeriodicTask.objects.filter(name__regex=r"[^\x00-\x7f]").first() or (
        PeriodicTask.objects.create(
            name="每日测试任务", task="segmentation.tasks.segment_recompute_task", interval=interval
        )
    )
    # the audit log: the tier made above, as its audit trail recorded it (audit)
    rows["audit.AuditLogEntry"] = apps.get_model("audit", "AuditLogEntry").objects.get(
        pgh_model="audit.TierEvent", pgh_obj_id=str(tier.pk), pgh_label="created"
    )
    token = OutstandingToken.objects.create(user=operator, jti="a" * 32, token="crawl-token", expires_at=now)
    rows["token_blacklist.OutstandingToken"] = token
    rows["token_blacklist.BlacklistedToken"] = BlacklistedToken.objects.create(token=token)
    return rows


# Rows the migrations ship (the crawl shows them, it does not make them): their text is not excused;
# nor is the schedules' (cron fields: "*", "0").
SHIPPED = (Scheme, Segment, SegmentRule, Group, PeriodicTask, CrontabSchedule, IntervalSchedule, SolarSchedule)


def identifiers(rows: dict, operator) -> list[str]:
    """The text values of the rows the test made (codes, numbers, slugs, keys; its free text is
    Chinese). Choice fields are not data: their labels are the interface's. Longest first."""
    # the avatar shows the initial, the history and audit lists the name with a capital
    values = {operator.username, operator.username.capitalize(), operator.username[0].upper()}
    made = set()
    for row in rows.values():
        if isinstance(row, SHIPPED):
            continue
        made.add(row)
        for field in row._meta.concrete_fields:
            if field.is_relation and field.many_to_one:
                related = getattr(row, field.name)
                if related is not None and not isinstance(related, SHIPPED):
                    made.add(related)
    # the audit log shows the values its events recorded, past ones too (a shipped segment's
    # strategy before its translation): data, not interface
    for entry in apps.get_model("audit", "AuditLogEntry").objects.all():
        recorded = list((entry.pgh_data or {}).values())
        recorded += [value for pair in (entry.pgh_diff or {}).values() for value in pair]
        values.update(value for value in recorded if isinstance(value, str) and value)
    for row in made:
        for field in row._meta.concrete_fields:
            if isinstance(field, models.CharField | models.TextField) and not field.choices:
                if field.name.endswith("_en") or field.name == "password":
                    continue  # the English half of a bilingual name is interface
                value = getattr(row, field.name)
                if value:
                    values.add(str(value))
    return sorted(values, key=len, reverse=True)


# --- the pages -----------------------------------------------------------------------------------


def row_for(param: str, model, rows: dict):
    """The row a URL parameter names: ``object_id`` or ``<model>_id`` (``entry_id`` on the wallet
    entries' admin, ``campaign_id``) the admin's own; else the row of the model so named
    (``job_id``: the import job)."""
    if not param.endswith("_id"):
        raise LookupError(param)
    name = param.removesuffix("_id")
    if name == "object" or model._meta.model_name.endswith(name):
        return rows[model._meta.label]
    for label, row in rows.items():
        if label.endswith(f":{model._meta.model_name}") and row._meta.model_name.endswith(name):
            return row
    for row in rows.values():
        if row._meta.model_name.endswith(name):
            return row
    raise LookupError(param)


STANDARD = {"changelist", "add", "change", "history", "delete", "autocomplete"}


def pages(rows: dict) -> list[str]:
    """The dashboard, then per registered model: list, add, change, history, and its own pages."""
    urls = [reverse("admin:index")]
    for model, model_admin in admin.site._registry.items():
        row = rows.get(model._meta.label)
        if row is None:
            raise AssertionError(f"the crawl makes no row of {model._meta.label}: add one to build_rows")
        info = (model._meta.app_label, model._meta.model_name)
        urls.append(reverse("admin:{}_{}_changelist".format(*info)))
        urls.append(reverse("admin:{}_{}_add".format(*info)))
        urls.append(reverse("admin:{}_{}_change".format(*info), args=[row.pk]))
        urls.append(reverse("admin:{}_{}_history".format(*info), args=[row.pk]))
        for pattern in model_admin.get_urls():
            name = getattr(pattern, "name", None)
            if not name or name.rsplit("_", 1)[-1] in STANDARD or name.endswith("_delete"):
                continue
            params = list(pattern.pattern.regex.groupindex)
            if str(pattern.pattern).endswith((".csv", ".xlsx")):
                continue  # a download, not a page
            try:
                kwargs = {param: row_for(param, model, rows).pk for param in params}
                urls.append(reverse(f"admin:{name}", kwargs=kwargs))
            except (LookupError, NoReverseMatch):
                continue  # a catch-all (``<path:object_id>/``), not a page
    return list(dict.fromkeys(urls))


@pytest.fixture
def chinese_by_default():
    """The product's default language (the test settings use English). The URL resolver keeps its
    reverse lookups per language with the default's prefix of the moment (``/en/`` or none):
    cleared on both sides so that no test before or after sees the other's."""
    with override_settings(LANGUAGE_CODE="zh-hans"):
        clear_url_caches()
        yield
    clear_url_caches()


@pytest.fixture
def operator(db, chinese_by_default):
    return role_user("operator")


def test_every_page_an_operator_reaches_is_chinese(client, operator):
    # given one row of every model, and the demo operator logged in, in Chinese
    rows = build_rows(operator)
    data = identifiers(rows, operator)
    client.force_login(operator)
    client.cookies["django_language"] = "zh-hans"
    # when every admin page is requested
    english = defaultdict(set)
    opened = []
    broken = {}
    for url in pages(rows):
        try:
            response = client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans")
        except Exception as error:  # one broken page must not hide the others' English
            broken[url] = f"{type(error).__name__}: {error}"
            continue
        if response.status_code in (302, 403, 405):
            continue  # not the operator's, or an action that only answers POST
        if response.status_code != 200:
            broken[url] = str(response.status_code)
            continue
        if not response["Content-Type"].startswith("text/html"):
            continue
        opened.append(url)
        html = response.content.decode()
        if 'lang="zh-hans"' not in html and "<html" in html:
            broken[url] = "not in Chinese"
        words = english_words(visible_text(html), data)
        if words:
            english[url] = words
    # then the crawl saw the pages (lists and forms of every app) and none shows English
    assert len(opened) > 100, opened
    assert not broken, "\n".join(f"{url}: {error}" for url, error in broken.items())
    report = "\n".join(f"{url}: {' '.join(sorted(words))}" for url, words in sorted(english.items()))
    assert not english, f"English on {len(english)} of {len(opened)} pages:\n{report}"


def test_the_crawl_reads_what_a_user_sees():
    # given a page with English in the places a reader does not see, and a word they do see
    html = (
        '<html><head><title>会员</title><style>.x{color:red}</style><script>var Hello = "World";</script></head>'
        '<body><a href="/admin/members/" title="Members">会员</a><input value="Keep">'
        "<p>共 12 位 RFM 会员：ORD-0001</p><template><span>Hidden</span></template><p>Save</p></body></html>"
    )
    # then only the visible word is English, once data and allowed names are removed
    assert english_words(visible_text(html), ["ORD-0001"]) == {"Save"}


def test_the_permission_chooser_names_permissions_in_the_users_language(client, operator):
    # given the operator's role, whose permissions are stored in English ("Can view member")
    role = Group.objects.get(name="运营 operator")
    client.force_login(operator)
    url = reverse("admin:auth_group_change", args=[role.pk])
    # when its page is opened in Chinese, then every permission reads in Chinese, the project's own too
    html = client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert ">会员 | 会员 | 可以查看会员</option>" in html
    assert ">会员 | 会员 | 可以查看所有门店的会员</option>" in html
    assert "Can view" not in html
    # and in English as before
    html = client.get(f"/en{url}").content.decode()
    assert ">Members | member | Can view member</option>" in html


def test_list_columns_show_money_and_multipliers_for_people(client, operator):
    # given a wallet of ¥1,200 principal and ¥80 bonus, and a tier earning 1.5 points per yuan
    rows = build_rows(operator)
    factories.TierFactory(code="silver-crawl", name="银卡", points_multiplier=Decimal("1.50"))
    client.force_login(operator)
    # then the lists show yuan with separators, and multipliers as ×1.5
    html = visible_text(client.get(reverse("admin:members_wallet_changelist")).content.decode())
    assert "¥1,200.00" in html and "¥80.00" in html and "¥1,280.00" in html
    html = visible_text(client.get(reverse("admin:members_order_changelist")).content.decode())
    assert f"¥{rows['members.Order'].amount:,.2f}" in html
    html = visible_text(client.get(reverse("admin:members_tier_changelist")).content.decode())
    assert "×1.5" in html
