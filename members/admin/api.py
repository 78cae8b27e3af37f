"""Admin for the REST API: store API keys, top-up intents, idempotency records.

A new API key is created through ``store_api_key_create``; its full secret is shown once, on the
page that answers the form (never stored, never put in a message or a cookie). Afterwards a key
can be renamed, have its scopes changed, or be deactivated — the secret cannot be seen again.
Top-up intents and idempotency records are written by the API only, so they are read-only here.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from members.admin.base import (
    MemberRowsMixin,
    ModelAdmin,
    ReadOnlyAdmin,
    SuperuserOnlyMixin,
    add_service_errors,
    form_page,
)
from members.admin.columns import money_column
from members.models import ApiIdempotencyRecord, ApiScope, Store, StoreApiKey, TopUpIntent
from members.services.api_keys import clean_scopes, store_api_key_create, store_api_key_deactivate


class StoreApiKeyCreateForm(forms.Form):
    store = forms.ModelChoiceField(label=_("Store"), queryset=Store.objects.filter(is_active=True))
    name = forms.CharField(label=_("Name"), max_length=100, help_text=_("Which POS or system uses the key."))
    scopes = forms.MultipleChoiceField(label=_("Scopes"), choices=ApiScope.choices, widget=forms.CheckboxSelectMultiple)


class StoreApiKeyChangeForm(forms.ModelForm):
    class Meta:
        model = StoreApiKey
        fields = ("name", "scopes", "is_active")

    def clean_scopes(self):
        try:
            return clean_scopes(self.cleaned_data["scopes"])
        except ValidationError as exc:
            raise ValidationError(exc.messages) from None


@admin.register(StoreApiKey)
class StoreApiKeyAdmin(ModelAdmin):
    form = StoreApiKeyChangeForm
    list_display = ("name", "store", "prefix", "scopes", "is_active", "last_used_at", "created_at")
    list_filter = ("is_active",)
    list_select_related = ("store",)
    search_fields = ("name", "prefix", "store__code", "store__name")
    readonly_fields = ("store", "prefix", "last_used_at", "created_by", "created_at", "updated_at")
    fields = ("store", "name", "prefix", "scopes", "is_active", "last_used_at", "created_by", "created_at")
    actions = ["deactivate"]

    def has_delete_permission(self, request, obj=None):
        return False  # deactivate instead: the key's history stays readable

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        context = {
            "title": _("Create a store API key"),
            "back_url": reverse("admin:members_storeapikey_changelist"),
            "back_label": StoreApiKey._meta.verbose_name_plural.capitalize(),
        }
        form = StoreApiKeyCreateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                key, secret = store_api_key_create(
                    store=form.cleaned_data["store"],
                    name=form.cleaned_data["name"],
                    scopes=form.cleaned_data["scopes"],
                    actor=request.user,
                )
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                self.log_addition(request, key, [{"added": {}}])
                template = "admin/members/storeapikey/created.html"
                response = form_page(self, request, template=template, key=key, secret=secret, **context)
                response["Cache-Control"] = "no-store"
                return response
        return form_page(self, request, form=form, submit_label=_("Create key"), **context)

    @admin.action(description=_("Deactivate the selected keys"))
    def deactivate(self, request, queryset):
        count = 0
        for key in queryset.filter(is_active=True):
            store_api_key_deactivate(api_key=key)
            count += 1
        self.message_user(request, _("%(count)s keys deactivated.") % {"count": count}, messages.SUCCESS)


@admin.register(TopUpIntent)
class TopUpIntentAdmin(MemberRowsMixin, ReadOnlyAdmin):
    list_display = (
        "out_trade_no",
        "member",
        "amount_shown",
        "bonus_shown",
        "status",
        "transaction_id",
        "paid_at",
        "created_at",
    )
    amount_shown = money_column(TopUpIntent, "amount")
    bonus_shown = money_column(TopUpIntent, "bonus")
    list_filter = ("status",)
    list_select_related = ("member",)
    search_fields = ("out_trade_no", "transaction_id", "member__mobile")
    readonly_fields = (
        "out_trade_no",
        "member",
        "amount",
        "bonus",
        "offer_code",
        "status",
        "prepay_id",
        "transaction_id",
        "expires_at",
        "paid_at",
        "wallet_entry",
        "created_at",
        "updated_at",
    )
    fields = readonly_fields


@admin.register(ApiIdempotencyRecord)
class ApiIdempotencyRecordAdmin(SuperuserOnlyMixin, ReadOnlyAdmin):
    list_display = ("key", "store", "member", "operation", "response_status", "created_at")
    list_select_related = ("store", "member")
    search_fields = ("key",)
    readonly_fields = ("store", "member", "key", "operation", "request_hash", "response_status", "response_body")
    fields = readonly_fields
