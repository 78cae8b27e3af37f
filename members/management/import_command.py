"""The wiring shared by the ``import_stores``, ``import_members`` and ``import_orders`` commands.

The commands only read arguments and print: what an import does is decided by
``members.services.imports``, the same services the admin's upload calls.
"""

import os

from django.conf import settings
from django.core.management.base import CommandError
from django.db import reset_queries
from django.utils.translation import gettext_lazy as _
from tqdm import tqdm

from members.csv_import import CsvFileError, file_size
from members.management.translated import TranslatedHelpCommand
from members.services.imports import HISTORICAL_HELP, HISTORICAL_LABEL, ImportResult


class ImportCommand(TranslatedHelpCommand):
    """A subclass names its service (``stores_import`` …) in ``run_import`` and what it imports.

    Bad rows are printed to stderr as they are found, all of them; the command then fails with a
    count and nothing is written. A progress bar driven by the bytes read is shown on stderr when
    it is a terminal (and verbosity ≥ 1) or with ``--progress``; ``--no-progress`` hides it. On
    success a one-line summary goes to stdout. With ``offers_historical``, ``--historical`` chooses
    the historical mode (``HISTORICAL_LABEL``); without it, new rows earn what they would over the API.
    """

    what: str = ""  # "stores", "members", "orders": the summary's subject
    offers_historical: bool = False

    def run_import(self, **kwargs) -> ImportResult:
        raise NotImplementedError

    def add_arguments(self, parser):
        parser.add_argument("file", help=_("CSV file with a header row (UTF-8, with or without BOM, or GBK)."))
        if self.offers_historical:
            parser.add_argument("--historical", action="store_true", help=f"{HISTORICAL_LABEL}. {HISTORICAL_HELP}")
        parser.add_argument(
            "--dry-run", action="store_true", help=_("Check the file and report what would change, then write nothing.")
        )
        group = parser.add_mutually_exclusive_group()
        group.add_argument(
            "--progress", action="store_true", default=None, help=_("Show a progress bar even when not on a terminal.")
        )
        group.add_argument("--no-progress", action="store_false", dest="progress", help=_("Hide the progress bar."))

    def handle(self, *args, file: str, progress: bool | None, verbosity: int, dry_run: bool, **options):
        mode = {"historical": options["historical"]} if self.offers_historical else {}
        try:
            opened = open(file, "rb")  # noqa: SIM115 -- closed by the with statement below
        except OSError as exc:
            raise CommandError(_("Cannot open %(file)s: %(error)s") % {"file": file, "error": exc.strerror}) from None
        show_progress = progress if progress is not None else verbosity >= 1 and self.stderr.isatty()
        stderr = getattr(self.stderr, "_out", self.stderr)  # the raw stream: tqdm writes \r itself
        with opened:
            bar = (
                tqdm(
                    total=file_size(opened),
                    desc=os.path.basename(file),
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    file=stderr,
                    dynamic_ncols=True,
                )
                if show_progress
                else None
            )

            def on_progress(size: int) -> None:
                if bar is not None:
                    bar.update(size)
                if settings.DEBUG:
                    # DEBUG logs every query's SQL, up to 9,000 of them: hundreds of MB of INSERTs.
                    reset_queries()

            def on_error(message: str) -> None:
                if bar is not None:
                    bar.write(message, file=stderr)
                else:
                    self.stderr.write(message)

            try:
                result = self.run_import(
                    file=opened, dry_run=dry_run, on_error=on_error, on_progress=on_progress, **mode
                )
            except CsvFileError as exc:
                raise CommandError(" ".join(str(message) for message in exc.messages)) from None
            finally:
                if bar is not None:
                    bar.close()
        if not result.ok:
            raise CommandError(
                _("%(count)s bad row(s) in %(file)s (listed above); nothing was imported.")
                % {"count": result.error_count, "file": file}
            )
        summary = _("%(what)s: %(summary)s (%(seconds).1f s)") % {
            "what": self.what,
            "summary": result.summary(),
            "seconds": result.seconds,
        }
        if dry_run:
            summary = _("Dry run, nothing written. %(summary)s") % {"summary": summary}
        self.stdout.write(summary)
