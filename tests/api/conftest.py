"""Fixtures of the API tests: members, stores, keys and clients, with WeChat faked at the transport."""

import datetime as dt

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from members.services.api_keys import store_api_key_create
from members.services.tokens import member_tokens_issue
from tests.api import fakes
from tests.factories import MemberFactory, StoreFactory


@pytest.fixture(autouse=True)
def api_settings(settings):
    cache.clear()  # throttle counters and the WeChat access token
    fakes.transport.reset()
    settings.HUIYUAN_DEV_LOGIN = True
    settings.WECHAT_APP_ID = fakes.APP_ID
    settings.WECHAT_APP_SECRET = "app-secret"
    settings.WECHAT_TRANSPORT = "tests.api.fakes.transport"
    settings.WECHATPAY_APP_ID = fakes.APP_ID
    settings.WECHATPAY_MCH_ID = fakes.MCH_ID
    settings.WECHATPAY_API_V3_KEY = fakes.API_V3_KEY
    settings.WECHATPAY_PUBLIC_KEY = fakes.public_pem("platform")
    settings.WECHATPAY_PUBLIC_KEY_ID = fakes.PLATFORM_KEY_ID
    settings.WECHATPAY_MERCHANT_PRIVATE_KEY = ""  # prepay off unless a test turns it on
    settings.WECHATPAY_MERCHANT_SERIAL_NO = ""
    settings.WECHATPAY_NOTIFY_URL = ""
    return settings


@pytest.fixture
def store_a(db):
    return StoreFactory(code="A001", name="门店A")


@pytest.fixture
def store_b(db):
    return StoreFactory(code="B001", name="门店B")


@pytest.fixture
def member_a(store_a):
    return MemberFactory(
        mobile="13800000001", name="张三", home_store=store_a, registered_at=timezone.now() - dt.timedelta(days=30)
    )


@pytest.fixture
def member_b(store_b):
    return MemberFactory(
        mobile="13800000002", name="李四", home_store=store_b, registered_at=timezone.now() - dt.timedelta(days=30)
    )


def member_client(member) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {member_tokens_issue(member_id=member.pk)['access']}")
    return client


def store_client(store, scopes=("orders", "members:read", "wallet", "points")) -> APIClient:
    _key, secret = store_api_key_create(store=store, name=f"POS {store.code}", scopes=scopes)
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=secret)
    return client


@pytest.fixture
def client_a(member_a):
    return member_client(member_a)


@pytest.fixture
def client_b(member_b):
    return member_client(member_b)


@pytest.fixture
def pos_a(store_a):
    return store_client(store_a)


@pytest.fixture
def pos_b(store_b):
    return store_client(store_b)


# --- segments (for offers) ---
