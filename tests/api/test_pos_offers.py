"""Top-up offers at the till (#18, point 2): the member lookup lists the offers the member can use,
and ``POST /pos/wallet/top-up`` with ``offer`` applies one by the mini-program's rules and limits —
its bonus, never the client's; once per member; idempotent; within the ceilings."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from campaigns.models import OfferTopUp, TopUpOffer
from campaigns.playbook import playbook_install
from members.models import Member, TopUpIntent, Wallet, WalletEntry
from members.services.api_keys import store_api_key_create
from members.services.qr_codes import member_qr_code
from members.services.reconcile import balances_reconcile
from members.services.wallet import wallet_top_up
from tests.campaigns.conftest import run_in_threads
from tests.factories import MemberFactory, StoreFactory

D = Decimal
LOOKUP = "/api/v1/pos/members/lookup"
TOP_UP = "/api/v1/pos/wallet/top-up"
SLEEPING = "sleeping-300-50"


@pytest.fixture
def seed_offers(default_scheme):
    """Seed 002's top-up offers from the shipped playbook, turned on (they ship off)."""
    playbook_install()
    TopUpOffer.objects.update(is_active=True)
    return {offer.code: offer for offer in TopUpOffer.objects.all()}


@pytest.fixture
def sleeping(member_a, place):
    """Member A (13800000001) is in the sleeping ("lost") segment of seed 002."""
    place(member_a, "lost")
    return member_a


def top_up(client, body, *, key):
    return client.post(TOP_UP, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def field_error(response, field: str) -> dict:
    assert response.status_code == 400, response.content
    return response.json()["fields"][field][0]


def balances(member) -> tuple[Decimal, Decimal]:
    wallet = Wallet.objects.filter(member=member).first()
    return (wallet.principal, wallet.bonus) if wallet else (D("0.00"), D("0.00"))


# --- the scenario --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_sleeping_member_tops_up_300_at_the_till_and_gets_the_offers_50_once(pos_a, sleeping, seed_offers):
    offer = seed_offers[SLEEPING]
    # given: the cashier looks the member up and sees the offer
    found = pos_a.post(LOOKUP, {"mobile": sleeping.mobile}, format="json")
    assert found.status_code == 200, found.content
    assert [row["code"] for row in found.json()["top_up_offers"]] == [SLEEPING]
    # when: ¥300 at the till with the offer
    response = top_up(pos_a, {"mobile": sleeping.mobile, "amount": "300.00", "offer": offer.pk}, key="till-1")
    # then: ¥50 bonus, from the offer
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["principal_delta"], body["bonus_delta"], body["offer_code"]) == ("300.00", "50.00", SLEEPING)
    assert balances(sleeping) == (D("300.00"), D("50.00"))
    use = OfferTopUp.objects.get()
    assert (use.offer_id, use.member_id, use.wallet_entry.idempotency_key) == (
        offer.pk,
        sleeping.pk,
        f"offer-top-up:{use.pk}",
    )
    # and a second use is beyond the offer's limit (once per member): refused, nothing paid
    again = top_up(pos_a, {"mobile": sleeping.mobile, "amount": "300.00", "offer": offer.pk}, key="till-2")
    error = field_error(again, "offer")
    assert error["code"] == "limit_reached"
    assert error["message"] == "This member has used up this offer."
    assert balances(sleeping) == (D("300.00"), D("50.00"))
    # and the lookup no longer offers it
    assert pos_a.post(LOOKUP, {"mobile": sleeping.mobile}, format="json").json()["top_up_offers"] == []


@pytest.mark.django_db
def test_a_member_outside_the_segment_cannot_use_the_offer(pos_a, member_a, member_b, place, seed_offers):
    # given: B is a champion, not sleeping
    place(member_b, "champions")
    # when
    response = top_up(
        pos_a, {"mobile": member_b.mobile, "amount": "300.00", "offer": seed_offers[SLEEPING].pk}, key="k"
    )
    # then
    error = field_error(response, "offer")
    assert error["code"] == "not_eligible"
    assert not WalletEntry.objects.exists()
    assert not OfferTopUp.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"amount": "299.99"}, "amount", "below_minimum"),  # under the offer's minimum
        ({"offer": 2_000_000_000}, "offer", "not_eligible"),  # no such offer
        ({"bonus": "50.00"}, "bonus", "unknown"),  # the bonus is the offer's, never the client's
        ({"bonus": "500.00", "offer": None}, "bonus", "unknown"),
    ],
)
def test_refusals_are_field_level(pos_a, sleeping, seed_offers, body, field, code):
    request = {"mobile": sleeping.mobile, "amount": "300.00", "offer": seed_offers[SLEEPING].pk, **body}
    request = {name: value for name, value in request.items() if value is not None}
    # when
    response = top_up(pos_a, request, key="k")
    # then
    assert field_error(response, field)["code"] == code
    assert response.json()["code"] == "invalid"
    assert not WalletEntry.objects.exists()
    assert not OfferTopUp.objects.exists()


@pytest.mark.django_db
def test_an_inactive_offer_is_not_offered_nor_applied(pos_a, sleeping, seed_offers):
    TopUpOffer.objects.filter(code=SLEEPING).update(is_active=False)
    assert pos_a.post(LOOKUP, {"mobile": sleeping.mobile}, format="json").json()["top_up_offers"] == []
    response = top_up(
        pos_a, {"mobile": sleeping.mobile, "amount": "300.00", "offer": seed_offers[SLEEPING].pk}, key="k"
    )
    assert field_error(response, "offer")["code"] == "not_eligible"


@pytest.mark.django_db
def test_a_blocked_member_is_refused(pos_a, sleeping, seed_offers):
    Member.objects.filter(pk=sleeping.pk).update(is_active=False)
    response = top_up(
        pos_a, {"mobile": sleeping.mobile, "amount": "300.00", "offer": seed_offers[SLEEPING].pk}, key="k"
    )
    assert field_error(response, "mobile")["code"] == "member_inactive"
    assert not OfferTopUp.objects.exists()


@pytest.mark.django_db
def test_an_unpaid_mini_program_top_up_holds_the_offer_at_the_till_too(pos_a, sleeping, seed_offers, client_a):
    # given: the member started a top-up with the offer in the mini-program and has not paid yet
    offer = seed_offers[SLEEPING]
    started = client_a.post("/api/v1/me/top-ups", {"amount": "300.00", "offer": offer.pk}, format="json")
    assert started.status_code == 201, started.content
    # when: the same offer at the till
    response = top_up(pos_a, {"mobile": sleeping.mobile, "amount": "300.00", "offer": offer.pk}, key="k")
    # then: used up, as the mini-program would say
    assert field_error(response, "offer")["code"] == "limit_reached"
    assert pos_a.post(LOOKUP, {"mobile": sleeping.mobile}, format="json").json()["top_up_offers"] == []
    assert TopUpIntent.objects.count() == 1


# --- ceilings --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_stores_ceiling_holds_with_an_offer_and_gives_the_use_back(pos_a, store_a, sleeping, seed_offers):
    # given: this store takes at most ¥200 a top-up
    store_a.top_up_max_amount = D("200.00")
    store_a.save(update_fields=["top_up_max_amount"])
    offer = seed_offers[SLEEPING]
    # when
    response = top_up(pos_a, {"mobile": sleeping.mobile, "amount": "300.00", "offer": offer.pk}, key="k")
    # then: refused on the amount, nothing paid, and the offer is still the member's
    error = field_error(response, "amount")
    assert error["code"] == "max_value"
    assert "200.00" in error["message"]
    assert not OfferTopUp.objects.exists()
    assert [
        row["id"] for row in pos_a.post(LOOKUP, {"mobile": sleeping.mobile}, format="json").json()["top_up_offers"]
    ] == [offer.pk]


@pytest.mark.django_db
def test_the_largest_balance_counts_the_offers_bonus(pos_a, sleeping, seed_offers):
    # given: ¥49,700 in the wallet; ¥300 more fits, its ¥50 bonus does not (the largest balance is ¥50,000)
    for n in range(10):
        wallet_top_up(member=sleeping, amount_paid="4970.00", idempotency_key=f"fill-{n}")
    # when
    response = top_up(
        pos_a, {"mobile": sleeping.mobile, "amount": "300.00", "offer": seed_offers[SLEEPING].pk}, key="k"
    )
    # then
    assert field_error(response, "amount")["code"] == "balance_limit"
    assert balances(sleeping) == (D("49700.00"), D("0.00"))
    assert not OfferTopUp.objects.exists()


# --- idempotency -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_retry_with_the_same_key_answers_the_same_entry_and_pays_once(pos_a, sleeping, seed_offers):
    body = {"mobile": sleeping.mobile, "amount": "300.00", "offer": seed_offers[SLEEPING].pk, "reference": "R-9"}
    # when
    first = top_up(pos_a, body, key="till-1")
    retry = top_up(pos_a, body, key="till-1")
    # then
    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.json() == first.json()
    assert first.json()["reference"] == "R-9"
    assert WalletEntry.objects.count() == OfferTopUp.objects.count() == 1
    assert balances(sleeping) == (D("300.00"), D("50.00"))


@pytest.mark.django_db
@pytest.mark.parametrize(
    "other",
    [
        {"amount": "400.00"},  # another amount
        {"offer": None},  # the same key without the offer
        {"reference": "another"},  # another reference
    ],
)
def test_the_same_key_with_another_body_is_refused(pos_a, sleeping, seed_offers, other):
    body = {"mobile": sleeping.mobile, "amount": "300.00", "offer": seed_offers[SLEEPING].pk}
    assert top_up(pos_a, body, key="till-1").status_code == 201
    changed = {name: value for name, value in {**body, **other}.items() if value is not None}
    # when
    response = top_up(pos_a, changed, key="till-1")
    # then
    assert response.status_code == 422, response.content
    assert response.json()["code"] == "idempotency_key_reused"
    assert WalletEntry.objects.count() == 1
    assert balances(sleeping) == (D("300.00"), D("50.00"))


@pytest.mark.django_db
def test_the_key_of_a_top_up_without_an_offer_is_refused_with_one(pos_a, sleeping, seed_offers):
    plain = {"mobile": sleeping.mobile, "amount": "300.00"}
    assert top_up(pos_a, plain, key="till-1").status_code == 201
    # when
    response = top_up(pos_a, {**plain, "offer": seed_offers[SLEEPING].pk}, key="till-1")
    # then
    assert response.status_code == 422, response.content
    assert not OfferTopUp.objects.exists()
    assert balances(sleeping) == (D("300.00"), D("0.00"))


@pytest.mark.django_db
def test_keys_are_the_stores_own(pos_a, pos_b, member_a, place, seed_offers):
    # given: an offer for everyone, twice per member; both stores use the key "till-1"
    offer = TopUpOffer.objects.create(
        name="All", code="all-100-5", min_amount="100", bonus_amount="5", per_member_limit=2
    )
    body = {"mobile": member_a.mobile, "amount": "100.00", "offer": offer.pk}
    # when
    responses = [top_up(pos_a, body, key="till-1"), top_up(pos_b, body, key="till-1")]
    # then: two top-ups
    assert [r.status_code for r in responses] == [201, 201]
    assert balances(member_a) == (D("200.00"), D("10.00"))


# --- the lookup ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_lookup_lists_the_offers_for_the_cashier(pos_a, sleeping, seed_offers, settings):
    everyone = TopUpOffer.objects.create(
        name="储值 100 送 5",
        name_en="Top up 100, get 5",
        code="all-100-5",
        min_amount="100",
        bonus_amount="5",
        per_member_limit=None,
    )
    # when: by QR code (the API speaks the brand's language: English in the tests)
    response = pos_a.post(LOOKUP, {"qr_code": member_qr_code(sleeping.pk)}, format="json")
    # then: the smallest top-up first
    assert response.status_code == 200, response.content
    offers = response.json()["top_up_offers"]
    assert offers[0] == {
        "id": everyone.pk,
        "code": "all-100-5",
        "name": "Top up 100, get 5",
        "min_amount": "100.00",
        "bonus_amount": "5.00",
        "points_multiplier": None,
        "multiplier_days": None,
        "uses_left": None,
        "restriction_note": "",
        "product_tags": [],
        "product_categories": [],
        "valid_until": None,
    }
    assert offers[1] == {
        "id": seed_offers[SLEEPING].pk,
        "code": SLEEPING,
        "name": "Sleeping members: top up 300, get 50 (wake-up products only)",
        "min_amount": "300.00",
        "bonus_amount": "50.00",
        "points_multiplier": None,
        "multiplier_days": None,
        "uses_left": 1,
        "restriction_note": "The bonus is usable only with the chosen wake-up products.",
        "product_tags": ["唤醒商品"],
        "product_categories": [],
        "valid_until": None,
    }
    # and for a Chinese brand, in Chinese
    settings.LANGUAGE_CODE = "zh-hans"
    chinese = pos_a.post(LOOKUP, {"mobile": sleeping.mobile}, format="json").json()["top_up_offers"][1]
    assert (chinese["name"], chinese["restriction_note"]) == (
        "沉睡会员储值 300 送 50(限唤醒商品)",
        "赠送金额仅限搭配唤醒商品使用",
    )


@pytest.mark.django_db
def test_the_lookup_with_its_offers_costs_the_same_queries_however_many_offers(
    pos_a, sleeping, seed_offers, django_assert_num_queries
):
    def lookup():
        response = pos_a.post(LOOKUP, {"mobile": sleeping.mobile}, format="json")
        assert response.status_code == 200, response.content
        return response.json()["top_up_offers"]

    lookup()  # the key's first use writes its last-used time
    # the key and its store, the member, with tier/points/wallet; offers: the member's segment, the offers, the
    # mini-program's intents holding them
    with django_assert_num_queries(7):
        assert len(lookup()) == 1
    # given: twenty more offers for everyone
    TopUpOffer.objects.bulk_create(
        TopUpOffer(name=f"All {n}", code=f"all-{n}", min_amount=D("100.00") + n, bonus_amount="5") for n in range(20)
    )
    # then: the same count
    with django_assert_num_queries(7):
        assert len(lookup()) == 21


# --- concurrency ---------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_tills_racing_with_one_offer_use_exactly_its_limit(default_scheme, place):
    # given: a sleeping member, the offer usable twice, and six tills (six keys) at once
    playbook_install()
    TopUpOffer.objects.update(is_active=True)
    offer = TopUpOffer.objects.get(code=SLEEPING)
    offer.per_member_limit = 2
    offer.save(update_fields=["per_member_limit"])
    store = StoreFactory(code="C001")
    member = MemberFactory(mobile="13800000009", home_store=store)
    place(member, "lost")
    secrets = [store_api_key_create(store=store, name=f"till {n}", scopes=("wallet",))[1] for n in range(6)]

    def till(index: int):
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=secrets[index])
        return top_up(client, {"mobile": member.mobile, "amount": "300.00", "offer": offer.pk}, key=f"till-{index}")

    # when
    responses = run_in_threads(6, till)
    # then: exactly two paid, the others refused on the offer
    statuses = sorted(getattr(r, "status_code", repr(r)) for r in responses)
    assert statuses == [201, 201, 400, 400, 400, 400], [getattr(r, "content", r) for r in responses]
    refusals = {r.json()["fields"]["offer"][0]["code"] for r in responses if r.status_code == 400}
    assert refusals == {"limit_reached"}
    assert OfferTopUp.objects.filter(member=member).count() == 2
    assert balances(member) == (D("600.00"), D("100.00"))
    assert balances_reconcile() == []
