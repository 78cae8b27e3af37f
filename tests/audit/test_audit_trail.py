"""The audit trail (issue #20, *Also build*): who changed what, when, before and after — written by
the database's triggers, read in the admin's "audit log", which nobody can edit.
"""

from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import DatabaseError, transaction
from django.test import override_settings
from django.urls import clear_url_caches, reverse

from audit.models import AuditedTier, AuditLogEntry
from campaigns.services.rewards import reward_redeem
from members.models import PointsEntry, Tier
from members.roles import ROLE_BY_KEY
from members.services.points import points_grant
from tests import factories
from tests.workspace.builders import role_user

pytestmark = pytest.mark.django_db


class _Form(HTMLParser):
    """The values a browser would submit from a page's form with id ``form_id``."""

    def __init__(self, form_id):
        super().__init__(convert_charrefs=True)
        self.form_id, self.inside, self.data = form_id, False, []
        self.select = self.textarea = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.inside = attrs.get("id") == self.form_id
        if not self.inside or ("name" not in attrs and tag != "option"):
            return
        if tag == "input" and attrs.get("type") not in ("submit", "button", "file"):
            if attrs.get("type") in ("checkbox", "radio") and "checked" not in attrs:
                return
            self.data.append((attrs["name"], attrs.get("value", "on" if attrs.get("type") == "checkbox" else "")))
        elif tag == "select":
            self.select = attrs["name"]
        elif tag == "option" and self.select and "selected" in attrs:
            self.data.append((self.select, attrs.get("value", "")))
        elif tag == "textarea":
            self.textarea = attrs["name"]
            self.data.append((self.textarea, ""))

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self.select = None
        elif tag == "textarea":
            self.textarea = None

    def handle_data(self, data):
        if self.textarea:
            name, value = self.data[-1]
            self.data[-1] = (name, value + data.lstrip("\n") if not value else value + data)


def form_data(html: str, form_id: str) -> dict:
    parser = _Form(form_id)
    parser.feed(html)
    data = {}
    for name, value in parser.data:
        data.setdefault(name, []).append(value)
    return data


def events(label=None):
    entries = AuditLogEntry.objects.order_by("pgh_id")
    return [entry for entry in entries if label is None or entry.pgh_model == label]


def events_of(label, row):
    """The events of one row (the migrations' rows, e.g. the playbook's, have theirs too)."""
    return [entry for entry in events(label) if str(entry.pgh_obj_id) == str(row.pk)]


@pytest.fixture
def operator(client):
    user = role_user("operator")
    client.force_login(user)
    return user


def test_a_tier_changed_in_the_admin_is_recorded_with_who_and_before_and_after(client, operator):
    # given a tier, and an operator signed in
    tier = factories.TierFactory(code="gold", name="金卡", points_multiplier=Decimal("1.50"))
    url = reverse("admin:members_tier_change", args=[tier.pk])
    data = form_data(client.get(url).content.decode(), "tier_form")
    # when the operator raises the multiplier and saves
    data["points_multiplier"] = ["2.00"]
    response = client.post(url, data)
    # then the change is saved, and the audit log has it: who, when, the field before and after
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Tier.objects.get(pk=tier.pk).points_multiplier == Decimal("2.00")
    changed = [entry for entry in events("audit.TierEvent") if entry.pgh_label == "changed"]
    assert len(changed) == 1
    entry = changed[0]
    assert entry.pgh_context["user"] == operator.pk
    assert entry.pgh_context["username"] == operator.username
    assert entry.pgh_obj_id == str(tier.pk)
    assert entry.pgh_diff == {"points_multiplier": [1.5, 2.0]}  # JSON numbers; shown with the field's places
    assert entry.pgh_created_at is not None
    html = client.get(reverse("admin:audit_auditlogentry_changelist")).content.decode()
    assert "1.50" in html and "2.00" in html


def test_a_role_given_in_the_admin_is_recorded(client, operator):
    # given a staff user with no role
    clerk = get_user_model().objects.create_user("clerk", password="x-Pw-12345", is_staff=True)
    analyst = Group.objects.get(name=ROLE_BY_KEY["analyst"].group)
    url = reverse("admin:auth_user_change", args=[clerk.pk])
    data = form_data(client.get(url).content.decode(), "user_form")
    # when the operator gives them the analyst role
    data["groups"] = [str(analyst.pk)]
    response = client.post(url, data)
    # then the audit log says who gave which role to whom
    assert response.status_code == 302, response.content.decode()[:3000]
    added = [
        entry
        for entry in events("audit.UserRoleEvent")
        if entry.pgh_label == "role added" and entry.pgh_data["user_id"] == clerk.pk
    ]
    assert [(entry.pgh_data["user_id"], entry.pgh_data["group_id"]) for entry in added] == [(clerk.pk, analyst.pk)]
    assert added[0].pgh_context["username"] == operator.username


def test_a_points_adjustment_in_the_admin_is_recorded_with_who(client, operator):
    # given a member
    member = factories.MemberFactory(mobile="13800002299")
    # when the operator adjusts their points on the admin's page
    response = client.post(
        reverse("admin:members_points_adjust"),
        {"member": member.mobile, "points": "30", "reason": "门店补偿", "idempotency_key": "adj-1"},
    )
    # then the audit log has the adjustment, by the operator, with the balance after
    assert response.status_code == 302, response.content.decode()[:2000]
    (entry,) = events("audit.PointsAdjustmentEvent")
    assert entry.pgh_label == "adjusted"
    assert entry.pgh_context["username"] == operator.username
    assert (entry.pgh_data["points"], entry.pgh_data["balance_after"], entry.pgh_data["reason"]) == (30, 30, "门店补偿")


def test_orders_points_leave_no_audit_event_but_a_staff_adjustment_does(operator):
    # given points earned on an order and a staff adjustment
    member = factories.MemberFactory()
    factories.PointsEntryFactory(member=member, kind=PointsEntry.Kind.EARN, points=10, balance_after=10)
    factories.PointsEntryFactory(member=member, kind=PointsEntry.Kind.ADJUST, points=5, balance_after=15)
    # then only the adjustment is in the audit log (the ledger itself has the rest)
    adjusted = events("audit.PointsAdjustmentEvent")
    assert [(entry.pgh_label, entry.pgh_data["points"]) for entry in adjusted] == [("adjusted", 5)]


def test_an_event_cannot_be_changed_or_deleted_even_in_sql(operator):
    # given a recorded change
    tier = factories.TierFactory()
    Tier.objects.filter(pk=tier.pk).update(name="改名")
    event_model = AuditedTier.pgh_event_models["changed"]
    # when someone tries to rewrite or remove it, the database refuses
    with pytest.raises(DatabaseError), transaction.atomic():
        event_model.objects.update(name="伪造")
    with pytest.raises(DatabaseError), transaction.atomic():
        event_model.objects.all().delete()
    assert event_model.objects.filter(name="改名").exists()


def test_the_audit_log_page_lists_and_offers_no_edit_nor_delete(client, operator):
    # given a change
    tier = factories.TierFactory(name="银卡")
    Tier.objects.filter(pk=tier.pk).update(name="白金卡")
    changelist = reverse("admin:audit_auditlogentry_changelist")
    # when the operator opens the audit log and an entry
    response = client.get(changelist)
    html = response.content.decode()
    entry = events("audit.TierEvent")[-1]
    detail = client.get(reverse("admin:audit_auditlogentry_change", args=[entry.pk]))
    # then the list shows the change, before and after; nothing can be added, saved or deleted
    assert response.status_code == 200
    assert "银卡" in html and "白金卡" in html
    assert reverse("admin:audit_auditlogentry_add") not in html
    assert detail.status_code == 200
    assert 'name="_save"' not in detail.content.decode()
    assert client.get(reverse("admin:audit_auditlogentry_add")).status_code == 403
    assert client.post(reverse("admin:audit_auditlogentry_delete", args=[entry.pk])).status_code == 403


def test_analysts_read_the_audit_log_and_store_staff_do_not(client):
    analyst = role_user("analyst", username="ana")
    clerk = role_user("staff", username="clerk")
    url = reverse("admin:audit_auditlogentry_changelist")
    client.force_login(analyst)
    assert client.get(url).status_code == 200
    client.force_login(clerk)
    assert client.get(url).status_code == 403


def test_the_audit_log_filters_by_what_and_who(client, operator):
    # given a tier changed and a top-up offer made
    tier = factories.TierFactory()
    Tier.objects.filter(pk=tier.pk).update(name="改名")
    factories.TopUpOfferFactory(name="充200送20")
    url = reverse("admin:audit_auditlogentry_changelist")
    # when filtered to offers
    html = client.get(url, {"model": "audit.TopUpOfferEvent"}).content.decode()
    # then only the offer is listed
    assert "充200送20" in html and "改名" not in html


def test_the_audit_log_reads_in_a_constant_number_of_queries(client, operator, django_assert_max_num_queries):
    url = reverse("admin:audit_auditlogentry_changelist")
    factories.TierFactory()
    client.get(url)  # warm
    with django_assert_max_num_queries(12) as few:
        client.get(url)
    for _ in range(20):
        factories.TierFactory()
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(url)


@pytest.fixture
def chinese():
    with override_settings(LANGUAGE_CODE="zh-hans"):
        clear_url_caches()
        yield
    clear_url_caches()


def test_the_audit_log_reads_in_chinese(client, chinese):
    operator = role_user("operator")
    client.force_login(operator)
    tier = factories.TierFactory(name="银卡")
    Tier.objects.filter(pk=tier.pk).update(name="白金卡")
    client.cookies["django_language"] = "zh-hans"
    html = client.get(reverse("admin:audit_auditlogentry_changelist"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    for chinese_text in ("审计日志", "之前", "之后", "修改", "会员等级"):
        assert chinese_text in html, chinese_text


def test_a_top_up_by_staff_in_the_admin_is_recorded_with_who_and_a_till_top_up_is_not(client, operator):
    # given a member who topped up at a till (no staff member behind it)
    from members.services.wallet import wallet_top_up

    member = factories.MemberFactory(mobile="13800002300")
    wallet_top_up(member=member, amount_paid=Decimal("20.00"), idempotency_key="till-1", reason="till")
    # when the operator tops them up on the admin's page
    response = client.post(
        reverse("admin:members_wallet_top_up"),
        {
            "mobile": member.mobile,
            "amount_paid": "100.00",
            "reference": "cash",
            "reason": "前台充值",
            "idempotency_key": "admin-top-up-1",
        },
    )
    # then the audit log has that top-up, by the operator, and not the till's
    assert response.status_code == 302, response.content.decode()[:2000]
    (entry,) = events("audit.WalletAdjustmentEvent")
    assert entry.pgh_label == "entered by staff"
    assert entry.pgh_context["username"] == operator.username
    assert (entry.pgh_data["kind"], Decimal(str(entry.pgh_data["amount"]))) == ("top_up", Decimal("100.00"))


@pytest.mark.parametrize(
    ("factory_name", "event_model", "change"),
    [
        ("SchemeFactory", "audit.SchemeEvent", {"name": "换个名字"}),
        ("CampaignFactory", "audit.CampaignEvent", {"name": "换个名字"}),
        ("TopUpOfferFactory", "audit.TopUpOfferEvent", {"bonus_amount": Decimal("88.00")}),
        ("StoreApiKeyFactory", "audit.StoreApiKeyEvent", {"is_active": False}),
        ("RewardFactory", "audit.RewardEvent", {"points_price": 300}),
        ("RewardPriceFactory", "audit.RewardPriceEvent", {"points_price": 200}),
    ],
)
def test_schemes_campaigns_offers_and_api_keys_are_recorded_created_changed_and_deleted(
    factory_name, event_model, change
):
    # given a row made, changed and deleted (whatever made it: here the ORM)
    row = getattr(factories, factory_name)()
    type(row).objects.filter(pk=row.pk).update(**change)
    model = type(row)
    try:
        with transaction.atomic():
            model.objects.filter(pk=row.pk).delete()
        deleted = True
    except DatabaseError:  # protected by what refers to it: created and changed suffice
        deleted = False
    # then the audit log has each step, the change with the value after
    labels = [entry.pgh_label for entry in events_of(event_model, row)]
    assert labels == ["created", "changed", *(["deleted"] if deleted else [])]
    field, value = next(iter(change.items()))
    changed = events_of(event_model, row)[1].pgh_data[field]
    assert str(changed) in {str(value), str(float(value)) if isinstance(value, Decimal) else str(value)}


def test_a_redemption_moves_the_rewards_count_without_an_audit_event():
    # given a reward, and a member with points
    reward = factories.RewardFactory(points_price=100)
    member = factories.MemberFactory()
    points_grant(member=member, points=100, kind="campaign_reward", reason="t", idempotency_key="audit-reward")
    # when the member redeems it
    reward_redeem(member=member, reward=reward, idempotency_key="audit-reward", channel="mini_program")
    # then the count moved, and the audit log has only the creation
    reward.refresh_from_db()
    assert reward.redeemed_count == 1
    assert [entry.pgh_label for entry in events_of("audit.RewardEvent", reward)] == ["created"]
