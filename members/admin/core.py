"""Admin for stores, members and orders, with import and export through django-import-export.

Staff look members up by phone: the member and order searches normalise a mobile number in any
spelling and match it exactly. Orders and refunds are money history recorded by services, so the
admin shows them read-only; new orders come in through the import, which calls ``order_record``.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from import_export.admin import ImportExportMixin

from members.mobile import normalize_mobile
from members.models import Member, Order, Refund, Store
from members.resources import MemberResource, OrderResource, SpreadsheetCSV
from members.selectors import (
    member_balances,
    member_order_summary,
    member_recent_orders,
    member_search,
    order_search,
)
from members.services.members import member_register

RECENT_ORDERS = 20


class AllOrNothingImportExportMixin(ImportExportMixin):
    """Import with preview and confirm; a file with any bad row imports nothing.

    django-import-export rolls an import back on validation errors only when asked to
    (``rollback_on_validation_errors``); the preview refuses to confirm a file with bad rows, but
    the data can change between preview and confirm, so the confirm step asks too, and shows the
    bad rows again instead of a success message.
    """

    import_formats = [SpreadsheetCSV]
    export_formats = [SpreadsheetCSV]
    import_template_name = "admin/members/import.html"

    #: Model permissions an import needs (an import that can update rows needs "change" too).
    import_permissions: tuple[str, ...] = ("add",)

    def has_import_permission(self, request):
        opts = self.model._meta
        return all(
            request.user.has_perm(f"{opts.app_label}.{action}_{opts.model_name}") for action in self.import_permissions
        )

    def has_export_permission(self, request):
        # django-import-export allows any staff user by default; an export is a way of viewing.
        return self.has_view_permission(request)

    def get_import_data_kwargs(self, **kwargs):
        kwargs = super().get_import_data_kwargs(**kwargs)
        kwargs["rollback_on_validation_errors"] = True
        return kwargs

    def process_result(self, result, request):
        if not (result.has_errors() or result.has_validation_errors()):
            return super().process_result(result, request)
        messages.error(
            request, _("Nothing was imported: some rows are not valid. Correct them and upload the file again.")
        )
        form_class = self.get_import_form_class(request)
        form = form_class(self.get_import_formats(), self.get_import_resource_classes(request))
        context = self.get_import_context_data()
        context.update(self.admin_site.each_context(request))
        context.update(
            {
                "title": _("Import"),
                "form": form,
                "opts": self.model._meta,
                "media": self.media + form.media,
                "result": result,
                "fields_list": [],
                "import_error_display": self.import_error_display,
            }
        )
        request.current_app = self.admin_site.name
        return TemplateResponse(request, [self.import_template_name], context)


# --- stores -------------------------------------------------------------------------------


@admin.register(Store)
class StoreAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "city", "is_active")
    list_filter = ("city", "is_active")
    search_fields = ("code", "name", "city")
    readonly_fields = ("created_at", "updated_at")
    fields = ("code", "name", "city", "is_active", "created_at", "updated_at")


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


@admin.register(Member)
class MemberAdmin(AllOrNothingImportExportMixin, admin.ModelAdmin):
    form = MemberAdminForm
    resource_classes = [MemberResource]
    import_permissions = ("add", "change")
    list_display = ("mobile", "name", "gender", "channel", "home_store", "tier", "registered_at")
    list_select_related = ("home_store", "tier")
    list_filter = ("home_store", "channel", ("registered_at", admin.DateFieldListFilter), "tier")
    search_fields = ("mobile", "name")  # shows the search box; member_search does the work
    search_help_text = _("A mobile number in any spelling, its first digits, or part of a name.")
    show_full_result_count = False
    autocomplete_fields = ("home_store",)
    # Tiers change through the tiers service (history, permission): admin:members_tierchange_set.
    # Referrals are made at registration with a code (referral_register), never by editing.
    readonly_fields = ("tier", "referrer", "referral_code", "openid", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("mobile", "name", "gender", "birthday")}),
        (
            _("Membership"),
            {"fields": ("registered_at", "channel", "home_store", "tier", "referrer", "referral_code", "openid")},
        ),
        (_("Record"), {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
    )

    def get_search_results(self, request, queryset, search_term):
        return member_search(term=search_term, queryset=queryset), False

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


class RefundInline(admin.TabularInline):
    model = Refund
    fields = ("external_id", "amount", "refunded_at", "reason", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Order)
class OrderAdmin(AllOrNothingImportExportMixin, admin.ModelAdmin):
    """Read-only: orders and refunds are recorded by services (and the import), never edited."""

    resource_classes = [OrderResource]
    list_display = ("external_id", "member", "store", "paid_at", "amount", "refunded_amount", "status")
    list_select_related = ("member", "store")
    list_filter = ("status", "store")
    date_hierarchy = "paid_at"
    search_fields = ("external_id", "member__mobile")  # shows the search box; order_search does the work
    search_help_text = _("An order id, or the member's mobile number in any spelling.")
    show_full_result_count = False
    fields = ("external_id", "member", "store", "paid_at", "amount", "refunded_amount", "status", "created_at")
    inlines = (RefundInline,)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("member", "store")

    def get_search_results(self, request, queryset, search_term):
        return order_search(term=search_term, queryset=queryset), False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
