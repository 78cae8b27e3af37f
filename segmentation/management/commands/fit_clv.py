"""``python manage.py fit_clv [--as-of YYYY-MM-DD]``: a CLV run (BG/NBD + Gamma-Gamma), synchronous."""

import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from segmentation.services.clv import ClvAlreadyRunning, ClvNotEnoughData, clv_fit


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--as-of wants a date like 2025-06-30, not {value!r}.") from None


class Command(BaseCommand):
    help = "Fit the CLV models on every member's purchase days and score everyone."

    def add_arguments(self, parser):
        parser.add_argument("--as-of", type=_date, default=None, help="Local date D (default: today).")

    def handle(self, *args, as_of=None, **options):
        try:
            run = clv_fit(as_of=as_of)
        except (ClvAlreadyRunning, ClvNotEnoughData) as exc:
            raise CommandError(str(exc)) from None
        bgnbd, gamma_gamma = run.params["bgnbd"], run.params.get("gamma_gamma") or {}
        self.stdout.write(
            f"CLV run {run.pk}: as of {run.as_of}, {run.member_count} members "
            f"({run.repeat_member_count} came back), fitted in {run.fit_seconds:.2f} s, total {run.seconds:.2f} s"
        )
        self.stdout.write(
            "BG/NBD r={r:.4f} alpha={alpha:.4f} a={a:.4f} b={b:.4f}".format(**bgnbd)
            + f"  log-likelihood {run.log_likelihood:.2f}"
        )
        if gamma_gamma:
            self.stdout.write("Gamma-Gamma p={p:.4f} q={q:.4f} gamma={gamma:.4f}".format(**gamma_gamma))
