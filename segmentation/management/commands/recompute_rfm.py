"""``python manage.py recompute_rfm [--as-of YYYY-MM-DD]``: a full recompute, synchronous."""

import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from segmentation.services import NoActiveScheme, RecomputeAlreadyRunning, segment_recompute


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--as-of wants a date like 2025-06-30, not {value!r}.") from None


class Command(BaseCommand):
    help = "Recompute every member's RFM values, scores and segment with the active scheme."

    def add_arguments(self, parser):
        parser.add_argument("--as-of", type=_date, default=None, help="Local date D (default: today).")

    def handle(self, *args, as_of=None, **options):
        try:
            run = segment_recompute(as_of=as_of)
        except (RecomputeAlreadyRunning, NoActiveScheme) as exc:
            raise CommandError(str(exc)) from None
        seconds = run.duration.total_seconds() if run.duration else 0.0
        self.stdout.write(
            f"RFM run {run.pk}: scheme {run.scheme.slug}, as of {run.as_of}, {run.member_count} members "
            f"({run.buyer_count} bought in the window), {run.transition_count} segment changes, {seconds:.2f} s"
        )
        self.stdout.write(f"{'segment':<20} {'members':>9} {'avg R':>8} {'avg F':>7} {'avg M':>12}")
        order = {slug: index for index, slug in enumerate(run.scheme.segments.values_list("slug", flat=True))}
        for slug, stats in sorted(run.segment_stats.items(), key=lambda item: order.get(item[0], 999)):
            self.stdout.write(
                f"{slug or '(none)':<20} {stats['count']:>9} {stats['avg_recency_days'] or '—':>8} "
                f"{stats['avg_frequency'] or '—':>7} {stats['avg_monetary'] or '—':>12}"
            )
