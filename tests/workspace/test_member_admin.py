"""The member admin as each role uses it: store scope, the counter, masked mobiles, reveal, exports."""

import csv
import datetime as dt
import io
import time

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from members.models import Member, StaffAccess
from members.resources import MEMBER_COLUMNS
from members.services.qr_codes import member_qr_code
from segmentation.models import Segment
from tests.factories import MemberFactory, OrderFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:members_member_changelist"


def member_url(member, view: str = "change") -> str:
    return reverse(f"admin:members_member_{view}", args=[member.pk])


def listed(client, **query) -> list[Member]:
    response = client.get(reverse(CHANGELIST), query)
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def export_rows(client, **query) -> list[dict]:
    data = {"format": "0", "resource": "0"} | {f"memberresource_{name}": "on" for name in MEMBER_COLUMNS}
    url = f"{reverse('admin:members_member_export')}?{urlencode(query)}"
    response = client.post(url, data)
    assert response.status_code == 200, response.content[:500]
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


# --- scope ----------------------------------------------------------------------------------


def test_staff_list_only_the_members_of_their_stores(client, make_user, stores):
    # given: someone from the other store who bought here last month, and one who bought here long ago
    regular = MemberFactory(home_store=stores.theirs)
    OrderFactory(member=regular, store=stores.ours, paid_at=timezone.now() - dt.timedelta(days=30))
    gone = MemberFactory(home_store=stores.theirs)
    OrderFactory(member=gone, store=stores.ours, paid_at=timezone.now() - dt.timedelta(days=400))
    client.force_login(make_user("staff", stores.ours))
    # when
    shown = listed(client)
    # then
    assert set(shown) == {stores.our_member, regular}


def test_operators_and_analysts_list_every_store(client, make_user, stores):
    for role in ("operator", "analyst"):
        client.force_login(make_user(role))
        assert set(listed(client)) == {stores.our_member, stores.their_member}


def test_a_manager_of_two_stores_lists_both(client, make_user, stores):
    client.force_login(make_user("manager", stores.ours, stores.theirs))
    assert set(listed(client)) == {stores.our_member, stores.their_member}


def test_a_member_of_another_store_is_not_found_by_address(client, make_user, stores):
    # given
    client.force_login(make_user("staff", stores.ours))
    # when
    theirs = client.get(member_url(stores.their_member))
    ours = client.get(member_url(stores.our_member))
    # then
    assert (theirs.status_code, ours.status_code) == (404, 200)
    assert client.get(member_url(stores.their_member, "reveal_mobile")).status_code == 405
    assert client.post(member_url(stores.their_member, "reveal_mobile")).status_code == 404


# --- search ---------------------------------------------------------------------------------


def test_the_last_four_digits_find_our_member_not_the_other_stores(client, make_user, stores):
    # given: both members' numbers end in 2213
    client.force_login(make_user("staff", stores.ours))
    # when
    by_last_four = listed(client, q="2213")
    with_name = listed(client, q="2213 王")
    by_their_name = listed(client, q="王强")
    # then
    assert by_last_four == [stores.our_member]
    assert with_name == [stores.our_member]
    assert by_their_name == []
    assert not StaffAccess.objects.exists()


def test_the_last_four_digits_find_every_store_for_an_operator(client, make_user, stores):
    client.force_login(make_user("operator"))
    assert set(listed(client, q="2213")) == {stores.our_member, stores.their_member}


@pytest.mark.parametrize("spelling", ["13900002213", "+86 139-0000-2213", "１３９００００２２１３"])
def test_a_full_mobile_finds_another_stores_member_at_the_counter_and_is_recorded(client, make_user, stores, spelling):
    # given
    user = make_user("staff", stores.ours)
    client.force_login(user)
    # when
    found = listed(client, q=spelling)
    page = client.get(member_url(stores.their_member))
    # then: found, recorded, and their 360 opens right after
    assert found == [stores.their_member]
    access = StaffAccess.objects.get()
    assert (access.user, access.member, access.kind, access.via) == (
        user,
        stores.their_member,
        StaffAccess.Kind.COUNTER,
        "mobile",
    )
    assert page.status_code == 200
    assert page.context["member"] == stores.their_member


def test_a_member_qr_code_finds_them_at_any_store(client, make_user, stores):
    # given
    client.force_login(make_user("staff", stores.ours))
    # when
    found = listed(client, q=member_qr_code(stores.their_member.pk))
    # then
    assert found == [stores.their_member]
    assert StaffAccess.objects.get().via == "qr_code"
    assert client.get(member_url(stores.their_member)).status_code == 200


def test_finding_our_own_member_by_full_mobile_records_nothing(client, make_user, stores):
    client.force_login(make_user("staff", stores.ours))
    assert listed(client, q="13800002213") == [stores.our_member]
    assert not StaffAccess.objects.exists()


def test_the_counter_opening_lasts_a_while_only(client, make_user, stores, monkeypatch):
    # given: the other store's member found at the counter
    client.force_login(make_user("staff", stores.ours))
    listed(client, q="13900002213")
    # when: 31 minutes later
    later = time.time() + 31 * 60
    monkeypatch.setattr("workspace.admin.members.time.time", lambda: later)
    page = client.get(member_url(stores.their_member))
    # then
    assert page.status_code == 404


# --- masked mobiles and names ---------------------------------------------------------------


def test_lists_show_masked_mobiles_to_every_role(client, make_user, stores):
    for role in ("staff", "manager", "operator", "analyst"):
        client.force_login(make_user(role, stores.ours))
        page = client.get(reverse(CHANGELIST)).content.decode()
        assert "138****2213" in page, role
        assert "13800002213" not in page, role


def test_analysts_see_no_names_staff_do(client, make_user, stores):
    client.force_login(make_user("analyst"))
    analyst_list = client.get(reverse(CHANGELIST)).content.decode()
    analyst_360 = client.get(member_url(stores.our_member)).content.decode()
    client.force_login(make_user("staff", stores.ours))
    staff_list = client.get(reverse(CHANGELIST)).content.decode()
    staff_360 = client.get(member_url(stores.our_member)).content.decode()
    assert "王芳" not in analyst_list and "王芳" not in analyst_360
    assert "王芳" in staff_list and "王芳" in staff_360


def test_the_360_masks_the_mobile_and_staff_cannot_reveal_it(client, make_user, stores):
    # given
    client.force_login(make_user("staff", stores.ours))
    # when
    page = client.get(member_url(stores.our_member))
    reveal = client.post(member_url(stores.our_member, "reveal_mobile"))
    # then
    html = page.content.decode()
    assert "138****2213" in html and "13800002213" not in html
    assert 'id="reveal-mobile"' not in html
    assert reveal.status_code == 403
    assert not StaffAccess.objects.exists()


def test_a_manager_reveals_a_full_number_and_it_is_recorded(client, make_user, stores):
    # given
    manager = make_user("manager", stores.ours)
    client.force_login(manager)
    before = client.get(member_url(stores.our_member)).content.decode()
    # when
    revealed = client.post(member_url(stores.our_member, "reveal_mobile"))
    after = client.get(member_url(stores.our_member)).content.decode()
    # then: shown in that response only, and recorded
    assert 'id="reveal-mobile"' in before and "13800002213" not in before
    assert revealed.status_code == 200
    assert '<span class="member-mobile" id="member-mobile">13800002213</span>' in revealed.content.decode()
    assert "13800002213" not in after
    access = StaffAccess.objects.get()
    assert (access.user, access.member, access.kind) == (manager, stores.our_member, StaffAccess.Kind.MOBILE_REVEALED)


def test_exports_follow_the_scope_and_the_roles_masking(client, make_user, stores):
    # given
    stores.our_member.birthday = dt.date(1990, 5, 1)
    stores.our_member.save(update_fields=["birthday"])
    exports = {}
    for role, role_stores in (("staff", [stores.ours]), ("manager", [stores.ours]), ("analyst", [])):
        client.force_login(make_user(role, *role_stores))
        exports[role] = export_rows(client)
    # then
    assert [(row["mobile"], row["name"], row["birthday"]) for row in exports["staff"]] == [
        ("138****2213", "王芳", "1990-05-01")
    ]
    assert [(row["mobile"], row["name"]) for row in exports["manager"]] == [("13800002213", "王芳")]
    assert sorted((row["mobile"], row["name"], row["birthday"]) for row in exports["analyst"]) == [
        ("138****2213", "", ""),
        ("139****2213", "", ""),
    ]


def test_an_export_of_a_search_exports_what_the_search_found(client, make_user, stores):
    client.force_login(make_user("operator"))
    rows = export_rows(client, q="13900002213")
    assert [row["mobile"] for row in rows] == ["13900002213"]


# --- editing ------------------------------------------------------------------------------


def test_roles_that_may_not_edit_see_no_form(client, make_user, stores):
    # given
    client.force_login(make_user("manager", stores.ours))
    # when
    page = client.get(member_url(stores.our_member))
    edit = client.get(member_url(stores.our_member, "edit"))
    post = client.post(member_url(stores.our_member), {"name": "changed"})
    history = client.get(member_url(stores.our_member, "history"))
    # then
    html = page.content.decode()
    assert 'name="name"' not in html and 'name="mobile"' not in html
    assert 'id="member-edit"' not in html
    assert (edit.status_code, post.status_code, history.status_code) == (403, 403, 403)
    stores.our_member.refresh_from_db()
    assert stores.our_member.name == "王芳"


def test_an_operator_edits_the_profile_from_the_360(client, make_user, stores):
    # given
    client.force_login(make_user("operator"))
    page = client.get(member_url(stores.our_member))
    # when
    edit_url = page.context["links"]["edit"]
    form = client.get(edit_url)
    # then
    assert edit_url == member_url(stores.our_member, "edit")
    assert 'id="member-edit"' in page.content.decode()
    assert form.status_code == 200
    assert 'name="mobile"' in form.content.decode()
    # when: saved, and kept on the form
    saved = client.post(
        edit_url,
        {
            "mobile": "13800002213",
            "name": "王芳芳",
            "gender": "female",
            "birthday": "",
            "registered_at_0": "2024-03-01",
            "registered_at_1": "10:00:00",
            "channel": "store",
            "home_store": str(stores.ours.pk),
            "_continue": "1",
        },
    )
    # then
    assert saved.status_code == 302 and saved["Location"] == edit_url
    stores.our_member.refresh_from_db()
    assert stores.our_member.name == "王芳芳"


def test_an_export_never_reaches_beyond_the_stores_even_by_full_mobile(client, make_user, stores):
    client.force_login(make_user("manager", stores.ours))
    assert export_rows(client, q="13900002213") == []
    assert [row["mobile"] for row in export_rows(client, q="13800002213")] == ["13800002213"]
    assert not StaffAccess.objects.exists()


def test_operators_filter_the_member_list_by_segment_and_see_it_in_a_column(client, make_user, stores, place):
    # given: one member a champion, the other lost
    place(stores.our_member, "champions")
    place(stores.their_member, "lost")
    client.force_login(make_user("operator"))
    url = reverse("admin:members_member_changelist")
    champions = Segment.objects.get(scheme__is_active=True, slug="champions")
    # when
    everyone = client.get(url)
    response = client.get(url, {"segment": champions.pk})
    # then: the filter offers the active scheme's segments; only the champion is left, named by segment
    offered = [str(value) for value, _name in everyone.context["cl"].filter_specs[0].lookup_choices]
    assert str(champions.pk) in offered
    assert list(response.context["cl"].result_list) == [stores.our_member]
    assert champions.name_zh in response.content.decode() or champions.name_en in response.content.decode()
