"""Roles, store scope, masked mobiles, 手机尾号 search and the staff access audit (issue #16):
the selectors and services the staff workspace is built on."""

import datetime as dt
import io

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from members.models import Member, StaffAccess, StoreStaff
from members.roles import ROLE_BY_KEY, ROLES, roles_install
from members.selectors import (
    member_in_scope,
    member_search,
    members_in_scope,
    mobile_shown,
    name_shown,
    staff_store_ids,
)
from members.services.qr_codes import member_qr_code
from members.services.staff import member_counter_lookup, member_mobile_reveal
from tests.factories import MemberFactory, OrderFactory, StaffUserFactory, StoreFactory

pytestmark = pytest.mark.django_db


def user_with_role(key: str, *stores):
    user = StaffUserFactory(username=f"{key}-{get_user_model().objects.count()}")
    user.groups.add(Group.objects.get(name=ROLE_BY_KEY[key].group))
    for store in stores:
        StoreStaff.objects.create(user=user, store=store)
    return type(user).objects.get(pk=user.pk)  # a fresh permission cache


@pytest.fixture
def two_stores():
    return StoreFactory(code="SH01"), StoreFactory(code="HZ01")


# --- roles -----------------------------------------------------------------------------------


def test_the_roles_ship_as_groups_with_their_permissions():
    # given the migrations ran: every role is a group
    groups = {group.name: group for group in Group.objects.prefetch_related("permissions")}
    assert sorted(groups) == sorted(role.group for role in ROLES)

    def codes(key):
        return {f"{p.content_type.app_label}.{p.codename}" for p in groups[ROLE_BY_KEY[key].group].permissions.all()}

    # then: staff see members but not full mobiles; managers may; analysts see every store, no names
    assert "members.view_member" in codes("staff") and "members.view_full_mobile" not in codes("staff")
    assert {"members.view_full_mobile", "members.adjust_points"} <= codes("manager")
    assert "members.view_all_stores" in codes("analyst") and "members.view_personal_data" not in codes("analyst")
    assert "campaigns.change_campaign" in codes("operator") and "campaigns.change_campaign" not in codes("manager")


def test_installing_the_roles_again_restores_their_permissions():
    # given an operator removed a permission from the staff group
    group = Group.objects.get(name=ROLE_BY_KEY["staff"].group)
    before = set(group.permissions.values_list("pk", flat=True))
    group.permissions.clear()
    # when
    roles_install(apps)
    # then
    assert set(group.permissions.values_list("pk", flat=True)) == before


# --- store scope -------------------------------------------------------------------------------


def test_staff_see_the_members_of_their_stores_and_recent_buyers_there(two_stores):
    shanghai, hangzhou = two_stores
    home = MemberFactory(home_store=shanghai)
    bought_here = MemberFactory(home_store=hangzhou)
    OrderFactory(member=bought_here, store=shanghai, paid_at=timezone.now() - dt.timedelta(days=300))
    bought_long_ago = MemberFactory(home_store=hangzhou)
    OrderFactory(member=bought_long_ago, store=shanghai, paid_at=timezone.now() - dt.timedelta(days=400))
    elsewhere = MemberFactory(home_store=hangzhou)
    clerk = user_with_role("staff", shanghai)

    visible = set(members_in_scope(user=clerk).values_list("pk", flat=True))

    assert visible == {home.pk, bought_here.pk}
    assert staff_store_ids(user=clerk) == [shanghai.pk]
    assert member_in_scope(user=clerk, member_id=home.pk) and not member_in_scope(user=clerk, member_id=elsewhere.pk)
    assert bought_long_ago.pk not in visible


def test_operators_analysts_and_superusers_see_every_store_and_an_unassigned_clerk_none(two_stores):
    members = [MemberFactory(home_store=store) for store in two_stores]
    for key in ("operator", "analyst"):
        assert members_in_scope(user=user_with_role(key)).count() == len(members)
    boss = StaffUserFactory(username="boss", is_superuser=True)
    assert staff_store_ids(user=boss) is None
    assert members_in_scope(user=user_with_role("staff")).count() == 0


# --- what a role sees ------------------------------------------------------------------------------


def test_mobiles_are_masked_unless_revealed_with_the_permission_and_analysts_see_no_names(two_stores):
    clerk, manager, analyst = (user_with_role(key, two_stores[0]) for key in ("staff", "manager", "analyst"))
    assert mobile_shown(user=clerk, mobile="13800138000") == "138****8000"
    assert mobile_shown(user=clerk, mobile="13800138000", revealed=True) == "138****8000"
    assert mobile_shown(user=manager, mobile="13800138000") == "138****8000"
    assert mobile_shown(user=manager, mobile="13800138000", revealed=True) == "13800138000"
    assert name_shown(user=clerk, name="王芳") == "王芳"
    assert name_shown(user=analyst, name="王芳") == ""


def test_revealing_a_full_number_needs_the_permission_and_is_recorded(two_stores):
    member = MemberFactory(mobile="13800138000", home_store=two_stores[0])
    clerk, manager = user_with_role("staff", two_stores[0]), user_with_role("manager", two_stores[0])
    with pytest.raises(PermissionDenied):
        member_mobile_reveal(user=clerk, member=member)
    assert member_mobile_reveal(user=manager, member=member) == "13800138000"
    assert list(StaffAccess.objects.values_list("user", "member", "kind")) == [
        (manager.pk, member.pk, StaffAccess.Kind.MOBILE_REVEALED)
    ]


def test_a_member_at_the_counter_is_found_by_full_mobile_or_qr_code_whatever_the_store(two_stores):
    shanghai, hangzhou = two_stores
    visitor = MemberFactory(mobile="13900001234", home_store=hangzhou)
    regular = MemberFactory(mobile="13900005678", home_store=shanghai)
    clerk = user_with_role("staff", shanghai)
    # when: found by the number in another spelling, by QR code, and one of the clerk's own
    assert member_counter_lookup(user=clerk, term="+86 139-0000-1234") == visitor
    assert member_counter_lookup(user=clerk, term=member_qr_code(visitor.pk)) == visitor
    assert member_counter_lookup(user=clerk, term="13900005678") == regular
    assert member_counter_lookup(user=clerk, term="1234") is None
    # then: the two looks outside the clerk's stores are recorded, the one at home is not
    assert list(StaffAccess.objects.order_by("id").values_list("member", "kind", "via")) == [
        (visitor.pk, StaffAccess.Kind.COUNTER, "mobile"),
        (visitor.pk, StaffAccess.Kind.COUNTER, "qr_code"),
    ]


# --- 手机尾号 --------------------------------------------------------------------------------


def test_the_last_four_digits_find_the_member_optionally_with_a_name():
    wang = MemberFactory(mobile="13912342213", name="王芳")
    li = MemberFactory(mobile="13755552213", name="李雷")
    MemberFactory(mobile="13922130000", name="张三")  # 2213 inside, not at the end
    assert set(member_search(term="2213")) == {wang, li}
    assert list(member_search(term="2213 王")) == [wang]
    assert list(member_search(term="２２１３ 李")) == [li]  # full-width digits, as some keyboards type
    assert list(member_search(term="13912342213")) == [wang]


def test_four_digits_starting_with_1_are_also_the_first_four():
    first = MemberFactory(mobile="13800000001")
    last = MemberFactory(mobile="15000001380")
    assert set(member_search(term="1380")) == {first, last}


def test_the_last_four_digits_are_served_by_an_index():
    # given: the planner told to avoid a scan of the whole table where it can
    MemberFactory(mobile="13912342213")
    queryset = member_search(term="2213 王")
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    # then: the expression index on right(mobile, 4) answers it
    assert "member_mobile_last4" in plan, plan


# --- demo users ---------------------------------------------------------------------------------


def test_demo_users_prints_one_login_per_role_and_resets_them(two_stores):
    MemberFactory(home_store=two_stores[1])
    out = io.StringIO()
    call_command("demo_users", stdout=out)
    lines = [line.split("\t") for line in out.getvalue().rstrip("\n").split("\n")]
    assert [line[0] for line in lines] == ["operator", "manager", "staff", "analyst"]
    assert [line[3] for line in lines] == ["", "HZ01", "HZ01", ""]  # the store with most members
    for role, username, password, _store in lines:
        user = get_user_model().objects.get(username=username)
        assert user.check_password(password) and user.is_staff and not user.is_superuser
        assert list(user.groups.values_list("name", flat=True)) == [ROLE_BY_KEY[role].group]
    # when: run again for another store
    again = io.StringIO()
    call_command("demo_users", "--store", "SH01", stdout=again)
    relines = [line.split("\t") for line in again.getvalue().rstrip("\n").split("\n")]
    # then: new passwords, the store roles moved
    assert all(new[2] != old[2] for new, old in zip(relines, lines, strict=True))
    staff = get_user_model().objects.get(username="staff")
    assert list(StoreStaff.objects.filter(user=staff).values_list("store__code", flat=True)) == ["SH01"]
    assert Member.objects.count() == 1


def test_operators_manage_staff_accounts(client):
    # given an operator (not a superuser)
    operator = user_with_role("operator")
    operator.set_password("pw-operator-1")
    operator.save()
    client.login(username=operator.username, password="pw-operator-1")
    # when / then: they may add a user and assign them to a store
    assert operator.has_perms(["auth.add_user", "auth.change_user", "members.add_storestaff"])
    assert client.get("/admin/auth/user/add/").status_code == 200
