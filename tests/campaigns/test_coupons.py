"""Coupons: granting (idempotent, issue limits), redeeming (once, also under concurrency), expiry."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from campaigns.models import Coupon, CouponTemplate
from campaigns.services.coupons import (
    CouponUnavailable,
    coupon_grant,
    coupon_redeem,
    coupon_revoke,
    coupons_expire,
)
from members.services.orders import IdempotencyConflict
from tests.campaigns.conftest import run_in_threads
from tests.factories import MemberFactory, OrderFactory, StoreFactory


def make_template(**fields) -> CouponTemplate:
    defaults = {"name": "¥20 off", "slug": f"t-{CouponTemplate.objects.count() + 1}", "amount": Decimal("20.00")}
    defaults.update(fields)
    stores = defaults.pop("stores", None)
    template = CouponTemplate.objects.create(**defaults)
    if stores:
        template.stores.set(stores)
    return template


def error_code(exc: ValidationError) -> str:
    return next(iter(exc.error_dict.values()))[0].code


@pytest.mark.django_db
def test_grant_is_idempotent_per_key_and_counts_once():
    # given
    template = make_template(valid_days=7)
    member = MemberFactory()

    # when
    first = coupon_grant(template=template, member=member, source="test", idempotency_key="k-1")
    again = coupon_grant(template=template, member=member, source="test", idempotency_key="k-1")

    # then
    assert again.pk == first.pk
    template.refresh_from_db()
    assert template.issued_count == 1
    assert first.status == Coupon.Status.ISSUED
    assert first.valid_until - first.valid_from == dt.timedelta(days=7)


@pytest.mark.django_db
def test_same_key_for_another_member_is_a_conflict():
    template = make_template()
    coupon_grant(template=template, member=MemberFactory(), source="test", idempotency_key="k-1")

    with pytest.raises(IdempotencyConflict):
        coupon_grant(template=template, member=MemberFactory(), source="test", idempotency_key="k-1")


@pytest.mark.django_db
def test_inactive_template_and_reached_limit_are_unavailable():
    # given
    inactive = make_template(is_active=False)
    limited = make_template(issue_limit=1)
    member = MemberFactory()
    coupon_grant(template=limited, member=member, source="test", idempotency_key="a")

    # when / then
    with pytest.raises(CouponUnavailable) as inactive_error:
        coupon_grant(template=inactive, member=member, source="test", idempotency_key="b")
    with pytest.raises(CouponUnavailable) as limit_error:
        coupon_grant(template=limited, member=member, source="test", idempotency_key="c")
    assert error_code(inactive_error.value) == "inactive"
    assert error_code(limit_error.value) == "limit_reached"
    assert Coupon.objects.filter(template=limited).count() == 1


@pytest.mark.django_db
def test_fixed_dates_give_the_template_window():
    start = timezone.now() - dt.timedelta(days=1)
    end = timezone.now() + dt.timedelta(days=10)
    template = make_template(validity=CouponTemplate.Validity.FIXED_DATES, valid_from=start, valid_until=end)

    coupon = coupon_grant(template=template, member=MemberFactory(), source="test", idempotency_key="k")

    assert (coupon.valid_from, coupon.valid_until) == (start, end)


@pytest.mark.django_db(transaction=True)
def test_issue_limit_holds_under_concurrent_grants():
    # given: 3 coupons may be issued, 8 members ask at once
    template = make_template(issue_limit=3)
    members = [MemberFactory() for _ in range(8)]

    # when
    results = run_in_threads(
        8,
        lambda i: coupon_grant(template=template, member=members[i], source="test", idempotency_key=f"race-{i}"),
    )

    # then
    granted = [r for r in results if isinstance(r, Coupon)]
    refused = [r for r in results if isinstance(r, CouponUnavailable)]
    assert len(granted) == 3
    assert len(refused) == 5
    template.refresh_from_db()
    assert template.issued_count == 3
    assert Coupon.objects.filter(template=template).count() == 3


@pytest.mark.django_db
def test_redeem_against_an_order_applies_the_discount_once():
    # given
    template = make_template(amount=Decimal("20.00"), min_spend=Decimal("100.00"))
    member = MemberFactory()
    coupon = coupon_grant(template=template, member=member, source="test", idempotency_key="g")
    order = OrderFactory(member=member, amount=Decimal("150.00"))

    # when
    redeemed = coupon_redeem(member=member, coupon_code=coupon.code.lower(), order=order, idempotency_key="r-1")
    retried = coupon_redeem(member=member, coupon=coupon, order=order, idempotency_key="r-1")

    # then
    assert redeemed.status == Coupon.Status.REDEEMED
    assert redeemed.discount == Decimal("20.00")
    assert redeemed.order_id == order.pk
    assert retried.pk == redeemed.pk and retried.redeemed_at == redeemed.redeemed_at
    with pytest.raises(ValidationError) as second:
        coupon_redeem(member=member, coupon=coupon, order=order, idempotency_key="r-2")
    assert error_code(second.value) == "already_redeemed"


@pytest.mark.django_db
def test_percentage_coupon_is_capped():
    template = make_template(
        kind=CouponTemplate.Kind.PERCENTAGE, amount=None, percent_off=20, max_discount=Decimal("30")
    )
    member = MemberFactory()
    coupon = coupon_grant(template=template, member=member, source="test", idempotency_key="g")

    redeemed = coupon_redeem(member=member, coupon=coupon, amount="500.00", idempotency_key="r")

    assert redeemed.discount == Decimal("30.00")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("other_member", "not_found"),
        ("below_minimum", "below_minimum"),
        ("wrong_store", "wrong_store"),
        ("expired", "expired"),
        ("revoked", "revoked"),
    ],
)
def test_redeem_refuses_what_is_not_allowed(case, code):
    # given
    allowed_store, other_store = StoreFactory(code="OK1"), StoreFactory(code="NO1")
    template = make_template(min_spend=Decimal("100.00"), stores=[allowed_store])
    member = MemberFactory()
    coupon = coupon_grant(template=template, member=member, source="test", idempotency_key="g")
    kwargs = {"member": member, "coupon": coupon, "amount": "120.00", "store": allowed_store}
    if case == "other_member":
        kwargs["member"] = MemberFactory()
    elif case == "below_minimum":
        kwargs["amount"] = "99.99"
    elif case == "wrong_store":
        kwargs["store"] = other_store
    elif case == "expired":
        past = timezone.now() - dt.timedelta(seconds=1)
        Coupon.objects.filter(pk=coupon.pk).update(valid_from=past - dt.timedelta(days=1), valid_until=past)
    elif case == "revoked":
        coupon_revoke(coupon=coupon, reason="mistake")

    # when / then
    with pytest.raises(ValidationError) as refused:
        coupon_redeem(idempotency_key="r", **kwargs)
    assert error_code(refused.value) == code
    assert Coupon.objects.get(pk=coupon.pk).redeemed_at is None


@pytest.mark.django_db(transaction=True)
def test_a_coupon_redeemed_concurrently_from_two_requests_succeeds_once():
    # given
    template = make_template(amount=Decimal("50.00"))
    member = MemberFactory()
    coupon = coupon_grant(template=template, member=member, source="test", idempotency_key="g")

    # when: two tills redeem it at the same moment, each with its own key
    results = run_in_threads(
        2, lambda i: coupon_redeem(member=member, coupon=coupon, amount="200.00", idempotency_key=f"till-{i}")
    )

    # then
    successes = [r for r in results if isinstance(r, Coupon)]
    failures = [r for r in results if isinstance(r, ValidationError)]
    assert len(successes) == 1, results
    assert len(failures) == 1 and error_code(failures[0]) == "already_redeemed"
    stored = Coupon.objects.get(pk=coupon.pk)
    assert stored.status == Coupon.Status.REDEEMED
    assert stored.redemption_key == successes[0].redemption_key


@pytest.mark.django_db
def test_expiry_is_one_update_of_the_due_coupons():
    # given
    template = make_template()
    member = MemberFactory()
    due = coupon_grant(template=template, member=member, source="test", idempotency_key="due")
    fresh = coupon_grant(template=template, member=member, source="test", idempotency_key="fresh")
    used = coupon_grant(template=template, member=member, source="test", idempotency_key="used")
    coupon_redeem(member=member, coupon=used, amount="30.00", idempotency_key="r")
    past = timezone.now() - dt.timedelta(minutes=1)
    Coupon.objects.filter(pk__in=[due.pk, used.pk]).update(valid_from=past - dt.timedelta(days=1), valid_until=past)

    # when
    expired = coupons_expire(as_of=timezone.now())
    again = coupons_expire(as_of=timezone.now())

    # then
    assert (expired, again) == (1, 0)
    statuses = dict(Coupon.objects.values_list("pk", "status"))
    assert statuses == {due.pk: "expired", fresh.pk: "issued", used.pk: "redeemed"}


@pytest.mark.django_db
def test_a_used_coupon_cannot_be_revoked():
    template = make_template()
    member = MemberFactory()
    coupon = coupon_grant(template=template, member=member, source="test", idempotency_key="g")
    coupon_redeem(member=member, coupon=coupon, amount="30.00", idempotency_key="r")

    with pytest.raises(ValidationError):
        coupon_revoke(coupon=coupon, reason="too late")
    assert Coupon.objects.get(pk=coupon.pk).status == Coupon.Status.REDEEMED
