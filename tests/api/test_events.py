"""Interactions (#19, first bullet): the mini-program and the till send a member's events in
batches; each event is kept once by its id; a bad batch is refused whole; old ones are pruned."""

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from members.models import Interaction
from members.services.api_keys import store_api_key_create
from members.services.interactions import interactions_prune
from members.services.qr_codes import member_qr_code
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db
ME = "/api/v1/me/events"
POS = "/api/v1/pos/events"


def event(event_id, kind="page_view", days_ago=0, **extra):
    occurred = (timezone.now() - dt.timedelta(days=days_ago)).isoformat()
    return {"id": event_id, "kind": kind, "occurred_at": occurred, **extra}


def stored(member):
    return sorted(Interaction.objects.filter(member=member).values_list("event_id", "kind", "source", "store_id"))


def test_an_event_posted_twice_counts_once(client_a, member_a):
    batch = {"events": [event("e1", detail="/pages/menu"), event("e2", "share"), event("e1")]}
    first = client_a.post(ME, batch, format="json")
    again = client_a.post(ME, batch, format="json")
    assert first.status_code == 200, first.content
    assert first.json() == {"accepted": 2, "duplicates": 1}
    assert again.json() == {"accepted": 0, "duplicates": 3}
    assert stored(member_a) == [("e1", 1, 1, None), ("e2", 2, 1, None)]
    assert Interaction.objects.get(event_id="e1").detail == "/pages/menu"


def test_two_members_may_use_the_same_event_ids(client_a, client_b, member_a, member_b):
    assert client_a.post(ME, {"events": [event("same")]}, format="json").json()["accepted"] == 1
    assert client_b.post(ME, {"events": [event("same")]}, format="json").json()["accepted"] == 1


@pytest.mark.parametrize(
    ("bad", "field", "code"),
    [
        (event("x", "service_used"), "events.1.kind", "invalid_choice"),  # a store's kind, from the mini-program
        (event("x", days_ago=-1), "events.1.occurred_at", "future"),
        (event("x", days_ago=401), "events.1.occurred_at", "too_old"),
    ],
)
def test_a_batch_with_a_bad_event_is_refused_whole(client_a, member_a, bad, field, code):
    response = client_a.post(ME, {"events": [event("good"), bad]}, format="json")
    assert response.status_code == 400, response.content
    assert [problem["code"] for problem in response.json()["fields"][field]] == [code]
    assert not Interaction.objects.exists()


def test_a_batch_is_at_most_100_events(client_a):
    response = client_a.post(ME, {"events": [event(f"e{n}") for n in range(101)]}, format="json")
    assert response.status_code == 400
    assert not Interaction.objects.exists()


def test_the_till_records_check_ins_and_services_with_its_store(store_a, member_a):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=store_api_key_create(store=store_a, name="till", scopes=("events",))[1])
    body = {"qr_code": member_qr_code(member_a.pk), "events": [event("c1", "check_in"), event("s1", "service_used")]}
    response = client.post(POS, body, format="json")
    assert response.status_code == 200, response.content
    assert stored(member_a) == [("c1", 3, 2, store_a.pk), ("s1", 4, 2, store_a.pk)]
    # a page view is the mini-program's
    page = client.post(POS, {**body, "events": [event("p1")]}, format="json")
    assert page.status_code == 400


def test_a_key_without_the_events_scope_is_refused(pos_a, member_a):
    body = {"qr_code": member_qr_code(member_a.pk), "events": [event("c1", "check_in")]}
    assert pos_a.post(POS, body, format="json").status_code == 403
    assert not Interaction.objects.exists()


def test_old_interactions_are_pruned_and_recent_ones_kept(db):
    member = MemberFactory()
    now = timezone.now()
    Interaction.objects.bulk_create(
        Interaction(member=member, kind=1, source=1, occurred_at=now - dt.timedelta(days=days), event_id=f"d{days}")
        for days in (1, 399, 401, 800)
    )
    assert interactions_prune(now=now) == 2
    assert sorted(Interaction.objects.values_list("event_id", flat=True)) == ["d1", "d399"]
    assert interactions_prune(now=now) == 0
