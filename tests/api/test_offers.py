"""Offers for me: top-up offers by segment (never naming the segment), topping up with one (checked on
the server, its bonus credited with the payment, once), and the points multipliers I have."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from campaigns.models import Campaign, CampaignBenefit, CampaignGrant, OfferTopUp, TopUpOffer
from members.models import MemberPointsMultiplier, TopUpIntent, Wallet
from tests.api import fakes
from tests.api.test_payments import notify

pytestmark = pytest.mark.django_db

OFFERS = "/api/v1/me/offers"
TOP_UPS = "/api/v1/me/top-ups"


def offer(code: str, *, segments=(), **fields) -> TopUpOffer:
    values = {"name": "储值送礼", "min_amount": Decimal("200.00"), "bonus_amount": Decimal("20.00")}
    values.update(fields)
    made = TopUpOffer.objects.create(code=code, **values)
    made.segments.set(segments)
    return made


@pytest.fixture
def offers(place, member_a, member_b):
    """A is a champion, B is lost; an offer for each segment and one for everyone."""
    champions, lost = place(member_a, "champions").segment, place(member_b, "lost").segment
    return {
        "champions": offer(
            "vip-1000",
            segments=[champions],
            min_amount=Decimal("1000.00"),
            bonus_amount=Decimal("150.00"),
            points_multiplier=Decimal("2.00"),
            multiplier_days=30,
        ),
        "lost": offer("wake-300", segments=[lost], min_amount=Decimal("300.00"), bonus_amount=Decimal("50.00")),
        "everyone": offer("all-200", per_member_limit=None),
        "segments": (champions, lost),
    }


def listed(client) -> dict[int, dict]:
    response = client.get(OFFERS)
    assert response.status_code == 200, response.json()
    return {row["id"]: row for row in response.json()["results"]}


def test_the_offers_differ_by_segment_and_never_name_it(client_a, client_b, offers):
    # when
    for_a, for_b = listed(client_a), listed(client_b)
    # then
    assert set(for_a) == {offers["champions"].pk, offers["everyone"].pk}
    assert set(for_b) == {offers["lost"].pk, offers["everyone"].pk}
    assert for_a[offers["champions"].pk] == {
        "id": offers["champions"].pk,
        "name": "储值送礼",
        "description": "",
        "min_amount": "1000.00",
        "bonus_amount": "150.00",
        "points_multiplier": "2.00",
        "multiplier_days": 30,
        "restriction_note": "",
        "product_tags": [],
        "product_categories": [],
        "valid_from": None,
        "valid_until": None,
        "uses_left": 1,
    }
    assert for_a[offers["everyone"].pk]["uses_left"] is None
    text = str([client_a.get(OFFERS).content.decode(), client_b.get(OFFERS).content.decode()]).lower()
    for segment in offers["segments"]:
        for label in (segment.slug, segment.name_zh, segment.name_en):
            assert label.lower() not in text
    assert "segment" not in text
    assert "vip-1000" not in text  # offer codes are for staff


def test_an_offer_given_by_a_campaign_is_listed_whatever_the_segment(client_b, member_b, offers):
    # given: a campaign gave B the champions' offer
    campaign = Campaign.objects.create(name="Win back", slug="win-back", status=Campaign.Status.RUNNING)
    CampaignBenefit.objects.create(
        campaign=campaign, kind=CampaignBenefit.Kind.TOP_UP_OFFER, top_up_offer=offers["champions"]
    )
    CampaignGrant.objects.create(
        campaign=campaign, member=member_b, cause="batch", sequence=1, granted_at=timezone.now()
    )
    # when / then
    assert offers["champions"].pk in listed(client_b)


def test_a_top_up_with_my_offer_credits_its_bonus_with_the_payment_once(client_a, member_a, offers):
    # given
    vip = offers["champions"]
    # when: A starts a top-up with the offer, and WeChat Pay calls back twice
    response = client_a.post(TOP_UPS, {"amount": "1000.00", "offer": vip.pk}, format="json")
    assert response.status_code == 201, response.json()
    trade = response.json()["out_trade_no"]
    body = fakes.payment_notification(out_trade_no=trade, transaction_id="4200000009", total=100000)
    first = notify(body, fakes.wechatpay_headers(body))
    retry = notify(body, fakes.wechatpay_headers(body))
    # then
    assert response.json()["bonus"] == "150.00"
    assert (first.status_code, retry.status_code) == (204, 204)
    wallet = Wallet.objects.get(member=member_a)
    assert (wallet.principal, wallet.bonus) == (Decimal("1000.00"), Decimal("150.00"))
    assert wallet.entries.get().offer_code == "vip-1000"
    # and the once-per-member offer is used up
    assert vip.pk not in listed(client_a)
    again = client_a.post(TOP_UPS, {"amount": "1000.00", "offer": vip.pk}, format="json")
    assert again.status_code == 400
    assert again.json()["fields"]["offer"][0]["code"] == "not_eligible"


def test_a_pending_top_up_holds_the_offer(client_a, offers):
    # given: an unpaid intent with the once-only offer
    vip = offers["champions"]
    assert client_a.post(TOP_UPS, {"amount": "1000.00", "offer": vip.pk}, format="json").status_code == 201
    # when: a second intent with it
    second = client_a.post(TOP_UPS, {"amount": "1000.00", "offer": vip.pk}, format="json")
    # then: refused; once the first intent has expired, the offer is back
    assert second.status_code == 400
    TopUpIntent.objects.update(expires_at=timezone.now() - dt.timedelta(minutes=1))
    assert vip.pk in listed(client_a)
    assert client_a.post(TOP_UPS, {"amount": "1000.00", "offer": vip.pk}, format="json").status_code == 201


def test_an_offer_used_at_the_till_is_not_offered_again(client_a, member_a, offers):
    # given: A used the champions' offer through the campaigns service
    from campaigns.services.offers import offer_top_up

    offer_top_up(member=member_a, offer=offers["champions"], amount_paid="1000.00", idempotency_key="till")
    # when / then
    assert set(listed(client_a)) == {offers["everyone"].pk}
    assert OfferTopUp.objects.count() == 1


@pytest.mark.parametrize(
    ("which", "amount", "field", "code"),
    [
        ("lost", "300.00", "offer", "not_eligible"),  # B's segment's offer
        ("champions", "999.99", "amount", "below_minimum"),
        ("missing", "1000.00", "offer", "not_eligible"),
    ],
)
def test_a_top_up_with_an_offer_i_cannot_use_is_refused(client_a, member_a, offers, which, amount, field, code):
    # given
    offer_id = offers[which].pk if which in offers else 999_999
    # when
    response = client_a.post(TOP_UPS, {"amount": amount, "offer": offer_id}, format="json")
    # then
    assert response.status_code == 400, response.json()
    assert response.json()["fields"][field][0]["code"] == code
    assert not TopUpIntent.objects.filter(member=member_a).exists()


def test_a_top_up_without_an_offer_has_no_bonus(client_a, offers):
    response = client_a.post(TOP_UPS, {"amount": "1000.00"}, format="json")
    assert (response.status_code, response.json()["bonus"]) == (201, "0.00")


def test_offers_cost_the_same_queries_for_few_or_many(client_a, offers, django_assert_max_num_queries):
    # given: 30 more offers for everyone
    for index in range(30):
        offer(f"extra-{index}")
    # when / then: the member (authentication), segment, offers, intents holding them, count-free page
    with django_assert_max_num_queries(4):
        assert len(client_a.get(OFFERS, {"limit": 50}).json()["results"]) == 32


def test_my_points_multipliers_current_and_coming_only(client_a, member_a, member_b):
    # given
    now = timezone.now()

    def multiplier(member, key, starts, ends):
        return MemberPointsMultiplier.objects.create(
            member=member, multiplier=Decimal("2.00"), starts_at=starts, ends_at=ends, idempotency_key=key
        )

    current = multiplier(member_a, "current", now - dt.timedelta(days=1), now + dt.timedelta(days=5))
    coming = multiplier(member_a, "coming", now + dt.timedelta(days=7), now + dt.timedelta(days=14))
    multiplier(member_a, "over", now - dt.timedelta(days=9), now - dt.timedelta(days=2))
    multiplier(member_b, "theirs", now - dt.timedelta(days=1), now + dt.timedelta(days=5))
    # when
    rows = client_a.get("/api/v1/me/points/multipliers").json()["results"]
    # then
    assert [row["id"] for row in rows] == [current.pk, coming.pk]
    assert rows[0]["multiplier"] == "2.00"
    assert set(rows[0]) == {"id", "multiplier", "starts_at", "ends_at"}


def pay(client, offer_id: int, *, amount: str = "1000.00", transaction_id: str = "4200000100") -> tuple[str, list]:
    """Start a top-up with the offer, then let WeChat Pay call back twice; the two responses."""
    response = client.post(TOP_UPS, {"amount": amount, "offer": offer_id}, format="json")
    assert response.status_code == 201, response.json()
    trade = response.json()["out_trade_no"]
    total = int(Decimal(amount) * 100)
    body = fakes.payment_notification(out_trade_no=trade, transaction_id=transaction_id, total=total)
    return trade, [notify(body, fakes.wechatpay_headers(body)) for _ in range(2)]


def test_paying_with_my_offer_gives_its_bonus_multiplier_and_use_once(client_a, member_a, offers):
    # given
    vip = offers["champions"]
    # when: A pays a top-up with the champions' offer; the callback comes twice
    trade, responses = pay(client_a, vip.pk)
    # then: principal and bonus once, as one entry carrying the offer and the payment's reference
    assert [response.status_code for response in responses] == [204, 204]
    wallet = Wallet.objects.get(member=member_a)
    assert (wallet.principal, wallet.bonus) == (Decimal("1000.00"), Decimal("150.00"))
    entry = wallet.entries.get()
    assert (entry.offer_code, entry.reference) == ("vip-1000", trade)
    # and double points for 30 days from the payment; the paid intent, carrying the offer, is the use
    multiplier = MemberPointsMultiplier.objects.get(member=member_a)
    assert multiplier.multiplier == Decimal("2.00")
    assert multiplier.ends_at - multiplier.starts_at == dt.timedelta(days=30)
    assert multiplier.starts_at == entry.created_at
    intent = TopUpIntent.objects.get(out_trade_no=trade)
    assert (intent.status, intent.wallet_entry_id, intent.offer_code) == (TopUpIntent.Status.PAID, entry.pk, "vip-1000")
    assert vip.pk not in listed(client_a)
    rows = client_a.get("/api/v1/me/points/multipliers").json()["results"]
    assert [row["multiplier"] for row in rows] == ["2.00"]


def test_a_paid_top_up_counts_once_against_the_offers_limit(client_a, member_a, offers):
    # given: an offer A may use twice
    twice = offer("twice-200", per_member_limit=2)
    # when: A pays one top-up with it
    pay(client_a, twice.pk, amount="200.00")
    # then: one use left (the paid intent is the use)
    assert listed(client_a)[twice.pk]["uses_left"] == 1


def test_an_offer_withdrawn_after_the_top_up_started_still_pays_what_was_shown_once(client_a, member_a, offers):
    # given: A starts a top-up with the champions' offer
    vip = offers["champions"]
    response = client_a.post(TOP_UPS, {"amount": "1000.00", "offer": vip.pk}, format="json")
    assert (response.status_code, response.json()["bonus"]) == (201, "150.00")
    trade = response.json()["out_trade_no"]
    # when: the operator switches the offer off, then WeChat Pay calls back
    TopUpOffer.objects.filter(pk=vip.pk).update(is_active=False)
    body = fakes.payment_notification(out_trade_no=trade, transaction_id="4200000200", total=100000)
    first = notify(body, fakes.wechatpay_headers(body))
    # and calls back again after the offer came back on
    TopUpOffer.objects.filter(pk=vip.pk).update(is_active=True)
    retry = notify(body, fakes.wechatpay_headers(body))
    # then: the member gets what they were shown when they started (within the intent's 2 hours), once
    assert (first.status_code, retry.status_code) == (204, 204)
    wallet = Wallet.objects.get(member=member_a)
    assert (wallet.principal, wallet.bonus) == (Decimal("1000.00"), Decimal("150.00"))
    assert wallet.entries.get().offer_code == "vip-1000"
    assert MemberPointsMultiplier.objects.filter(member=member_a).count() == 1
    assert TopUpIntent.objects.get(out_trade_no=trade).status == TopUpIntent.Status.PAID
    # and a new top-up cannot have the withdrawn offer
    TopUpOffer.objects.filter(pk=vip.pk).update(is_active=False)
    refused = client_a.post(TOP_UPS, {"amount": "1000.00", "offer": vip.pk}, format="json")
    assert refused.json()["fields"]["offer"][0]["code"] == "not_eligible"


@pytest.mark.parametrize("changed_to", ["80.00", "300.00"])
def test_the_bonus_paid_is_the_one_shown_when_the_top_up_started(client_a, member_a, offers, changed_to):
    # given: A starts a top-up with the champions' offer, shown a bonus of 150.00
    vip = offers["champions"]
    response = client_a.post(TOP_UPS, {"amount": "1000.00", "offer": vip.pk}, format="json")
    assert (response.status_code, response.json()["bonus"]) == (201, "150.00")
    trade = response.json()["out_trade_no"]
    # when: the operator changes the offer's bonus, then WeChat Pay calls back (twice)
    TopUpOffer.objects.filter(pk=vip.pk).update(bonus_amount=Decimal(changed_to))
    body = fakes.payment_notification(out_trade_no=trade, transaction_id="4200000300", total=100000)
    responses = [notify(body, fakes.wechatpay_headers(body)) for _ in range(2)]
    # then: the member gets what they were shown, once
    assert [r.status_code for r in responses] == [204, 204]
    wallet = Wallet.objects.get(member=member_a)
    assert (wallet.principal, wallet.bonus) == (Decimal("1000.00"), Decimal("150.00"))
    assert wallet.entries.get().offer_code == "vip-1000"
    assert TopUpIntent.objects.get(out_trade_no=trade).bonus == Decimal("150.00")
