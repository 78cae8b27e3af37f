"""The API tests' fixtures (stores, members, keys, clients, faked WeChat), for the hardening tests."""

from tests.api.conftest import (  # noqa: F401
    api_settings,
    client_a,
    member_a,
    member_b,
    member_client,
    pos_a,
    store_a,
    store_b,
    store_client,
)
