"""Shared fixtures for the whole suite.

Rows come from the factories and builders of ``tests/factories.py``; the fixtures here are the ones
tests of several apps ask for by name: a logged-in staff client, the default segmentation scheme
and the test brand's tier ladder.
"""

import pytest
from django.utils import translation

from segmentation.models import Scheme
from tests.factories import install_default_scheme, tier_ladder


@pytest.fixture(autouse=True)
def _default_language(settings):
    """Every test starts in the default language: a request or command that activated another
    one (LocaleMiddleware leaves it active on the thread) must not leak into the next test."""
    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.deactivate()


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("operator", "operator@example.com", "pw-operator-1")
    client.force_login(user)
    return client


@pytest.fixture
def default_scheme(db) -> Scheme:
    """The data migration's default scheme (``rfm-default``), active."""
    return install_default_scheme()


@pytest.fixture
def ladder(db) -> dict:
    """The test brand's tiers: ``entry``, ``silver`` and ``gold`` (see ``tier_ladder``)."""
    return tier_ladder()
