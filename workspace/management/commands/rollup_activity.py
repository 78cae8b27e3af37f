"""``python manage.py rollup_activity [--days N]``: the activity rollup (``workspace.activity_rollup``)
for the N days before today — 2 as each night; more to fill the history after a first install."""

from django.core.management.base import BaseCommand

from workspace.activity_rollup import activity_rollup


class Command(BaseCommand):
    help = "Rewrite the activity and retention rollup for the days before today."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=2)

    def handle(self, *args, days: int, **options):
        self.stdout.write(str(activity_rollup(days=max(1, days))))
