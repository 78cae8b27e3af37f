"""The admin's top-up form with top-up offers (#18, point 2): it offers a chooser of the member's
eligible offers, labelled in the user's language, and applies the chosen one through ``offer_top_up``
(same checks and limits as the mini-program and the till); the free bonus is a staff adjustment
(``members.adjust_points``) and cannot be combined with an offer."""

import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from campaigns.models import OfferTopUp, TopUpOffer
from campaigns.playbook import playbook_install
from members.models import Wallet, WalletEntry
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db

D = Decimal
SLEEPING = "sleeping-300-50"


@pytest.fixture
def seed_offers(default_scheme):
    """Seed 002's top-up offers from the shipped playbook, turned on (they ship off)."""
    playbook_install()
    TopUpOffer.objects.update(is_active=True)
    return {offer.code: offer for offer in TopUpOffer.objects.all()}


@pytest.fixture
def sleeping(place):
    member = MemberFactory()
    place(member, "lost")
    return member


@pytest.fixture
def url():
    return reverse("admin:members_wallet_top_up")


def hidden_key(response) -> str:
    match = re.search(r'name="idempotency_key" value="([^"]+)"', response.content.decode())
    assert match, "the form carries a hidden idempotency key"
    return match.group(1)


def offer_choices(response) -> dict[str, str]:
    """The chooser's options: value → label."""
    select = re.search(r'<select name="offer"[^>]*>(.*?)</select>', response.content.decode(), re.S)
    assert select, "the form has an offer chooser"
    return dict(re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select.group(1)))


def balances(member) -> tuple[Decimal, Decimal]:
    wallet = Wallet.objects.filter(member=member).first()
    return (wallet.principal, wallet.bonus) if wallet else (D("0.00"), D("0.00"))


def form(page, member, **fields) -> dict:
    return {
        "mobile": member.mobile,
        "amount_paid": "300.00",
        "offer": "",
        "reason": "paid at the counter",
        "reference": "",
        "idempotency_key": hidden_key(page),
        **fields,
    }


def test_the_chooser_lists_only_the_members_offers_with_minimum_and_bonus(staff_client, url, sleeping, seed_offers):
    # when
    page = staff_client.get(url, {"member": sleeping.pk})
    # then: "no offer", and the sleeping members' offer only (not the new members' nor the champions')
    assert page.status_code == 200
    offer = seed_offers[SLEEPING]
    assert offer_choices(page) == {
        "": "No offer",
        str(
            offer.pk
        ): "Sleeping members: top up 300, get 50 (wake-up products only) — top up at least ¥300.00, bonus ¥50.00",
    }
    assert 'name="offer_code"' not in page.content.decode()  # no free-typed code any more


def test_the_chooser_speaks_the_users_language(staff_client, sleeping, seed_offers):
    # when: the page in Chinese (English is the tests' default language)
    page = staff_client.get("/zh-hans/admin/members/wallet/top-up/", {"member": sleeping.pk})
    # then
    assert page.status_code == 200
    assert set(offer_choices(page).values()) == {
        "不使用优惠",
        "沉睡会员储值 300 送 50(限唤醒商品) — 充值满 ¥300.00，赠送 ¥50.00",
    }
    assert "充值优惠" in page.content.decode()


def test_choosing_the_offer_applies_it_once(staff_client, url, sleeping, seed_offers):
    # given
    page = staff_client.get(url, {"member": sleeping.pk})
    data = form(page, sleeping, offer=str(seed_offers[SLEEPING].pk))
    # when: submitted twice (the browser's resend)
    first = staff_client.post(f"{url}?member={sleeping.pk}", data)
    second = staff_client.post(f"{url}?member={sleeping.pk}", data)
    # then: one top-up, with the offer's bonus, by the staff user
    assert (first.status_code, second.status_code) == (302, 302), second.content.decode()[:2000]
    assert balances(sleeping) == (D("300.00"), D("50.00"))
    use = OfferTopUp.objects.get()
    entry = WalletEntry.objects.get()
    assert (use.member_id, use.wallet_entry_id, entry.offer_code) == (sleeping.pk, entry.pk, SLEEPING)
    assert (entry.actor.username, entry.reason) == ("operator", "paid at the counter")
    # and the offer is no longer offered: used once, its limit
    assert list(offer_choices(staff_client.get(url, {"member": sleeping.pk}))) == [""]


def test_another_segments_offer_is_refused(staff_client, url, sleeping, seed_offers):
    page = staff_client.get(url, {"member": sleeping.pk})
    response = staff_client.post(
        url, form(page, sleeping, amount_paid="1000", offer=seed_offers["champions-1000-150"].pk)
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not WalletEntry.objects.exists()


def test_below_the_minimum_is_refused_at_the_amount(staff_client, url, sleeping, seed_offers):
    page = staff_client.get(url, {"member": sleeping.pk})
    response = staff_client.post(url, form(page, sleeping, amount_paid="299.99", offer=seed_offers[SLEEPING].pk))
    assert response.status_code == 200
    assert "This offer needs a top-up of at least ¥300.00." in response.content.decode()
    assert response.context["form"].errors["amount_paid"]
    assert not WalletEntry.objects.exists()
    assert not OfferTopUp.objects.exists()


def test_an_offer_and_a_free_bonus_do_not_combine(staff_client, url, sleeping, seed_offers):
    page = staff_client.get(url, {"member": sleeping.pk})
    response = staff_client.post(url, form(page, sleeping, offer=seed_offers[SLEEPING].pk, bonus="100.00"))
    assert response.status_code == 200
    assert "An offer brings its own bonus" in response.content.decode()
    assert not WalletEntry.objects.exists()


def test_the_free_bonus_is_for_those_who_may_adjust(client, django_user_model, url, sleeping, seed_offers):
    # given: a clerk who may top up wallets, but not adjust balances
    clerk = django_user_model.objects.create_user("clerk", password="pw-clerk-1", is_staff=True)
    clerk.user_permissions.add(
        *Permission.objects.filter(codename__in=["top_up_wallet", "view_wallet"], content_type__app_label="members")
    )
    client.force_login(clerk)
    page = client.get(url, {"member": sleeping.pk})
    assert page.status_code == 200
    assert 'name="bonus"' not in page.content.decode()
    # when: a bonus is sent anyway
    response = client.post(url, form(page, sleeping, amount_paid="100.00", bonus="500.00"))
    # then: ignored — a top-up without bonus
    assert response.status_code == 302
    assert balances(sleeping) == (D("100.00"), D("0.00"))
    # given: the adjustment permission
    clerk.user_permissions.add(Permission.objects.get(codename="adjust_points"))
    clerk = django_user_model.objects.get(pk=clerk.pk)
    client.force_login(clerk)
    page = client.get(url, {"member": sleeping.pk})
    assert 'name="bonus"' in page.content.decode()
    response = client.post(url, form(page, sleeping, amount_paid="100.00", bonus="5.00"))
    assert response.status_code == 302
    assert balances(sleeping) == (D("200.00"), D("5.00"))


def test_a_member_without_offers_is_told_so(staff_client, url, seed_offers):
    member = MemberFactory()  # never segmented: no offer
    page = staff_client.get(url, {"member": member.pk})
    assert list(offer_choices(page)) == [""]
    assert "This member has no top-up offer they can use now." in page.content.decode()
