"""Admin: a store API key is created with its secret shown once; only its hash is stored."""

import hashlib
import re

import pytest

from members.models import StoreApiKey, TopUpIntent

pytestmark = pytest.mark.django_db


def test_creating_a_key_shows_the_secret_once_and_stores_its_hash(staff_client, store_a):
    # when
    response = staff_client.post(
        "/admin/members/storeapikey/add/",
        {"store": store_a.pk, "name": "收银台 1", "scopes": ["orders", "wallet"]},
    )
    # then
    assert response.status_code == 200
    secret = re.search(r'<code id="api-key"[^>]*>(hy_[^<]+)</code>', response.content.decode()).group(1)
    key = StoreApiKey.objects.get()
    assert (key.store, key.scopes, key.created_by.username) == (store_a, "orders,wallet", "operator")
    assert key.secret_hash == hashlib.sha256(secret.split("_", 2)[2].encode()).hexdigest()
    assert secret not in staff_client.get(f"/admin/members/storeapikey/{key.pk}/change/").content.decode()
    # and the key works at once
    lookup = staff_client.post("/api/v1/pos/orders", {}, content_type="application/json", HTTP_X_API_KEY=secret)
    assert lookup.status_code == 400  # authenticated; the empty body is what is wrong


def test_top_up_intents_are_read_only(staff_client):
    assert staff_client.get("/admin/members/topupintent/").status_code == 200
    assert staff_client.get("/admin/members/topupintent/add/").status_code == 403
    assert not TopUpIntent.objects.exists()
