"""Admin: stored value. Wallets and their ledger are read-only; money moves only through two staff
forms (top up, refund a top-up) that call the wallet services.

Each form carries an idempotency key generated when the page is rendered (a hidden field), so a
double submit — or the browser's "resend" — moves money once. Both forms need a custom permission
(``members.top_up_wallet`` / ``members.refund_wallet``); without it the page answers 403.

The top-up form pays money in. A bonus comes from a top-up offer (``campaigns`` replaces this admin
with one whose form offers the member's offers, ``campaigns.admin.wallet``); a bonus outside any
offer is a staff adjustment, so the form shows the free ``bonus`` field only to those who may adjust
balances (``members.adjust_points``, as for points adjustments).
"""

import uuid
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Exists, OuterRef
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _

from members.admin.base import MemberMobileField, MemberRowsMixin, ReadOnlyAdmin, add_service_errors, form_page
from members.admin.columns import money_column
from members.formatting import yuan
from members.models import Member, Wallet, WalletEntry
from members.money import MAX_AMOUNT
from members.selectors import wallet_restricted_bonuses
from members.services.points import ADJUST_PERMISSION
from members.services.wallet import wallet_refund_top_up, wallet_top_up

TOP_UP_PERMISSION = "members.top_up_wallet"
REFUND_PERMISSION = "members.refund_wallet"
ZERO = Decimal("0.00")


def _new_key(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


class WalletTopUpForm(forms.Form):
    mobile = MemberMobileField(label=_("Member mobile"))
    amount_paid = forms.DecimalField(
        label=_("Amount paid"), max_digits=14, decimal_places=2, min_value=Decimal("0.01"), max_value=MAX_AMOUNT
    )
    bonus = forms.DecimalField(
        label=_("Bonus outside any offer"),
        max_digits=14,
        decimal_places=2,
        min_value=ZERO,
        max_value=MAX_AMOUNT,
        initial=ZERO,
        required=False,
        help_text=_("A staff adjustment: leave 0 for none."),
    )
    reason = forms.CharField(label=_("Reason"), max_length=200)
    reference = forms.CharField(label=_("Reference"), max_length=100, required=False)
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=100)

    def __init__(self, *args, may_adjust: bool = False, **kwargs):
        """``may_adjust``: the user may give a bonus outside any offer (else the field is left out)."""
        super().__init__(*args, **kwargs)
        if not may_adjust:
            del self.fields["bonus"]


class WalletTopUpRefundForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=200)
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=100)


@admin.register(Wallet)
class WalletAdmin(MemberRowsMixin, ReadOnlyAdmin):
    list_display = ("member", "principal_shown", "bonus_shown", "total", "updated_at")
    list_select_related = ("member",)
    search_fields = ("member__mobile",)
    fields = ("member", "principal", "bonus", "restricted", "total", "created_at", "updated_at", "money_actions")
    readonly_fields = fields
    actions = None

    principal_shown = money_column(Wallet, "principal")
    bonus_shown = money_column(Wallet, "bonus")

    @admin.display(description=_("total"))
    def total(self, wallet: Wallet):
        return yuan(wallet.total)

    @admin.display(description=_("of the bonus, for some products only"))
    def restricted(self, wallet: Wallet):
        bonuses = wallet_restricted_bonuses(wallet_id=wallet.pk)
        if not bonuses:
            return "—"
        return format_html_join(
            mark_safe("<br>"),
            "{} {} {}",
            ((yuan(bonus.remaining), _("for"), bonus.restriction.describe()) for bonus in bonuses),
        )

    @admin.display(description=_("stored value"))
    def money_actions(self, wallet: Wallet):
        top_up_url = reverse("admin:members_wallet_top_up") + f"?member={wallet.member_id}"
        entries_url = reverse("admin:members_walletentry_changelist") + f"?wallet__id__exact={wallet.pk}"
        return format_html(
            '<a class="button" href="{}">{}</a> <a href="{}">{}</a>',
            top_up_url,
            _("Top up this wallet"),
            entries_url,
            _("Ledger entries"),
        )

    def get_urls(self):
        view = self.admin_site.admin_view(self.top_up_view)
        return [path("top-up/", view, name="members_wallet_top_up"), *super().get_urls()]

    def top_up_view(self, request):
        if not request.user.has_perm(TOP_UP_PERMISSION):
            raise PermissionDenied
        if request.method == "POST":
            form = self.top_up_form(request, data=request.POST)
            if form.is_valid():
                data = form.cleaned_data
                try:
                    entry = self.top_up(request, data)
                except ValidationError as exc:
                    add_service_errors(form, exc)
                else:
                    self.message_user(
                        request,
                        _("Topped up %(member)s: principal %(paid)s, bonus %(bonus)s (entry %(entry)s).")
                        % {
                            "member": data["mobile"],
                            "paid": entry.principal_delta,
                            "bonus": entry.bonus_delta,
                            "entry": entry.pk,
                        },
                        messages.SUCCESS,
                    )
                    return HttpResponseRedirect(reverse("admin:members_wallet_change", args=[entry.wallet_id]))
        else:
            member = Member.objects.filter(pk=request.GET.get("member") or None).first()
            form = self.top_up_form(
                request,
                member=member,
                initial={"mobile": member.mobile if member else "", "idempotency_key": _new_key("admin-top-up")},
            )
        return form_page(
            self,
            request,
            form=form,
            title=_("Top up a wallet"),
            submit_label=_("Top up"),
            back_url=reverse("admin:members_wallet_changelist"),
            back_label=Wallet._meta.verbose_name_plural.capitalize(),
        )

    def top_up_form(self, request, *, data=None, initial=None, member: Member | None = None) -> forms.Form:
        """The top-up form (``member``: the one the page was opened for, if any)."""
        return WalletTopUpForm(data, initial=initial, may_adjust=self.may_adjust(request))

    @staticmethod
    def may_adjust(request) -> bool:
        """Whether the user may give a bonus outside any offer."""
        return request.user.has_perm(ADJUST_PERMISSION)

    def top_up(self, request, data: dict) -> WalletEntry:
        """Pay in what the valid form ``data`` says."""
        return wallet_top_up(
            member=data["mobile"],
            amount_paid=data["amount_paid"],
            bonus=data.get("bonus") or ZERO,
            reference=data["reference"],
            reason=data["reason"],
            idempotency_key=data["idempotency_key"],
            actor=request.user,
        )


class RefundedFilter(admin.SimpleListFilter):
    title = _("refunded")
    parameter_name = "refunded"

    def lookups(self, request, model_admin):
        return [("yes", _("Yes")), ("no", _("No"))]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(is_refunded=self.value() == "yes")
        return queryset


@admin.register(WalletEntry)
class WalletEntryAdmin(MemberRowsMixin, ReadOnlyAdmin):
    list_display = (
        "created_at",
        "member",
        "kind",
        "amount_shown",
        "principal_delta_shown",
        "bonus_delta_shown",
        "principal_after_shown",
        "bonus_after_shown",
        "actor",
        "reason",
        "refund_link",
    )
    list_filter = ("kind", "created_at", RefundedFilter)
    list_select_related = ("wallet__member", "actor")
    date_hierarchy = "created_at"
    search_fields = ("wallet__member__mobile", "=idempotency_key", "=reference")
    mobile_search_members = ("wallet__member",)
    actions = None
    amount_shown = money_column(WalletEntry, "amount")
    principal_delta_shown = money_column(WalletEntry, "principal_delta")
    bonus_delta_shown = money_column(WalletEntry, "bonus_delta")
    principal_after_shown = money_column(WalletEntry, "principal_after")
    bonus_after_shown = money_column(WalletEntry, "bonus_after")

    def get_queryset(self, request):
        refunds = WalletEntry.objects.filter(
            related_entry=OuterRef("pk"), kind__in=[WalletEntry.Kind.SPEND_REFUND, WalletEntry.Kind.TOP_UP_REFUND]
        )
        return super().get_queryset(request).annotate(is_refunded=Exists(refunds))

    @admin.display(description=_("member"), ordering="wallet__member__mobile")
    def member(self, entry: WalletEntry):
        return entry.wallet.member

    @admin.display(description=_("refund"))
    def refund_link(self, entry: WalletEntry):
        if entry.is_refunded:
            return _("refunded")
        if entry.kind != WalletEntry.Kind.TOP_UP:
            return "—"
        url = reverse("admin:members_walletentry_refund_top_up", args=[entry.pk])
        return format_html('<a href="{}">{}</a>', url, _("Refund this top-up"))

    def get_list_display(self, request):
        if request.user.has_perm(REFUND_PERMISSION):
            return self.list_display
        return tuple(name for name in self.list_display if name != "refund_link")

    def get_urls(self):
        view = self.admin_site.admin_view(self.refund_top_up_view)
        return [
            path("<int:entry_id>/refund-top-up/", view, name="members_walletentry_refund_top_up"),
            *super().get_urls(),
        ]

    def refund_top_up_view(self, request, entry_id: int):
        if not request.user.has_perm(REFUND_PERMISSION):
            raise PermissionDenied
        top_up = get_object_or_404(
            WalletEntry.objects.select_related("wallet__member"), pk=entry_id, kind=WalletEntry.Kind.TOP_UP
        )
        if request.method == "POST":
            form = WalletTopUpRefundForm(request.POST)
            if form.is_valid():
                try:
                    refund = wallet_refund_top_up(
                        top_up_entry=top_up,
                        reason=form.cleaned_data["reason"],
                        idempotency_key=form.cleaned_data["idempotency_key"],
                        actor=request.user,
                    )
                except ValidationError as exc:
                    add_service_errors(form, exc)
                else:
                    self.message_user(
                        request,
                        _("Refunded the top-up: principal %(principal)s returned, bonus %(bonus)s clawed back.")
                        % {"principal": -refund.principal_delta, "bonus": -refund.bonus_delta},
                        messages.SUCCESS,
                    )
                    return HttpResponseRedirect(reverse("admin:members_wallet_change", args=[top_up.wallet_id]))
        else:
            form = WalletTopUpRefundForm(initial={"idempotency_key": _new_key("admin-top-up-refund")})
        wallet = top_up.wallet
        return form_page(
            self,
            request,
            form=form,
            title=_("Refund a top-up"),
            summary=_(
                "Top-up of %(member)s on %(date)s: principal %(principal)s, bonus %(bonus)s. The wallet now "
                "holds principal %(wallet_principal)s and bonus %(wallet_bonus)s. The principal is returned "
                "only if still unspent; what is left of the bonus is clawed back."
            )
            % {
                "member": wallet.member,
                "date": timezone.localdate(top_up.created_at),
                "principal": top_up.principal_delta,
                "bonus": top_up.bonus_delta,
                "wallet_principal": wallet.principal,
                "wallet_bonus": wallet.bonus,
            },
            submit_label=_("Refund"),
            back_url=reverse("admin:members_walletentry_changelist"),
            back_label=WalletEntry._meta.verbose_name_plural.capitalize(),
        )
