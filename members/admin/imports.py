"""The admin's CSV upload for stores, members and orders, and the export beside it.

The upload calls the services the ``import_*`` commands call (``members.services.imports``), so a
file gives the same members, tiers and points wherever it is uploaded. It runs in the worker as an
``ImportJob`` (``members.services.import_jobs``), whose page shows a progress bar that follows it
without a reload (htmx polls ``…/import/<job>/status/``). Two steps:

1. **Check.** The upload's header is read in the request (a missing column is a form error at
   once); the file is kept under ``VAR_DIR/imports`` and checked by the worker with
   ``dry_run=True`` — everything is done, then rolled back — so the page shows what the import
   would do: the counts, the first rows with what happens to each, the points and tier changes it
   would cause, or the bad rows with their line numbers and a CSV error report of them all.
2. **Import.** The uploader confirms a file without bad rows, and the worker imports it for real in
   the mode chosen at the check (``historical``, ``HISTORICAL_LABEL``). It is checked again as it
   goes, since data may have changed in between: a file with any bad row imports nothing.

Exports stay with django-import-export (``members.resources``).
"""

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _
from import_export.admin import ExportMixin
from unfold.contrib.import_export.forms import ExportForm, SelectableFieldsExportForm

from members.csv_import import CsvFileError, CsvReader
from members.models import ImportJob
from members.resources import SpreadsheetCSV
from members.services.import_jobs import (
    IMPORTS,
    error_report_path,
    import_job_confirm,
    import_job_create,
    import_job_result,
    import_job_summary,
)
from members.services.imports import HISTORICAL_HELP, HISTORICAL_LABEL
from members.tasks import import_job_task

POLL_SECONDS = 1  # how often a running job's page asks for its progress


def queue_import_job(job: ImportJob) -> None:
    """Queue a job's phase on the worker. The admin runs in autocommit, so the job is committed and
    the worker finds it (run eagerly, it runs here and now)."""
    import_job_task.delay(job.pk)


class ImportForm(forms.Form):
    import_file = forms.FileField(
        label=_("CSV file"), help_text=_("With a header row; UTF-8 (with or without BOM) or GBK.")
    )
    historical = forms.BooleanField(label=HISTORICAL_LABEL, help_text=HISTORICAL_HELP, required=False)

    def __init__(self, *args, offers_historical: bool, **kwargs):
        super().__init__(*args, **kwargs)
        if not offers_historical:
            del self.fields["historical"]


class ConfirmImportForm(forms.Form):
    job = forms.IntegerField(widget=forms.HiddenInput)


class CsvImportExportMixin(ExportMixin):
    """CSV import through ``import_service`` and export through django-import-export.

    ``import_service`` is one of ``stores_import``, ``members_import``, ``orders_import``;
    ``import_columns`` its columns, shown on the page; ``offers_historical`` whether the operator
    chooses the mode. ``import_permissions`` are the model permissions an import needs.
    """

    import_service = None  # set with staticmethod(...)
    import_columns: tuple = ()
    offers_historical = False
    import_permissions: tuple[str, ...] = ("add",)
    import_template_name = "admin/members/import.html"
    import_export_change_list_template = "admin/members/change_list_import_export.html"
    export_formats = [SpreadsheetCSV]
    export_form_class = ExportForm
    selectable_fields_export_form_class = SelectableFieldsExportForm

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        view = self.admin_site.admin_view
        return [
            path("import/", view(self.import_view), name="{}_{}_import".format(*info)),
            path("import/<int:job_id>/", view(self.import_job_view), name="{}_{}_import_job".format(*info)),
            path(
                "import/<int:job_id>/status/",
                view(self.import_job_status_view),
                name="{}_{}_import_job_status".format(*info),
            ),
            path(
                "import/<int:job_id>/errors.csv",
                view(self.import_job_errors_view),
                name="{}_{}_import_job_errors".format(*info),
            ),
            *super().get_urls(),
        ]

    @property
    def import_kind(self) -> str:
        return next(kind for kind, (service, *_rest) in IMPORTS.items() if service is self.import_service)

    def has_import_permission(self, request) -> bool:
        opts = self.opts
        return all(
            request.user.has_perm(f"{opts.app_label}.{action}_{opts.model_name}") for action in self.import_permissions
        )

    def has_export_permission(self, request) -> bool:
        # django-import-export allows any staff user by default; an export is a way of viewing.
        return self.has_view_permission(request)

    def changelist_view(self, request, extra_context=None):
        extra_context = {"has_import_permission": self.has_import_permission(request), **(extra_context or {})}
        return super().changelist_view(request, extra_context)

    # --- the views -------------------------------------------------------------------------

    def import_view(self, request):
        """The upload (GET, POST), and the confirmation of a checked file (POST with ``confirm``)."""
        if not self.has_import_permission(request):
            raise PermissionDenied
        if request.method == "POST" and "confirm" in request.POST:
            return self._import_confirmed(request)
        form = ImportForm(
            request.POST if request.method == "POST" else None,
            request.FILES if request.method == "POST" else None,
            offers_historical=self.offers_historical,
        )
        if not form.is_valid():
            return self._render(request, form=form)
        upload = form.cleaned_data["import_file"]
        _service, columns, _model = IMPORTS[self.import_kind]
        try:
            CsvReader(upload.file, columns=columns)  # the header, at once: a missing column is a form error
        except CsvFileError as exc:
            form.add_error("import_file", exc)
            return self._render(request, form=form)
        upload.file.seek(0)
        job = import_job_create(
            kind=self.import_kind,
            upload=upload,
            historical=form.cleaned_data.get("historical", False),
            user=request.user,
            language=get_language() or "",
        )
        queue_import_job(job)
        return HttpResponseRedirect(self._job_url(job))

    def _import_confirmed(self, request):
        form = ConfirmImportForm(request.POST)
        job = None
        if form.is_valid():
            job = ImportJob.objects.filter(
                pk=form.cleaned_data["job"], kind=self.import_kind, created_by=request.user
            ).first()
        if job is None or not import_job_confirm(job=job):
            self.message_user(request, _("The uploaded file is no longer available: upload it again."), "error")
            return HttpResponseRedirect(request.path)
        queue_import_job(job)
        return HttpResponseRedirect(self._job_url(job))

    def import_job_view(self, request, job_id: int):
        job = self._job(request, job_id)
        if request.method == "POST":
            return HttpResponseNotAllowed(["GET"])
        return self._render(request, job=job)

    def import_job_status_view(self, request, job_id: int):
        """The job's progress or result, the fragment the page's htmx swaps in while it runs."""
        job = self._job(request, job_id)
        return TemplateResponse(request, "admin/members/import_job.html", self._job_context(request, job))

    def import_job_errors_view(self, request, job_id: int):
        job = self._job(request, job_id)
        report = error_report_path(job)
        if job.status != ImportJob.Status.FAILED or not report.exists():
            raise Http404
        name = f"{job.file_name.rsplit('.', 1)[0]}-errors.csv"
        return FileResponse(open(report, "rb"), as_attachment=True, filename=name, content_type="text/csv")

    def _job(self, request, job_id: int) -> ImportJob:
        if not self.has_import_permission(request):
            raise PermissionDenied
        job = get_object_or_404(ImportJob, pk=job_id, kind=self.import_kind)
        if job.created_by_id != request.user.pk and not request.user.is_superuser:
            raise PermissionDenied
        return job

    def _job_url(self, job: ImportJob, view: str = "import_job") -> str:
        return reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_{view}", args=[job.pk])

    def _job_context(self, request, job: ImportJob) -> dict:
        finished_with_figures = job.status in (ImportJob.Status.SUCCEEDED, ImportJob.Status.FAILED)
        confirm_form = None
        if (
            job.phase == ImportJob.Phase.CHECK
            and job.status == ImportJob.Status.SUCCEEDED
            and job.created_by_id == request.user.pk
        ):
            confirm_form = ConfirmImportForm(initial={"job": job.pk})
        imported = job.phase == ImportJob.Phase.IMPORT and job.status == ImportJob.Status.SUCCEEDED
        return {
            "job": job,
            "result": import_job_result(job) if finished_with_figures else None,
            "confirm_form": confirm_form,
            "summary": import_job_summary(job) if imported else "",
            "file_name": job.file_name,
            "percent": str(job.percent),
            "status_url": self._job_url(job, "import_job_status"),
            "errors_url": self._job_url(job, "import_job_errors"),
            "import_url": reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_import"),
            "changelist_url": reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"),
            "poll_seconds": POLL_SECONDS,
            "historical_label": HISTORICAL_LABEL,
            "offers_historical": self.offers_historical,
            "opts": self.opts,
        }

    def _render(self, request, *, form=None, job: ImportJob | None = None):
        context = {
            **self.admin_site.each_context(request),
            "title": _("Import %(name)s") % {"name": self.opts.verbose_name_plural},
            "opts": self.opts,
            "form": form,
            "job": None,
            "result": None,
            "confirm_form": None,
            "columns": self.import_columns,
            "offers_historical": self.offers_historical,
            "historical_label": HISTORICAL_LABEL,
            "media": self.media + (form.media if form is not None else forms.Media()),
        }
        if job is not None:
            context |= self._job_context(request, job)
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.import_template_name, context)
