from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from members.models import PointsAccount, PointsEntry, Wallet
from members.services.points import points_grant, points_redeem
from members.services.reconcile import balances_reconcile
from members.services.wallet import wallet_spend, wallet_top_up
from members.tasks import reconcile_task
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def books():
    """Two members with points and stored value moved only through the services."""
    alice, bob = MemberFactory(), MemberFactory()
    for member in (alice, bob):
        points_grant(
            member=member,
            points=500,
            kind=PointsEntry.Kind.CAMPAIGN_REWARD,
            reason="welcome",
            idempotency_key=f"g{member.pk}",
        )
        points_redeem(member=member, points=120, idempotency_key=f"r{member.pk}", reason="coffee")
        wallet_top_up(member=member, amount_paid="200.00", bonus="20.00", idempotency_key=f"t{member.pk}")
        wallet_spend(member=member, amount="33.30", idempotency_key=f"s{member.pk}")
    return alice, bob


def test_books_kept_by_the_services_reconcile(books, capsys):
    # when
    call_command("reconcile")
    # then
    assert balances_reconcile() == []
    assert "equal their ledgers" in capsys.readouterr().out
    assert reconcile_task.delay().get() == 0


def test_a_tampered_points_balance_is_found(books):
    # given: somebody edits a balance behind the ledger's back
    _alice, bob = books
    PointsAccount.objects.filter(member=bob).update(balance=9999)
    # when
    with pytest.raises(CommandError, match="1 balance"):
        call_command("reconcile")
    # then
    [found] = balances_reconcile()
    assert (found.kind, found.member_id) == ("points", bob.pk)
    assert "balance 9999, ledger sum 380, lots remaining 380" in found.detail


def test_a_tampered_wallet_is_found(books, capsys):
    # given
    alice, _ = books
    Wallet.objects.filter(member=alice).update(bonus=Decimal("100.00"))
    # when
    with pytest.raises(CommandError):
        call_command("reconcile")
    # then
    err = capsys.readouterr().err
    assert f"wallet member {alice.pk}" in err
    assert "bonus 100.00 vs ledger" in err
    assert reconcile_task.delay().get() == 1
