"""Imports uploaded in the admin, run by the worker with their progress: ``ImportJob``.

The admin keeps the upload under ``VAR_DIR/imports`` (``import_job_create``) and queues
``members.tasks.import_job_task``, which calls ``import_job_run``: the same services as the
``import_*`` commands (``members.services.imports``), so every rule holds — all or nothing, line
numbers, idempotent re-import, UTF-8/BOM/GBK. A check is the import with ``dry_run=True``; the
import is queued only for a checked file without bad rows (``import_job_confirm``) and checks
again as it goes.

**Progress while the import's transaction is open.** The service holds one transaction for the
whole file, so progress written on the default connection would stay invisible until the end
(and vanish with a dry run's rollback). ``_ProgressWriter`` writes it on a second connection of
its own, in autocommit, at most every ``PROGRESS_EVERY`` seconds, with ``SKIP LOCKED`` so it never
waits for a row the default connection holds. The result is written on the default connection
when the service returns. Run eagerly (tests, ``CELERY_TASK_ALWAYS_EAGER``), the same code runs in
the request.

**Error report.** Every bad row goes, as it is found, to a CSV file (UTF-8 with BOM, for Excel):
line, column, message — one line per problem; the job keeps the first ``KEPT_ERRORS`` for the page.
"""

from __future__ import annotations

import csv
import re
import secrets
import time
from pathlib import Path

from django.conf import settings
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from members.csv_import import FORMULA_GUARD, FORMULA_TRIGGERS, CsvFileError, count_rows
from members.models import ImportJob, Member, Order, Product, Store
from members.services.imports import (
    MEMBER_COLUMNS,
    ORDER_COLUMNS,
    STORE_COLUMNS,
    ImportResult,
    Outcome,
    RowOutcome,
    members_import,
    orders_import,
    stores_import,
)
from members.services.product_imports import PRODUCT_COLUMNS, products_import

SHOWN_ROWS = 100  # rows listed on the check's page
KEPT_ERRORS = 100  # bad rows listed on the page; the report has them all
PROGRESS_EVERY = 0.5  # seconds between progress writes
#: Rows per batch in loyalty mode, where rows are recorded one at a time (1.5–3 ms each): small
#: batches cost one lookup more per batch and let the bar move every few hundred rows. Historical
#: imports and stores keep the services' batch size, which their set-based writes are tuned for.
LOYALTY_BATCH_SIZE = 250
KEPT_UPLOADS_SECONDS = 24 * 3600  # uploads and reports older than a day are deleted

IMPORTS = {
    ImportJob.Kind.STORES: (stores_import, STORE_COLUMNS, Store),
    ImportJob.Kind.MEMBERS: (members_import, MEMBER_COLUMNS, Member),
    ImportJob.Kind.ORDERS: (orders_import, ORDER_COLUMNS, Order),
    ImportJob.Kind.PRODUCTS: (products_import, PRODUCT_COLUMNS, Product),
}
#: Kinds whose import has no loyalty effects, so no historical mode.
_WITHOUT_MODE = (ImportJob.Kind.STORES, ImportJob.Kind.PRODUCTS)
#: Column names a bad row's message may start a problem with (besides the kind's columns).
_EXTRA_COLUMNS = ("openid",)


def uploads_dir() -> Path:
    directory = Path(settings.VAR_DIR) / "imports"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def upload_path(job: ImportJob) -> Path:
    return uploads_dir() / job.stored_name


def error_report_path(job: ImportJob) -> Path:
    return uploads_dir() / f"{job.stored_name}.errors.csv"


def import_job_create(*, kind: str, upload, historical: bool, user, language: str = "") -> ImportJob:
    """Keep the uploaded file (a Django ``UploadedFile``) and create its job, queued for a check.
    Files older than a day are deleted on the way."""
    directory = uploads_dir()
    stale = time.time() - KEPT_UPLOADS_SECONDS
    for old in directory.iterdir():
        if old.is_file() and old.stat().st_mtime < stale:
            old.unlink(missing_ok=True)
    stored_name = secrets.token_hex(16)
    size = 0
    with open(directory / stored_name, "wb") as kept:
        for chunk in upload.chunks():
            kept.write(chunk)
            size += len(chunk)
    return ImportJob.objects.create(
        kind=kind,
        historical=historical and kind not in _WITHOUT_MODE,
        file_name=upload.name[:255],
        stored_name=stored_name,
        created_by=user,
        language=language,
        bytes_total=size,
    )


def import_job_confirm(*, job: ImportJob) -> bool:
    """Queue the import of a checked file without bad rows; False when it cannot be (not checked,
    bad rows, already imported, or the file is gone)."""
    if job.phase != ImportJob.Phase.CHECK or job.status != ImportJob.Status.SUCCEEDED:
        return False
    if not upload_path(job).exists():
        return False
    updated = ImportJob.objects.filter(
        pk=job.pk, phase=ImportJob.Phase.CHECK, status=ImportJob.Status.SUCCEEDED
    ).update(
        phase=ImportJob.Phase.IMPORT,
        status=ImportJob.Status.QUEUED,
        rows_done=0,
        bytes_done=0,
        started_at=None,
        finished_at=None,
        updated_at=timezone.now(),
    )
    return updated == 1


class _ProgressWriter:
    """Writes a job's progress on a database connection of its own, committed at once."""

    def __init__(self, job: ImportJob):
        self.job = job
        self.bytes_done = 0
        self.rows_done = 0
        self._written_at = 0.0
        default = connections[DEFAULT_DB_ALIAS]
        self._connection = default.__class__(dict(default.settings_dict), alias="import_progress")

    def on_progress(self, size: int) -> None:
        self.bytes_done += size
        self._maybe_write()

    def on_rows(self, rows: int) -> None:
        self.rows_done = rows
        self._maybe_write(force=True)

    def _maybe_write(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._written_at < PROGRESS_EVERY:
            return
        self._written_at = now
        table = ImportJob._meta.db_table
        with self._connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET bytes_done = %s, rows_done = %s, updated_at = %s "  # noqa: S608
                f"WHERE id IN (SELECT id FROM {table} WHERE id = %s FOR UPDATE SKIP LOCKED)",
                [min(self.bytes_done, self.job.bytes_total), self.rows_done, timezone.now(), self.job.pk],
            )

    def close(self) -> None:
        self._connection.close()


class _ErrorReport:
    """The CSV of bad rows, one line per problem, written as they are found."""

    def __init__(self, path: Path, columns: tuple[str, ...]):
        self._file = open(path, "w", encoding="utf-8-sig", newline="")  # noqa: SIM115 -- closed by close()
        self._writer = csv.writer(self._file)
        self._writer.writerow([_("line"), _("column"), _("message")])
        names = "|".join(re.escape(name) for name in (*columns, *_EXTRA_COLUMNS))
        self._split = re.compile(rf"(?:^|;\s)({names}):\s")
        self.kept: list[str] = []

    def problems(self, message: str) -> list[tuple[str, str]]:
        """``"mobile: bad; amount: worse"`` → ``[("mobile", "bad"), ("amount", "worse")]``; a
        problem of no column has the column ``""``."""
        parts = self._split.split(message)
        problems = [("", parts[0].strip())] if parts[0].strip() else []
        problems += [(parts[i], parts[i + 1].strip()) for i in range(1, len(parts) - 1, 2)]
        return problems or [("", message)]

    def add(self, line: int, message: str) -> None:
        for column, problem in self.problems(message):
            self._writer.writerow([line, column, _guarded(problem)])
        if len(self.kept) < KEPT_ERRORS:
            self.kept.append(str(_("line %(line)s: %(message)s") % {"line": line, "message": message}))

    def close(self) -> None:
        self._file.close()


def _guarded(text: str) -> str:
    return FORMULA_GUARD + text if text.startswith(FORMULA_TRIGGERS) else text


def import_job_run(*, job_id: int) -> ImportJob | None:
    """Run the queued phase of a job (the task's body). A job not queued is left alone, so a
    task delivered twice does nothing the second time."""
    claimed = ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.QUEUED).update(
        status=ImportJob.Status.RUNNING, started_at=timezone.now(), updated_at=timezone.now()
    )
    if not claimed:
        return None
    job = ImportJob.objects.get(pk=job_id)
    with translation.override(job.language or None):
        return _run(job)


def _run(job: ImportJob) -> ImportJob:
    service, columns, _model = IMPORTS[job.kind]
    dry_run = job.phase == ImportJob.Phase.CHECK
    mode = {} if job.kind in _WITHOUT_MODE else {"historical": job.historical}
    if mode and not job.historical:
        mode["batch_size"] = LOYALTY_BATCH_SIZE
    report = _ErrorReport(error_report_path(job), tuple(column.name for column in columns))
    progress = _ProgressWriter(job)
    result: ImportResult | None = None
    try:
        with open(upload_path(job), "rb") as file:
            job.rows_total = count_rows(file, columns=columns)
            ImportJob.objects.filter(pk=job.pk).update(rows_total=job.rows_total)
            result = service(
                file=file,
                dry_run=dry_run,
                on_bad_row=report.add,
                on_progress=progress.on_progress,
                on_rows=progress.on_rows,
                show_rows=SHOWN_ROWS if dry_run else 0,
                **mode,
            )
    except (CsvFileError, FileNotFoundError) as exc:
        job.status = ImportJob.Status.ERROR
        job.message = (
            " ".join(str(message) for message in exc.messages)
            if isinstance(exc, CsvFileError)
            else _("The uploaded file is no longer available: upload it again.")
        )
    finally:
        report.close()
        progress.close()
    if result is not None:
        _record(job, result, report.kept, dry_run=dry_run)
    job.finished_at = timezone.now()
    job.bytes_done = job.bytes_total if result is not None else job.bytes_done
    job.save()
    if result is not None and result.ok and not dry_run:
        upload_path(job).unlink(missing_ok=True)
        _log(job)
    if job.status != ImportJob.Status.FAILED:
        error_report_path(job).unlink(missing_ok=True)
    return job


def _record(job: ImportJob, result: ImportResult, errors: list[str], *, dry_run: bool) -> None:
    job.status = ImportJob.Status.SUCCEEDED if result.ok else ImportJob.Status.FAILED
    job.rows_done = result.rows
    job.rows_total = result.rows
    job.created, job.unchanged, job.updated = result.created, result.unchanged, result.updated
    job.error_count = result.error_count
    job.points_earned, job.tier_changes = result.points_earned, result.tier_changes
    job.encoding = result.encoding
    job.seconds = result.seconds
    job.columns = list(result.columns)
    if dry_run:
        job.shown = [[row.line, row.outcome.value, list(row.cells)] for row in result.shown]
    job.errors = errors


def import_job_result(job: ImportJob) -> ImportResult:
    """The job's figures as the service's ``ImportResult`` (what the page and its summary show)."""
    return ImportResult(
        kind=job.kind,
        historical=job.historical,
        dry_run=job.phase == ImportJob.Phase.CHECK,
        created=job.created,
        unchanged=job.unchanged,
        updated=job.updated,
        rows=job.rows_done,
        error_count=job.error_count,
        errors=list(job.errors),
        encoding=job.encoding,
        seconds=job.seconds or 0.0,
        points_earned=job.points_earned,
        tier_changes=job.tier_changes,
        columns=tuple(job.columns),
        shown=[RowOutcome(line, Outcome(outcome), tuple(cells)) for line, outcome, cells in job.shown],
    )


def import_job_summary(job: ImportJob) -> str:
    return str(
        _("Import finished: %(file)s. %(summary)s")
        % {"file": job.file_name, "summary": import_job_result(job).summary()}
    )


def _log(job: ImportJob) -> None:
    if job.created_by_id is None:
        return
    _service, _columns, model = IMPORTS[job.kind]
    LogEntry.objects.create(
        user_id=job.created_by_id,
        content_type_id=ContentType.objects.get_for_model(model).pk,
        object_repr=job.file_name[:200],
        action_flag=ADDITION,
        change_message=import_job_summary(job),
    )
