"""Reading operators' CSV files: the one reader and the one set of cell parsers behind every import.

The ``import_*`` commands and the admin's upload both go through ``members.services.imports``,
which reads files with this module, so a file means the same wherever it is uploaded.

- **Encoding.** Files come from spreadsheets: UTF-8 with or without a byte-order mark, or GBK
  (what Excel writes in China; decoded as GB18030, its superset). The encoding is found by
  streaming the bytes once through an incremental UTF-8 decoder, then the file is read again from
  the start as text, row by row, so memory stays bounded whatever the file's size.
- **Header.** Column names are compared trimmed and case-insensitively, and each ``Column`` may be
  named by an alias (``手机号`` for ``mobile``, ``external_id`` for ``order_id``). Unknown columns
  are ignored; a missing required column refuses the whole file (``CsvFileError``).
- **Cells** are trimmed, and the ``'`` our exports put before a cell that a spreadsheet would run
  as a formula (``'=…``, ``'-7``) is dropped again, so an exported file re-imports unchanged.
- **Line numbers.** Each row carries its *physical* line number (the header is line 1; a quoted
  field spanning several lines counts them all), which is how bad rows are reported.
- **Cell parsers** (``parse_*``) turn a cell into a value or raise ``ValidationError`` with a
  message for the operator: mobile numbers in any spelling, money as ``Decimal`` (never float),
  ISO 8601 dates and times (``/`` accepted; naive times are in ``TIME_ZONE``), choices by value or
  by label in any of the site's languages. ``RowFields`` collects every problem of a row.
"""

import codecs
import csv
import io
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from decimal import Decimal
from itertools import islice
from typing import BinaryIO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import TextChoices
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

from members.mobile import normalize_mobile
from members.money import to_money

CHUNK_SIZE = 1 << 16
UTF8_SIG = "utf-8-sig"
UTF8 = "utf-8"
GBK = "gb18030"  # a superset of GBK and GB2312: decodes everything Excel writes in China

#: A text cell starting with one of these is run as a formula by spreadsheets; exports put
#: ``FORMULA_GUARD`` before it (``members.resources``) and the reader drops it again.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
FORMULA_GUARD = "'"
#: What ``str.strip()`` removes (``str.isspace``), for the same check in SQL.
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
CURRENCY_SIGNS = ("¥", "￥")


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
class Column:
    """A column an import reads: its name, whether the file must have it, and other names for it."""

    name: str
    required: bool = False
    aliases: tuple[str, ...] = ()

    def spellings(self) -> tuple[str, ...]:
        return tuple(_header_name(name) for name in (self.name, *self.aliases))


@dataclass(frozen=True, slots=True)
class CsvRow:
    line: int
    values: dict[str, str]


def _header_name(name: str) -> str:
    return name.strip().lstrip("\ufeff").strip().casefold()


def clean_cell(value: str) -> str:
    """A cell trimmed, without the formula guard our exports add (``'=1+1`` → ``=1+1``)."""
    text = value.strip()
    if text.startswith(FORMULA_GUARD) and text[1:].startswith(FORMULA_TRIGGERS):
        text = text[1:]
    return text


class CsvReader:
    """The rows of a CSV file with a header row, as ``CsvRow``s holding ``columns`` only, by name.

    A missing required column raises ``CsvFileError`` at construction. Values are cleaned
    (``clean_cell``); a short row gets ``""`` for its missing cells; blank lines are skipped.
    ``on_progress`` is called with the number of bytes read each time the file is read.
    """

    def __init__(
        self,
        file: BinaryIO,
        *,
        columns: Sequence[Column],
        on_progress: Callable[[int], object] | None = None,
    ):
        self.encoding = detect_encoding(file)
        self._file, self._start = file, file.tell()
        self._text = io.TextIOWrapper(
            io.BufferedReader(CountingReader(file, on_progress), CHUNK_SIZE), encoding=self.encoding, newline=""
        )
        self._reader = csv.reader(self._text)
        header = self._next_record()
        if header is None:
            raise CsvFileError(_("The file is empty: a header row is expected."), code="empty")
        names = [_header_name(name) for name in header]
        # The first header cell that names a column (by its name or an alias) is the one read.
        positions = {}
        for column in columns:
            spellings = column.spellings()
            position = next((index for index, name in enumerate(names) if name in spellings), None)
            if position is not None:
                positions[column.name] = position
        missing = [column.name for column in columns if column.required and column.name not in positions]
        if missing:
            raise CsvFileError(
                _("Missing required column(s): %(missing)s. The header row must name: %(required)s.")
                % {
                    "missing": ", ".join(missing),
                    "required": ", ".join(column.name for column in columns if column.required),
                },
                code="missing_column",
            )
        self._positions = positions
        self.columns = frozenset(positions)
        self.width = len(header)  # cells in the header row
        self.header_lines = self._reader.line_num  # physical lines the header took (1 unless quoted)

    def position(self, name: str) -> int:
        """The index of column ``name`` in the file's rows, or -1 when the file lacks it."""
        return self._positions.get(name, -1)

    def text_chunks(self, size: int = CHUNK_SIZE) -> Iterator[str]:
        """The decoded text after the header, ``size`` characters at a time, unparsed: for a COPY
        that parses the rows in the database (``members.services.imports``). Not with ``records``."""
        while chunk := self._text.read(size):
            yield chunk

    def _next_record(self) -> list[str] | None:
        try:
            return next(self._reader)
        except StopIteration:
            return None
        except UnicodeDecodeError:
            line = self._undecodable_line() or self._reader.line_num + 1
            raise CsvFileError(
                _("Line %(line)s: the file is neither UTF-8 nor GBK text.") % {"line": line}, code="encoding"
            ) from None
        except csv.Error as exc:
            raise CsvFileError(
                _("Line %(line)s: the CSV cannot be read (%(error)s).") % {"line": self._reader.line_num, "error": exc},
                code="csv",
            ) from None

    def _undecodable_line(self) -> int | None:
        """The number of the first line that does not decode. The text is decoded a buffer ahead of
        the rows read, so the error comes before the CSV reader reaches that line: the file is read
        again, line by line (a newline byte is never part of a UTF-8 or GBK character)."""
        position = self._file.tell()
        try:
            self._file.seek(self._start)
            for number, raw in enumerate(iter(self._file.readline, b""), 1):
                try:
                    raw.decode(self.encoding)
                except UnicodeDecodeError:
                    return number
            return None
        finally:
            self._file.seek(position)

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
                values={name: clean_cell(record[index]) if index < width else "" for name, index in positions},
            )

    def records(self, names: Sequence[str]) -> Iterator[tuple[int, list[str]]]:
        """Each row's line and its cleaned cells of ``names`` (``""`` for a column the file lacks):
        what ``__iter__`` gives, without a dict and an object a row, for imports of millions of rows."""
        positions = [self._positions.get(name, -1) for name in names]
        reader, next_record = self._reader, self._next_record
        while True:
            line = reader.line_num + 1
            record = next_record()
            if record is None:
                return
            width = len(record)
            cells = [clean_cell(record[index]) if 0 <= index < width else "" for index in positions]
            if not any(cells) and not any(cell.strip() for cell in record):
                continue
            yield line, cells


def batched(rows: Iterable[CsvRow], size: int) -> Iterator[list[CsvRow]]:
    """``rows`` in lists of at most ``size``; only one list is in memory at a time."""
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch


def count_rows(file: BinaryIO, *, columns: Sequence[Column]) -> int:
    """How many rows ``CsvReader`` will give for ``file`` (blank lines skipped), then rewind it:
    one pass that reads records without parsing any cell, for a progress bar's total. Raises
    ``CsvFileError`` as the reader does."""
    start = file.tell()
    try:
        return sum(1 for _row in CsvReader(file, columns=columns))
    finally:
        file.seek(start)


def file_size(file: BinaryIO) -> int | None:
    """The size in bytes of an open file, or ``None`` when it cannot be known (a pipe)."""
    try:
        return os.fstat(file.fileno()).st_size
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None


# --- cells ------------------------------------------------------------------------------------


def parse_text(value: str, *, max_length: int, required: bool = False) -> str:
    if required and not value:
        raise ValidationError(_("This value is required."), code="required")
    if len(value) > max_length:
        raise ValidationError(
            _("At most %(max)s characters (this one has %(length)s).") % {"max": max_length, "length": len(value)}
        )
    return value


def parse_mobile(value: str) -> str:
    """A mainland China mobile number in any spelling, as its canonical 11 digits."""
    if not value:
        raise ValidationError(_("A mobile number is required."), code="required")
    return normalize_mobile(value)


def parse_money(value: str) -> Decimal:
    """An amount in yuan (``38.5``, ``¥38.50``): positive, at most two decimal places, a ``Decimal``."""
    if not value:
        raise ValidationError(_("An amount is required."), code="required")
    for sign in CURRENCY_SIGNS:
        value = value.removeprefix(sign)
    return to_money(value.strip())


def parse_datetime(value: str, *, tz: tzinfo | None = None) -> datetime:
    """ISO 8601 (``2024-03-01 14:30``, ``2024-03-01T14:30+08:00``, ``2024/03/01``); a date alone
    means midnight, and a time without an offset is in ``tz`` (default: ``TIME_ZONE``)."""
    if not value:
        raise ValidationError(_("A date and time is required."), code="required")
    try:
        parsed = datetime.fromisoformat(value.replace("/", "-"))
    except ValueError:
        raise ValidationError(
            _("“%(value)s” is not an ISO 8601 date and time (like 2024-03-01 14:30 or 2024-03-01T14:30+08:00).")
            % {"value": value}
        ) from None
    if parsed.tzinfo is None:
        return timezone.make_aware(parsed, tz or timezone.get_default_timezone())
    return parsed


def parse_date(value: str) -> date | None:
    """An ISO 8601 date (``1990-05-17``, ``1990/05/17``), or ``None`` for a blank cell."""
    if not value:
        return None
    try:
        return date.fromisoformat(value.replace("/", "-"))
    except ValueError:
        raise ValidationError(
            _("“%(value)s” is not an ISO 8601 date (such as 1990-05-17).") % {"value": value}
        ) from None


class ChoiceParser:
    """One of a ``TextChoices``, by its value (``female``), its label in any of the site's languages
    (``Female``, ``女``) or one of ``extra`` spellings; a blank cell is ``default``."""

    def __init__(self, choices: type[TextChoices], *, default: str, extra: dict[str, str] | None = None):
        self.choices = choices
        self.default = default
        self.extra = extra or {}
        self._spellings: dict[str, str] | None = None

    def spellings(self) -> dict[str, str]:
        if self._spellings is None:
            spellings = {key.casefold(): value for key, value in self.extra.items()}
            for code, _name in settings.LANGUAGES:
                with translation.override(code):
                    spellings |= {str(choice.label).casefold(): choice.value for choice in self.choices}
            self._spellings = spellings | {choice.value.casefold(): choice.value for choice in self.choices}
        return self._spellings

    def __call__(self, value: str) -> str:
        if not value:
            return self.default
        choice = self.spellings().get(value.casefold())
        if choice is None:
            raise ValidationError(
                _("“%(value)s” is not one of: %(choices)s.")
                % {"value": value, "choices": ", ".join(self.choices.values)}
            )
        return choice


class RowFields:
    """Parses the cells of one row, collecting every cell's problems instead of stopping at the first."""

    def __init__(self):
        self.errors: dict[str, list[str]] = {}

    def parse(self, name: str, parser: Callable, *args, **kwargs):
        try:
            return parser(*args, **kwargs)
        except ValidationError as exc:
            self.errors.setdefault(name, []).extend(str(message) for message in exc.messages)
            return None

    def fail(self, name: str, message) -> None:
        self.errors.setdefault(name, []).append(str(message))

    @property
    def message(self) -> str:
        return "; ".join(f"{name}: {message}" for name, messages in self.errors.items() for message in messages)
