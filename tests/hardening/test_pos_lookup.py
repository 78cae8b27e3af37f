"""Finding 4 (issue #20): the POS member lookup is no oracle — throttled per key, audited, and the
full name only for a QR scan (the member at the till)."""

import logging

import pytest
from django.core.cache import cache

from members.apis.pos import mask_name
from members.services.qr_codes import member_qr_code
from tests.api.conftest import store_client

pytestmark = pytest.mark.django_db

LOOKUP = "/api/v1/pos/members/lookup"


@pytest.fixture
def lookup_rate(settings):
    cache.clear()
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "pos_lookup": "3/min"},
    }


def test_lookups_are_throttled_per_key(lookup_rate, store_a, member_a):
    pos = store_client(store_a)
    other_till = store_client(store_a)  # another key of the same store
    statuses = [pos.post(LOOKUP, {"mobile": f"1380000{n:04d}"}, format="json").status_code for n in range(4)]
    assert statuses[:3] != [429] * 3 and statuses[3] == 429, statuses
    response = pos.post(LOOKUP, {"mobile": "13800000001"}, format="json")
    assert response.status_code == 429
    assert response.json()["code"] == "throttled"
    assert int(response["Retry-After"]) > 0
    assert other_till.post(LOOKUP, {"mobile": "13800000001"}, format="json").status_code == 200


def test_a_lookup_by_mobile_answers_the_name_masked(store_a, member_a):
    response = store_client(store_a).post(LOOKUP, {"mobile": "13800000001"}, format="json")
    assert response.status_code == 200
    assert response.json()["name"] == "张*"
    assert "张三" not in response.content.decode()


def test_a_qr_scan_answers_the_full_name(store_a, member_a):
    response = store_client(store_a).post(LOOKUP, {"qr_code": member_qr_code(member_a.pk)}, format="json")
    assert response.status_code == 200
    assert response.json()["name"] == "张三"


def test_every_lookup_is_audited(store_a, member_a, caplog):
    pos = store_client(store_a)
    key = store_a.api_keys.get()
    with caplog.at_level(logging.INFO, logger="huiyuan.audit"):
        pos.post(LOOKUP, {"mobile": "13800000001"}, format="json")
        pos.post(LOOKUP, {"qr_code": member_qr_code(member_a.pk)}, format="json")
        pos.post(LOOKUP, {"mobile": "13900000000"}, format="json")  # nobody: audited too
    records = [record for record in caplog.records if record.name == "huiyuan.audit"]
    assert [(r.api_key_id, r.store_code, r.lookup_kind, r.member_id) for r in records] == [
        (key.pk, "A001", "mobile", member_a.pk),
        (key.pk, "A001", "qr_code", member_a.pk),
        (key.pk, "A001", "mobile", None),
    ]
    assert f"key={key.pk} store=A001 kind=mobile member={member_a.pk}" in records[0].getMessage()


@pytest.mark.parametrize(
    ("name", "masked"), [("张三", "张*"), ("欧阳小明", "欧***"), ("王", "王"), ("", ""), ("Li Na", "L****")]
)
def test_mask_name(name, masked):
    assert mask_name(name) == masked
