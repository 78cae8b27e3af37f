"""Stored value: top-ups, spends, refunds, the ledger, idempotency, concurrency and the admin."""

import re
import threading
import uuid
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Sum
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from members.mobile import mask_mobile
from members.models import Wallet, WalletEntry
from members.services.orders import IdempotencyConflict
from members.services.wallet import (
    split_proportionally,
    wallet_refund_spend,
    wallet_refund_top_up,
    wallet_spend,
    wallet_top_up,
)
from tests.factories import MemberFactory

D = Decimal
Kind = WalletEntry.Kind


def key() -> str:
    return uuid.uuid4().hex


def balances(member) -> tuple[Decimal, Decimal]:
    wallet = Wallet.objects.get(member=member)
    return wallet.principal, wallet.bonus


def ledger_sums(member) -> tuple[Decimal, Decimal]:
    sums = WalletEntry.objects.filter(wallet__member=member).aggregate(p=Sum("principal_delta"), b=Sum("bonus_delta"))
    return sums["p"] or D("0.00"), sums["b"] or D("0.00")


# --- the proportional split -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "principal", "bonus", "expected"),
    [
        ("30.00", "100.00", "20.00", ("25.00", "5.00")),  # 30 × 20/120 = 5 exactly
        ("10.00", "200.00", "20.00", ("9.10", "0.90")),  # 10 × 20/220 = 0.909… → bonus 0.90
        ("0.01", "50.00", "50.00", ("0.01", "0.00")),  # 0.005 rounds down: the cent comes from principal
        ("120.00", "100.00", "20.00", ("100.00", "20.00")),  # everything
        ("7.00", "0.00", "10.00", ("0.00", "7.00")),  # no principal: all from bonus
        ("7.00", "10.00", "0.00", ("7.00", "0.00")),  # no bonus: all from principal
        ("1.00", "0.01", "1.00", ("0.01", "0.99")),
    ],
)
def test_split_is_proportional_with_the_bonus_share_rounded_down(amount, principal, bonus, expected):
    # given / when
    split = split_proportionally(amount=D(amount), principal=D(principal), bonus=D(bonus))
    # then
    assert (split.principal, split.bonus) == (D(expected[0]), D(expected[1]))


cents = st.integers(min_value=0, max_value=10**9).map(lambda c: D(c) / 100)


@given(principal=cents, bonus=cents, fraction=st.fractions(min_value=0, max_value=1))
def test_split_never_takes_more_than_a_part_holds(principal, bonus, fraction):
    # given
    total_c = int((principal + bonus) * 100)
    amount = D(int(total_c * fraction)) / 100
    # when
    split = split_proportionally(amount=amount, principal=principal, bonus=bonus)
    # then
    assert split.principal + split.bonus == amount
    assert D(0) <= split.principal <= principal
    assert D(0) <= split.bonus <= bonus
    if principal + bonus:
        assert int(split.bonus * 100) == int(amount * 100) * int(bonus * 100) // total_c


# --- top-up and spend ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_top_up_creates_the_wallet_and_keeps_principal_and_bonus_apart(django_user_model):
    # given
    member = MemberFactory()
    operator = django_user_model.objects.create_user("cashier")
    # when
    entry = wallet_top_up(
        member=member,
        amount_paid="200",
        bonus="20.00",
        offer_code="NEW200",
        idempotency_key="pay-1",
        actor=operator,
        reason="new member offer",
        reference="WX-1",
    )
    # then
    assert balances(member) == (D("200.00"), D("20.00"))
    assert (entry.kind, entry.principal_delta, entry.bonus_delta, entry.amount) == (
        Kind.TOP_UP,
        D("200.00"),
        D("20.00"),
        D("220.00"),
    )
    assert (entry.principal_after, entry.bonus_after) == (D("200.00"), D("20.00"))
    assert (entry.actor, entry.offer_code, entry.reason, entry.reference) == (
        operator,
        "NEW200",
        "new member offer",
        "WX-1",
    )


@pytest.mark.django_db
def test_spend_takes_from_both_parts_in_proportion():
    # given
    member = MemberFactory()
    wallet_top_up(member=member, amount_paid="200.00", bonus="20.00", idempotency_key=key())
    # when
    entry = wallet_spend(member=member, amount="10.00", idempotency_key=key(), reference="ORD-9")
    # then
    assert (entry.principal_delta, entry.bonus_delta, entry.amount) == (D("-9.10"), D("-0.90"), D("-10.00"))
    assert balances(member) == (D("190.90"), D("19.10"))


@pytest.mark.django_db
def test_spend_never_overdraws():
    # given
    member = MemberFactory()
    wallet_top_up(member=member, amount_paid="5.00", bonus="1.00", idempotency_key=key())
    # when
    with pytest.raises(ValidationError) as excinfo:
        wallet_spend(member=member, amount="6.01", idempotency_key=key())
    # then
    assert "Insufficient balance" in excinfo.value.message_dict["amount"][0]
    assert balances(member) == (D("5.00"), D("1.00"))
    assert WalletEntry.objects.filter(kind=Kind.SPEND).count() == 0


@pytest.mark.django_db
def test_spend_from_a_member_without_a_wallet_is_refused_and_leaves_nothing_behind():
    # given
    member = MemberFactory()
    # when
    with pytest.raises(ValidationError):
        wallet_spend(member=member, amount="1.00", idempotency_key=key())
    # then
    assert not Wallet.objects.filter(member=member).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("bad", ["0", "-1.00", "1.001", "abc"])
def test_amounts_are_validated_by_field(bad):
    # given
    member = MemberFactory()
    # when / then
    with pytest.raises(ValidationError) as excinfo:
        wallet_top_up(member=member, amount_paid=bad, idempotency_key=key())
    assert "amount_paid" in excinfo.value.message_dict


@pytest.mark.django_db
def test_an_idempotency_key_is_required():
    # given
    member = MemberFactory()
    # when / then
    with pytest.raises(ValidationError) as excinfo:
        wallet_top_up(member=member, amount_paid="1.00", idempotency_key="  ")
    assert "idempotency_key" in excinfo.value.message_dict


# --- idempotency ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_retried_top_up_moves_money_once_and_returns_the_first_entry():
    # given
    member = MemberFactory()
    first = wallet_top_up(member=member, amount_paid="100.00", bonus="10.00", idempotency_key="topup-A")
    # when
    again = wallet_top_up(member=member, amount_paid="100", bonus="10", idempotency_key="topup-A")
    # then
    assert again.pk == first.pk
    assert balances(member) == (D("100.00"), D("10.00"))
    assert WalletEntry.objects.count() == 1


@pytest.mark.django_db
def test_a_retried_spend_moves_money_once_and_returns_the_first_entry():
    # given
    member = MemberFactory()
    wallet_top_up(member=member, amount_paid="100.00", idempotency_key=key())
    first = wallet_spend(member=member, amount="30.00", idempotency_key="spend-A")
    # when
    again = wallet_spend(member=member, amount="30.00", idempotency_key="spend-A")
    # then
    assert again.pk == first.pk
    assert balances(member) == (D("70.00"), D("0.00"))


@pytest.mark.django_db
@pytest.mark.parametrize(
    "second_call",
    [
        lambda member, other: wallet_spend(member=member, amount="31.00", idempotency_key="K"),
        lambda member, other: wallet_spend(member=other, amount="30.00", idempotency_key="K"),
        lambda member, other: wallet_top_up(member=member, amount_paid="30.00", idempotency_key="K"),
        lambda member, other: wallet_top_up(member=other, amount_paid="30.00", idempotency_key="K"),
    ],
    ids=["other-amount", "other-member", "other-operation", "other-operation-and-wallet"],
)
def test_the_same_key_with_a_different_request_is_refused(second_call):
    # given
    member, other = MemberFactory(), MemberFactory()
    wallet_top_up(member=member, amount_paid="100.00", idempotency_key=key())
    wallet_top_up(member=other, amount_paid="100.00", idempotency_key=key())
    wallet_spend(member=member, amount="30.00", idempotency_key="K")
    # when
    with pytest.raises(IdempotencyConflict) as excinfo:
        second_call(member, other)
    # then
    assert "idempotency_key" in excinfo.value.message_dict
    assert balances(member) == (D("70.00"), D("0.00"))
    assert balances(other) == (D("100.00"), D("0.00"))


# --- refunds -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_spend_refund_returns_to_the_parts_the_spend_came_from():
    # given: 9.10 principal + 0.90 bonus spent; then a top-up changes the wallet's proportions
    member = MemberFactory()
    wallet_top_up(member=member, amount_paid="200.00", bonus="20.00", idempotency_key=key())
    spend = wallet_spend(member=member, amount="10.00", idempotency_key="spend-1")
    wallet_top_up(member=member, amount_paid="500.00", idempotency_key=key())
    # when
    refund = wallet_refund_spend(spend_entry=spend, idempotency_key=key(), reason="cup returned")
    # then
    assert (refund.kind, refund.principal_delta, refund.bonus_delta) == (Kind.SPEND_REFUND, D("9.10"), D("0.90"))
    assert refund.related_entry == spend
    assert balances(member) == (D("700.00"), D("20.00"))


@pytest.mark.django_db
def test_partial_spend_refunds_are_proportional_and_never_exceed_the_spend():
    # given
    member = MemberFactory()
    wallet_top_up(member=member, amount_paid="100.00", bonus="20.00", idempotency_key=key())
    spend = wallet_spend(member=member, amount="60.00", idempotency_key="spend-1")  # 50.00 + 10.00
    # when
    first = wallet_refund_spend(spend_idempotency_key="spend-1", amount="30.00", idempotency_key=key())
    second = wallet_refund_spend(spend_entry=spend, amount="29.99", idempotency_key=key())
    with pytest.raises(ValidationError) as excinfo:
        wallet_refund_spend(spend_entry=spend, amount="0.02", idempotency_key=key())
    last = wallet_refund_spend(spend_entry=spend, idempotency_key=key())  # what is left
    # then
    assert (first.principal_delta, first.bonus_delta) == (D("25.00"), D("5.00"))
    assert (second.principal_delta, second.bonus_delta) == (D("25.00"), D("4.99"))
    assert "cannot exceed" in excinfo.value.message_dict["amount"][0]
    assert (last.principal_delta, last.bonus_delta) == (D("0.00"), D("0.01"))
    assert balances(member) == (D("100.00"), D("20.00"))
    with pytest.raises(ValidationError):
        wallet_refund_spend(spend_entry=spend, idempotency_key=key())


@pytest.mark.django_db
def test_only_a_spend_can_be_refunded_as_a_spend():
    # given
    member = MemberFactory()
    top_up = wallet_top_up(member=member, amount_paid="10.00", idempotency_key="t")
    # when / then
    with pytest.raises(ValidationError) as excinfo:
        wallet_refund_spend(spend_entry=top_up, idempotency_key=key())
    assert "spend_entry" in excinfo.value.message_dict
    with pytest.raises(ValidationError):
        wallet_refund_spend(spend_idempotency_key="no-such-spend", idempotency_key=key())


@pytest.mark.django_db
def test_an_unspent_top_up_is_refunded_with_its_bonus_clawed_back():
    # given
    member = MemberFactory()
    wallet_top_up(member=member, amount_paid="50.00", idempotency_key=key())
    top_up = wallet_top_up(member=member, amount_paid="200.00", bonus="20.00", idempotency_key=key())
    # when
    refund = wallet_refund_top_up(top_up_entry=top_up, idempotency_key=key(), reason="changed mind")
    # then
    assert (refund.kind, refund.principal_delta, refund.bonus_delta) == (Kind.TOP_UP_REFUND, D("-200.00"), D("-20.00"))
    assert balances(member) == (D("50.00"), D("0.00"))


@pytest.mark.django_db
def test_the_claw_back_takes_only_the_bonus_that_is_left():
    # given: principal 600, bonus 20; spending 300 takes 290.33 principal and 9.67 bonus
    member = MemberFactory()
    wallet_top_up(member=member, amount_paid="100.00", idempotency_key=key())
    top_up = wallet_top_up(member=member, amount_paid="200.00", bonus="20.00", idempotency_key=key())
    wallet_top_up(member=member, amount_paid="300.00", idempotency_key=key())
    wallet_spend(member=member, amount="300.00", idempotency_key=key())
    assert balances(member) == (D("309.67"), D("10.33"))
    # when
    refund = wallet_refund_top_up(top_up_entry=top_up, idempotency_key=key())
    # then
    assert (refund.principal_delta, refund.bonus_delta) == (D("-200.00"), D("-10.33"))
    assert balances(member) == (D("109.67"), D("0.00"))


@pytest.mark.django_db
def test_a_partly_spent_top_up_cannot_be_refunded():
    # given
    member = MemberFactory()
    top_up = wallet_top_up(member=member, amount_paid="100.00", bonus="10.00", idempotency_key=key())
    wallet_spend(member=member, amount="11.00", idempotency_key=key())  # 10.00 principal + 1.00 bonus
    # when
    with pytest.raises(ValidationError) as excinfo:
        wallet_refund_top_up(top_up_entry=top_up, idempotency_key=key())
    # then
    assert "partly spent" in excinfo.value.message_dict["top_up_entry"][0]
    assert balances(member) == (D("90.00"), D("9.00"))


@pytest.mark.django_db
def test_a_top_up_is_refunded_once():
    # given
    member = MemberFactory()
    wallet_top_up(member=member, amount_paid="500.00", idempotency_key=key())
    top_up = wallet_top_up(member=member, amount_paid="100.00", bonus="10.00", idempotency_key=key())
    first = wallet_refund_top_up(top_up_entry=top_up, idempotency_key="refund-1")
    # when
    retried = wallet_refund_top_up(top_up_entry=top_up, idempotency_key="refund-1")
    with pytest.raises(ValidationError) as excinfo:
        wallet_refund_top_up(top_up_entry=top_up, idempotency_key="refund-2")
    # then
    assert retried.pk == first.pk
    assert "already refunded" in excinfo.value.message_dict["top_up_entry"][0]
    assert balances(member) == (D("500.00"), D("0.00"))
    assert WalletEntry.objects.filter(kind=Kind.TOP_UP_REFUND).count() == 1


# --- the database guards the invariants ----------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("column", ["principal", "bonus"])
def test_the_database_refuses_a_negative_balance(column):
    # given
    member = MemberFactory()
    wallet_top_up(member=member, amount_paid="10.00", bonus="1.00", idempotency_key=key())
    wallet = Wallet.objects.get(member=member)
    # when / then
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"UPDATE members_wallet SET {column} = -0.01 WHERE id = %s", [wallet.pk])
    assert balances(member) == (D("10.00"), D("1.00"))


@pytest.mark.django_db
def test_the_database_refuses_an_entry_whose_amount_is_not_the_sum_of_its_parts():
    # given
    member = MemberFactory()
    entry = wallet_top_up(member=member, amount_paid="10.00", idempotency_key=key())
    # when / then
    with pytest.raises(IntegrityError), transaction.atomic():
        WalletEntry.objects.filter(pk=entry.pk).update(amount=D("11.00"))


# --- random histories ----------------------------------------------------------------------------

operations = st.lists(
    st.one_of(
        st.tuples(st.just("top_up"), st.integers(1, 50_000), st.integers(0, 5_000)),
        st.tuples(st.just("spend"), st.integers(1, 30_000)),
        st.tuples(st.just("refund_spend"), st.integers(0, 20), st.none() | st.integers(1, 20_000)),
        st.tuples(st.just("refund_top_up"), st.integers(0, 20)),
    ),
    min_size=1,
    max_size=12,
)


@pytest.mark.django_db
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_random_histories_keep_the_ledger_and_the_balances_in_step(ops):
    # given: a fresh member for every example
    member = MemberFactory()
    top_ups: list[WalletEntry] = []
    spends: list[WalletEntry] = []
    # when: operations that the rules allow succeed, the others are refused without effect
    for op in ops:
        before = balances(member) if Wallet.objects.filter(member=member).exists() else (D(0), D(0))
        if op[0] == "top_up":
            top_ups.append(
                wallet_top_up(member=member, amount_paid=D(op[1]) / 100, bonus=D(op[2]) / 100, idempotency_key=key())
            )
        elif op[0] == "spend":
            amount = D(op[1]) / 100
            if amount <= sum(before):
                spends.append(wallet_spend(member=member, amount=amount, idempotency_key=key()))
            else:
                with pytest.raises(ValidationError):
                    wallet_spend(member=member, amount=amount, idempotency_key=key())
        elif op[0] == "refund_spend" and spends:
            spend = spends[op[1] % len(spends)]
            left = -spend.amount - sum(r.amount for r in spend.refunds.all())
            amount = left if op[2] is None else min(D(op[2]) / 100, -spend.amount)
            if 0 < amount <= left:
                wallet_refund_spend(spend_entry=spend, amount=None if op[2] is None else amount, idempotency_key=key())
            else:
                with pytest.raises(ValidationError):
                    wallet_refund_spend(
                        spend_entry=spend, amount=None if op[2] is None else amount, idempotency_key=key()
                    )
        elif op[0] == "refund_top_up" and top_ups:
            top_up = top_ups[op[1] % len(top_ups)]
            if not top_up.refunds.exists() and before[0] >= top_up.principal_delta:
                refund = wallet_refund_top_up(top_up_entry=top_up, idempotency_key=key())
                assert refund.bonus_delta == -min(top_up.bonus_delta, before[1])
            else:
                with pytest.raises(ValidationError):
                    wallet_refund_top_up(top_up_entry=top_up, idempotency_key=key())
    # then
    entries = list(WalletEntry.objects.filter(wallet__member=member).order_by("id"))
    principal = bonus = D("0.00")
    for entry in entries:
        principal += entry.principal_delta
        bonus += entry.bonus_delta
        assert principal >= 0 and bonus >= 0
        assert (entry.principal_after, entry.bonus_after) == (principal, bonus)
    if entries:
        assert balances(member) == (principal, bonus)
    for spend in spends:
        refunds = spend.refunds.all()
        assert sum(r.principal_delta for r in refunds) <= -spend.principal_delta
        assert sum(r.bonus_delta for r in refunds) <= -spend.bonus_delta


# --- concurrency ---------------------------------------------------------------------------------

THREADS = 50


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_spends_never_overdraw():
    # given: ¥100 and 50 requests of ¥3 released at the same moment
    member = MemberFactory()
    wallet_top_up(member=member, amount_paid="100.00", idempotency_key="seed")
    barrier = threading.Barrier(THREADS, timeout=30)
    outcomes: list[str] = []
    lock = threading.Lock()

    def spend(n: int) -> None:
        try:
            barrier.wait()
            try:
                wallet_spend(member=member, amount="3.00", idempotency_key=f"concurrent-{n}")
                outcome = "ok"
            except ValidationError as exc:
                outcome = "insufficient" if "amount" in exc.message_dict else repr(exc)
            except Exception as exc:
                outcome = repr(exc)
            with lock:
                outcomes.append(outcome)
        finally:
            connection.close()

    threads = [threading.Thread(target=spend, args=(n,)) for n in range(THREADS)]
    # when
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then
    assert sorted(set(outcomes)) == ["insufficient", "ok"], outcomes
    assert outcomes.count("ok") == 33
    assert balances(member) == (D("1.00"), D("0.00"))
    assert ledger_sums(member) == (D("1.00"), D("0.00"))
    assert WalletEntry.objects.filter(kind=Kind.SPEND).count() == 33


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_top_ups_create_one_wallet():
    # given: a member without a wallet and two top-ups at once
    member = MemberFactory()
    barrier = threading.Barrier(2, timeout=30)
    errors: list[Exception] = []

    def top_up(n: int) -> None:
        try:
            barrier.wait()
            wallet_top_up(member=member, amount_paid="10.00", idempotency_key=f"first-{n}")
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=top_up, args=(n,)) for n in range(2)]
    # when
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then
    assert errors == []
    assert Wallet.objects.filter(member=member).count() == 1
    assert balances(member) == (D("20.00"), D("0.00"))


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_of_one_request_move_money_once():
    # given: the same spend sent 5 times at once, and the same key reused at once for another member
    member, other = MemberFactory(), MemberFactory()
    wallet_top_up(member=member, amount_paid="100.00", idempotency_key="seed-1")
    wallet_top_up(member=other, amount_paid="100.00", idempotency_key="seed-2")
    barrier = threading.Barrier(6, timeout=30)
    results: list[object] = []
    lock = threading.Lock()

    def spend(target) -> None:
        try:
            barrier.wait()
            try:
                result: object = wallet_spend(member=target, amount="7.00", idempotency_key="retried").pk
            except IdempotencyConflict:
                result = "conflict"
            with lock:
                results.append(result)
        finally:
            connection.close()

    threads = [threading.Thread(target=spend, args=(member if n < 5 else other,)) for n in range(6)]
    # when
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then: one spend; every request for it got that entry or, if the other member won the key, a conflict
    entry = WalletEntry.objects.get(idempotency_key="retried")
    assert len(results) == 6
    assert set(results) <= {entry.pk, "conflict"}
    assert results.count("conflict") == (5 if entry.wallet.member_id == other.pk else 1)
    assert sum(balances(member)) + sum(balances(other)) == D("193.00")


# --- admin ---------------------------------------------------------------------------------------


def hidden_key(response) -> str:
    match = re.search(r'name="idempotency_key" value="([^"]+)"', response.content.decode())
    assert match, "the form carries a hidden idempotency key"
    return match.group(1)


@pytest.mark.django_db
def test_admin_wallet_pages_render_for_a_superuser(staff_client, django_assert_num_queries):
    # given
    for _ in range(5):
        member = MemberFactory()
        wallet_top_up(member=member, amount_paid="100.00", bonus="5.00", idempotency_key=key())
        wallet_spend(member=member, amount="10.00", idempotency_key=key())
    wallet = Wallet.objects.get(member=member)
    # when / then
    with django_assert_num_queries(5):  # read-only: no count of the whole table besides the page's
        response = staff_client.get(reverse("admin:members_wallet_changelist"))
    assert response.status_code == 200
    assert mask_mobile(member.mobile) in response.content.decode()  # a row names its member masked
    with django_assert_num_queries(7):
        response = staff_client.get(reverse("admin:members_walletentry_changelist"))
    assert response.status_code == 200
    assert "Refund this top-up" in response.content.decode()
    response = staff_client.get(reverse("admin:members_walletentry_changelist"), {"kind": "spend", "q": member.mobile})
    assert response.status_code == 200
    assert response.content.decode().count(member.mobile) >= 1
    response = staff_client.get(reverse("admin:members_wallet_change", args=[wallet.pk]))
    assert response.status_code == 200
    assert "Top up this wallet" in response.content.decode()
    response = staff_client.get(reverse("admin:members_walletentry_changelist"), {"wallet__id__exact": wallet.pk})
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 2
    entry = WalletEntry.objects.filter(wallet=wallet).first()
    response = staff_client.get(reverse("admin:members_walletentry_change", args=[entry.pk]))
    assert response.status_code == 200


@pytest.mark.django_db
def test_admin_top_up_moves_money_once_on_a_double_submit(staff_client):
    # given
    member = MemberFactory()
    url = reverse("admin:members_wallet_top_up")
    page = staff_client.get(url, {"member": member.pk})
    assert page.status_code == 200
    form = {
        "mobile": member.mobile,
        "amount_paid": "200.00",
        "bonus": "20.00",
        "offer_code": "NEW200",
        "reason": "paid at the counter",
        "reference": "",
        "idempotency_key": hidden_key(page),
    }
    # when
    first = staff_client.post(url, form)
    second = staff_client.post(url, form)
    # then
    assert first.status_code == second.status_code == 302
    assert balances(member) == (D("200.00"), D("20.00"))
    entry = WalletEntry.objects.get(wallet__member=member)
    assert entry.actor.username == "operator"
    assert entry.reason == "paid at the counter"


@pytest.mark.django_db
def test_admin_top_up_requires_a_reason_and_a_known_member(staff_client):
    # given
    url = reverse("admin:members_wallet_top_up")
    # when
    response = staff_client.post(
        url, {"mobile": "13900000000", "amount_paid": "10", "bonus": "0", "idempotency_key": "k"}
    )
    # then
    assert response.status_code == 200
    assert "No member has this mobile number" in response.content.decode()
    assert "This field is required" in response.content.decode()
    assert not WalletEntry.objects.exists()


@pytest.mark.django_db
def test_admin_refund_of_a_top_up_happens_once(staff_client):
    # given
    member = MemberFactory()
    top_up = wallet_top_up(member=member, amount_paid="100.00", bonus="10.00", idempotency_key=key())
    url = reverse("admin:members_walletentry_refund_top_up", args=[top_up.pk])
    page = staff_client.get(url)
    assert page.status_code == 200
    form = {"reason": "customer asked", "idempotency_key": hidden_key(page)}
    # when
    first = staff_client.post(url, form)
    second = staff_client.post(url, form)
    fresh = staff_client.post(url, {"reason": "again", "idempotency_key": hidden_key(staff_client.get(url))})
    # then
    assert first.status_code == second.status_code == 302
    assert fresh.status_code == 200
    assert "already refunded" in fresh.content.decode()
    assert balances(member) == (D("0.00"), D("0.00"))
    assert WalletEntry.objects.filter(kind=Kind.TOP_UP_REFUND).count() == 1


@pytest.mark.django_db
def test_staff_without_the_permissions_get_403(client, django_user_model):
    # given: staff who may view wallets but not move money
    clerk = django_user_model.objects.create_user("clerk", password="pw-clerk-1", is_staff=True)
    clerk.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_wallet", "view_walletentry"], content_type__app_label="members")
    )
    client.force_login(clerk)
    member = MemberFactory()
    top_up = wallet_top_up(member=member, amount_paid="100.00", idempotency_key=key())
    top_up_url = reverse("admin:members_wallet_top_up")
    refund_url = reverse("admin:members_walletentry_refund_top_up", args=[top_up.pk])
    # when
    responses = [
        client.get(top_up_url),
        client.post(
            top_up_url,
            {"mobile": member.mobile, "amount_paid": "5", "bonus": "0", "reason": "x", "idempotency_key": "k"},
        ),
        client.get(refund_url),
        client.post(refund_url, {"reason": "x", "idempotency_key": "k2"}),
    ]
    # then
    assert [r.status_code for r in responses] == [403, 403, 403, 403]
    assert balances(member) == (D("100.00"), D("0.00"))
    listing = client.get(reverse("admin:members_walletentry_changelist"))
    assert listing.status_code == 200
    assert "Refund this top-up" not in listing.content.decode()
