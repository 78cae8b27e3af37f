"""Fixtures of the workspace tests: ``make_user`` (a user in a shipped role, assigned to stores)
and ``stores`` (two stores whose members' mobile numbers both end in 2213); see ``builders``."""

import pytest

from tests.workspace.builders import Stores, role_user, two_stores


@pytest.fixture
def make_user(db):
    """``make_user("staff", store)``: a user in the role's group, assigned to the stores given."""
    return role_user


@pytest.fixture
def stores(db) -> Stores:
    return two_stores()
