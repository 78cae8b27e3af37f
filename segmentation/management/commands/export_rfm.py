"""``python manage.py export_rfm FILE``: the RFM CSV of PRODUCT.md for the active scheme's latest
run — ``member_mobile,recency_days,frequency,monetary,r_score,f_score,m_score,segment``, one row per
member, streamed (``-`` writes to standard output)."""

import csv
import sys

from django.core.management.base import BaseCommand, CommandError

from segmentation.selectors import rfm_export_rows

HEADER = ["member_mobile", "recency_days", "frequency", "monetary", "r_score", "f_score", "m_score", "segment"]


class Command(BaseCommand):
    help = "Write the RFM results of the active scheme's latest run as CSV."

    def add_arguments(self, parser):
        parser.add_argument("file", help="Where to write the CSV (UTF-8); '-' for standard output.")

    def handle(self, *args, file, **options):
        try:
            run, rows = rfm_export_rows()
        except LookupError as exc:
            raise CommandError(str(exc)) from None
        out = sys.stdout if file == "-" else open(file, "w", newline="", encoding="utf-8")  # noqa: SIM115
        try:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(HEADER)
            count = 0
            for row in rows:
                writer.writerow(row)
                count += 1
        finally:
            if out is not sys.stdout:
                out.close()
        if file != "-":
            self.stdout.write(f"Wrote {count} members of run {run.pk} (as of {run.as_of}) to {file}.")
