"""Every admin list of rows that belong to a member (orders, points, wallet, coupons, messages,
RFM results…) shows store staff only the rows of their stores' members (``MemberRowsMixin``)."""

import pytest
from django.urls import reverse

from members.services.points import points_grant
from tests.factories import OrderFactory
from tests.workspace.builders import PASSWORD

pytestmark = pytest.mark.django_db

LISTS = ["members_order", "members_pointsentry", "members_pointsaccount", "segmentation_memberrfm"]


@pytest.fixture
def rows(stores, place):
    for member in (stores.our_member, stores.their_member):
        place(member, "champions")
        OrderFactory(member=member, external_id=f"O-{member.home_store.code}")
        points_grant(member=member, points=10, kind="campaign_reward", reason="r", idempotency_key=f"k{member.pk}")
    return stores


@pytest.mark.parametrize("model", LISTS)
def test_store_staff_see_only_their_members_rows(client, make_user, rows, model):
    # given a clerk of one store, and a manager of the other
    make_user("staff", rows.ours, username="clerk")
    client.login(username="clerk", password=PASSWORD)
    # when
    response = client.get(reverse(f"admin:{model}_changelist"))
    # then: the rows of the clerk's member only (members are named masked: 138****2213, 139****2213)
    body = response.content.decode()
    assert response.status_code == 200
    assert "138****2213" in body and "139****2213" not in body


def test_operators_see_every_stores_rows(client, make_user, rows):
    make_user("operator", username="boss")
    client.login(username="boss", password=PASSWORD)
    body = client.get(reverse("admin:members_order_changelist")).content.decode()
    assert "O-SH01" in body and "O-BJ01" in body


def test_another_stores_order_is_not_found_by_its_id_either(client, make_user, rows):
    make_user("staff", rows.ours, username="clerk")
    client.login(username="clerk", password=PASSWORD)
    response = client.get(reverse("admin:members_order_changelist"), {"q": "O-BJ01"})
    assert list(response.context["cl"].result_list) == []
