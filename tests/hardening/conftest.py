"""The API tests' fixtures (stores, members, keys, clients, faked WeChat), for the hardening tests."""

from tests.api.conftest import api_settings, member_a, member_client, store_a, store_b, store_client  # noqa: F401
