"""Admin: triggers (edited by operators) and their firings (read-only history).

Saving a trigger and the activate/deactivate actions go through ``trigger_save`` and
``trigger_set_active``, which also drop the cached index of active triggers.
"""

from django.contrib import admin, messages
from django.db.models import Count, Q
from django.utils.translation import gettext_lazy as _

from campaigns.admin.choosers import segments_with_scheme
from campaigns.models import Trigger, TriggerFiring
from campaigns.services.triggers import trigger_save, trigger_set_active
from members import formatting
from members.admin.base import MemberRowsMixin, ModelAdmin, ReadOnlyAdmin


@admin.register(Trigger)
class TriggerAdmin(ModelAdmin):
    list_display = ("shown_name", "kind", "condition", "does", "cap", "is_active", "fired", "skipped")
    list_filter = ("kind", "is_active")
    list_select_related = ("segment", "coupon_template", "campaign")
    search_fields = ("name", "name_en")
    raw_id_fields = ("campaign",)
    actions = ["activate", "deactivate"]
    fieldsets = (
        (None, {"fields": (("name", "name_en"), ("description", "description_en"), "kind", "is_active")}),
        (
            _("When"),
            {
                "fields": (
                    "segment",
                    "inactivity_days",
                    "delay_days",
                    "birthday_days_before",
                    ("r_min_score", "r_max_score"),
                    ("f_min_score", "f_max_score"),
                    ("m_min_score", "m_max_score"),
                ),
                "description": _(
                    "Scores: 1–5 in quintile mode; in thresholds mode 1 is high (H) and 0 low (L), or, on a "
                    "dimension with a medium level, 2 high, 1 medium and 0 low. F high and M low in thresholds "
                    "mode: F at least 1 (2 with a medium level), M at most 0."
                ),
            },
        ),
        (
            _("What"),
            {
                "fields": (
                    "coupon_template",
                    ("message_template", "message_channel"),
                    ("create_followup", "followup_due_days"),
                    "followup_reason",
                    "campaign",
                )
            },
        ),
        (_("How often"), {"fields": (("cap_count", "cap_days"),)}),
    )

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                fired_count=Count("firings", filter=Q(firings__status=TriggerFiring.Status.FIRED)),
                skipped_count=Count("firings", filter=Q(firings__status=TriggerFiring.Status.SKIPPED)),
            )
        )

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        return segments_with_scheme(field) if db_field.name == "segment" else field

    @admin.display(description=_("name"), ordering="name")
    def shown_name(self, obj):
        return obj.display_name

    @admin.display(description=_("when"))
    def condition(self, obj):
        if obj.kind == Trigger.Kind.ENTERED_SEGMENT:
            return obj.segment.name if obj.segment_id else "—"
        if obj.kind == Trigger.Kind.INACTIVITY:
            return _("%(n)s days without a purchase") % {"n": obj.inactivity_days}
        if obj.kind == Trigger.Kind.AFTER_ORDER:
            text = _("%(n)s days after an order") % {"n": obj.delay_days}
            return f"{text} ({obj.segment.name})" if obj.segment_id else text
        if obj.kind == Trigger.Kind.BIRTHDAY:
            text = (
                _("%(n)s days before the birthday") % {"n": obj.birthday_days_before}
                if obj.birthday_days_before
                else _("on the birthday")
            )
            return f"{text} ({obj.segment.name})" if obj.segment_id else text
        signs = {"gte": "≥", "lte": "≤"}
        return ", ".join(
            f"{key[0].upper()} {signs[key.rsplit('__', 1)[1]]} {value}"
            for key, value in obj.pattern_conditions().items()
        )

    @admin.display(description=_("does"))
    def does(self, obj):
        parts = []
        if obj.coupon_template_id:
            parts.append(str(obj.coupon_template))
        if obj.message_template:
            parts.append(_("message %(t)s") % {"t": obj.message_template})
        if obj.create_followup:
            parts.append(_("follow-up"))
        if obj.campaign_id:
            parts.append(_("campaign %(c)s") % {"c": obj.campaign})
        return "; ".join(str(part) for part in parts) or "—"

    @admin.display(description=_("cap"))
    def cap(self, obj):
        if not obj.cap_count:
            return "—"
        return _("%(n)s per %(d)s days") % {"n": obj.cap_count, "d": obj.cap_days}

    @admin.display(description=_("fired"), ordering="fired_count")
    def fired(self, obj):
        return formatting.count(obj.fired_count)

    @admin.display(description=_("skipped"), ordering="skipped_count")
    def skipped(self, obj):
        return formatting.count(obj.skipped_count)

    def save_model(self, request, obj, form, change):
        trigger_save(trigger=obj)

    @admin.action(description=_("Activate the selected triggers"), permissions=["change"])
    def activate(self, request, queryset):
        count = trigger_set_active(trigger_ids=queryset.values_list("pk", flat=True), active=True)
        self.message_user(request, _("%(n)s triggers activated.") % {"n": count}, messages.SUCCESS)

    @admin.action(description=_("Deactivate the selected triggers"), permissions=["change"])
    def deactivate(self, request, queryset):
        count = trigger_set_active(trigger_ids=queryset.values_list("pk", flat=True), active=False)
        self.message_user(request, _("%(n)s triggers deactivated.") % {"n": count}, messages.SUCCESS)


@admin.register(TriggerFiring)
class TriggerFiringAdmin(MemberRowsMixin, ReadOnlyAdmin):
    list_display = ("created_at", "trigger", "member", "cause", "status", "due_at", "fired_at", "skip_reason")
    list_filter = ("status", "trigger")
    list_select_related = ("trigger", "member")
    search_fields = ("member__mobile", "cause_key")
    date_hierarchy = "created_at"
    raw_id_fields = ("member", "coupon", "message", "followup")

    @admin.display(description=_("cause"), ordering="cause_key")
    def cause(self, firing):
        kind, _sep, rest = firing.cause_key.partition(":")
        number = rest.split(":", 1)[0]
        if kind == "transition":
            return _("segment change #%(id)s") % {"id": number}
        if kind == "order":
            return _("order #%(id)s") % {"id": number}
        if kind == "lapse":
            return _("no purchase since order #%(id)s") % {"id": number}
        if kind == "pattern":
            return _("R/F/M pattern of run #%(id)s") % {"id": number}
        return firing.cause_key
