"""Members' interactions, read-only: what the mini-program and the tills reported."""

from django.contrib import admin

from members.admin.base import MemberRowsMixin, ReadOnlyAdmin
from members.models import Interaction


@admin.register(Interaction)
class InteractionAdmin(MemberRowsMixin, ReadOnlyAdmin):
    list_display = ("occurred_at", "member", "kind", "source", "store", "detail")
    list_filter = ("kind", "source", "occurred_at")
    list_select_related = ("member", "store")
    date_hierarchy = "occurred_at"
    mobile_search_only = True  # a table of tens of millions of rows: found by member, never scanned for text
    show_full_result_count = False
    fields = ("member", "kind", "source", "occurred_at", "received_at", "store", "event_id", "detail")
    readonly_fields = fields
