"""Admin: schemes with their segments and rules (editable), runs, member results, transitions
(read-only), the migration matrix between two runs, scheme previews and "recompute now".

Operators edit schemes; everything else is produced by recomputes and shown read-only
(``members.admin.base``: the read-only admin and the search by phone). Tables and explanations
on the change pages are templates under ``templates/admin/segmentation/``. Long work never runs
in a request: "recompute now" queues ``segment_recompute_task``.
"""

from decimal import Decimal

from celery import current_app
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count
from django.http import HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from members.admin.base import MemberRowsMixin, ModelAdmin, ReadOnlyAdmin, TabularInline, render_fragment
from members.formatting import count, duration, local_name, yuan
from members.models import Interaction
from segmentation.clv_selectors import clv_default_discount_rate, clv_default_horizon_days, last_clv_run
from segmentation.models import ClvRun, MemberClv, MemberRfm, RfmRun, Scheme, Segment, SegmentRule, SegmentTransition
from segmentation.scoring import SchemeSpec, score_label
from segmentation.selectors import (
    ABSENT,
    current_run,
    scheme_preview_changes,
    segment_explain,
    segment_migration_matrix,
)
from segmentation.services import scheme_activate
from segmentation.tasks import segment_recompute_task


def _level_text(spec: SchemeSpec, dim: str, score: int | None) -> str:
    """A stored score as operators read it: 高/中/低 (high/medium/low) in thresholds mode, 1–5 else."""
    if score is None:
        return "—"
    if spec.mode != "thresholds":
        return str(score)
    return str({"H": _("high"), "M": _("medium"), "L": _("low")}[spec.level(dim, score)])


def segment_name(segment: Segment | None) -> str:
    """A segment as operators know it: its name in the page's language (never its slug)."""
    if segment is None:
        return str(_("(no segment)"))
    return local_name(segment.name_zh, segment.name_en, segment.slug)


def _error_texts(errors) -> list[str]:
    """The messages of an ``AdminErrorList`` (error lists of the form and inlines, and strings)."""
    texts = []
    for item in errors:
        texts.extend([str(item)] if isinstance(item, str) else [str(text) for text in item])
    return list(dict.fromkeys(texts))


def _queue_recompute(admin_instance, request) -> None:
    transaction.on_commit(segment_recompute_task.delay)
    admin_instance.message_user(
        request, _("A recompute has been queued; its run appears under RFM runs when it finishes."), messages.SUCCESS
    )


# --- Schemes ----------------------------------------------------------------------------------


class SegmentInline(TabularInline):
    model = Segment
    extra = 0
    hide_title = True  # the row's title would repeat its fields
    fields = ("ordering", "slug", "name_zh", "name_en", "colour", "strategy", "strategy_en")

    def get_formset(self, request, obj=None, **kwargs):
        widgets = kwargs.setdefault("widgets", {})
        for name in ("strategy", "strategy_en"):
            widgets[name] = forms.Textarea(attrs={"rows": 2, "cols": 28})
        return super().get_formset(request, obj, **kwargs)

    def has_delete_permission(self, request, obj=None):
        # A segment a run has used stays (its history refers to it); rename it instead.
        if obj is not None and obj.runs.exists():
            return False
        return super().has_delete_permission(request, obj)


class SegmentRuleInline(TabularInline):
    model = SegmentRule
    extra = 0
    hide_title = True  # the row's title would repeat its fields, with the segment's slug
    fields = (
        "priority",
        "kind",
        "r",
        "f",
        "m",
        "value",
        "tag",
        "segment",
        # conditions on the CLV scores, rarely used: last, so the segment stays in view
        "p_alive_below",
        "p_alive_at_least",
        "clv_at_least",
    )
    verbose_name_plural = _("rules (tried by priority; the first that holds gives the segment)")
    # Narrow conditions, wide choices: the kind and the segment read in full on a laptop screen.
    WIDTHS = {"priority": "4.5rem", "r": "4rem", "f": "4rem", "m": "4rem", "value": "4.5rem", "tag": "7rem"}
    MIN_WIDTHS = {"kind": "13rem", "segment": "11rem"}

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        fields = formset.form.base_fields
        for name, width in self.WIDTHS.items():
            if name in fields:
                fields[name].widget.attrs["style"] = f"width:{width};min-width:{width}"
        for name, width in self.MIN_WIDTHS.items():
            if name in fields:
                fields[name].widget.attrs["style"] = f"min-width:{width}"
        return formset

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "segment":
            object_id = request.resolver_match.kwargs.get("object_id") if request.resolver_match else None
            kwargs["queryset"] = Segment.objects.filter(scheme_id=object_id) if object_id else Segment.objects.none()
            field = super().formfield_for_foreignkey(db_field, request, **kwargs)
            field.label_from_instance = segment_name
            return field
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class SchemeForm(forms.ModelForm):
    activity_kinds = forms.TypedMultipleChoiceField(
        label=_("interactions that count for R"),
        choices=Interaction.Kind.choices,
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=Scheme._meta.get_field("activity_kinds").help_text,
    )

    class Meta:
        model = Scheme
        fields = ("activity_kinds",)  # the admin adds the fieldsets' others


@admin.register(Scheme)
class SchemeAdmin(ModelAdmin):
    form = SchemeForm
    list_display = ("scheme_name", "mode", "window_days", "is_active", "segment_count", "preview_link")
    list_filter = ("mode", "is_active")
    search_fields = ("name", "name_en", "slug")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("is_active", "preview_link")
    inlines = [SegmentInline, SegmentRuleInline]
    actions = ["activate", "recompute_now"]
    change_form_template = "admin/segmentation/scheme/change_form.html"
    fieldsets = (
        (None, {"fields": ("name", "name_en", "slug", "description", "description_en", "is_active", "preview_link")}),
        (_("Scoring"), {"fields": ("mode", "window_days", "f_window_days", "m_window_days", "activity_kinds")}),
        (
            _("Thresholds mode"),
            {
                "fields": (("r_max_days", "r_mid_days"), ("f_min", "f_mid_min"), ("m_min", "m_mid_min")),
                "description": _(
                    "Each of R, F, M is high (高) or low (低); give a medium limit too and it is high, medium (中) "
                    "or low, and rules can say H, M or L for it."
                ),
            },
        ),
        (_("Quintile mode"), {"fields": ("high_score",)}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(segments_total=Count("segments"))

    @admin.display(description=_("name"), ordering="name")
    def scheme_name(self, obj):
        return str(obj)  # in the page's language

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
        view = self.admin_site.admin_view
        return [
            path("<int:object_id>/preview/", view(self.preview_view), name="segmentation_scheme_preview"),
            path(
                "<int:object_id>/preview/live/",
                view(self.live_preview_view),
                name="segmentation_scheme_live_preview",
            ),
            path("<int:object_id>/activate/", view(self.activate_view), name="segmentation_scheme_activate"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            "live_preview_url": reverse("admin:segmentation_scheme_live_preview", args=[object_id]),
            "activate_url": reverse("admin:segmentation_scheme_activate", args=[object_id]),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    # --- the builder's live preview ---------------------------------------------------------

    def live_preview_view(self, request, object_id):
        """The panel of segment sizes on the change form. GET: the scheme as saved. POST (htmx, the
        whole unsaved form): the edits are applied inside a transaction, measured, rolled back."""
        scheme = get_object_or_404(Scheme, pk=object_id)
        if not self.has_view_permission(request, scheme):
            raise PermissionDenied
        if request.method != "POST" or not self.has_change_permission(request, scheme):
            return self._panel(request, scheme, unsaved=False)

        class Discard(Exception):
            pass

        try:
            with transaction.atomic():
                response = super().changeform_view(request, str(object_id))
                if response.status_code != 302:  # the form has errors: say so, nothing was saved
                    errors = response.context_data.get("errors") or []
                    page = TemplateResponse(
                        request,
                        "admin/segmentation/scheme/preview_panel.html",
                        {"invalid": True, "errors": _error_texts(errors)},
                    )
                    page.render()
                    raise Discard(page)
                page = self._panel(request, Scheme.objects.get(pk=object_id), unsaved=True)
                page.render()
                raise Discard(page)
        except Discard as discarded:
            list(messages.get_messages(request))  # the change form's "changed successfully": nothing changed
            return discarded.args[0]

    def _panel(self, request, scheme, *, unsaved: bool):
        preview = scheme_preview_changes(scheme=scheme)
        context = {"preview": preview, "scheme": scheme, "unsaved": unsaved, "invalid": False}
        return TemplateResponse(request, "admin/segmentation/scheme/preview_panel.html", context)

    def activate_view(self, request, object_id):
        """Activate one scheme, after a confirmation page showing what it would do to members."""
        scheme = get_object_or_404(Scheme, pk=object_id)
        if not self.has_change_permission(request, scheme):
            raise PermissionDenied
        change_url = reverse("admin:segmentation_scheme_change", args=[scheme.pk])
        if request.method == "POST":
            try:
                scheme_activate(scheme=scheme)
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)
                return HttpResponseRedirect(change_url)
            self.message_user(
                request,
                _("%(scheme)s is now active; members move to its segments at the next recompute.") % {"scheme": scheme},
                messages.SUCCESS,
            )
            if "_recompute" in request.POST:
                _queue_recompute(self, request)
            return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Activate %(scheme)s?") % {"scheme": scheme},
            "scheme": scheme,
            "preview": scheme_preview_changes(scheme=scheme),
            "opts": self.opts,
            "original": scheme,
            "change_url": change_url,
        }
        return TemplateResponse(request, "admin/segmentation/scheme/activate.html", context)

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
        context = {
            **self.admin_site.each_context(request),
            "title": _("Preview of %(scheme)s") % {"scheme": scheme},
            "scheme": scheme,
            "preview": scheme_preview_changes(scheme=scheme),
            "opts": self.opts,
            "original": scheme,
            "unsaved": unsaved,
        }
        return TemplateResponse(request, "admin/segmentation/scheme_preview.html", context)


# --- Runs -------------------------------------------------------------------------------------


def run_label(run: RfmRun) -> str:
    """A run told apart from the others: its scheme, as-of date and finish time (local)."""
    finished = timezone.localtime(run.finished_at).strftime("%Y-%m-%d %H:%M") if run.finished_at else "—"
    return str(
        _("as of %(as_of)s · finished %(finished)s · %(scheme)s (#%(id)s)")
        % {"scheme": run.scheme, "as_of": run.as_of.isoformat(), "finished": finished, "id": run.pk}
    )


class RunChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return run_label(obj)


def _succeeded_runs():
    return RfmRun.objects.filter(status=RfmRun.Status.SUCCEEDED).select_related("scheme").order_by("-started_at", "-id")


class MatrixForm(forms.Form):
    from_run = RunChoiceField(label=_("from run"), queryset=_succeeded_runs())
    to_run = RunChoiceField(label=_("to run"), queryset=_succeeded_runs())


@admin.register(RfmRun)
class RfmRunAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "scheme",
        "as_of",
        "status",
        "is_current",
        "members_shown",
        "buyers_shown",
        "transitions_shown",
        "duration_shown",
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
        "duration_shown",
        "chunks",
        "members_shown",
        "buyers_shown",
        "transitions_shown",
        "segment_table",
        "cut_point_table",
        "events_published_at",
        "error",
    )
    readonly_fields = fields

    @admin.display(description=_("members"), ordering="member_count")
    def members_shown(self, obj):
        return count(obj.member_count)

    @admin.display(description=_("bought in the window"), ordering="buyer_count")
    def buyers_shown(self, obj):
        return count(obj.buyer_count)

    @admin.display(description=_("segment changes"), ordering="transition_count")
    def transitions_shown(self, obj):
        return count(obj.transition_count)

    @admin.display(description=_("duration"), ordering="duration")
    def duration_shown(self, obj):
        return duration(obj.duration)

    @admin.display(description=_("per segment"))
    def segment_table(self, obj):
        stats = obj.segment_stats or {}
        if not stats:
            return "—"
        ids = [value.get("segment_id") for value in stats.values() if value.get("segment_id")]
        segments = {segment.pk: segment for segment in Segment.objects.filter(pk__in=ids)}
        by_slug = {segment.slug: segment for segment in Segment.objects.filter(scheme_id=obj.scheme_id)}
        total = sum(value["count"] for value in stats.values()) or None
        rows = []
        for slug, value in sorted(stats.items(), key=lambda item: -item[1]["count"]):
            segment = segments.get(value.get("segment_id")) or by_slug.get(slug)
            rows.append(
                {
                    "name": segment_name(segment) if (segment or not slug) else slug,
                    "colour": segment.colour if segment else "#9e9e9e",
                    "count": value["count"],
                    "share": value["count"] / total if total else None,
                    "recency": _decimal(value.get("avg_recency_days")),
                    "frequency": _decimal(value.get("avg_frequency")),
                    "monetary": value.get("avg_monetary"),
                }
            )
        return render_fragment("admin/segmentation/rfmrun/segment_table.html", {"rows": rows})

    @admin.display(description=_("cut points"))
    def cut_point_table(self, obj):
        cuts = obj.cut_points or {}
        if not cuts:
            params = obj.params or {}
            if params.get("mode") == "thresholds":
                text = _("Thresholds: R ≤ %(r)s days, F ≥ %(f)s, M ≥ %(m)s") % {
                    "r": params.get("r_max_days"),
                    "f": params.get("f_min"),
                    "m": yuan(params.get("m_min")),
                }
                if any(params.get(key) is not None for key in ("r_mid_days", "f_mid_min", "m_mid_min")):
                    text += str(_("; medium: R ≤ %(r)s days, F ≥ %(f)s, M ≥ %(m)s")) % {
                        "r": params.get("r_mid_days") or "—",
                        "f": params.get("f_mid_min") or "—",
                        "m": yuan(params["m_mid_min"]) if params.get("m_mid_min") else "—",
                    }
                return text
            return "—"
        return render_fragment(
            "admin/segmentation/rfmrun/cut_points.html",
            {"cuts": {**cuts, "m": [yuan(value) for value in cuts.get("m") or []]}},
        )

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
        """The migration matrix between two runs; without a choice, between the last two."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.GET:
            form = MatrixForm(request.GET)
        else:
            latest = list(_succeeded_runs()[:2])
            initial = {"from_run": latest[1].pk, "to_run": latest[0].pk} if len(latest) == 2 else None
            form = MatrixForm(initial) if initial else MatrixForm()
        table = None
        if form.is_bound and form.is_valid():
            data = form.cleaned_data
            table = _matrix_table(segment_migration_matrix(from_run=data["from_run"], to_run=data["to_run"]))
            table["from_label"] = run_label(data["from_run"])
            table["to_label"] = run_label(data["to_run"])
        context = {
            **self.admin_site.each_context(request),
            "title": _("Migration matrix between two runs"),
            "form": form,
            "table": table,
            "opts": self.opts,
        }
        return TemplateResponse(request, "admin/segmentation/matrix.html", context)


def _decimal(value):
    return None if value in (None, "") else Decimal(str(value))


def _matrix_table(matrix: dict) -> dict:
    """The matrix as rows (from) and columns (to), named in the page's language, each cell with
    its share of the row (for the heat map) and whether it is the diagonal (members who stayed)."""
    cells = matrix["cells"]
    segments = matrix["segments"]

    def label(key):
        if key == ABSENT:
            return str(_("(not in run)"))
        if key is None:
            return str(_("(no segment)"))
        segment = segments.get(key)
        return segment_name(segment) if segment else str(key)

    def same(source, target) -> bool:
        if source in (None, ABSENT) or target in (None, ABSENT):
            return source == target
        a, b = segments.get(source), segments.get(target)
        return a is not None and b is not None and a.slug == b.slug

    def order(key):
        if key in (None, ABSENT):
            return (1, 0, str(key))
        segment = segments.get(key)
        return (0, segment.ordering if segment else 0, str(key))

    sources = sorted({f for f, _t in cells}, key=order)
    targets = sorted({t for _f, t in cells}, key=order)
    rows = []
    for source in sources:
        values = [cells.get((source, target), 0) for target in targets]
        total = sum(values)
        rows.append(
            {
                "label": label(source),
                "cells": [
                    {
                        "count": value,
                        "share": value / total if total else 0,
                        "alpha": f"{(0.08 + 0.6 * value / total) if total and value else 0:.2f}",
                        "stayed": same(source, target),
                    }
                    for value, target in zip(values, targets, strict=True)
                ],
                "total": total,
            }
        )
    moved = sum(cell["count"] for row in rows for cell in row["cells"] if not cell["stayed"])
    everyone = sum(row["total"] for row in rows)
    return {
        "columns": [label(t) for t in targets],
        "rows": rows,
        "moved": moved,
        "members": everyone,
        "moved_share": moved / everyone if everyone else None,
    }


# --- Member results ---------------------------------------------------------------------------


class CurrentSegmentFilter(admin.SimpleListFilter):
    title = _("segment")
    parameter_name = "segment"

    def lookups(self, request, model_admin):
        run = current_run()
        scheme_filter = {"scheme_id": run.scheme_id} if run else {"scheme__is_active": True}
        segments = Segment.objects.filter(**scheme_filter)
        return [(segment.pk, segment_name(segment)) for segment in segments]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(segment_id=self.value())
        return queryset


@admin.register(MemberRfm)
class MemberRfmAdmin(MemberRowsMixin, ReadOnlyAdmin):
    list_display = ("member", "segment_shown", "recency_days", "frequency", "monetary_shown", "scores", "as_of")
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

    @admin.display(description=_("segment"), ordering="segment__ordering")
    def segment_shown(self, obj):
        return segment_name(obj.segment) if obj.segment_id else "—"

    @admin.display(description=_("M (yuan)"), ordering="monetary")
    def monetary_shown(self, obj):
        return yuan(obj.monetary)

    @admin.display(description=_("R / F / M"))
    def scores(self, obj):
        spec = SchemeSpec.from_params(obj.run.params) if obj.run.params else None
        if spec is None:
            return " / ".join(
                score_label(score, "thresholds") or "—" for score in (obj.r_score, obj.f_score, obj.m_score)
            )
        return " / ".join(
            _level_text(spec, dim, score) for dim, score in (("r", obj.r_score), ("f", obj.f_score), ("m", obj.m_score))
        )

    @admin.display(description=_("why this segment"))
    def explanation(self, obj):
        explanation = segment_explain(member=obj.member)
        if not explanation["computed"]:
            return explanation["message"]
        names = {segment.slug: segment_name(segment) for segment in Segment.objects.filter(scheme_id=obj.run.scheme_id)}
        rules = [{**rule, "segment_name": names.get(rule["segment"], rule["segment"])} for rule in explanation["rules"]]
        matched = next(
            (
                named
                for named, rule in zip(rules, explanation["rules"], strict=True)
                if rule is explanation["matched_rule"]
            ),
            None,
        )
        return render_fragment(
            "admin/segmentation/memberrfm/explanation.html",
            {"explanation": explanation, "rules": rules, "matched": matched},
        )


@admin.register(SegmentTransition)
class SegmentTransitionAdmin(MemberRowsMixin, ReadOnlyAdmin):
    list_display = ("created_at", "member", "from_segment_shown", "to_segment_shown", "source", "run")
    list_filter = ("source",)
    list_select_related = ("member", "from_segment", "to_segment", "run", "run__scheme")
    search_fields = ("=member__mobile",)
    mobile_search_only = True
    fields = ("created_at", "member", "from_segment_shown", "to_segment_shown", "source", "run")
    readonly_fields = fields

    @admin.display(description=_("from"))
    def from_segment_shown(self, obj):
        return segment_name(obj.from_segment) if obj.from_segment_id else "—"

    @admin.display(description=_("to"))
    def to_segment_shown(self, obj):
        return segment_name(obj.to_segment) if obj.to_segment_id else "—"


# --- Customer lifetime value ------------------------------------------------------------------

# Queued by name: the task's module imports PyMC, which the web process never loads.
CLV_FIT_TASK = "segmentation.clv_tasks.clv_fit_task"
CLV_PHASES = [phase for phase, _label in ClvRun.Phase.choices]


def clv_progress(run: ClvRun) -> dict:
    """Where a run is: its step, the share of steps done, and whether to keep asking."""
    done = run.status != ClvRun.Status.RUNNING
    index = CLV_PHASES.index(run.phase) if run.phase in CLV_PHASES else 0
    return {
        "run": run,
        "running": not done,
        "percent": 100 if done else round(100 * index / (len(CLV_PHASES) - 1)),
        "step": index,
        "steps": len(CLV_PHASES) - 1,
        "url": reverse("admin:segmentation_clvrun_progress", args=[run.pk]),
    }


class ClvFitForm(forms.Form):
    as_of = forms.DateField(label=_("as of"), required=False, help_text=_("Empty: today."))
    horizon_days = forms.IntegerField(
        label=_("CLV horizon (days)"), min_value=1, max_value=3650, initial=clv_default_horizon_days, required=False
    )
    discount_rate = forms.DecimalField(
        label=_("annual discount rate"),
        min_value=Decimal("0"),
        max_value=Decimal("1"),
        max_digits=5,
        decimal_places=4,
        initial=clv_default_discount_rate,
        required=False,
    )


@admin.register(ClvRun)
class ClvRunAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "as_of",
        "status",
        "phase",
        "is_current",
        "members_shown",
        "log_likelihood_shown",
        "fit_seconds_shown",
        "started_at",
    )
    list_filter = ("status",)
    fields = (
        "as_of",
        "status",
        "progress",
        "is_current",
        "started_at",
        "finished_at",
        "members_shown",
        "repeat_members_shown",
        "horizon_days",
        "discount_rate",
        "parameter_table",
        "log_likelihood_shown",
        "fit_seconds_shown",
        "seconds_shown",
        "calibration_table",
        "error",
    )
    readonly_fields = fields
    change_list_template = "admin/segmentation/clvrun/change_list.html"

    @admin.display(description=_("members fitted"), ordering="member_count")
    def members_shown(self, obj):
        return count(obj.member_count)

    @admin.display(description=_("members with repeat purchases"))
    def repeat_members_shown(self, obj):
        return count(obj.repeat_member_count)

    @admin.display(description=_("log-likelihood (BG/NBD)"), ordering="log_likelihood")
    def log_likelihood_shown(self, obj):
        return "—" if obj.log_likelihood is None else f"{obj.log_likelihood:,.2f}"

    @admin.display(description=_("fitting time"), ordering="fit_seconds")
    def fit_seconds_shown(self, obj):
        return duration(obj.fit_seconds)

    @admin.display(description=_("total time"))
    def seconds_shown(self, obj):
        return duration(obj.seconds)

    @admin.display(description=_("progress"))
    def progress(self, obj):
        return render_fragment("admin/segmentation/clvrun/progress.html", clv_progress(obj))

    @admin.display(description=_("fitted parameters"))
    def parameter_table(self, obj):
        if not obj.params:
            return "—"
        return render_fragment("admin/segmentation/clvrun/parameters.html", {"params": obj.params})

    @admin.display(description=_("calibration (holdout)"))
    def calibration_table(self, obj):
        if not (obj.calibration or {}).get("groups"):
            return "—"
        return render_fragment("admin/segmentation/clvrun/calibration.html", {"calibration": obj.calibration})

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("fit/", view(self.fit_view), name="segmentation_clvrun_fit"),
            path("<int:object_id>/progress/", view(self.progress_view), name="segmentation_clvrun_progress"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "fit_form": ClvFitForm(),
            "can_fit": request.user.has_perm("segmentation.add_clvrun"),
            "last_run": last_clv_run(),
        }
        return super().changelist_view(request, extra_context)

    def fit_view(self, request):
        """Queue a run (as of, horizon and discount rate from the form) and open its page, which
        shows its progress until it ends."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm("segmentation.add_clvrun"):
            raise PermissionDenied
        form = ClvFitForm(request.POST)
        if not form.is_valid():
            for errors in form.errors.values():
                for error in errors:
                    self.message_user(request, error, messages.ERROR)
            return HttpResponseRedirect(reverse("admin:segmentation_clvrun_changelist"))
        data = form.cleaned_data
        run = ClvRun.objects.create(
            as_of=data["as_of"] or timezone.localdate(),
            started_at=timezone.now(),
            horizon_days=data["horizon_days"] or clv_default_horizon_days(),
            discount_rate=clv_default_discount_rate() if data["discount_rate"] is None else data["discount_rate"],
        )
        run_id = run.pk
        transaction.on_commit(lambda: current_app.signature(CLV_FIT_TASK, kwargs={"run_id": run_id}).apply_async())
        self.message_user(request, _("A CLV run has been queued; this page shows its progress."), messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:segmentation_clvrun_change", args=[run.pk]))

    def progress_view(self, request, object_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        run = get_object_or_404(ClvRun, pk=object_id)
        return HttpResponse(render_fragment("admin/segmentation/clvrun/progress.html", clv_progress(run)))


@admin.register(MemberClv)
class MemberClvAdmin(MemberRowsMixin, ReadOnlyAdmin):
    list_display = (
        "member",
        "p_alive_shown",
        "frequency",
        "recency_days",
        "age_days",
        "expected_purchases_90_shown",
        "expected_spend",
        "clv_shown",
    )
    list_select_related = ("member",)
    mobile_search_only = True
    ordering = ("-clv",)

    @admin.display(description=_("P(alive)"), ordering="p_alive")
    def p_alive_shown(self, obj):
        return f"{obj.p_alive:.0%}"

    @admin.display(description=_("expected purchases, 90 days"), ordering="expected_purchases_90")
    def expected_purchases_90_shown(self, obj):
        return f"{obj.expected_purchases_90:.2f}"

    @admin.display(description=_("CLV"), ordering="clv")
    def clv_shown(self, obj):
        return yuan(obj.clv)
