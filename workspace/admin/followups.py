"""My tasks: the follow-up task list as staff of a store see it.

``campaigns.admin.followups.FollowUpTaskAdmin`` is replaced by ``StaffFollowUpTaskAdmin``: store
staff and managers see the tasks of their stores and those assigned to them
(``workspace.selectors.followups_in_scope``), open ones by default, due first, each with the
member's 360 one click away (masked mobile). Marking a task done checks the same scope.
"""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from campaigns.admin.followups import FollowUpTaskAdmin, MineFilter
from campaigns.models import FollowUpTask
from members.mobile import mask_mobile
from workspace.selectors import PERSONAL_DATA_PERMISSION, followups_in_scope

Status = FollowUpTask.Status
ALL = "all"


class StatusFilter(admin.SimpleListFilter):
    """Open tasks unless another status (or all) is chosen."""

    title = _("status")
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [*Status.choices, (ALL, _("All"))]

    def value(self):
        return super().value() or Status.OPEN

    def queryset(self, request, queryset):
        if self.value() == ALL:
            return queryset
        return queryset.filter(status=self.value())

    def choices(self, changelist):
        for value, label in self.lookup_choices:
            yield {
                "selected": self.value() == str(value),
                "query_string": changelist.get_query_string({self.parameter_name: value}),
                "display": label,
            }


admin.site.unregister(FollowUpTask)


@admin.register(FollowUpTask)
class StaffFollowUpTaskAdmin(FollowUpTaskAdmin):
    list_display = ("due", "member_link", "store", "reason", "assignee", "status", "campaign", "mark_done_link")
    list_filter = (
        StatusFilter,
        MineFilter,
        ("due_date", admin.DateFieldListFilter),
        ("store", admin.RelatedOnlyFieldListFilter),
    )
    ordering = ("due_date", "id")
    show_full_result_count = False

    def get_queryset(self, request):
        return followups_in_scope(user=request.user, queryset=super().get_queryset(request))

    @admin.display(description=_("member"), ordering="member__mobile")
    def member_link(self, task):
        return self._member_link(task.member, with_name=True)

    @admin.display(description=_("member"), ordering="member__mobile")
    def member_link_without_name(self, task):
        return self._member_link(task.member, with_name=False)

    def _member_link(self, member, *, with_name: bool):
        label = mask_mobile(member.mobile)
        if with_name and member.name:
            label = f"{label} {member.name}"
        return format_html('<a href="{}">{}</a>', reverse("admin:members_member_change", args=[member.pk]), label)

    def _member_field(self, request) -> str:
        return "member_link" if request.user.has_perm(PERSONAL_DATA_PERMISSION) else "member_link_without_name"

    def get_list_display(self, request):
        field = self._member_field(request)
        return tuple(field if name == "member_link" else name for name in super().get_list_display(request))

    # The change page shows the member as the list does, not by their full mobile number.
    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if obj is None:
            return fields
        return tuple(self._member_field(request) if name == "member" else name for name in fields)

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return fields if obj is None else (*fields, self._member_field(request))

    def done_view(self, request, task_id: int):
        if not self.get_queryset(request).filter(pk=task_id).exists():
            raise PermissionDenied
        return super().done_view(request, task_id)
