"""The audit log in the admin: every recorded change, newest first, filtered by what was changed,
who changed it and when, each with its fields before and after. Nobody adds, changes or deletes an
entry here (nor in the database: the event tables are append-only).

Operators and analysts read it — whoever sees every store (``members.view_all_stores``, which
those roles have), so that it needs no permission of its own in ``members.roles`` — and anyone
given ``audit.view_auditlogentry``. Store managers and staff do not.
"""

import json
from decimal import Decimal

from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import models
from django.template.loader import render_to_string
from django.utils.formats import date_format
from django.utils.timezone import localtime
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from pghistory.core import event_models
from unfold.contrib.filters.admin import RangeDateTimeFilter

from audit.models import AuditLogEntry
from members.admin.base import ReadOnlyAdmin

BRAND_WIDE = "members.view_all_stores"  # operators, analysts and superusers (members.roles)
ACTIONS = {
    "created": _("created"),
    "changed": _("changed"),
    "deleted": _("deleted"),
    "adjusted": _("adjusted"),
    "entered by staff": _("entered by staff"),
    "role added": _("role added"),
    "role removed": _("role removed"),
}
SHOWS_BEFORE = {"deleted", "role removed"}  # the row as it was; for the others, as it became
ABSENT = object()  # the side of a new or removed row that has no value
HIDDEN = {"id"}  # the row's id is shown as the object


def audit_reader(request) -> bool:
    """Whether the request's user may read the audit log (once per request)."""
    if not hasattr(request, "_audit_reader"):
        user = request.user
        # (permissions are cached on the user: no query of its own on every admin page)
        request._audit_reader = user.has_perm("audit.view_auditlogentry") or user.has_perm(BRAND_WIDE)
    return request._audit_reader


class AuditedModelFilter(admin.SimpleListFilter):
    """What was changed: one audited table (the query then reads only its events)."""

    title = _("what")
    parameter_name = "model"

    def lookups(self, request, model_admin):
        return sorted(
            ((model._meta.label, model._meta.verbose_name) for model in event_models()), key=lambda item: str(item[1])
        )

    def queryset(self, request, queryset):
        label = self.value()
        if label in {model._meta.label for model in event_models()}:
            return queryset.across(apps.get_model(label))
        return queryset


class ActorFilter(admin.SimpleListFilter):
    """Who changed it: a staff user."""

    title = _("who")
    parameter_name = "user"

    def lookups(self, request, model_admin):
        staff = get_user_model().objects.filter(is_staff=True).order_by("username")
        return [(str(user.pk), user.get_username()) for user in staff]

    def queryset(self, request, queryset):
        if self.value() and self.value().isdigit():
            return queryset.filter(user_id=int(self.value()))
        return queryset


class WhenFilter(RangeDateTimeFilter):
    """When: a range of times (the event's own time)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.title = _("time of the change")


def event_model(entry):
    return apps.get_model(entry.pgh_model)


def fields_by_column(model) -> dict:
    """An event table's fields, by the names its rows carry (``tier_id``)."""
    return {field.attname: field for field in model._meta.fields}


def field_name(field) -> str:
    """A field's name; a relation named only by its column (a role's ``user`` and ``group``) by
    the related model's name."""
    if field.is_relation and str(field.verbose_name) == field.name.replace("_", " "):
        return str(field.related_model._meta.verbose_name)
    return str(field.verbose_name)


def shown(value, field=None) -> str:
    if value is None or value == "":
        return "—"
    if field is not None and field.choices:
        return str(dict(field.flatchoices).get(value, value))
    if isinstance(field, models.DecimalField) and isinstance(value, int | float | str):
        return str(Decimal(str(value)).quantize(Decimal(1).scaleb(-field.decimal_places)))
    if value is True:
        return gettext("Yes")
    if value is False:
        return gettext("No")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def change_rows(entry) -> list[tuple[str, str, str, bool]]:
    """(field, before, after, is a code) of an entry: the changed fields of a change; every field
    of a new row (after) or of a removed one (before)."""
    fields = fields_by_column(event_model(entry))
    data = entry.pgh_data or {}
    if entry.pgh_label == "changed" and entry.pgh_diff:
        items = [(key, before, after) for key, (before, after) in entry.pgh_diff.items()]
    else:
        if entry.pgh_label in SHOWS_BEFORE:
            items = [(key, value, ABSENT) for key, value in data.items()]
        else:
            items = [(key, ABSENT, value) for key, value in data.items()]
    rows = []
    for key, before, after in items:
        if key in HIDDEN or key.startswith("pgh_"):
            continue
        field = fields.get(key)
        rows.append(
            (
                field_name(field) if field else key,
                "" if before is ABSENT else shown(before, field),
                "" if after is ABSENT else shown(after, field),
                isinstance(field, models.SlugField),  # a code, shown as one
            )
        )
    return rows


@admin.register(AuditLogEntry)
class AuditLogEntryAdmin(ReadOnlyAdmin):
    list_display = ("when", "actor", "action", "target", "changes")
    list_filter = (AuditedModelFilter, ActorFilter, ("pgh_created_at", WhenFilter))
    list_filter_submit = True
    ordering = ("-pgh_created_at", "-pgh_id")
    list_per_page = 50
    actions = None
    fields = ("when", "actor", "action", "target", "url", "changes")
    readonly_fields = fields

    def get_queryset(self, request):
        return AuditLogEntry.objects.all()

    def has_module_permission(self, request):
        return audit_reader(request)

    def has_view_permission(self, request, obj=None):
        return audit_reader(request)

    @admin.display(description=_("time of the change"), ordering="pgh_created_at")
    def when(self, entry):
        return date_format(localtime(entry.pgh_created_at), "Y-m-d H:i:s")

    @admin.display(description=_("who"))
    def actor(self, entry):
        context = entry.pgh_context or {}
        return context.get("username") or gettext("system")

    @admin.display(description=_("action"))
    def action(self, entry):
        return ACTIONS.get(entry.pgh_label, entry.pgh_label)

    @admin.display(description=_("what"))
    def target(self, entry):
        return f"{event_model(entry)._meta.verbose_name} #{entry.pgh_obj_id}"

    @admin.display(description=_("page"))
    def url(self, entry):
        return (entry.pgh_context or {}).get("url") or "—"

    @admin.display(description=_("before and after"))
    def changes(self, entry):
        return render_to_string("admin/audit/changes.html", {"rows": change_rows(entry)})
