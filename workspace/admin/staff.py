"""Who works where, and the record of what staff looked at.

- ``StoreStaff`` — a user's stores, edited inline on the store page and on the user page (by
  operators: it needs the model's permissions; store managers see them read-only).
- ``StaffAccess`` — the audit of revealed mobile numbers and counter look-ups
  (``members.services.staff``): a list no one can add to, change or delete from, filtered by kind
  and searched by the member's mobile number (the member is shown masked).
"""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from unfold.forms import AdminPasswordChangeForm, UserChangeForm, UserCreationForm

from members.admin.base import MemberRowsMixin, ModelAdmin, ReadOnlyAdmin, TabularInline
from members.admin.core import StoreAdmin
from members.mobile import mask_mobile
from members.models import StaffAccess, Store, StoreStaff
from workspace.admin.permissions import TranslatedPermissionsMixin

User = get_user_model()


class StoreStaffOfStoreInline(TabularInline):
    model = StoreStaff
    fk_name = "store"
    fields = ("user",)
    raw_id_fields = ("user",)
    extra = 0
    verbose_name = _("staff member")
    verbose_name_plural = _("staff of this store")


class StoresOfUserInline(TabularInline):
    model = StoreStaff
    fk_name = "user"
    fields = ("store",)
    autocomplete_fields = ("store",)
    extra = 0
    verbose_name = _("store")
    verbose_name_plural = _("stores (store managers and staff see their members)")


admin.site.unregister(Store)


@admin.register(Store)
class StaffedStoreAdmin(StoreAdmin):
    inlines = (StoreStaffOfStoreInline,)


admin.site.unregister(User)


@admin.register(User)
class StaffUserAdmin(TranslatedPermissionsMixin, UserAdmin, ModelAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    change_password_form = AdminPasswordChangeForm
    inlines = (StoresOfUserInline,)


@admin.register(StaffAccess)
class StaffAccessAdmin(MemberRowsMixin, ReadOnlyAdmin):
    list_display = ("created_at", "user", "kind", "via", "member_masked")
    list_filter = ("kind", ("created_at", admin.DateFieldListFilter))
    list_select_related = ("user", "member")
    search_fields = ("=member__mobile",)
    search_help_text = _("The member's mobile number, in any spelling.")
    mobile_search_only = True
    fields = ("created_at", "user", "kind", "via", "member_masked")
    readonly_fields = fields
    actions = None

    @admin.display(description=_("member"), ordering="member__mobile")
    def member_masked(self, access):
        url = reverse("admin:members_member_change", args=[access.member_id])
        return format_html('<a href="{}">{}</a>', url, mask_mobile(access.member.mobile))
