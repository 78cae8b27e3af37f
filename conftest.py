"""Shared fixtures for the whole suite."""

import pytest
from django.utils import translation


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
