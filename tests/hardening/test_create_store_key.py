"""``create_store_key``: a till's key from the command line, printed once (issue #20)."""

import io

import pytest
from django.core.management import CommandError, call_command

from members.models import StoreApiKey
from members.services.api_keys import store_api_key_find
from tests.factories import StoreFactory

pytestmark = pytest.mark.django_db


def test_it_creates_a_working_key_and_prints_it_once():
    store = StoreFactory(code="SH01")
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "create_store_key", "SH01", "--scopes", "orders, members:read", "--name", "收银台 1", stdout=out, stderr=err
    )
    secret = out.getvalue().strip()
    key = StoreApiKey.objects.get()
    assert (key.store, key.name, key.scopes) == (store, "收银台 1", "members:read,orders")
    assert store_api_key_find(raw_key=secret) == key
    assert secret not in err.getvalue() and key.prefix in err.getvalue()
    assert secret.count("\n") == 0 and key.secret_hash not in secret  # the key, never its hash


def test_an_unknown_store_or_scope_is_refused():
    StoreFactory(code="SH01")
    with pytest.raises(CommandError, match="SH99"):
        call_command("create_store_key", "SH99", "--scopes", "orders", stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="refunds"):
        call_command("create_store_key", "SH01", "--scopes", "refunds", stdout=io.StringIO(), stderr=io.StringIO())
    assert not StoreApiKey.objects.exists()
