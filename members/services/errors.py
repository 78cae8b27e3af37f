"""Errors every service of the app may raise."""

from django.core.exceptions import ValidationError


class IdempotencyConflict(ValidationError):
    """The idempotency key (an external id) was used before for different content."""
