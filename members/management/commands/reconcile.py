"""``reconcile``: recompute every balance from its ledger; exit non-zero on any difference."""

from django.core.management.base import BaseCommand, CommandError

from members.services.reconcile import balances_reconcile


class Command(BaseCommand):
    help = "Compare every points and wallet balance with the sum of its ledger; fail on any difference."

    def handle(self, *args, **options):
        discrepancies = balances_reconcile()
        for discrepancy in discrepancies:
            self.stderr.write(str(discrepancy))
        if discrepancies:
            raise CommandError(f"{len(discrepancies)} balance(s) differ from their ledgers.")
        self.stdout.write("All points and wallet balances equal their ledgers.")
