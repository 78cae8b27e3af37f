"""Schemes: which one is active."""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from segmentation.models import Scheme


def scheme_activate(*, scheme: Scheme) -> Scheme:
    """Make ``scheme`` the one active scheme (the others become inactive in the same transaction).

    Its results replace the current ones at the next recompute; until then members keep the
    segments of the previous scheme's last run.
    """
    if not scheme.rules.exists():
        raise ValidationError(_("A scheme needs at least one rule before it can be active."))
    if scheme.rules.exclude(segment__scheme=scheme).exists():
        raise ValidationError(_("Every rule of the scheme must lead to one of its own segments."))
    with transaction.atomic():
        Scheme.objects.filter(is_active=True).exclude(pk=scheme.pk).update(is_active=False)
        Scheme.objects.filter(pk=scheme.pk).update(is_active=True)
    scheme.is_active = True
    return scheme
