"""``python manage.py export_clv FILE [--params FILE.json] [--horizon-days N]``: the CLV CSV of
PRODUCT.md for the latest CLV run —
``member_mobile,frequency,recency_days,age_days,monetary_mean,p_alive,expected_purchases_<N>d,expected_spend,clv``
(one row per member who had bought by its as-of date; ``-`` writes to standard output) — and with
``--params`` the fitted parameters as JSON."""

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from segmentation.services.clv import clv_export_frame, clv_params_document


def _horizon(value: str) -> int:
    try:
        days = int(value)
    except ValueError:
        days = 0
    if not 1 <= days <= 3650:
        raise CommandError(f"--horizon-days wants a whole number of days from 1 to 3650, not {value!r}.")
    return days


class Command(BaseCommand):
    help = "Write the latest CLV run's scores as CSV (and its parameters as JSON)."

    def add_arguments(self, parser):
        parser.add_argument("file", help="Where to write the CSV (UTF-8); '-' for standard output.")
        parser.add_argument("--params", default=None, help="Also write the fitted parameters to this JSON file.")
        parser.add_argument("--horizon-days", type=_horizon, default=365, help="N of expected_purchases_<N>d.")

    def handle(self, *args, file, params=None, horizon_days=365, **options):
        try:
            run, frame = clv_export_frame(horizon_days=horizon_days)
        except LookupError as exc:
            raise CommandError(str(exc)) from None
        frame.to_csv(sys.stdout if file == "-" else file, index=False, lineterminator="\n", encoding="utf-8")
        if params:
            with open(params, "w", encoding="utf-8") as out:
                json.dump(clv_params_document(run), out, indent=2)
                out.write("\n")
        if file != "-":
            self.stdout.write(f"Wrote {len(frame)} members of CLV run {run.pk} (as of {run.as_of}) to {file}.")
