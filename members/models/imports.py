"""An import of a CSV file uploaded in the admin, run by the worker (``members.services.import_jobs``).

``ImportJob`` — one uploaded file and what was done with it: first a **check** (the import run
with ``dry_run=True``: counts, the first rows with their outcome, every bad row), then, when the
operator confirms a file without bad rows, the **import** itself. Each phase is queued, runs in the
worker (``members.tasks.import_job_task``) and reports its progress here as it goes — bytes read
and rows handled, committed on a connection of its own so the web process sees them while the
import's transaction is still open. Bad rows go to a CSV error report (line, column, message)
kept next to the upload under ``VAR_DIR/imports``.
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from members.models.core import TimeStampedModel

__all__ = ["ImportJob"]


class ImportJob(TimeStampedModel):
    class Kind(models.TextChoices):
        STORES = "stores", _("stores")
        MEMBERS = "members", _("members")
        ORDERS = "orders", _("orders")
        PRODUCTS = "products", _("products")

    class Phase(models.TextChoices):
        CHECK = "check", _("Check")
        IMPORT = "import", _("Import")

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Bad rows")
        ERROR = "error", _("Cannot be read")

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.ERROR)

    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    historical = models.BooleanField(_("historical import"), default=False)
    file_name = models.CharField(_("file"), max_length=255)
    stored_name = models.CharField(_("stored as"), max_length=32, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("uploaded by"),
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
    )
    language = models.CharField(
        _("language"), max_length=10, blank=True, help_text=_("The uploader's: messages are written in it.")
    )
    phase = models.CharField(_("phase"), max_length=10, choices=Phase.choices, default=Phase.CHECK)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.QUEUED)
    bytes_total = models.BigIntegerField(_("bytes"), default=0)
    bytes_done = models.BigIntegerField(_("bytes read"), default=0)
    rows_total = models.PositiveIntegerField(_("rows in the file"), null=True, blank=True)
    rows_done = models.PositiveIntegerField(_("rows handled"), default=0)
    created = models.PositiveIntegerField(_("new"), default=0)
    unchanged = models.PositiveIntegerField(_("unchanged"), default=0)
    updated = models.PositiveIntegerField(_("updated"), default=0)
    error_count = models.PositiveIntegerField(_("bad rows"), default=0)
    points_earned = models.BigIntegerField(_("points earned"), default=0)
    tier_changes = models.PositiveIntegerField(_("tier changes"), default=0)
    encoding = models.CharField(_("encoding"), max_length=20, blank=True)
    columns = models.JSONField(_("columns"), default=list, blank=True)
    shown = models.JSONField(
        _("first rows"), default=list, blank=True, help_text=_("[line, outcome, cells] of the check's first rows.")
    )
    errors = models.JSONField(
        _("first bad rows"), default=list, blank=True, help_text=_("Their messages; the error report has them all.")
    )
    message = models.TextField(_("message"), blank=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    seconds = models.FloatField(_("seconds"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("import")
        verbose_name_plural = _("imports")

    def __str__(self):
        return f"{self.file_name} ({self.get_kind_display()}, {self.get_phase_display()})"

    @property
    def finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def percent(self) -> int:
        """How far the current phase is, 0–100, by rows when their number is known, else by bytes."""
        if self.status == self.Status.SUCCEEDED:
            return 100
        if self.rows_total:
            return min(100, int(self.rows_done * 100 / self.rows_total))
        if self.bytes_total:
            return min(100, int(self.bytes_done * 100 / self.bytes_total))
        return 0
