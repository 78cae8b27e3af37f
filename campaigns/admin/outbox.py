"""Admin: the message outbox, read-only (messages are written by grants and triggers, delivered by
Celery), with what the channels reported back (delivered, first opened and clicked, counts);
"retry" gives failed or dead messages a new set of attempts (``outbox_requeue``) and queues
their delivery."""

from django.contrib import admin, messages
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _

from campaigns.models import OutboxMessage
from campaigns.services.outbox import outbox_requeue
from campaigns.tasks import outbox_deliver_soon
from members.admin.base import MemberRowsMixin, ReadOnlyAdmin, SuperuserOnlyMixin


@admin.register(OutboxMessage)
class OutboxMessageAdmin(SuperuserOnlyMixin, MemberRowsMixin, ReadOnlyAdmin):
    list_display = (
        "created_at",
        "member",
        "channel",
        "template",
        "status",
        "attempts",
        "sent_at",
        "delivered_at",
        "first_opened_at",
        "first_clicked_at",
        "error",
    )
    list_filter = ("status", "channel", "template")
    list_select_related = ("member",)
    search_fields = ("member__mobile", "dedupe_key", "template")
    date_hierarchy = "created_at"
    actions = ["retry"]
    fields = (
        "member",
        "channel",
        "template",
        "payload",
        "status",
        "attempts",
        "next_attempt_at",
        "claimed_at",
        "sent_at",
        "provider_message_id",
        "delivered_at",
        "first_opened_at",
        "open_count",
        "first_clicked_at",
        "click_count",
        "last_error",
        "dedupe_key",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

    @admin.display(description=_("last error"))
    def error(self, obj):
        return Truncator(obj.last_error).chars(60)

    @admin.action(description=_("Retry the selected failed or dead messages"))
    def retry(self, request, queryset):
        requeued = outbox_requeue(
            message_ids=queryset.filter(
                status__in=[OutboxMessage.Status.FAILED, OutboxMessage.Status.DEAD]
            ).values_list("pk", flat=True)
        )
        outbox_deliver_soon(requeued)
        self.message_user(request, _("%(n)s messages queued again.") % {"n": len(requeued)}, messages.SUCCESS)

    def get_actions(self, request):
        # ``retry`` changes rows: only for staff who may change messages (superusers, or by permission).
        actions = super().get_actions(request)
        if not request.user.has_perm("campaigns.change_outboxmessage"):
            actions.pop("retry", None)
        return actions
