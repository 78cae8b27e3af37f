"""Store assignments on the store and user pages, and the read-only audit of staff access."""

import pytest
from django.urls import reverse

from members.models import StaffAccess, StoreStaff
from tests.factories import StaffAccessFactory

pytestmark = pytest.mark.django_db


def test_a_superuser_assigns_a_user_to_a_store_on_the_user_page(staff_client, make_user, stores):
    # given (operators have no permission on users: user accounts stay with superusers)
    clerk = make_user("staff")
    url = reverse("admin:auth_user_change", args=[clerk.pk])
    form = staff_client.get(url)
    assert "store_assignments-TOTAL_FORMS" in form.content.decode()
    data = {
        "username": clerk.username,
        "is_active": "on",
        "is_staff": "on",
        "groups": [group.pk for group in clerk.groups.all()],
        "date_joined_0": "2024-01-01",
        "date_joined_1": "00:00:00",
        "store_assignments-TOTAL_FORMS": "1",
        "store_assignments-INITIAL_FORMS": "0",
        "store_assignments-0-store": str(stores.ours.pk),
    }
    # when
    response = staff_client.post(url, data)
    # then
    assert response.status_code == 302
    assert list(StoreStaff.objects.filter(user=clerk).values_list("store__code", flat=True)) == ["SH01"]


def test_an_operator_assigns_staff_on_the_store_page(client, make_user, stores):
    # given
    clerk = make_user("staff", username="xiaoli")
    client.force_login(make_user("operator"))
    url = reverse("admin:members_store_change", args=[stores.ours.pk])
    assert "staff-TOTAL_FORMS" in client.get(url).content.decode()
    data = {
        "code": "SH01",
        "name": "静安店",
        "city": "上海",
        "is_active": "on",
        "staff-TOTAL_FORMS": "1",
        "staff-INITIAL_FORMS": "0",
        "staff-0-user": str(clerk.pk),
    }
    # when
    response = client.post(url, data)
    # then
    assert response.status_code == 302
    assert list(StoreStaff.objects.filter(store=stores.ours).values_list("user__username", flat=True)) == ["xiaoli"]
    assert "xiaoli" in client.get(url).content.decode()


def test_a_manager_sees_their_stores_staff_read_only(client, make_user, stores):
    make_user("staff", stores.ours, username="xiaoli")
    client.force_login(make_user("manager", stores.ours))
    page = client.get(reverse("admin:members_store_change", args=[stores.ours.pk]))
    assert page.status_code == 200
    assert "xiaoli" in page.content.decode()
    assert 'name="staff-0-user"' not in page.content.decode()


def test_the_audit_is_read_only_even_for_a_superuser(staff_client, stores):
    # given
    access = StaffAccessFactory(member=stores.our_member)
    # when
    listing = staff_client.get(reverse("admin:members_staffaccess_changelist"))
    add = staff_client.get(reverse("admin:members_staffaccess_add"))
    change = staff_client.post(reverse("admin:members_staffaccess_change", args=[access.pk]), {"kind": "counter"})
    delete = staff_client.post(reverse("admin:members_staffaccess_delete", args=[access.pk]), {"post": "yes"})
    # then
    assert listing.status_code == 200
    assert (add.status_code, change.status_code, delete.status_code) == (403, 403, 403)
    assert StaffAccess.objects.get().kind == StaffAccess.Kind.MOBILE_REVEALED
    assert "138****2213" in listing.content.decode() and "13800002213" not in listing.content.decode()


def test_the_audit_is_filtered_by_kind_and_searched_by_mobile(staff_client, stores):
    # given
    revealed = StaffAccessFactory(member=stores.our_member)
    counter = StaffAccessFactory(member=stores.their_member, kind=StaffAccess.Kind.COUNTER, via="mobile")
    url = reverse("admin:members_staffaccess_changelist")
    # when
    by_kind = staff_client.get(url, {"kind__exact": "counter"})
    by_mobile = staff_client.get(url, {"q": "+86 138 0000 2213"})
    # then
    assert list(by_kind.context["cl"].result_list) == [counter]
    assert list(by_mobile.context["cl"].result_list) == [revealed]


def test_store_staff_cannot_read_the_audit(client, make_user, stores):
    client.force_login(make_user("staff", stores.ours))
    assert client.get(reverse("admin:members_staffaccess_changelist")).status_code == 403
