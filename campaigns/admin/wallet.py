"""Admin: topping a wallet up with one of the member's top-up offers (充值优惠).

``members.admin.wallet.WalletAdmin`` is replaced by ``OfferWalletAdmin`` (as ``workspace`` replaces
the member admin): its top-up page (``/admin/members/wallet/top-up/?member=<id>``, linked from the
wallet and the member 360) offers a chooser of the offers the member can use now — the mini-program's
list (``member_top_up_offers``), labelled with name, minimum and bonus in the user's language — and
applies the chosen one through ``offer_top_up``: the same checks (qualifies, minimum, uses left) and
limits as the mini-program and the till, its bonus the offer's. An offer cannot be combined with the
free bonus, which only those who may adjust balances see (``members.admin.wallet``).

The chooser lists the offers of the member the page is for (the ``member`` of the address; after a
submit, the member of the mobile number sent) — and, on a double submit, the offer that submit
already used, so that the replay answers the first top-up again.
"""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from campaigns.models import OfferTopUp, TopUpOffer
from campaigns.services.offers import member_top_up_offers, offer_top_up
from members.admin.wallet import WalletAdmin, WalletTopUpForm
from members.formatting import yuan
from members.models import Member, Wallet, WalletEntry
from members.selectors import member_get_by_mobile


def offer_label(offer: TopUpOffer) -> str:
    """``新会员首次储值 200 送 20 — top up at least ¥200.00, bonus ¥20.00`` (in the page's language)."""
    return str(
        _("%(name)s — top up at least %(min)s, bonus %(bonus)s")
        % {"name": offer.display_name, "min": yuan(offer.min_amount), "bonus": yuan(offer.bonus_amount)}
    )


class OfferTopUpForm(WalletTopUpForm):
    offer = forms.TypedChoiceField(label=_("Top-up offer"), required=False, coerce=int, empty_value=None)

    field_order = ["mobile", "amount_paid", "offer", "bonus", "reason", "reference"]

    def __init__(self, *args, offers: list[TopUpOffer], **kwargs):
        super().__init__(*args, **kwargs)
        self.offers = {offer.pk: offer for offer in offers}
        field = self.fields["offer"]
        field.choices = [("", _("No offer")), *((offer.pk, offer_label(offer)) for offer in offers)]
        field.help_text = (
            _("Its bonus is added to the wallet; the member's uses of it are counted.")
            if offers
            else _("This member has no top-up offer they can use now.")
        )

    def clean(self):
        data = super().clean()
        if data.get("offer") is not None and data.get("bonus"):
            self.add_error(
                "bonus",
                ValidationError(
                    _("An offer brings its own bonus: leave this at 0, or choose no offer."), code="bonus_with_offer"
                ),
            )
        return data


admin.site.unregister(Wallet)


@admin.register(Wallet)
class OfferWalletAdmin(WalletAdmin):
    def top_up_form(self, request, *, data=None, initial=None, member: Member | None = None) -> forms.Form:
        if data is not None:
            member = member_get_by_mobile(mobile=data.get("mobile", ""))
        offers = member_top_up_offers(member_id=member.pk) if member is not None else []
        if data is not None and member is not None:
            # a double submit: the offer its first submit used is no longer usable, but is its answer
            used = OfferTopUp.objects.filter(idempotency_key=data.get("idempotency_key", ""), member_id=member.pk)
            listed = {offer.pk for offer in offers}
            offers += [use.offer for use in used.select_related("offer") if use.offer_id not in listed]
        return OfferTopUpForm(data, initial=initial, offers=offers, may_adjust=self.may_adjust(request))

    def top_up(self, request, data: dict) -> WalletEntry:
        if data.get("offer") is None:
            return super().top_up(request, data)
        return offer_top_up(
            member=data["mobile"],
            offer=TopUpOffer(pk=data["offer"]),  # read again by the service
            amount_paid=data["amount_paid"],
            idempotency_key=data["idempotency_key"],
            actor=request.user,
            reason=data["reason"],
            reference=data["reference"],
        )
