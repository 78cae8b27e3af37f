"""Reading CSV files of any size for the import commands, one row at a time.

Files come from operators' spreadsheets: UTF-8 with or without a byte-order mark, or GBK (what
Excel writes in China; decoded as GB18030, its superset). The encoding is found by streaming the
bytes once through an incremental UTF-8 decoder, then the file is read again from the start as
text, row by row, so memory stays bounded whatever the file's size.

Each row carries its *physical* line number (the header is line 1; a quoted field spanning
several lines counts them all), which is how bad rows are reported to the operator.
"""

import codecs
import csv
import io
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import BinaryIO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import reset_queries
from django.utils.translation import gettext_lazy as _
from tqdm import tqdm

CHUNK_SIZE = 1 << 16
UTF8_SIG = "utf-8-sig"
UTF8 = "utf-8"
GBK = "gb18030"  # a superset of GBK and GB2312: decodes everything Excel writes in China


class CsvFileError(ValidationError):
    """The file as a whole cannot be imported: no header, a required column missing, not text."""


def detect_encoding(file: BinaryIO, *, chunk_size: int = CHUNK_SIZE) -> str:
    """Return ``utf-8-sig``, ``utf-8`` or ``gb18030`` for the binary ``file``, then rewind it.

    Reads the file once in chunks through an incremental UTF-8 decoder (memory stays bounded): a
    UTF-8 byte-order mark means ``utf-8-sig``; bytes that are valid UTF-8 to the end mean
    ``utf-8``; anything else is taken for the GBK family.
    """
    start = file.tell()
    try:
        head = file.read(len(codecs.BOM_UTF8))
        if head == codecs.BOM_UTF8:
            return UTF8_SIG
        decoder = codecs.getincrementaldecoder(UTF8)()
        try:
            decoder.decode(head)
            while chunk := file.read(chunk_size):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return GBK
        return UTF8
    finally:
        file.seek(start)


class CountingReader(io.RawIOBase):
    """A read-only binary stream over ``raw`` that reports how many bytes each read returned."""

    def __init__(self, raw: BinaryIO, on_read: Callable[[int], object] | None = None):
        super().__init__()
        self._raw = raw
        self._on_read = on_read
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if hasattr(self._raw, "readinto"):
            size = self._raw.readinto(buffer) or 0
        else:
            data = self._raw.read(len(buffer))
            size = len(data)
            buffer[:size] = data
        self.bytes_read += size
        if self._on_read is not None and size:
            self._on_read(size)
        return size


@dataclass(frozen=True, slots=True)
class CsvRow:
    line: int
    values: dict[str, str]


class CsvReader:
    """The rows of a CSV file with a header row, as ``CsvRow``s holding the known columns only.

    Header names are compared trimmed and case-insensitively; columns other than ``required`` and
    ``optional`` are ignored. A missing required column raises ``CsvFileError`` at construction.
    Values are trimmed; a short row gets ``""`` for its missing cells; blank lines are skipped.
    ``on_progress`` is called with the number of bytes read each time the file is read.
    """

    def __init__(
        self,
        file: BinaryIO,
        *,
        required: Iterable[str],
        optional: Iterable[str] = (),
        on_progress: Callable[[int], object] | None = None,
    ):
        self.encoding = detect_encoding(file)
        self._text = io.TextIOWrapper(
            io.BufferedReader(CountingReader(file, on_progress), CHUNK_SIZE), encoding=self.encoding, newline=""
        )
        self._reader = csv.reader(self._text)
        header = self._next_record()
        if header is None:
            raise CsvFileError(_("The file is empty: a header row is expected."), code="empty")
        names = [name.strip().lstrip("\ufeff").strip().lower() for name in header]
        required, optional = list(required), list(optional)
        missing = [name for name in required if name not in names]
        if missing:
            raise CsvFileError(
                _("Missing required column(s): %(missing)s. The header row must name: %(required)s.")
                % {"missing": ", ".join(missing), "required": ", ".join(required)},
                code="missing_column",
            )
        # The first occurrence of a column wins; the positions of the columns we read.
        self._positions = {name: names.index(name) for name in (*required, *optional) if name in names}
        self.columns = frozenset(self._positions)

    def _next_record(self) -> list[str] | None:
        try:
            return next(self._reader)
        except StopIteration:
            return None
        except UnicodeDecodeError:
            raise CsvFileError(
                _("Line %(line)s: the file is neither UTF-8 nor GBK text.") % {"line": self._reader.line_num + 1},
                code="encoding",
            ) from None
        except csv.Error as exc:
            raise CsvFileError(
                _("Line %(line)s: the CSV cannot be read (%(error)s).") % {"line": self._reader.line_num, "error": exc},
                code="csv",
            ) from None

    def __iter__(self) -> Iterator[CsvRow]:
        positions = self._positions.items()
        while True:
            line = self._reader.line_num + 1
            record = self._next_record()
            if record is None:
                return
            if not any(cell.strip() for cell in record):
                continue
            width = len(record)
            yield CsvRow(
                line=line,
                values={name: record[index].strip() if index < width else "" for name, index in positions},
            )


def batched(rows: Iterable[CsvRow], size: int) -> Iterator[list[CsvRow]]:
    """``rows`` in lists of at most ``size``; only one list is in memory at a time."""
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch


def file_size(file: BinaryIO) -> int | None:
    """The size in bytes of an open file, or ``None`` when it cannot be known (a pipe)."""
    try:
        return os.fstat(file.fileno()).st_size
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None


class ImportCommand(BaseCommand):
    """The wiring shared by ``import_stores``, ``import_members`` and ``import_orders``.

    A subclass names its service (``stores_import`` …) and what it imports. Bad rows are printed
    to stderr as they are found, all of them; the command then fails with a count and nothing is
    written. A progress bar driven by the bytes read is shown on stderr when it is a terminal (and
    verbosity ≥ 1) or with ``--progress``; ``--no-progress`` hides it. On success a one-line
    summary goes to stdout.
    """

    what: str = ""  # "stores", "members", "orders": the summary's subject

    def run_import(self, **kwargs):
        raise NotImplementedError

    def add_arguments(self, parser):
        parser.add_argument("file", help=_("CSV file with a header row (UTF-8, with or without BOM, or GBK)."))
        group = parser.add_mutually_exclusive_group()
        group.add_argument(
            "--progress", action="store_true", default=None, help=_("Show a progress bar even when not on a terminal.")
        )
        group.add_argument("--no-progress", action="store_false", dest="progress", help=_("Hide the progress bar."))

    def handle(self, *args, file: str, progress: bool | None, verbosity: int, **options):
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
                result = self.run_import(file=opened, on_error=on_error, on_progress=on_progress)
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
        self.stdout.write(
            _("%(what)s: %(created)s created, %(unchanged)s unchanged, %(updated)s updated in %(seconds).1f s.")
            % {
                "what": self.what,
                "created": result.created,
                "unchanged": result.unchanged,
                "updated": result.updated,
                "seconds": result.seconds,
            }
        )
