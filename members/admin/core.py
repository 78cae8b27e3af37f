"""Admin for stores, members and orders, with the CSV import and export of ``members.admin.imports``.

Staff look members up by phone: the member and order searches normalise a mobile number in any
spelling and match it exactly. Orders and refunds are money history recorded by services, so the
admin shows them read-only; new orders come in through the import (``members.services.imports``).
"""

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from members.admin.base import (
    MemberRowsMixin,
    ModelAdmin,
    ReadOnlyAdmin,
    ReadOnlyPermissions,
    TabularInline,
    add_service_errors,
    form_page,
)
from members.admin.columns import money_column
from members.admin.imports import CsvImportExportMixin
from members.admin.products import OrderLineInline
from members.mobile import normalize_mobile
from members.models import Member, Order, Refund, Store
from members.resources import MemberResource, OrderResource
from members.selectors import (
    member_balances,
    member_order_summary,
    member_recent_orders,
    member_search,
    order_search,
)
from members.services.imports import (
    MEMBER_COLUMNS,
    ORDER_COLUMNS,
    STORE_COLUMNS,
    members_import,
    orders_import,
    stores_import,
)
from members.services.members import member_register
from members.services.privacy import member_block, member_data_export, member_erase, member_unblock

BLOCK_PERMISSION = "members.block_member"
ERASE_PERMISSION = "members.erase_member"

RECENT_ORDERS = 20


# --- stores -------------------------------------------------------------------------------


@admin.register(Store)
class StoreAdmin(CsvImportExportMixin, ModelAdmin):
    import_service = staticmethod(stores_import)
    import_columns = STORE_COLUMNS
    import_permissions = ("add", "change")  # a known code with another name or city is updated
    list_display = ("code", "name", "city", "is_active")
    list_filter = ("city", "is_active")
    search_fields = ("code", "name", "city")
    readonly_fields = ("created_at", "updated_at")
    fields = (
        "code",
        "name",
        "city",
        "is_active",
        "top_up_max_amount",
        "wallet_max_balance",
        "created_at",
        "updated_at",
    )


# --- members ------------------------------------------------------------------------------


class MemberAdminForm(forms.ModelForm):
    # Longer than the stored 11 digits: staff may type +86 138-0013-8000.
    mobile = forms.CharField(
        label=_("mobile"),
        max_length=32,
        help_text=_("Any spelling (+86 138-0013-8000, 8613800138000); stored as 11 digits."),
    )

    class Meta:
        model = Member
        fields = ("mobile", "name", "gender", "birthday", "registered_at", "channel", "home_store")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "registered_at" in self.fields and self.instance.pk is None:
            self.fields["registered_at"].initial = timezone.now

    def clean_mobile(self):
        mobile = normalize_mobile(self.cleaned_data["mobile"])
        if Member.objects.filter(mobile=mobile).exclude(pk=self.instance.pk).exists():
            raise ValidationError(_("A member with this mobile number already exists."), code="duplicate")
        return mobile


class MemberEraseForm(forms.Form):
    confirm = forms.BooleanField(
        label=_("I understand: the member's personal data is erased for good"),
        help_text=_("Name, mobile number, birthday and WeChat link are erased; orders and ledgers stay, anonymised."),
    )


@admin.register(Member)
class MemberAdmin(CsvImportExportMixin, ModelAdmin):
    form = MemberAdminForm
    resource_classes = [MemberResource]
    import_service = staticmethod(members_import)
    import_columns = MEMBER_COLUMNS
    offers_historical = True
    list_display = ("mobile", "name", "gender", "channel", "home_store", "tier", "registered_at")
    list_select_related = ("home_store", "tier")
    list_filter = ("home_store", "channel", ("registered_at", admin.DateFieldListFilter), "tier", "is_active")
    search_fields = ("mobile", "name")  # shows the search box; member_search does the work
    search_help_text = _("A mobile number in any spelling, its first digits, or part of a name.")
    show_full_result_count = False
    autocomplete_fields = ("home_store",)
    # Tiers change through the tiers service (history, permission): admin:members_tierchange_set.
    # Referrals are made at registration with a code (referral_register), never by editing.
    # Blocking and erasure are actions (``members.services.privacy``), never a field edit.
    readonly_fields = (
        "tier",
        "referrer",
        "referral_code",
        "openid",
        "is_active",
        "erased_at",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("mobile", "name", "gender", "birthday")}),
        (
            _("Membership"),
            {
                "fields": (
                    "registered_at",
                    "channel",
                    "home_store",
                    "tier",
                    "referrer",
                    "referral_code",
                    "openid",
                    "is_active",
                    "erased_at",
                )
            },
        ),
        (_("Record"), {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
    )

    actions = ("block_members", "unblock_members", "export_personal_data", "erase_personal_data")

    def get_search_results(self, request, queryset, search_term):
        return member_search(term=search_term, queryset=queryset), False

    # --- blocking, PIPL export and erasure (``members.services.privacy``) -----------------------

    def has_block_permission(self, request) -> bool:
        return request.user.has_perm(BLOCK_PERMISSION)

    def has_erase_permission(self, request) -> bool:
        return request.user.has_perm(ERASE_PERMISSION)

    @admin.action(description=_("Block the selected members"), permissions=["block"])
    def block_members(self, request, queryset):
        count = member_block(member_ids=queryset.values_list("pk", flat=True))
        self.message_user(request, _("Blocked %(count)d member(s).") % {"count": count}, messages.SUCCESS)

    @admin.action(description=_("Unblock the selected members"), permissions=["block"])
    def unblock_members(self, request, queryset):
        count = member_unblock(member_ids=queryset.values_list("pk", flat=True))
        self.message_user(
            request,
            _("Unblocked %(count)d member(s); erased members stay blocked.") % {"count": count},
            messages.SUCCESS,
        )

    def _one(self, request, queryset) -> Member | None:
        members = list(queryset[:2])
        if len(members) != 1:
            self.message_user(request, _("Select exactly one member."), messages.ERROR)
            return None
        return members[0]

    @admin.action(description=_("Export the personal data of the selected member (JSON)"), permissions=["erase"])
    def export_personal_data(self, request, queryset):
        member = self._one(request, queryset)
        if member is None:
            return None
        document = member_data_export(member_id=member.pk)
        response = HttpResponse(
            json.dumps(document, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2),
            content_type="application/json; charset=utf-8",
        )
        response["Content-Disposition"] = f'attachment; filename="member-{member.pk}-data.json"'
        return response

    @admin.action(description=_("Erase the personal data of the selected member…"), permissions=["erase"])
    def erase_personal_data(self, request, queryset):
        member = self._one(request, queryset)
        if member is None:
            return None
        return HttpResponseRedirect(reverse("admin:members_member_erase", args=[member.pk]))

    def get_urls(self):
        view = self.admin_site.admin_view(self.erase_view)
        return [path("<int:member_id>/erase/", view, name="members_member_erase"), *super().get_urls()]

    def erase_view(self, request, member_id: int):
        """The confirm page of an erasure; its POST erases (irreversible, idempotent)."""
        if not self.has_erase_permission(request):
            raise PermissionDenied
        member = self.get_object(request, str(member_id))
        if member is None:
            raise PermissionDenied
        back_url = reverse("admin:members_member_changelist")
        form = MemberEraseForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                member_erase(member=member)
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                self.message_user(
                    request, _("Erased the personal data of member %(id)s.") % {"id": member.pk}, messages.SUCCESS
                )
                return HttpResponseRedirect(back_url)
        return form_page(
            self,
            request,
            form=form,
            title=_("Erase the personal data of %(member)s") % {"member": member},
            summary=_(
                "This cannot be undone. The member can no longer log in or be served; their orders, points and "
                "wallet history stay, anonymised, so the brand's figures do not change. A wallet holding money "
                "the member paid in must be refunded first."
            ),
            submit_label=_("Erase for good"),
            back_url=back_url,
            back_label=Member._meta.verbose_name_plural.capitalize(),
        )

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        # A new member registers through the service: referral code, member_registered event.
        member = member_register(
            mobile=obj.mobile,
            name=obj.name,
            gender=obj.gender,
            birthday=obj.birthday,
            registered_at=obj.registered_at,
            channel=obj.channel,
            home_store=obj.home_store,
        )
        for field in Member._meta.concrete_fields:
            setattr(obj, field.attname, getattr(member, field.attname))
        obj._state.adding = False

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk is not None:
            summary = member_order_summary(member_id=obj.pk)
            context.update(
                {
                    "order_summary": summary,
                    "recent_orders": member_recent_orders(member_id=obj.pk, limit=RECENT_ORDERS)
                    if summary.count
                    else [],
                    "all_orders_url": reverse("admin:members_order_changelist") + f"?member__id__exact={obj.pk}",
                    "balances": member_balances(member_id=obj.pk),
                    "points_entries_url": reverse("admin:members_pointsentry_changelist") + f"?q={obj.mobile}",
                    "wallet_entries_url": reverse("admin:members_walletentry_changelist") + f"?q={obj.mobile}",
                }
            )
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)


# --- orders -------------------------------------------------------------------------------


class RefundInline(ReadOnlyPermissions, TabularInline):
    model = Refund
    fields = ("external_id", "amount", "refunded_at", "reason", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Order)
class OrderAdmin(CsvImportExportMixin, MemberRowsMixin, ReadOnlyAdmin):
    """Read-only: orders and refunds are recorded by services (and the import), never edited.
    Store staff see the orders of their stores' members (``MemberRowsMixin``)."""

    resource_classes = [OrderResource]
    import_service = staticmethod(orders_import)
    import_columns = ORDER_COLUMNS
    offers_historical = True
    list_display = ("external_id", "member", "store", "paid_at", "amount_shown", "refunded_amount_shown", "status")
    amount_shown = money_column(Order, "amount")
    refunded_amount_shown = money_column(Order, "refunded_amount")
    list_select_related = ("member", "store")
    list_filter = ("status", "store")
    date_hierarchy = "paid_at"
    search_fields = ("external_id", "member__mobile")  # shows the search box; order_search does the work
    search_help_text = _("An order id, or the member's mobile number in any spelling.")
    fields = ("external_id", "member", "store", "paid_at", "amount", "refunded_amount", "status", "created_at")
    inlines = (OrderLineInline, RefundInline)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("member", "store")

    def get_search_results(self, request, queryset, search_term):
        return order_search(term=search_term, queryset=queryset), False
