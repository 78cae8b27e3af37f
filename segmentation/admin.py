"""Admin: schemes with their segments and rules (editable), runs, member results, transitions
(read-only), the migration matrix between two runs, scheme previews and "recompute now".

Operators edit schemes; everything else is produced by recomputes and shown read-only
(``members.admin.base``: the read-only admin and the search by phone). Tables and explanations
on the change pages are templates under ``templates/admin/segmentation/``. Long work never runs
in a request: "recompute now" queues ``segment_recompute_task``.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from members.admin.base import MemberRowsMixin, ModelAdmin, ReadOnlyAdmin, TabularInline, render_fragment
from segmentation.models import MemberRfm, RfmRun, Scheme, Segment, SegmentRule, SegmentTransition
from segmentation.scoring import score_label
from segmentation.selectors import ABSENT, current_run, scheme_preview, segment_explain, segment_migration_matrix
from segmentation.services import scheme_activate
from segmentation.tasks import segment_recompute_task


def _queue_recompute(admin_instance, request) -> None:
    transaction.on_commit(segment_recompute_task.delay)
    admin_instance.message_user(
        request, _("A recompute has been queued; its run appears under RFM runs when it finishes."), messages.SUCCESS
    )


# --- Schemes ----------------------------------------------------------------------------------


class SegmentInline(TabularInline):
    model = Segment
    extra = 0
    fields = ("ordering", "slug", "name_zh", "name_en", "colour", "strategy")

    def get_formset(self, request, obj=None, **kwargs):
        kwargs.setdefault("widgets", {})["strategy"] = forms.Textarea(attrs={"rows": 2, "cols": 40})
        return super().get_formset(request, obj, **kwargs)

    def has_delete_permission(self, request, obj=None):
        # A segment a run has used stays (its history refers to it); rename it instead.
        if obj is not None and obj.runs.exists():
            return False
        return super().has_delete_permission(request, obj)


class SegmentRuleInline(TabularInline):
    model = SegmentRule
    extra = 0
    fields = ("priority", "kind", "r", "f", "m", "value", "segment")
    verbose_name_plural = _("rules (tried by priority; the first that holds gives the segment)")

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "segment":
            object_id = request.resolver_match.kwargs.get("object_id") if request.resolver_match else None
            kwargs["queryset"] = Segment.objects.filter(scheme_id=object_id) if object_id else Segment.objects.none()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Scheme)
class SchemeAdmin(ModelAdmin):
    list_display = ("name", "slug", "mode", "window_days", "is_active", "segment_count", "preview_link")
    list_filter = ("mode", "is_active")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("is_active", "preview_link")
    inlines = [SegmentInline, SegmentRuleInline]
    actions = ["activate", "recompute_now"]
    fieldsets = (
        (None, {"fields": ("name", "slug", "description", "is_active", "preview_link")}),
        (_("Scoring"), {"fields": ("mode", "window_days")}),
        (_("Thresholds mode"), {"fields": ("r_max_days", "f_min", "m_min")}),
        (_("Quintile mode"), {"fields": ("high_score",)}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(segments_total=Count("segments"))

    @admin.display(description=_("segments"), ordering="segments_total")
    def segment_count(self, obj):
        return getattr(obj, "segments_total", None)

    @admin.display(description=_("preview"))
    def preview_link(self, obj):
        if obj is None or obj.pk is None:
            return "—"
        url = reverse("admin:segmentation_scheme_preview", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, _("Preview segment sizes on current data"))

    def has_delete_permission(self, request, obj=None):
        if obj is not None and (obj.is_active or obj.runs.exists()):
            return False
        return super().has_delete_permission(request, obj)

    @admin.action(description=_("Make the selected scheme the active one"))
    def activate(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, _("Select exactly one scheme to activate."), messages.ERROR)
            return
        scheme = queryset.get()
        try:
            scheme_activate(scheme=scheme)
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
            return
        self.message_user(
            request,
            _("%(scheme)s is now active; members move to its segments at the next recompute.") % {"scheme": scheme},
            messages.SUCCESS,
        )

    @admin.action(description=_("Recompute now (queue a full run of the active scheme)"))
    def recompute_now(self, request, queryset):
        _queue_recompute(self, request)

    def get_urls(self):
        return [
            path(
                "<int:object_id>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name="segmentation_scheme_preview",
            ),
            *super().get_urls(),
        ]

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if request.method == "POST" and "_preview" in request.POST and object_id is not None:
            return self._preview_edits(request, object_id, form_url, extra_context)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def _preview_edits(self, request, object_id, form_url, extra_context):
        """ "Preview without saving": apply the submitted form (scheme, segments, rules) inside a
        transaction, measure the segment sizes, and roll everything back."""

        class Discard(Exception):
            pass

        try:
            with transaction.atomic():
                response = super().changeform_view(request, object_id, form_url, extra_context)
                if response.status_code != 302:  # the form has errors: show them, nothing was saved
                    return response
                scheme = Scheme.objects.get(pk=object_id)
                page = self._preview_page(request, scheme, unsaved=True)
                page.render()
                raise Discard(page)
        except Discard as discarded:
            # The change form queued a "changed successfully" message; nothing changed.
            list(messages.get_messages(request))
            return discarded.args[0]

    def preview_view(self, request, object_id):
        scheme = get_object_or_404(Scheme, pk=object_id)
        if not self.has_view_permission(request, scheme):
            raise PermissionDenied
        return self._preview_page(request, scheme, unsaved=False)

    def _preview_page(self, request, scheme, *, unsaved: bool):
        preview = scheme_preview(scheme=scheme)
        run = current_run()
        current_sizes = {}
        if run is not None and run.scheme_id == scheme.pk:
            current_sizes = {slug: stats["count"] for slug, stats in run.segment_stats.items()}
        rows = [{**segment, "current": current_sizes.get(segment["slug"])} for segment in preview["segments"]]
        context = {
            **self.admin_site.each_context(request),
            "title": _("Preview of %(scheme)s") % {"scheme": scheme},
            "scheme": scheme,
            "preview": preview,
            "rows": rows,
            "opts": self.opts,
            "original": scheme,
            "unsaved": unsaved,
        }
        return TemplateResponse(request, "admin/segmentation/scheme_preview.html", context)


# --- Runs -------------------------------------------------------------------------------------


class MatrixForm(forms.Form):
    from_run = forms.ModelChoiceField(
        label=_("from run"), queryset=RfmRun.objects.filter(status=RfmRun.Status.SUCCEEDED).select_related("scheme")
    )
    to_run = forms.ModelChoiceField(
        label=_("to run"), queryset=RfmRun.objects.filter(status=RfmRun.Status.SUCCEEDED).select_related("scheme")
    )


@admin.register(RfmRun)
class RfmRunAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "scheme",
        "as_of",
        "status",
        "is_current",
        "member_count",
        "buyer_count",
        "transition_count",
        "duration",
        "started_at",
    )
    list_filter = ("status", "scheme")
    list_select_related = ("scheme",)
    date_hierarchy = "started_at"
    fields = (
        "scheme",
        "as_of",
        "status",
        "is_current",
        "started_at",
        "finished_at",
        "duration",
        "chunks",
        "member_count",
        "buyer_count",
        "transition_count",
        "segment_table",
        "cut_point_table",
        "events_published_at",
        "error",
    )
    readonly_fields = fields

    @admin.display(description=_("per segment"))
    def segment_table(self, obj):
        rows = sorted(obj.segment_stats.items(), key=lambda item: -item[1]["count"])
        if not rows:
            return "—"
        return render_fragment("admin/segmentation/rfmrun/segment_table.html", {"rows": rows})

    @admin.display(description=_("cut points"))
    def cut_point_table(self, obj):
        cuts = obj.cut_points or {}
        if not cuts:
            params = obj.params or {}
            if params.get("mode") == "thresholds":
                return _("Thresholds: R ≤ %(r)s days, F ≥ %(f)s, M ≥ %(m)s") % {
                    "r": params.get("r_max_days"),
                    "f": params.get("f_min"),
                    "m": params.get("m_min"),
                }
            return "—"
        return render_fragment("admin/segmentation/rfmrun/cut_points.html", {"cuts": cuts})

    def get_urls(self):
        return [
            path("matrix/", self.admin_site.admin_view(self.matrix_view), name="segmentation_rfmrun_matrix"),
            path("recompute/", self.admin_site.admin_view(self.recompute_view), name="segmentation_rfmrun_recompute"),
            *super().get_urls(),
        ]

    def recompute_view(self, request):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_view_permission(request):
            raise PermissionDenied
        _queue_recompute(self, request)
        return HttpResponseRedirect(reverse("admin:segmentation_rfmrun_changelist"))

    def matrix_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = MatrixForm(request.GET or None)
        table = None
        if form.is_valid():
            data = form.cleaned_data
            table = _matrix_table(segment_migration_matrix(from_run=data["from_run"], to_run=data["to_run"]))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Migration matrix between two runs"),
            "form": form,
            "table": table,
            "opts": self.opts,
        }
        return TemplateResponse(request, "admin/segmentation/matrix.html", context)


def _matrix_table(matrix: dict) -> dict:
    cells = matrix["cells"]
    segments = matrix["segments"]

    def label(key):
        if key == ABSENT:
            return str(_("(not in run)"))
        if key is None:
            return str(_("(no segment)"))
        segment = segments.get(key)
        return f"{segment.name_zh} {segment.slug}" if segment else str(key)

    def order(key):
        if key in (None, ABSENT):
            return (1, 0, str(key))
        segment = segments.get(key)
        return (0, segment.ordering if segment else 0, key)

    sources = sorted({f for f, _t in cells}, key=order)
    targets = sorted({t for _f, t in cells}, key=order)
    return {
        "columns": [label(t) for t in targets],
        "rows": [
            {"label": label(f), "cells": (row := [cells.get((f, t), 0) for t in targets]), "total": sum(row)}
            for f in sources
        ],
    }


# --- Member results ---------------------------------------------------------------------------


class CurrentSegmentFilter(admin.SimpleListFilter):
    title = _("segment")
    parameter_name = "segment"

    def lookups(self, request, model_admin):
        run = current_run()
        scheme_filter = {"scheme_id": run.scheme_id} if run else {"scheme__is_active": True}
        segments = Segment.objects.filter(**scheme_filter)
        return [(segment.pk, f"{segment.name_zh} ({segment.slug})") for segment in segments]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(segment_id=self.value())
        return queryset


@admin.register(MemberRfm)
class MemberRfmAdmin(MemberRowsMixin, ReadOnlyAdmin):
    list_display = ("member", "segment", "recency_days", "frequency", "monetary", "scores", "as_of")
    list_filter = (CurrentSegmentFilter,)
    list_select_related = ("member", "segment", "run")
    search_fields = ("=member__mobile",)
    search_help_text = _("Mobile number, in any spelling.")
    mobile_search_only = True
    fields = (
        "member",
        "segment",
        "as_of",
        "recency_days",
        "first_order_days",
        "frequency",
        "monetary",
        "r_score",
        "f_score",
        "m_score",
        "run",
        "updated_at",
        "explanation",
    )
    readonly_fields = fields

    @admin.display(description=_("R / F / M"))
    def scores(self, obj):
        mode = (obj.run.params or {}).get("mode", "thresholds")
        return " / ".join(score_label(score, mode) or "—" for score in (obj.r_score, obj.f_score, obj.m_score))

    @admin.display(description=_("why this segment"))
    def explanation(self, obj):
        explanation = segment_explain(member=obj.member)
        if not explanation["computed"]:
            return explanation["message"]
        return render_fragment(
            "admin/segmentation/memberrfm/explanation.html",
            {"explanation": explanation, "matched": explanation["matched_rule"]},
        )


@admin.register(SegmentTransition)
class SegmentTransitionAdmin(MemberRowsMixin, ReadOnlyAdmin):
    list_display = ("created_at", "member", "from_segment", "to_segment", "source", "run")
    list_filter = ("source",)
    list_select_related = ("member", "from_segment", "to_segment", "run", "run__scheme")
    search_fields = ("=member__mobile",)
    mobile_search_only = True
    fields = ("created_at", "member", "from_segment", "to_segment", "source", "run")
    readonly_fields = fields
