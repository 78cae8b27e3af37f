"""Who works where, and what staff looked at (PIPL: minimum necessary access, recorded).

- ``StoreStaff`` — a user assigned to a store. Store managers and staff see the members of their
  stores only (``members.selectors.staff_store_ids``); operators and analysts have
  ``members.view_all_stores``.
- ``StaffAccess`` — an append-only record of a look that goes beyond a role's everyday view: a
  full mobile number revealed, or a member outside the user's stores served at the counter (found
  by their full mobile number or QR code). Written by ``members.services.staff``; read-only in the
  admin.
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from members.models.core import Member, Store

__all__ = ["StaffAccess", "StoreStaff"]


class StoreStaff(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.CASCADE, related_name="store_assignments"
    )
    store = models.ForeignKey(Store, verbose_name=_("store"), on_delete=models.CASCADE, related_name="staff")

    class Meta:
        ordering = ["store", "user"]
        verbose_name = _("store assignment")
        verbose_name_plural = _("store assignments")
        constraints = [models.UniqueConstraint(fields=["user", "store"], name="storestaff_unique")]

    def __str__(self):
        return f"{self.user} @ {self.store}"


class StaffAccess(models.Model):
    class Kind(models.TextChoices):
        MOBILE_REVEALED = "mobile_revealed", _("Full mobile number revealed")
        COUNTER = "counter", _("Served at the counter (outside the user's stores)")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.PROTECT, related_name="+"
    )
    member = models.ForeignKey(Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    via = models.CharField(_("found by"), max_length=20, blank=True)
    created_at = models.DateTimeField(_("at"), auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("staff access")
        verbose_name_plural = _("staff accesses")
        indexes = [models.Index(fields=["member", "-created_at"], name="staffaccess_member_created")]

    def __str__(self):
        return f"{self.user} {self.get_kind_display()} {self.member_id}"
