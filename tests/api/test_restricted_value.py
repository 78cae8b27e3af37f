"""Value limited to some products (#18, point 3; seed 002: 储值300送50，但必须搭配唤醒商品使用).

The sleeping member's ¥50 bonus from the counter top-up pays only for 唤醒商品 lines: a spend names
its lines, the restricted bonus pays the eligible ones, principal (and unrestricted bonus) the rest;
refunds give back to the parts a spend came from; a coupon limited to some products discounts only
the eligible lines. Ledgers stay append-only and reconcile, also with tills racing."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from campaigns.models import CouponTemplate, TopUpOffer
from campaigns.playbook import playbook_install
from campaigns.services.coupons import coupon_grant
from campaigns.services.offers import offer_top_up_intent_create
from members.models import RestrictedBonus, RestrictedBonusMove, Restriction, Wallet, WalletEntry
from members.services.api_keys import store_api_key_create
from members.services.qr_codes import member_qr_code
from members.services.reconcile import balances_reconcile
from members.services.wallet import wallet_refund_spend, wallet_refund_top_up, wallet_spend, wallet_top_up
from tests.campaigns.conftest import run_in_threads
from tests.factories import MemberFactory, ProductFactory, StoreFactory

D = Decimal
LOOKUP = "/api/v1/pos/members/lookup"
TOP_UP = "/api/v1/pos/wallet/top-up"
SPEND = "/api/v1/pos/wallet/spend"
REDEEM = "/api/v1/pos/coupons/redeem"
SLEEPING = "sleeping-300-50"
WAKE_UP = Restriction(tags=("唤醒商品",))


@pytest.fixture
def products(db):
    return {
        "wake": ProductFactory(sku="FT-01", name="满杯百香果", category="果茶", tags=["唤醒商品"]),
        "wake2": ProductFactory(sku="FT-02", name="柠檬茶", category="果茶", tags=["唤醒商品", "新品"]),
        "milk": ProductFactory(sku="MT-01", name="珍珠奶茶", category="奶茶", tags=[]),
    }


@pytest.fixture
def seed_offers(default_scheme):
    playbook_install()
    TopUpOffer.objects.update(is_active=True)
    return {offer.code: offer for offer in TopUpOffer.objects.all()}


@pytest.fixture
def sleeping(member_a, place):
    place(member_a, "lost")
    return member_a


def post(client, url, body, *, key):
    return client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def spend(client, member, amount, lines=None, *, key):
    body = {"qr_code": member_qr_code(member.pk), "amount": amount}
    if lines is not None:
        body["lines"] = [{"sku": sku, "amount": value} for sku, value in lines]
    return post(client, SPEND, body, key=key)


def wallet_of(member) -> tuple[Decimal, Decimal, Decimal]:
    """(principal, bonus, of which restricted)."""
    wallet = Wallet.objects.get(member=member)
    restricted = sum((b.remaining for b in RestrictedBonus.objects.filter(wallet=wallet)), D("0.00"))
    return wallet.principal, wallet.bonus, restricted


def assert_ledgers_hold():
    assert balances_reconcile() == []
    for bonus in RestrictedBonus.objects.all():
        moved = sum((m.delta for m in RestrictedBonusMove.objects.filter(bonus=bonus)), D("0.00"))
        assert bonus.remaining == moved


def field_error(response, field: str) -> dict:
    assert response.status_code == 400, response.content
    return response.json()["fields"][field][0]


# --- the scenario ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_sleeping_member_tops_up_300_gets_50_and_spends_the_50_only_on_wake_up_products(
    pos_a, client_a, sleeping, seed_offers, products
):
    offer = seed_offers[SLEEPING]
    # given: ¥300 at the counter with the sleeping offer
    found = pos_a.post(LOOKUP, {"mobile": sleeping.mobile}, format="json").json()
    assert found["top_up_offers"][0]["product_tags"] == ["唤醒商品"]
    topped = post(pos_a, TOP_UP, {"mobile": sleeping.mobile, "amount": "300.00", "offer": offer.pk}, key="t1")
    assert topped.status_code == 201, topped.content
    assert (topped.json()["bonus_delta"], topped.json()["restricted_bonus_delta"]) == ("50.00", "50.00")
    assert wallet_of(sleeping) == (D("300.00"), D("50.00"), D("50.00"))
    # and the cashier sees the ¥50 is for wake-up products only
    lookup = pos_a.post(LOOKUP, {"qr_code": member_qr_code(sleeping.pk)}, format="json").json()
    assert lookup["wallet_balance"] == "350.00"
    assert [(b["remaining"], b["tags"]) for b in lookup["restricted_bonuses"]] == [("50.00", ["唤醒商品"])]
    # and so does the member in the mini-program
    mine = client_a.get("/api/v1/me/wallet/restricted-bonuses").json()["results"]
    assert [(b["remaining"], b["tags"], b["categories"]) for b in mine] == [("50.00", ["唤醒商品"], [])]

    # when: ¥100 of milk tea — the bonus does not pay for it
    milk = spend(pos_a, sleeping, "100.00", [("MT-01", "100.00")], key="s1")
    assert milk.status_code == 201, milk.content
    assert (milk.json()["principal_delta"], milk.json()["bonus_delta"]) == ("-100.00", "0.00")
    assert wallet_of(sleeping) == (D("200.00"), D("50.00"), D("50.00"))
    # nor does a spend that names no lines
    blind = spend(pos_a, sleeping, "30.00", key="s2")
    assert (blind.json()["principal_delta"], blind.json()["bonus_delta"]) == ("-30.00", "0.00")
    # when: ¥30 of wake-up fruit tea and ¥10 of milk tea — the bonus pays the fruit tea
    mixed = spend(pos_a, sleeping, "40.00", [("FT-01", "30.00"), ("MT-01", "10.00")], key="s3")
    assert mixed.status_code == 201, mixed.content
    body = mixed.json()
    assert (body["principal_delta"], body["bonus_delta"], body["restricted_bonus_delta"]) == (
        "-10.00",
        "-30.00",
        "-30.00",
    )
    assert wallet_of(sleeping) == (D("160.00"), D("20.00"), D("20.00"))
    # then: the last ¥20 of bonus cannot pay for milk tea beyond the principal
    too_much = spend(pos_a, sleeping, "170.00", [("MT-01", "170.00")], key="s4")
    error = field_error(too_much, "amount")
    assert error["code"] == "insufficient_balance"
    assert "160.00" in error["message"]
    # but the whole wallet pays for wake-up products
    last = spend(pos_a, sleeping, "180.00", [("FT-02", "180.00")], key="s5")
    assert last.status_code == 201, last.content
    assert wallet_of(sleeping) == (D("0.00"), D("0.00"), D("0.00"))
    assert_ledgers_hold()


# --- spends ------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_unrestricted_bonus_still_follows_the_proportional_rule_beside_a_restricted_one(member_a, products):
    wallet_top_up(member=member_a, amount_paid="100.00", bonus="20.00", idempotency_key="plain")
    wallet_top_up(member=member_a, amount_paid="100.00", bonus="50.00", restriction=WAKE_UP, idempotency_key="r")
    # when: ¥60 of milk tea: principal 200 and unrestricted bonus 20 share it (bonus 60×20/220 → 5.45)
    entry = wallet_spend(member=member_a, amount="60.00", lines=[("MT-01", D("60.00"))], idempotency_key="s")
    assert (entry.principal_delta, entry.bonus_delta) == (D("-54.55"), D("-5.45"))
    assert wallet_of(member_a) == (D("145.45"), D("64.55"), D("50.00"))


@pytest.mark.django_db
def test_a_bonus_limited_to_a_category_pays_only_that_category(member_a, products):
    fruit = Restriction(categories=("果茶",))
    wallet_top_up(member=member_a, amount_paid="10.00", bonus="15.00", restriction=fruit, idempotency_key="r")
    entry = wallet_spend(
        member=member_a,
        amount="25.00",
        lines=[("FT-02", D("12.00")), ("MT-01", D("10.00")), ("FT-01", D("3.00"))],
        idempotency_key="s",
    )
    assert (entry.principal_delta, entry.bonus_delta) == (D("-10.00"), D("-15.00"))
    assert wallet_of(member_a) == (D("0.00"), D("0.00"), D("0.00"))


@pytest.mark.django_db
def test_two_restricted_bonuses_share_the_lines_so_that_both_can_pay(member_a, products):
    # given: an older bonus for tag 新品 or category 果茶 (wide), a newer one for tag 唤醒商品 only
    wide = Restriction(tags=("新品",), categories=("果茶",))
    wallet_top_up(member=member_a, amount_paid="1.00", bonus="10.00", restriction=wide, idempotency_key="wide")
    wallet_top_up(member=member_a, amount_paid="1.00", bonus="10.00", restriction=WAKE_UP, idempotency_key="narrow")
    # when: two wake-up lines of 10; both bonuses can pay either line
    entry = wallet_spend(
        member=member_a, amount="20.00", lines=[("FT-01", D("10.00")), ("FT-02", D("10.00"))], idempotency_key="s"
    )
    # then: both bonuses are used up, the principal untouched
    assert (entry.principal_delta, entry.bonus_delta) == (D("0.00"), D("-20.00"))
    assert sorted(RestrictedBonus.objects.values_list("remaining", flat=True)) == [D("0.00"), D("0.00")]


@pytest.mark.django_db
def test_lines_are_checked_and_part_of_the_request(pos_a, member_a, products):
    wallet_top_up(member=member_a, amount_paid="100.00", bonus="50.00", restriction=WAKE_UP, idempotency_key="r")
    # unknown product, a product twice, lines not adding up: 400 on lines, nothing written
    assert field_error(spend(pos_a, member_a, "10.00", [("NOPE", "10.00")], key="a"), "lines")["code"] == (
        "unknown_product"
    )
    twice = spend(pos_a, member_a, "20.00", [("FT-01", "10.00"), ("FT-01", "10.00")], key="b")
    assert field_error(twice, "lines")["code"] == "duplicate_product"
    assert field_error(spend(pos_a, member_a, "20.00", [("FT-01", "10.00")], key="c"), "lines")["code"] == (
        "lines_total"
    )
    assert WalletEntry.objects.filter(kind="spend").count() == 0
    # a retry replays; the same key with other lines is refused (422), nothing moves twice
    first = spend(pos_a, member_a, "20.00", [("FT-01", "20.00")], key="k")
    again = spend(pos_a, member_a, "20.00", [("FT-01", "20.00")], key="k")
    other = spend(pos_a, member_a, "20.00", [("MT-01", "20.00")], key="k")
    assert (first.status_code, again.status_code, other.status_code) == (201, 201, 422)
    assert again.json() == first.json()
    assert wallet_of(member_a) == (D("100.00"), D("30.00"), D("30.00"))
    # the same lines in another order are the same request
    two = [("FT-01", "5.00"), ("MT-01", "5.00")]
    once = spend(pos_a, member_a, "10.00", two, key="k2")
    reordered = spend(pos_a, member_a, "10.00", list(reversed(two)), key="k2")
    assert (once.status_code, reordered.status_code) == (201, 201)
    assert reordered.json() == once.json()


# --- refunds -----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_spend_refund_gives_the_restricted_part_back_to_its_bonus(member_a, products):
    wallet_top_up(member=member_a, amount_paid="100.00", bonus="50.00", restriction=WAKE_UP, idempotency_key="r")
    spent = wallet_spend(
        member=member_a,
        amount="60.00",
        lines=[("FT-01", D("40.00")), ("MT-01", D("20.00"))],
        idempotency_key="s",
    )
    assert (spent.principal_delta, spent.bonus_delta) == (D("-20.00"), D("-40.00"))
    # when: half of it back, then the rest
    half = wallet_refund_spend(spend_entry=spent, amount="30.00", idempotency_key="r1")
    assert (half.principal_delta, half.bonus_delta) == (D("10.00"), D("20.00"))
    assert wallet_of(member_a) == (D("90.00"), D("30.00"), D("30.00"))
    wallet_refund_spend(spend_entry=spent, idempotency_key="r2")
    # then: the wallet is as before the spend, the bonus again restricted
    assert wallet_of(member_a) == (D("100.00"), D("50.00"), D("50.00"))
    assert_ledgers_hold()


@pytest.mark.django_db
def test_a_top_up_refund_claws_back_what_is_left_of_its_restricted_bonus(member_a, products):
    wallet_top_up(member=member_a, amount_paid="10.00", bonus="5.00", idempotency_key="plain")
    top_up = wallet_top_up(
        member=member_a, amount_paid="300.00", bonus="50.00", restriction=WAKE_UP, idempotency_key="r"
    )
    wallet_spend(member=member_a, amount="20.00", lines=[("FT-01", D("20.00"))], idempotency_key="s")
    refund = wallet_refund_top_up(top_up_entry=top_up, idempotency_key="back")
    # then: its principal and its remaining ¥30 go; the unrestricted ¥5 stays
    assert (refund.principal_delta, refund.bonus_delta) == (D("-300.00"), D("-30.00"))
    assert wallet_of(member_a) == (D("10.00"), D("5.00"), D("0.00"))
    assert_ledgers_hold()


# --- the mini-program -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_mini_programs_top_up_intent_carries_the_offers_restriction(sleeping, seed_offers):
    intent = offer_top_up_intent_create(member=sleeping, amount="300.00", offer_id=seed_offers[SLEEPING].pk)
    assert (intent.bonus, intent.restriction) == (D("50.00"), WAKE_UP)


@pytest.mark.django_db
def test_a_mini_program_top_up_paid_after_the_offer_was_edited_keeps_the_intents_restriction(sleeping, seed_offers):
    from members.services.top_ups import top_up_intent_confirm

    offer = seed_offers[SLEEPING]
    intent = offer_top_up_intent_create(member=sleeping, amount="300.00", offer_id=offer.pk)
    # when: the operator moves the offer to 果茶 before WeChat Pay's callback, which then comes twice
    TopUpOffer.objects.filter(pk=offer.pk).update(product_tags="", product_categories="果茶")
    paid = top_up_intent_confirm(out_trade_no=intent.out_trade_no, transaction_id="wx-1", amount_cents=30000)
    again = top_up_intent_confirm(out_trade_no=intent.out_trade_no, transaction_id="wx-1", amount_cents=30000)
    # then: credited once, the bonus for 唤醒商品 as shown to the member
    assert paid.wallet_entry_id == again.wallet_entry_id
    assert restricted_to(paid.wallet_entry_id) == (["唤醒商品"], [])
    assert wallet_of(sleeping) == (D("300.00"), D("50.00"), D("50.00"))


# --- coupons -----------------------------------------------------------------------------------------------


@pytest.fixture
def wake_up_coupon(member_a, products):
    template = CouponTemplate.objects.create(
        name="唤醒商品半价",
        slug="wake-half",
        kind=CouponTemplate.Kind.PERCENTAGE,
        percent_off=50,
        min_spend="20.00",
        product_tags="唤醒商品",
    )
    return coupon_grant(template=template, member=member_a, source="test", idempotency_key="grant")


def redeem(client, member, coupon, amount, lines=None, *, key):
    body = {"mobile": member.mobile, "coupon": coupon.code, "amount": amount}
    if lines is not None:
        body["lines"] = [{"sku": sku, "amount": value} for sku, value in lines]
    return post(client, REDEEM, body, key=key)


@pytest.mark.django_db
def test_a_coupon_limited_to_wake_up_products_discounts_only_those_lines(pos_a, member_a, wake_up_coupon):
    # refused without lines, and without an eligible line
    assert field_error(redeem(pos_a, member_a, wake_up_coupon, "100.00", key="a"), "lines")["code"] == (
        "no_eligible_lines"
    )
    no_wake = redeem(pos_a, member_a, wake_up_coupon, "100.00", [("MT-01", "100.00")], key="b")
    assert "唤醒商品" in field_error(no_wake, "lines")["message"]
    # below the minimum on the eligible lines (¥15 of fruit tea in a ¥100 order)
    small = redeem(pos_a, member_a, wake_up_coupon, "100.00", [("FT-01", "15.00"), ("MT-01", "85.00")], key="c")
    assert field_error(small, "amount")["code"] == "below_minimum"
    # when: ¥40 of fruit tea in a ¥100 order
    lines = [("FT-01", "40.00"), ("MT-01", "60.00")]
    used = redeem(pos_a, member_a, wake_up_coupon, "100.00", lines, key="d")
    assert used.status_code == 201, used.content
    assert (used.json()["eligible_amount"], used.json()["discount"], used.json()["amount_due"]) == (
        "40.00",
        "20.00",
        "80.00",
    )
    # a retry replays; other lines under the same key are a conflict
    assert redeem(pos_a, member_a, wake_up_coupon, "100.00", lines, key="d").json() == used.json()
    assert redeem(pos_a, member_a, wake_up_coupon, "100.00", [("FT-01", "100.00")], key="d").status_code == 422


@pytest.mark.django_db
def test_my_coupons_say_which_products_a_coupon_is_for(client_a, wake_up_coupon):
    rows = client_a.get("/api/v1/me/coupons").json()["results"]
    assert [(row["product_tags"], row["product_categories"]) for row in rows] == [(["唤醒商品"], [])]


# --- concurrency -------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_tills_racing_for_one_restricted_bonus_never_overdraw_it(products):
    # given: ¥50 for wake-up products, ¥0 principal left to pay with, and six tills at once
    store = StoreFactory(code="C001")
    member = MemberFactory(mobile="13800000009", home_store=store)
    wallet_top_up(member=member, amount_paid="1.00", bonus="50.00", restriction=WAKE_UP, idempotency_key="r")
    wallet_spend(member=member, amount="1.00", idempotency_key="principal")
    secrets = [store_api_key_create(store=store, name=f"till {n}", scopes=("wallet",))[1] for n in range(6)]

    def till(index: int):
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=secrets[index])
        return spend(client, member, "20.00", [("FT-01", "20.00")], key=f"till-{index}")

    responses = run_in_threads(6, till)
    # then: two ¥20 spends fit in ¥50, the others are refused; nothing negative, ledgers agree
    statuses = sorted(getattr(r, "status_code", repr(r)) for r in responses)
    assert statuses == [201, 201, 400, 400, 400, 400], [getattr(r, "content", r) for r in responses]
    assert wallet_of(member) == (D("0.00"), D("10.00"), D("10.00"))
    assert_ledgers_hold()


@pytest.mark.django_db
def test_reconcile_reports_a_restricted_bonus_changed_outside_its_moves(member_a, products):
    wallet_top_up(member=member_a, amount_paid="10.00", bonus="5.00", restriction=WAKE_UP, idempotency_key="r")
    assert balances_reconcile() == []
    RestrictedBonus.objects.update(remaining=D("4.00"))
    [found] = balances_reconcile()
    assert "remaining 4.00 vs its moves 5.00" in found.detail


# --- a promise kept: the restriction a top-up was granted under ------------------------------------------


def restricted_to(entry_id: int) -> tuple[list[str], list[str]]:
    bonus = RestrictedBonus.objects.get(top_up_id=entry_id)
    return bonus.tags, bonus.categories


def top_up_ids() -> list[int]:
    return list(WalletEntry.objects.filter(kind="top_up").order_by("pk").values_list("pk", flat=True))


@pytest.mark.django_db
def test_a_retried_offer_top_up_keeps_the_restriction_it_was_granted_under(pos_a, sleeping, seed_offers, products):
    offer = seed_offers[SLEEPING]
    TopUpOffer.objects.filter(pk=offer.pk).update(per_member_limit=2)
    body = {"mobile": sleeping.mobile, "amount": "300.00", "offer": offer.pk}
    # given: ¥300 with the sleeping offer, its ¥50 for 唤醒商品
    first = post(pos_a, TOP_UP, body, key="t1")
    assert first.status_code == 201, first.content
    [granted] = top_up_ids()
    assert restricted_to(granted) == (["唤醒商品"], [])
    # when: the operator limits the offer to the category 果茶 instead, and the till retries
    TopUpOffer.objects.filter(pk=offer.pk).update(product_tags="", product_categories="果茶")
    again = post(pos_a, TOP_UP, body, key="t1")
    # then: the same answer, once, the bonus still for 唤醒商品
    assert again.status_code == 201, again.content
    assert again.json() == first.json()
    assert top_up_ids() == [granted]
    assert restricted_to(granted) == (["唤醒商品"], [])
    # and a new top-up gets the offer as it is now
    second = post(pos_a, TOP_UP, body, key="t2")
    assert second.status_code == 201, second.content
    assert restricted_to(top_up_ids()[-1]) == ([], ["果茶"])
    assert wallet_of(sleeping) == (D("600.00"), D("100.00"), D("100.00"))
    assert_ledgers_hold()


@pytest.mark.django_db
def test_an_offer_top_up_finished_after_a_crash_keeps_the_restriction_of_its_claim(
    sleeping, seed_offers, products, monkeypatch
):
    from campaigns.services import offers as offer_services

    offer = seed_offers[SLEEPING]
    # given: the use of the offer is claimed (for 唤醒商品), then the process dies before the wallet moves
    crash = RuntimeError("worker killed")

    def dies(**kwargs):
        raise crash

    monkeypatch.setattr(offer_services, "wallet_top_up", dies)
    with pytest.raises(RuntimeError):
        offer_services.offer_top_up(member=sleeping, offer=offer, amount_paid="300.00", idempotency_key="k")
    monkeypatch.undo()
    assert WalletEntry.objects.count() == 0
    # when: the offer is edited to 果茶, and the request is retried
    TopUpOffer.objects.filter(pk=offer.pk).update(product_tags="", product_categories="果茶")
    entry = offer_services.offer_top_up(member=sleeping, offer=offer, amount_paid="300.00", idempotency_key="k")
    # then: the bonus is what the claimed use promised
    assert restricted_to(entry.pk) == (["唤醒商品"], [])
    assert_ledgers_hold()


@pytest.mark.django_db
def test_a_spend_refunded_after_its_bonus_top_up_was_refunded_does_not_revive_that_bonus(member_a, products):
    # given: ¥300 with ¥50 for wake-up products; ¥30 of it spent on wake-up fruit tea
    top_up = wallet_top_up(
        member=member_a, amount_paid="300.00", bonus="50.00", restriction=WAKE_UP, idempotency_key="r"
    )
    spent = wallet_spend(member=member_a, amount="30.00", lines=[("FT-01", D("30.00"))], idempotency_key="s")
    assert (spent.principal_delta, spent.bonus_delta) == (D("0.00"), D("-30.00"))
    # and the top-up is refunded: its ¥300 and the ¥20 left of its bonus go
    refund = wallet_refund_top_up(top_up_entry=top_up, idempotency_key="back")
    assert (refund.principal_delta, refund.bonus_delta) == (D("-300.00"), D("-20.00"))
    assert wallet_of(member_a) == (D("0.00"), D("0.00"), D("0.00"))
    # when: the fruit tea is returned
    with pytest.raises(ValidationError) as refused:
        wallet_refund_spend(spend_entry=spent, idempotency_key="tea back")
    # then: nothing comes back — the bonus it was paid with belonged to a refunded top-up
    assert refused.value.error_dict["amount"][0].code == "over_refund"
    assert wallet_of(member_a) == (D("0.00"), D("0.00"), D("0.00"))
    assert RestrictedBonus.objects.get().remaining == D("0.00")
    assert_ledgers_hold()


@pytest.mark.django_db
def test_a_mixed_spend_refunded_after_the_top_up_refund_gives_back_only_its_other_parts(member_a, products):
    # given: ¥100 of plain money, then ¥300 with ¥50 for wake-up products
    wallet_top_up(member=member_a, amount_paid="100.00", idempotency_key="plain")
    top_up = wallet_top_up(
        member=member_a, amount_paid="300.00", bonus="50.00", restriction=WAKE_UP, idempotency_key="r"
    )
    # and ¥30 of wake-up fruit tea (restricted bonus) with ¥20 of milk tea (principal)
    spent = wallet_spend(
        member=member_a,
        amount="50.00",
        lines=[("FT-01", D("30.00")), ("MT-01", D("20.00"))],
        idempotency_key="s",
    )
    assert (spent.principal_delta, spent.bonus_delta) == (D("-20.00"), D("-30.00"))
    wallet_refund_top_up(top_up_entry=top_up, idempotency_key="back")
    assert wallet_of(member_a) == (D("80.00"), D("0.00"), D("0.00"))
    # when: more than the milk tea is asked back, it is refused; the whole order gives back the milk tea
    with pytest.raises(ValidationError):
        wallet_refund_spend(spend_entry=spent, amount="21.00", idempotency_key="too much")
    back = wallet_refund_spend(spend_entry=spent, idempotency_key="order back")
    # then: the ¥20 of principal, and none of the refunded top-up's bonus
    assert (back.principal_delta, back.bonus_delta) == (D("20.00"), D("0.00"))
    assert wallet_of(member_a) == (D("100.00"), D("0.00"), D("0.00"))
    with pytest.raises(ValidationError):
        wallet_refund_spend(spend_entry=spent, idempotency_key="again")
    assert_ledgers_hold()


@pytest.mark.django_db
def test_uses_recorded_before_the_restriction_was_kept_get_the_one_they_were_granted(sleeping, seed_offers, products):
    from importlib import import_module

    from django.db import connection

    from campaigns.models import OfferTopUp
    from campaigns.services.offers import offer_top_up

    migration = import_module("campaigns.migrations.0019_offertopup_restriction")
    offer = seed_offers[SLEEPING]
    TopUpOffer.objects.filter(pk=offer.pk).update(per_member_limit=3)
    # given: a use topped up under 唤醒商品, one of the offer while it had no restriction, one still waiting
    offer_top_up(member=sleeping, offer=offer, amount_paid="300.00", idempotency_key="tagged")
    TopUpOffer.objects.filter(pk=offer.pk).update(product_tags="")
    offer_top_up(member=sleeping, offer=offer, amount_paid="300.00", idempotency_key="plain")
    OfferTopUp.objects.create(
        offer=offer, member=sleeping, sequence=3, amount_paid=D("300.00"), bonus=D("50.00"), idempotency_key="w"
    )
    # and the offer is now for 果茶; none of the uses held a restriction (as before the migration)
    TopUpOffer.objects.filter(pk=offer.pk).update(product_categories="果茶")
    OfferTopUp.objects.update(product_tags="", product_categories="")
    # when: the migration's backfill runs
    with connection.cursor() as cursor:
        cursor.execute(migration.FROM_THE_BONUS)
        cursor.execute(migration.FROM_THE_OFFER)
    # then: each use holds what it granted (or, still waiting, what the offer gives now)
    held = dict(OfferTopUp.objects.values_list("idempotency_key", "product_tags"))
    categories = dict(OfferTopUp.objects.values_list("idempotency_key", "product_categories"))
    assert (held, categories) == (
        {"tagged": "唤醒商品", "plain": "", "w": ""},
        {"tagged": "", "plain": "", "w": "果茶"},
    )
    # and a retry of the recorded ones replays them
    again = offer_top_up(member=sleeping, offer=offer, amount_paid="300.00", idempotency_key="tagged")
    assert restricted_to(again.pk) == (["唤醒商品"], [])
