"""Admin: the staff to-do list of follow-up tasks.

Filter by store, status, due date and "mine"; the list shows overdue tasks in red. "Mark done"
(a row link, or the action for several) asks for the outcome and calls ``followup_complete``;
"cancel" calls ``followup_cancel``. Tasks come from triggers and campaigns; staff may also add one
by hand (``followup_add_by_hand``: the member's home store unless another is chosen).
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from campaigns.models import FollowUpTask
from campaigns.services.followups import followup_add_by_hand, followup_cancel, followup_complete
from members.admin.base import MemberRowsMixin, ModelAdmin

Status = FollowUpTask.Status


class MineFilter(admin.SimpleListFilter):
    title = _("assignee")
    parameter_name = "assignee"

    def lookups(self, request, model_admin):
        return [("me", _("Mine")), ("nobody", _("Unassigned"))]

    def queryset(self, request, queryset):
        if self.value() == "me":
            return queryset.filter(assignee=request.user)
        if self.value() == "nobody":
            return queryset.filter(assignee__isnull=True)
        return queryset


class OutcomeForm(forms.Form):
    outcome = forms.CharField(
        label=_("Outcome"),
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=_("What came of it: reached, not reachable, will come by on Saturday…"),
    )


@admin.register(FollowUpTask)
class FollowUpTaskAdmin(MemberRowsMixin, ModelAdmin):
    member_scoped = False  # a task belongs to its store (the workspace scopes "my tasks" by it)
    list_display = ("due", "member", "store", "reason", "assignee", "status", "campaign", "mark_done_link")
    list_filter = (
        MineFilter,
        "status",
        ("due_date", admin.DateFieldListFilter),
        ("store", admin.RelatedOnlyFieldListFilter),
    )
    list_select_related = ("member", "store", "assignee", "campaign")
    search_fields = ("member__mobile", "member__name", "reason")
    raw_id_fields = ("member", "campaign")
    actions = ["mark_done", "assign_to_me", "cancel"]
    readonly_fields = ("status", "completed_at", "completed_by", "created_at", "updated_at")
    fields = (
        "member",
        "store",
        "reason",
        "due_date",
        "assignee",
        "campaign",
        "status",
        "outcome",
        "completed_at",
        "completed_by",
        "created_at",
        "updated_at",
    )

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return (*self.readonly_fields, "outcome")
        return (*self.readonly_fields, "member", "campaign")

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "assignee":
            kwargs["queryset"] = get_user_model().objects.filter(is_staff=True, is_active=True)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        task = followup_add_by_hand(
            member=obj.member,
            reason=obj.reason,
            due_date=obj.due_date,
            store=obj.store,
            assignee=obj.assignee,
            campaign=obj.campaign,
        )
        # The admin goes on with ``obj`` (the change history, the redirect): make it the saved task.
        obj.pk = task.pk
        obj.refresh_from_db()

    @admin.display(description=_("due"), ordering="due_date")
    def due(self, obj):
        if obj.status == Status.OPEN and obj.due_date < timezone.localdate():
            return format_html('<strong style="color:#c62828">{}</strong>', obj.due_date)
        return obj.due_date

    @admin.display(description="")
    def mark_done_link(self, obj):
        if obj.status != Status.OPEN:
            return ""
        url = reverse("admin:campaigns_followuptask_done", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, _("Done…"))

    # --- marking done ---

    def get_urls(self):
        return [
            path(
                "<int:task_id>/done/",
                self.admin_site.admin_view(self.done_view),
                name="campaigns_followuptask_done",
            ),
            *super().get_urls(),
        ]

    def _complete(self, request, tasks, outcome: str) -> int:
        done = 0
        for task in tasks:
            try:
                followup_complete(task=task, outcome=outcome, actor=request.user)
                done += 1
            except ValidationError as exc:
                self.message_user(request, f"{task}: {'; '.join(exc.messages)}", messages.WARNING)
        return done

    def done_view(self, request, task_id: int):
        task = get_object_or_404(FollowUpTask.objects.select_related("member", "store"), pk=task_id)
        if not self.has_change_permission(request, task):
            raise PermissionDenied
        form = OutcomeForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            if self._complete(request, [task], form.cleaned_data["outcome"]):
                self.message_user(request, _("Marked done: %(task)s") % {"task": task}, messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:campaigns_followuptask_changelist"))
        return self._render_done(request, [task], form, action=False)

    @admin.action(description=_("Mark the selected tasks done…"))
    def mark_done(self, request, queryset):
        tasks = list(queryset.filter(status=Status.OPEN).select_related("member", "store"))
        if "apply" in request.POST:
            form = OutcomeForm(request.POST)
            if form.is_valid():
                count = self._complete(request, tasks, form.cleaned_data["outcome"])
                self.message_user(request, _("%(n)s tasks marked done.") % {"n": count}, messages.SUCCESS)
                return None
        else:
            form = OutcomeForm()
        return self._render_done(request, tasks, form, action=True)

    def _render_done(self, request, tasks, form, *, action: bool):
        context = {
            **self.admin_site.each_context(request),
            "title": _("Mark follow-up tasks done"),
            "opts": self.opts,
            "tasks": tasks,
            "form": form,
            "action": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/campaigns/followuptask/mark_done.html", context)

    @admin.action(description=_("Assign the selected tasks to me"))
    def assign_to_me(self, request, queryset):
        count = queryset.filter(status=Status.OPEN).update(assignee=request.user, updated_at=timezone.now())
        self.message_user(request, _("%(n)s tasks assigned to you.") % {"n": count}, messages.SUCCESS)

    @admin.action(description=_("Cancel the selected tasks"))
    def cancel(self, request, queryset):
        count = 0
        for task in queryset.filter(status=Status.OPEN):
            followup_cancel(task=task, actor=request.user)
            count += 1
        self.message_user(request, _("%(n)s tasks cancelled.") % {"n": count}, messages.SUCCESS)
