"""The admin's CSV upload for stores, members and orders, and the export beside it.

The upload calls the services the ``import_*`` commands call (``members.services.imports``), so a
file gives the same members, tiers and points wherever it is uploaded. Two steps:

1. **Check.** The file is kept under ``VAR_DIR/imports`` with a random name, remembered in the
   staff member's session, and imported with ``dry_run=True`` — everything is done, then rolled
   back — so the page shows what the import would do: the counts, the first rows with what happens
   to each, the points and tier changes it would cause, or every bad row with its line number.
2. **Import.** The kept file is imported for real in the mode chosen at the check (``historical``,
   ``HISTORICAL_LABEL``). It is checked again, since data may have changed in between: a file with
   any bad row imports nothing and the page shows the rows.

A large file is better imported with the command (a progress bar, no web request time limit).
Exports stay with django-import-export (``members.resources``).
"""

import secrets
import time
from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _
from import_export.admin import ExportMixin

from members.csv_import import CsvFileError
from members.resources import SpreadsheetCSV
from members.services.imports import HISTORICAL_HELP, HISTORICAL_LABEL, ImportResult

SHOWN_ROWS = 100  # rows listed in the check's table
KEPT_UPLOADS_SECONDS = 24 * 3600  # an upload not confirmed within a day is deleted
SESSION_KEY = "members_imports"  # token → the model it was uploaded for


def uploads_dir() -> Path:
    directory = Path(settings.VAR_DIR) / "imports"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


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
    token = forms.RegexField(regex=r"\A[0-9a-f]{32}\Z", widget=forms.HiddenInput)
    file_name = forms.CharField(max_length=255, widget=forms.HiddenInput)
    historical = forms.BooleanField(required=False, widget=forms.HiddenInput)


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

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path("import/", self.admin_site.admin_view(self.import_view), name="{}_{}_import".format(*info)),
            *super().get_urls(),
        ]

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

    # --- the view ---------------------------------------------------------------------------

    def import_view(self, request):
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
        historical = form.cleaned_data.get("historical", False)
        token = self._keep(request, upload)
        try:
            result = self._run(token, historical=historical, dry_run=True)
        except CsvFileError as exc:
            self._forget(request, token)
            form.add_error("import_file", exc)
            return self._render(request, form=form)
        confirm_form = None
        if result.ok:
            confirm_form = ConfirmImportForm(
                initial={"token": token, "file_name": upload.name[:255], "historical": historical}
            )
        else:
            self._forget(request, token)
        return self._render(request, result=result, confirm_form=confirm_form, file_name=upload.name)

    def _import_confirmed(self, request):
        form = ConfirmImportForm(request.POST)
        uploads = request.session.get(SESSION_KEY, {})
        if not form.is_valid() or uploads.get(form.cleaned_data["token"]) != self.opts.label_lower:
            messages.error(request, _("The uploaded file is no longer available: upload it again."))
            return HttpResponseRedirect(request.path)
        token, file_name = form.cleaned_data["token"], form.cleaned_data["file_name"]
        try:
            result = self._run(token, historical=form.cleaned_data["historical"], dry_run=False)
        except (CsvFileError, FileNotFoundError):
            messages.error(request, _("The uploaded file is no longer available: upload it again."))
            return HttpResponseRedirect(request.path)
        finally:
            self._forget(request, token)
        if not result.ok:
            messages.error(
                request, _("Nothing was imported: some rows are not valid. Correct them and upload the file again.")
            )
            return self._render(request, result=result, file_name=file_name)
        summary = _("Import finished: %(file)s. %(summary)s") % {"file": file_name, "summary": result.summary()}
        LogEntry.objects.create(
            user_id=request.user.pk,
            content_type_id=ContentType.objects.get_for_model(self.model).pk,
            object_repr=file_name[:200],
            action_flag=ADDITION,
            change_message=str(summary),
        )
        messages.success(request, summary)
        return HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"))

    def _render(self, request, *, form=None, result: ImportResult | None = None, confirm_form=None, file_name=""):
        context = {
            **self.admin_site.each_context(request),
            "title": _("Import %(name)s") % {"name": self.opts.verbose_name_plural},
            "opts": self.opts,
            "form": form,
            "result": result,
            "confirm_form": confirm_form,
            "file_name": file_name,
            "columns": self.import_columns,
            "offers_historical": self.offers_historical,
            "historical_label": HISTORICAL_LABEL,
            "media": self.media + (form.media if form is not None else forms.Media()),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.import_template_name, context)

    # --- the kept file ----------------------------------------------------------------------

    def _run(self, token: str, *, historical: bool, dry_run: bool) -> ImportResult:
        mode = {"historical": historical} if self.offers_historical else {}
        return self.import_service(
            file=uploads_dir() / token, dry_run=dry_run, show_rows=SHOWN_ROWS if dry_run else 0, **mode
        )

    def _keep(self, request, upload) -> str:
        directory = uploads_dir()
        stale = time.time() - KEPT_UPLOADS_SECONDS
        for old in directory.iterdir():
            if old.stat().st_mtime < stale:
                old.unlink(missing_ok=True)
        token = secrets.token_hex(16)
        with open(directory / token, "wb") as kept:
            for chunk in upload.chunks():
                kept.write(chunk)
        request.session[SESSION_KEY] = {**request.session.get(SESSION_KEY, {}), token: self.opts.label_lower}
        return token

    def _forget(self, request, token: str) -> None:
        (uploads_dir() / token).unlink(missing_ok=True)
        uploads = dict(request.session.get(SESSION_KEY, {}))
        if uploads.pop(token, None) is not None:
            request.session[SESSION_KEY] = uploads
