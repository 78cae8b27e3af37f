"""Imports of stores, members and orders from CSV files: the one path behind the ``import_*``
commands and the admin's upload (``members.admin.imports``). Both call these services with the
file and the operator's choice of mode, read it with ``members.csv_import`` (columns and aliases,
encodings, cells, line numbers), and get the same result.

Rules every import follows:

- **All or nothing, per file.** The whole file is one transaction. Every bad row is reported with
  its line number (the header is line 1); reading goes on to the end so that all of them are
  found (after the first one nothing more is written), and if there was any, nothing is written.
  A row a service refuses while being written (a concurrent conflict) is a bad row like any other.
  In loyalty mode the transaction keeps the row locks of the members whose orders it recorded
  until it commits, so a till's order of one of them waits for the end of the import: a large
  loyalty file is best imported at a quiet hour, or split.
- **Idempotent.** Importing the same file twice changes nothing: members are known by mobile
  number in any spelling, orders by ``store_code`` and ``order_id`` (an external id is unique
  within its store: two stores may both have an order 1001), stores by code. An order id already
  recorded at the row's store with the same member, time and amount is unchanged — whichever way
  it was recorded, so it never earns twice — and with different content it is a bad row. A row
  repeated in the file behaves the same way.
- **Existing members are left as they are.** An import registers members; it never edits them.
  Name, gender and birthday are the member's own (changed in the mini-program or by staff on the
  member's page), registration time, channel and home store are facts of their registration, and
  an older file — an earlier export, a migration run twice — must not undo what changed since.
  A known mobile number is counted as unchanged whatever the other cells say.
- **No time from the future.** ``paid_at`` and ``registered_at`` more than ten minutes ahead are
  bad rows (``members.services.orders.moment_check``, the rule of every way orders come in).
- **Dry run.** ``dry_run=True`` does everything and rolls back: the admin's preview, whose counts,
  points and tier changes are those the import would have (the confirm step checks again).

Members and orders come in one of two modes, chosen by the operator (``historical``):

- **Loyalty** (the default): what the same member or order over the API gets. Each new member is
  registered by ``member_register`` (referral code, entry tier, ``member_registered``) and each
  new order recorded by ``order_record`` (tier, referral, points; ``order_recorded``: segment
  refresh, after-order campaign triggers), one row at a time in file order — as a till would have
  sent them, so a file should be sorted by ``paid_at``. The default because an ordinary upload is
  of today's orders from a store without a POS link, and those must earn what they earn at the
  till; forgetting the box must not silently cost members their points. About 1.5–3 ms a row
  (5,000 orders: 7–15 s on the 2-core machine, against 0.6–1.2 s historical).
- **Historical** (``historical=True``; ``--historical``, the admin's checkbox, both worded by
  ``HISTORICAL_LABEL``): history from an earlier system, which gave its rewards there; crediting
  it again would double them. Set-based (orders: staged by COPY, checked and inserted by one
  statement each, see "Orders" below; members: one lookup and one ``bulk_create`` per
  ``BATCH_SIZE`` rows), no per-row events — no points, no tier upgrades, no referral rewards, no
  after-order triggers. Afterwards members still without a tier get the one their recorded history qualifies
  them for (``tiers_assign_missing``: the entry level for a new member), and a successful orders
  import publishes ``orders_imported`` once, after commit, so segmentation recomputes RFM.

An order already recorded is unchanged in either mode, so a file imported once historically and
then again in loyalty mode (or the reverse) earns nothing the second time.

Memory stays bounded whatever the file's size: rows are read and handled a batch at a time (orders:
the file's text streamed into a work table of the database, 64 kB at a time).
Progress is reported by two optional callbacks: ``on_progress`` with the bytes of each read (the
commands' progress bar) and ``on_rows`` with the rows handled so far, after each batch (the
admin's import jobs, ``members.services.import_jobs``); ``on_bad_row`` gets each bad row's line
and message as they are found (the jobs' error report).
"""

import logging
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import BinaryIO

import psycopg
from django.core.exceptions import ValidationError
from django.db import DatabaseError, DataError, IntegrityError, connection, transaction
from django.db.models import Sum, TextChoices
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from members.csv_import import (
    FORMULA_GUARD,
    WHITESPACE,
    ChoiceParser,
    Column,
    CsvReader,
    RowFields,
    batched,
    clean_cell,
    parse_date,
    parse_datetime,
    parse_mobile,
    parse_money,
    parse_text,
)
from members.events import orders_imported
from members.models import Member, Order, PointsEntry, Store, TierChange
from members.pg_tables import analyze_sampled, lock_exclusive
from members.referral_codes import new_referral_code
from members.services.members import member_register
from members.services.orders import moment_check, order_record
from members.services.tiers import tiers_assign_missing

logger = logging.getLogger(__name__)

# Rows per batch. Measured on 1M orders: with 5,000 external ids PostgreSQL (random_page_cost 4)
# switches the per-batch lookup to a sequential scan; 2,000 keeps index scans and was ~30% faster.
BATCH_SIZE = 2_000
INSERT_BATCH_SIZE = 1_000  # rows per INSERT: well under PostgreSQL's 65,535 parameters, UNNEST or not
MAX_KEPT_ERRORS = 1_000
NUMERIC_VALUE_OUT_OF_RANGE = "22003"  # PostgreSQL's SQLSTATE
_REFERRAL_CODE_ROUNDS = 10

#: The operator's choice, worded the same on the command line and in the admin.
HISTORICAL_LABEL = _("Historical import: no loyalty effects")
HISTORICAL_HELP = _(
    "For history from an earlier system, which gave its rewards there: no points, no tier upgrades, "
    "no referral rewards, no after-order campaign messages. Members without a tier get the one their "
    "history qualifies them for, and segments are recomputed. Leave it off for today's orders: they "
    "earn what they would earn at the till."
)

STORE_COLUMNS = (
    Column("code", required=True, aliases=("store_code", "门店编码", "门店代码")),
    Column("name", required=True, aliases=("门店名称", "名称")),
    Column("city", required=True, aliases=("城市",)),
)
MEMBER_COLUMNS = (
    Column("mobile", required=True, aliases=("手机号", "手机号码", "手机")),
    Column("name", aliases=("姓名",)),
    Column("gender", aliases=("性别",)),
    Column("birthday", aliases=("生日",)),
    Column("registered_at", aliases=("注册时间",)),
    Column("channel", aliases=("注册渠道", "渠道")),
    Column("store_code", aliases=("门店编码", "门店代码")),
    Column("openid", aliases=("微信openid",)),
)
ORDER_COLUMNS = (
    Column("order_id", required=True, aliases=("external_id", "订单号", "订单编号")),
    Column("member_mobile", required=True, aliases=("mobile", "会员手机号", "手机号")),
    Column("store_code", required=True, aliases=("门店编码", "门店代码")),
    Column("paid_at", required=True, aliases=("支付时间",)),
    Column("amount", required=True, aliases=("金额", "实付金额")),
)

#: Model attribute → file column, for messages of services keyed by attribute.
_COLUMN_OF = {"external_id": "order_id", "member": "member_mobile", "store": "store_code", "home_store": "store_code"}

ImportSource = BinaryIO | str | os.PathLike
ErrorCallback = Callable[[str], object]
ProgressCallback = Callable[[int], object]
BadRowCallback = Callable[[int, str], object]  # line, message ("column: problem; column: problem")

GENDERS = ChoiceParser(
    Member.Gender, default=Member.Gender.UNKNOWN, extra={"m": Member.Gender.MALE, "f": Member.Gender.FEMALE}
)
CHANNELS = ChoiceParser(Member.Channel, default=Member.Channel.IMPORT)


class Outcome(TextChoices):
    NEW = "new", _("New")
    UNCHANGED = "unchanged", _("Unchanged")
    UPDATED = "updated", _("Updated")


@dataclass(frozen=True, slots=True)
class RowOutcome:
    """What the import does with one good row, shown in the admin's preview."""

    line: int
    outcome: Outcome
    cells: tuple[str, ...]


@dataclass
class ImportResult:
    """What an import did (or, in a dry run, would do). ``errors`` keeps the first
    ``MAX_KEPT_ERRORS`` messages only; ``error_count`` counts them all. When ``ok`` is false
    nothing was written. ``points_earned`` and ``tier_changes`` are those of a loyalty-mode orders
    import; ``shown`` holds the first ``show_rows`` good rows with their outcome."""

    kind: str
    historical: bool = False
    dry_run: bool = False
    created: int = 0
    unchanged: int = 0
    updated: int = 0
    rows: int = 0
    error_count: int = 0
    errors: list[str] = field(default_factory=list)
    encoding: str = ""
    seconds: float = 0.0
    points_earned: int = 0
    tier_changes: int = 0
    columns: tuple[str, ...] = ()
    shown: list[RowOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def summary(self) -> str:
        """One line for the operator: the counts, then the loyalty effects."""
        text = str(
            _("%(created)s created, %(unchanged)s unchanged, %(updated)s updated.")
            % {"created": self.created, "unchanged": self.unchanged, "updated": self.updated}
        )
        if self.historical:
            return f"{text} {_('Historical import: no loyalty effects.')}"
        if self.kind == "orders":
            effects = _("%(points)s points earned, %(tiers)s tier changes.") % {
                "points": self.points_earned,
                "tiers": self.tier_changes,
            }
            return f"{text} {effects}"
        return text


class _Run:
    """The bookkeeping of one import: the result, bad rows, shown rows and the clock."""

    def __init__(
        self,
        *,
        kind: str,
        columns: Sequence[Column],
        on_error: ErrorCallback | None,
        historical: bool = False,
        dry_run: bool = False,
        show_rows: int = 0,
        on_rows: ProgressCallback | None = None,
        on_bad_row: BadRowCallback | None = None,
    ):
        self.result = ImportResult(
            kind=kind, historical=historical, dry_run=dry_run, columns=tuple(column.name for column in columns)
        )
        self._on_error = on_error
        self._on_rows = on_rows
        self._on_bad_row = on_bad_row
        self._show_rows = show_rows
        self._started = time.monotonic()

    def show(self, line: int, outcome: Outcome, cells: tuple) -> None:
        if len(self.result.shown) < self._show_rows:
            self.result.shown.append(RowOutcome(line, outcome, tuple(_cell(value) for value in cells)))

    def report(self, bad_rows: list[tuple[int, str]], *, progress: bool = True) -> None:
        """Report a batch's bad rows, in line order, then (with ``progress``) the rows handled so
        far (``on_rows``)."""
        for line, message in sorted(bad_rows, key=lambda bad: bad[0]):
            text = str(_("line %(line)s: %(message)s") % {"line": line, "message": message})
            self.result.error_count += 1
            if len(self.result.errors) < MAX_KEPT_ERRORS:
                self.result.errors.append(text)
            if self._on_error is not None:
                self._on_error(text)
            if self._on_bad_row is not None:
                self._on_bad_row(line, message)
        if progress and self._on_rows is not None:
            self._on_rows(self.result.rows)

    def end(self) -> bool:
        """Whether the import's writes are to be kept; if not, its transaction is rolled back."""
        keep = self.result.ok and not self.result.dry_run
        if not keep:
            transaction.set_rollback(True)
        return keep

    def finish(self) -> ImportResult:
        self.result.seconds = time.monotonic() - self._started
        return self.result


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return timezone.localtime(value).isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Store):
        return value.code
    return str(value)


def _refusal(exc: ValidationError) -> str:
    """A service's ``ValidationError`` as a bad row's message, keyed by file column."""
    if hasattr(exc, "error_dict"):
        errors = exc.message_dict.items()
        return "; ".join(f"{_COLUMN_OF.get(name, name)}: {text}" for name, texts in errors for text in texts)
    return "; ".join(exc.messages)


@contextmanager
def _binary(file: ImportSource) -> Iterator[BinaryIO]:
    if isinstance(file, str | os.PathLike):
        with open(file, "rb") as opened:
            yield opened
    else:
        yield file


def _moment(value: str, *, field: str, now: datetime) -> datetime:
    return moment_check(parse_datetime(value), field=field, now=now)


def _store(code: str, stores: dict[str, Store], *, required: bool = True) -> Store | None:
    if not code:
        if required:
            raise ValidationError(_("This value is required."))
        return None
    try:
        return stores[code]
    except KeyError:
        raise ValidationError(_("No store has the code “%(code)s”.") % {"code": code}) from None


# --- Stores ---------------------------------------------------------------------------------


def stores_import(
    *,
    file: ImportSource,
    dry_run: bool = False,
    on_error: ErrorCallback | None = None,
    on_progress: ProgressCallback | None = None,
    on_rows: ProgressCallback | None = None,
    on_bad_row: BadRowCallback | None = None,
    batch_size: int = BATCH_SIZE,
    show_rows: int = 0,
) -> ImportResult:
    """Import stores from a CSV ``code,name,city``: new codes are created, known codes with another
    name or city are updated (stores are the brand's own master data, not a member's). A code
    repeated in the file with another name or city is a bad row."""
    run = _Run(
        kind="stores",
        columns=STORE_COLUMNS,
        on_error=on_error,
        dry_run=dry_run,
        show_rows=show_rows,
        on_rows=on_rows,
        on_bad_row=on_bad_row,
    )
    result = run.result
    code_length, name_length, city_length = (
        Store._meta.get_field(name).max_length for name in ("code", "name", "city")
    )
    with _binary(file) as binary:
        reader = CsvReader(binary, columns=STORE_COLUMNS, on_progress=on_progress)
        result.encoding = reader.encoding
        with transaction.atomic():
            # code → [pk, name, city] as this import leaves them; stores are few.
            stores = {
                code: [pk, name, city]
                for code, pk, name, city in Store.objects.values_list("code", "pk", "name", "city")
            }
            first_line: dict[str, int] = {}
            for batch in batched(reader, batch_size):
                bad_rows: list[tuple[int, str]] = []
                new: list[Store] = []
                changed: list[Store] = []
                now = timezone.now()
                for row in batch:
                    result.rows += 1
                    fields = RowFields()
                    code = fields.parse("code", parse_text, row.values["code"], max_length=code_length, required=True)
                    name = fields.parse("name", parse_text, row.values["name"], max_length=name_length, required=True)
                    city = fields.parse("city", parse_text, row.values["city"], max_length=city_length, required=True)
                    if fields.errors:
                        bad_rows.append((row.line, fields.message))
                        continue
                    seen_on = first_line.setdefault(code, row.line)
                    current = stores.get(code)
                    if current is None:
                        stores[code] = [None, name, city]
                        new.append(Store(code=code, name=name, city=city))
                        result.created += 1
                        run.show(row.line, Outcome.NEW, (code, name, city))
                    elif (current[1], current[2]) == (name, city):
                        result.unchanged += 1
                        run.show(row.line, Outcome.UNCHANGED, (code, name, city))
                    elif seen_on != row.line:
                        fields.fail(
                            "code",
                            _("Store %(code)s appears on line %(line)s with a different name or city.")
                            % {"code": code, "line": seen_on},
                        )
                        bad_rows.append((row.line, fields.message))
                    else:
                        current[1:] = [name, city]
                        changed.append(Store(pk=current[0], code=code, name=name, city=city, updated_at=now))
                        result.updated += 1
                        run.show(row.line, Outcome.UPDATED, (code, name, city))
                for store in Store.objects.bulk_create(new, batch_size=INSERT_BATCH_SIZE):
                    stores[store.code][0] = store.pk
                Store.objects.bulk_update(changed, ["name", "city", "updated_at"], batch_size=INSERT_BATCH_SIZE)
                run.report(bad_rows)
            run.end()
    return run.finish()


# --- Members --------------------------------------------------------------------------------


@dataclass(slots=True)
class _MemberRow:
    line: int
    mobile: str
    name: str
    gender: str
    birthday: date | None
    registered_at: datetime
    channel: str
    home_store: Store | None
    openid: str | None

    def cells(self) -> tuple:
        return (self.mobile, self.name, self.gender, self.birthday, self.registered_at, self.channel, self.home_store)

    def profile(self) -> dict:
        """The member's fields, as ``member_register`` and ``Member`` take them."""
        return {name: getattr(self, name) for name in PROFILE_FIELDS}


PROFILE_FIELDS = ("mobile", "name", "gender", "birthday", "registered_at", "channel", "home_store", "openid")


def members_import(
    *,
    file: ImportSource,
    historical: bool = False,
    dry_run: bool = False,
    on_error: ErrorCallback | None = None,
    on_progress: ProgressCallback | None = None,
    on_rows: ProgressCallback | None = None,
    on_bad_row: BadRowCallback | None = None,
    batch_size: int = BATCH_SIZE,
    show_rows: int = 0,
) -> ImportResult:
    """Register the members of a CSV with a ``mobile`` column and optionally ``name, gender,
    birthday, registered_at, channel, store_code, openid`` (a blank ``registered_at`` is the time
    of the import, a blank ``channel`` is ``import``). A mobile number already registered is left
    as it is. New members go through ``member_register``, or in bulk when ``historical``."""
    run = _Run(
        kind="members",
        columns=MEMBER_COLUMNS[:-1],
        on_error=on_error,
        historical=historical,
        dry_run=dry_run,
        show_rows=show_rows,
        on_rows=on_rows,
        on_bad_row=on_bad_row,
    )
    result = run.result
    name_length = Member._meta.get_field("name").max_length
    openid_length = Member._meta.get_field("openid").max_length
    # Found new but not written (after a bad row): what later rows are checked against instead.
    unwritten_mobiles: set[str] = set()
    unwritten_openids: dict[str, str] = {}
    with _binary(file) as binary:
        reader = CsvReader(binary, columns=MEMBER_COLUMNS, on_progress=on_progress)
        result.encoding = reader.encoding
        with transaction.atomic():
            stores = {store.code: store for store in Store.objects.all()}
            for batch in batched(reader, batch_size):
                now = timezone.now()
                bad_rows: list[tuple[int, str]] = []
                candidates: list[_MemberRow] = []
                for row in batch:
                    result.rows += 1
                    values = row.values
                    fields = RowFields()
                    registered_at = values.get("registered_at", "")
                    candidate = _MemberRow(
                        line=row.line,
                        mobile=fields.parse("mobile", parse_mobile, values["mobile"]),
                        name=fields.parse("name", parse_text, values.get("name", ""), max_length=name_length),
                        gender=fields.parse("gender", GENDERS, values.get("gender", "")),
                        birthday=fields.parse("birthday", parse_date, values.get("birthday", "")),
                        registered_at=fields.parse(
                            "registered_at", _moment, registered_at, field="registered_at", now=now
                        )
                        if registered_at
                        else now,
                        channel=fields.parse("channel", CHANNELS, values.get("channel", "")),
                        home_store=fields.parse(
                            "store_code", _store, values.get("store_code", ""), stores, required=False
                        ),
                        openid=fields.parse("openid", parse_text, values.get("openid", ""), max_length=openid_length)
                        or None,
                    )
                    if fields.errors:
                        bad_rows.append((row.line, fields.message))
                    else:
                        candidates.append(candidate)

                mobiles = {candidate.mobile for candidate in candidates}
                registered = set(Member.objects.filter(mobile__in=mobiles).values_list("mobile", flat=True))
                registered |= mobiles & unwritten_mobiles
                openids = {candidate.openid for candidate in candidates if candidate.openid}
                openid_owners = (
                    dict(Member.objects.filter(openid__in=openids).values_list("openid", "mobile")) if openids else {}
                )
                openid_owners |= {openid: unwritten_openids[openid] for openid in openids & unwritten_openids.keys()}
                new: dict[str, _MemberRow] = {}
                for candidate in candidates:
                    if candidate.mobile in registered or candidate.mobile in new:
                        result.unchanged += 1
                        run.show(candidate.line, Outcome.UNCHANGED, candidate.cells())
                        continue
                    if candidate.openid:
                        owner = openid_owners.setdefault(candidate.openid, candidate.mobile)
                        if owner != candidate.mobile:
                            message = _("This openid belongs to the member with mobile %s.") % owner
                            bad_rows.append((candidate.line, f"openid: {message}"))
                            continue
                    new[candidate.mobile] = candidate
                    run.show(candidate.line, Outcome.NEW, candidate.cells())
                result.created += len(new)

                pending = list(new.values())
                if result.ok and not bad_rows and historical:
                    _members_insert(pending)
                    pending = []
                elif result.ok and not bad_rows:
                    pending = _members_register(pending, bad_rows)
                unwritten_mobiles.update(candidate.mobile for candidate in pending)
                unwritten_openids.update((c.openid, c.mobile) for c in pending if c.openid)
                run.report(bad_rows)
            if run.end() and historical and result.created:
                tiers_assign_missing(as_of=timezone.now())
    return run.finish()


def _members_register(rows: list[_MemberRow], bad_rows: list[tuple[int, str]]) -> list[_MemberRow]:
    """Register ``rows`` one by one, as the API would. A refusal is a bad row: the batch's
    registrations are rolled back (the file will not be kept) and all its rows returned as not
    written; otherwise none are."""
    row = None
    try:
        with transaction.atomic():  # one savepoint a batch, not a row: a refused file is rolled back whole
            for row in rows:
                member_register(**row.profile())
    except ValidationError as exc:
        bad_rows.append((row.line, _refusal(exc)))
        return rows
    return []


def _members_insert(rows: list[_MemberRow]) -> None:
    members = [Member(**row.profile(), referral_code="") for row in rows]
    _assign_referral_codes(members)
    Member.objects.bulk_create(members, batch_size=INSERT_BATCH_SIZE)


def _assign_referral_codes(members: list[Member]) -> None:
    """Give each new member a referral code unique in the batch and in the database: one query a
    round, and only the few codes that collided are drawn again."""
    pending = members
    for _round in range(_REFERRAL_CODE_ROUNDS):
        if not pending:
            return
        for member in pending:
            member.referral_code = new_referral_code()
        in_batch = Counter(member.referral_code for member in members)
        taken = set(
            Member.objects.filter(referral_code__in=[member.referral_code for member in pending]).values_list(
                "referral_code", flat=True
            )
        )
        pending = [member for member in members if in_batch[member.referral_code] > 1 or member.referral_code in taken]
    if pending:
        raise RuntimeError(f"Could not draw unique referral codes for {len(pending)} members.")


# --- Orders ---------------------------------------------------------------------------------
#
# Set-based, in four steps inside the file's transaction (``_OrderStaging``):
#
# 1. **Stage.** The file's text is COPied as it is into a table of raw cells. The rows in the
#    tills' spelling (11-digit mobile, ``38.50``, a local ``2024-03-01 12:00``, a known store) are
#    parsed, resolved and compared there (step 2) by one ``CREATE TABLE … AS SELECT``, which
#    PostgreSQL may run on several cores; any other row is parsed by the cell parsers every import
#    uses (``+86 …``, ``¥38.5``, an offset), and a row they refuse is staged with its message
#    instead of its values. A file COPY cannot read that way (quoted cells) is read row by row.
# 2. **Check**: members joined by mobile; each row's reference — the order of the same store and id
#    already recorded, or else the first row of the file with that store and id — compared field
#    by field: new, unchanged, or a conflict naming the fields that differ. A unique index on the
#    result proves that no id repeats in the file (the usual case); only a file where one does is
#    ranked by a window over all its rows.
# 3. **Report** every bad row in line order from one query (the parse errors of step 1, unknown
#    members and conflicts of step 2), read through a server-side cursor.
# 4. **Write**, only if there was none: historical, one ``INSERT … SELECT`` of the new rows — when
#    they are many against the orders already there, into the table without its secondary indexes,
#    which are then built again (``_OrderStaging.insert``); loyalty, the new rows in file order
#    through ``order_record``, a batch of members at a time.
#
# The work tables are unlogged tables of this transaction (temporary ones when the connection may
# not create tables: those are never read in parallel), named for this import and dropped at its
# end; a rolled-back import leaves nothing behind.
#
# Memory stays bounded: Python holds one row (one batch of members in loyalty mode), PostgreSQL
# the work tables.

#: PostgreSQL memory for the check's sorts and hash joins (per node), and for building the orders'
#: indexes again (``INDEX_REBUILD_MIN_ROWS``); this transaction only.
IMPORT_WORK_MEM = "64MB"
IMPORT_MAINTENANCE_WORK_MEM = "256MB"
#: A historical import of at least this many new orders, and at least as many as the table holds,
#: drops the orders table's secondary indexes, inserts, and builds them again: at 1,000,000 rows
#: 8 s against 16–18 s of inserting into five indexes (README, *Benchmarks*). Meanwhile the table
#: is locked (``ACCESS EXCLUSIVE``) until the import commits: a brand bringing its history, whose
#: tills are not live yet. A live table with more orders than the file keeps its indexes.
INDEX_REBUILD_MIN_ROWS = 100_000
#: How long the rebuild waits for that lock before it inserts with the indexes in place instead.
INDEX_REBUILD_LOCK_TIMEOUT_MS = 2000
#: Orders an 8 kB page of the table holds (79 at 1,000,000 orders in 103 MB).
ORDERS_PER_PAGE = 80
_FAST_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_FAST_AMOUNT = re.compile(r"(?=[0-9.]*[1-9])[0-9]{1,10}(?:\.[0-9]{1,2})?")  # > 0, ≤ MAX_AMOUNT, 2 places
_FAST_LOCAL_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[ T][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?)?")
#: A naive time at least this far before the local "now" cannot be in the future in any time
#: zone's transitions: it skips the exact (slower) check.
_SURELY_PAST = timedelta(days=1)
_STAGING_COLUMNS = "line, external_id, mobile, store_id, paid_local, paid_at, amount, error"
_ORDER_FIELDS = ("member", "paid_at", "amount")  # what a conflict compares (the store is part of the id)


def orders_import(
    *,
    file: ImportSource,
    historical: bool = False,
    dry_run: bool = False,
    on_error: ErrorCallback | None = None,
    on_progress: ProgressCallback | None = None,
    on_rows: ProgressCallback | None = None,
    on_bad_row: BadRowCallback | None = None,
    batch_size: int = BATCH_SIZE,
    show_rows: int = 0,
) -> ImportResult:
    """Import paid orders from a CSV ``order_id,member_mobile,store_code,paid_at,amount``.

    ``paid_at`` is ISO 8601 (naive values are in ``settings.TIME_ZONE``) and not in the future,
    ``amount`` in yuan. The member must exist (by mobile number) and the store (by code); an order
    id is the store's (another store's order with the same id is another order). New orders go
    through ``order_record`` and earn what they would over the API, or are inserted in one
    statement without loyalty effects when ``historical``. ``batch_size`` is how many orders a
    loyalty import records per savepoint, with an ``on_rows`` call after each; otherwise
    ``on_rows`` is called once, at the end (``on_progress`` follows the bytes read meanwhile).
    """
    run = _Run(
        kind="orders",
        columns=ORDER_COLUMNS,
        on_error=on_error,
        historical=historical,
        dry_run=dry_run,
        show_rows=show_rows,
        on_rows=on_rows,
        on_bad_row=on_bad_row,
    )
    result = run.result
    with _binary(file) as binary:
        start = binary.tell()
        progress = _Progress(on_progress)
        reader = CsvReader(binary, columns=ORDER_COLUMNS, on_progress=progress)
        result.encoding = reader.encoding

        def reread() -> CsvReader:  # the file from its start, its bytes reported once only
            binary.seek(start)
            progress.skip_next(progress.reported)
            return CsvReader(binary, columns=ORDER_COLUMNS, on_progress=progress)

        with transaction.atomic():
            staging = _OrderStaging(batch_size=batch_size, on_rows=on_rows)
            result.rows = staging.stage(reader, reread=reread)
            counts = staging.check()
            result.created, result.unchanged = counts.get("new", 0), counts.get("unchanged", 0)
            staging.show(run, show_rows)
            staging.report(run)
            if result.ok and result.created:
                if historical:
                    staging.insert(run)
                else:
                    staging.record(run, batch_size=batch_size)
            if on_rows is not None and staging.rows_reported != result.rows:
                on_rows(result.rows)
            members_range = staging.member_range() if historical and result.ok and result.created else None
            staging.drop()
            if run.end() and members_range is not None:
                tiers_assign_missing(as_of=timezone.now())
                orders_imported.publish(
                    count=result.created, member_ids_from=members_range[0], member_ids_to=members_range[1]
                )
    return run.finish()


class _OrderStaging:
    """The work tables of one orders import, on the default connection, in its transaction:
    ``raw`` (the file's cells, fast path only), ``staging`` (rows parsed in Python, each with its
    values or its message) and ``checked`` (every row without a message, resolved and compared)."""

    def __init__(self, *, batch_size: int, on_rows: ProgressCallback | None):
        self.batch_size = max(1, batch_size)
        self.on_rows = on_rows
        self.rows_reported = 0  # the last figure given to ``on_rows``
        self.without_row_triggers = False  # whether ``insert`` could check the references in bulk
        self.indexes_rebuilt = False  # whether ``insert`` dropped the orders' indexes and built them again
        self.in_python = 0  # rows parsed here (into ``staging``) rather than in the database
        self.checked_made = False  # whether ``checked`` exists (the fast path makes it while staging)
        self.tz = timezone.get_default_timezone_name()
        name = f"import_order_%s_{uuid.uuid4().hex[:12]}"
        self.raw, self.staging, self.checked = (name % part for part in ("raw", "staging", "checked"))
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('work_mem', %s, true)", [IMPORT_WORK_MEM])
            self.kind = self._work_table_kind(cursor)
            cursor.execute(
                f"CREATE {self.kind} TABLE {self.staging} (line integer NOT NULL, external_id text, mobile text, "
                "store_id bigint, paid_local timestamp, paid_at timestamptz, amount numeric(14, 2), error text)"
            )

    @staticmethod
    def _work_table_kind(cursor) -> str:
        """``UNLOGGED`` where the connection may create tables — written without WAL, and read by
        parallel workers, which a temporary table is not — else ``TEMPORARY``."""
        cursor.execute("SELECT has_schema_privilege(current_schema(), 'CREATE')")
        return "UNLOGGED" if cursor.fetchone()[0] else "TEMPORARY"

    # 1. stage ----------------------------------------------------------------------------------

    def stage(self, reader: CsvReader, *, reread: Callable[[], CsvReader]) -> int:
        """Every row of the file staged, parsed; the number of rows.

        First the fast way (``_stage_in_database``): the text itself COPYed into a table of raw
        cells, the rows in the simple spelling tills write parsed, resolved and compared there in
        one statement, and only the others through the cell parsers here. Should the file not suit
        it — quoted cells, a line COPY cannot read, a row of the wrong width — the file is read
        again (``reread``) row by row, the way that gives every line its message."""
        self._parsers = _OrderCellParsers()
        staged = self._stage_in_database(reader)
        if staged is None:
            staged = self._stage_in_python(reread())
        if self.in_python:
            with connection.cursor() as cursor:
                analyze_sampled(cursor, self.staging)
        return staged

    def _copy_staged(self, cursor):
        return cursor.copy(f"COPY {self.staging} ({_STAGING_COLUMNS}) FROM STDIN")

    def _stage_in_python(self, reader: CsvReader) -> int:
        """COPY every row of ``reader`` into the staging table, parsed here; the number of rows."""
        parsers = self._parsers
        count = 0
        next_report = self.batch_size
        connection.ensure_connection()
        with connection.connection.cursor() as cursor, self._copy_staged(cursor) as copy:
            write = copy.write_row
            for line, cells in reader.records(_ORDER_CELLS):
                count += 1
                if count >= next_report:  # the bytes read are the progress here (``on_progress``)
                    next_report += self.batch_size
                    parsers.tick()
                write(parsers.row(line, cells))
        self.in_python = count
        return count

    def _stage_in_database(self, reader: CsvReader) -> int | None:
        """The file's text COPYed as it is into the raw table (one text column per header cell,
        numbered lines), then parsed in SQL; None, with nothing left behind, when the file cannot
        be read that way. Line numbers hold because every line must be one row: the rows COPY
        read are counted against the lines of the text, and a file with a quote character (a
        quoted cell may span lines, and PostgreSQL and Python read a stray quote differently)
        goes the other way."""
        positions = [reader.position(name) for name in _ORDER_CELLS]
        if min(positions) < 0:
            return None
        width = reader.width
        cells = ", ".join(f"c{index} text" for index in range(width))
        lines, ends_with_newline, copied = 0, True, 0
        connection.ensure_connection()
        try:
            with transaction.atomic(), connection.connection.cursor() as cursor:
                cursor.execute(
                    f"CREATE {self.kind} TABLE {self.raw} "
                    f"(line integer GENERATED ALWAYS AS IDENTITY (START WITH {reader.header_lines + 1}), {cells})"
                )
                columns = ", ".join(f"c{index}" for index in range(width))
                with cursor.copy(f"COPY {self.raw} ({columns}) FROM STDIN (FORMAT csv)") as copy:
                    for chunk in reader.text_chunks():
                        if '"' in chunk:
                            raise _NotForCopy
                        lines += chunk.count("\n")
                        ends_with_newline = chunk.endswith("\n")
                        copy.write(chunk)
                copied = cursor.rowcount
                if copied != lines + (not ends_with_newline):
                    raise _NotForCopy
                self._parse_in_database(cursor, positions, width, copied)
                cursor.execute(f"DROP TABLE {self.raw}")
        except (_NotForCopy, DatabaseError, psycopg.Error, UnicodeDecodeError):  # the parsers say which line
            self.in_python, self.checked_made = 0, False
            return None
        return copied - self._parsers.blank_rows

    def _parse_in_database(self, cursor, positions: list[int], width: int, copied: int) -> None:
        """Check the raw rows in the tills' spelling — a subset of what the cell parsers accept,
        read the same way — straight from the raw table, in one ``CREATE TABLE … AS SELECT``
        (``_compared``); stage the others — another spelling of a time or a mobile, a day past the
        month's end, a time with an offset or fractions, a cell ``clean_cell`` would change, a bad
        cell, a blank row — through the parsers, to be checked with the rest (``check``). The
        filters are string functions rather than regular expressions: a third of the time."""
        external_id, mobile, store_code, paid, amount = (f"r.c{position}" for position in positions)
        _now, surely_past = self._parsers.tick()
        analyze_sampled(cursor, self.raw)
        shape = f"translate({paid}, '0123456789', '9999999999')"
        year = f"substr({paid}, 1, 4)"
        month = f"substr({paid}, 6, 2)"
        day = f"substr({paid}, 9, 2)"
        time_ok = f"""
            {shape} IN ('9999-99-99 99:99:99', '9999-99-99T99:99:99', '9999-99-99 99:99', '9999-99-99T99:99',
                        '9999-99-99')
            AND {year} >= '0001' AND {month} BETWEEN '01' AND '12'
            AND {day} BETWEEN '01' AND CASE
                WHEN {month} IN ('04', '06', '09', '11') THEN '30'
                WHEN {month} <> '02' THEN '31'
                WHEN {year}::integer %% 4 = 0 AND ({year}::integer %% 100 <> 0 OR {year}::integer %% 400 = 0) THEN '29'
                ELSE '28' END
            AND substr({paid}, 12, 2) <= '23' AND substr({paid}, 15, 2) <= '59' AND substr({paid}, 18, 2) <= '59'"""
        digits_removed = f"translate({amount}, '0123456789', '')"
        amount_ok = f"""
            CASE {digits_removed}
                WHEN '' THEN length({amount}) BETWEEN 1 AND 10
                WHEN '.' THEN strpos({amount}, '.') BETWEEN 2 AND 11
                              AND length({amount}) - strpos({amount}, '.') IN (1, 2)
                ELSE false
            END AND translate({amount}, '0.', '') <> ''"""
        # One CASE rather than a chain of ANDs: the planner would multiply their selectivities to
        # an estimate of a handful of rows (and compare each with every store and order by nested
        # loops); a CASE it takes for half of them.
        in_tills_spelling = f"""
            CASE WHEN length({external_id}) BETWEEN 1 AND %(id_length)s
                  AND btrim({external_id}, %(whitespace)s) = {external_id} AND left({external_id}, 1) <> %(guard)s
                  AND translate({mobile}, '0123456789', '9999999999') = '99999999999'
                  AND left({mobile}, 1) = '1' AND substr({mobile}, 2, 1) >= '3'
                  AND {amount_ok}
                  AND CASE WHEN {time_ok} THEN {paid}::timestamp < %(surely_past)s END
            THEN true ELSE false END"""
        resolved = f"""
            SELECT r.line, {external_id} AS external_id, {mobile} AS mobile, s.id AS store_id, m.id AS member_id,
                   {paid}::timestamp AT TIME ZONE %(tz)s AS paid_at, {amount}::numeric(14, 2) AS amount
            FROM {self.raw} r JOIN {Store._meta.db_table} s ON s.code = {store_code}
            LEFT JOIN {Member._meta.db_table} m ON m.mobile = {mobile}
            WHERE {in_tills_spelling}
        """  # noqa: S608 -- table and column names are ours
        cursor.execute(
            f"CREATE {self.kind} TABLE {self.checked} AS {self._compared(resolved)}",
            {
                "id_length": Order._meta.get_field("external_id").max_length,
                "whitespace": WHITESPACE,
                "guard": FORMULA_GUARD,
                "surely_past": surely_past,
                "tz": self.tz,
            },
        )
        self.checked_made = True
        if cursor.rowcount == copied:  # every row in the tills' spelling: nothing left for the parsers
            return
        columns = ", ".join(f"r.c{index}" for index in range(width))
        parsers = self._parsers
        with connection.connection.cursor(name="import_order_unparsed") as unparsed:  # bounded memory
            unparsed.execute(
                f"SELECT r.line, {columns} FROM {self.raw} r "  # noqa: S608
                f"WHERE NOT EXISTS (SELECT FROM {self.checked} c WHERE c.line = r.line) ORDER BY r.line"
            )
            while chunk := unparsed.fetchmany(self.batch_size):
                rows = [parsers.raw_row(line, record, positions) for line, *record in chunk]
                with self._copy_staged(cursor) as copy:
                    for row in rows:
                        if row is not None:
                            copy.write_row(row)
                            self.in_python += 1
                parsers.tick()

    # 2. check ----------------------------------------------------------------------------------

    def _compared(self, resolved: str) -> str:
        """The rows of ``resolved`` (line, cells, ``member_id`` or NULL, ``paid_at``, ``amount``),
        each compared with the order of its store and id already recorded: ``outcome`` and, for a
        row of a recorded id, which fields differ. (A repeat within the file is for
        ``_check_repeats``.)"""
        return f"""
            WITH resolved AS ({resolved})
            SELECT r.line, r.external_id, r.mobile, r.store_id, r.member_id, r.paid_at, r.amount,
                   CASE WHEN r.member_id IS NULL THEN 'no_member'
                        WHEN o.id IS NULL THEN 'new'
                        WHEN (o.member_id, o.paid_at, o.amount) = (r.member_id, r.paid_at, r.amount) THEN 'unchanged'
                        ELSE 'conflict' END AS outcome,
                   CASE WHEN r.member_id IS NOT NULL AND o.id IS NOT NULL THEN
                       ARRAY[r.member_id <> o.member_id, r.paid_at <> o.paid_at, r.amount <> o.amount] END AS differs
            FROM resolved r
            LEFT JOIN {Order._meta.db_table} o ON o.store_id = r.store_id AND o.external_id = r.external_id
        """  # noqa: S608 -- table names are ours

    def check(self) -> dict[str, int]:
        """Classify every staged row without an error: ``new``, ``unchanged``, ``no_member`` or
        ``conflict`` (with the fields that differ); the number of rows of each outcome.

        Each row is compared with the order of its store and id already recorded. When an id
        repeats in the file, the first row of the file with it is the reference of the others
        (unless the store recorded it before); proving that none repeats — a unique index on the
        result — costs a fifth of ranking every row by a window, which only such a file gets."""
        with connection.cursor() as cursor:
            if self.in_python or not self.checked_made:
                compared = self._compared(
                    f"""
                    SELECT s.line, s.external_id, s.mobile, s.store_id, m.id AS member_id,
                           COALESCE(s.paid_at, s.paid_local AT TIME ZONE %(tz)s) AS paid_at, s.amount
                    FROM {self.staging} s LEFT JOIN {Member._meta.db_table} m ON m.mobile = s.mobile
                    WHERE s.error IS NULL
                    """  # noqa: S608 -- table names are ours
                )
                into = (
                    f"INSERT INTO {self.checked}"
                    if self.checked_made
                    else f"CREATE {self.kind} TABLE {self.checked} AS"
                )
                cursor.execute(f"{into} {compared}", {"tz": self.tz})
                self.checked_made = True
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    f'CREATE UNIQUE INDEX {self.checked}_once ON {self.checked} (store_id, (external_id COLLATE "C")) '
                    "WHERE member_id IS NOT NULL"
                )
        except IntegrityError:  # an id repeats in the file
            with connection.cursor() as cursor:
                self._check_repeats(cursor)
        with connection.cursor() as cursor:
            analyze_sampled(cursor, self.checked)
            cursor.execute(
                f"SELECT outcome, count(*), min(member_id), max(member_id) FROM {self.checked} GROUP BY outcome"  # noqa: S608
            )
            self.counts, self.member_ranges = {}, {}
            for outcome, count, first, last in cursor.fetchall():
                self.counts[outcome], self.member_ranges[outcome] = count, (first, last)
            return self.counts

    def _check_repeats(self, cursor) -> None:
        """Check again a file in which an id repeats: a window ranks the rows of each store and id,
        and the first of them is the reference of the others."""
        checked_once = f"{self.checked}_each"
        cursor.execute(f"ALTER TABLE {self.checked} RENAME TO {checked_once}")
        cursor.execute(
            f"""
            CREATE {self.kind} TABLE {self.checked} AS
            WITH resolved AS (
                SELECT line, external_id, mobile, store_id, member_id, paid_at, amount FROM {checked_once}
            ),
            candidate AS (  -- the first row of the file with a store and id is the reference of the others
                SELECT r.*,
                       first_value(r.line) OVER same_id AS first_line,
                       first_value(r.member_id) OVER same_id AS first_member_id,
                       first_value(r.paid_at) OVER same_id AS first_paid_at,
                       first_value(r.amount) OVER same_id AS first_amount
                FROM resolved r WHERE r.member_id IS NOT NULL
                WINDOW same_id AS (PARTITION BY r.store_id, r.external_id COLLATE "C" ORDER BY r.line)
            ),
            compared AS (  -- ... unless the store recorded the id before: then that order is
                SELECT c.line, c.external_id, c.mobile, c.store_id, c.member_id, c.paid_at, c.amount,
                       o.id IS NULL AND c.line = c.first_line AS is_new,
                       ARRAY[c.member_id <> COALESCE(o.member_id, c.first_member_id),
                             c.paid_at <> COALESCE(o.paid_at, c.first_paid_at),
                             c.amount <> COALESCE(o.amount, c.first_amount)] AS differs
                FROM candidate c
                LEFT JOIN {Order._meta.db_table} o ON o.store_id = c.store_id AND o.external_id = c.external_id
            )
            SELECT line, external_id, mobile, store_id, member_id, paid_at, amount,
                   CASE WHEN is_new THEN 'new' WHEN true <> ALL (differs) THEN 'unchanged' ELSE 'conflict' END
                       AS outcome,
                   differs
            FROM compared
            UNION ALL
            SELECT line, external_id, mobile, store_id, NULL, paid_at, amount, 'no_member', NULL
            FROM resolved WHERE member_id IS NULL
            """  # noqa: S608 -- table names are ours
        )
        cursor.execute(f"DROP TABLE {checked_once}")

    # 3. report ---------------------------------------------------------------------------------

    def show(self, run: "_Run", show_rows: int) -> None:
        if not show_rows:
            return
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT c.line, c.outcome, c.external_id, c.mobile, s.code, c.paid_at, c.amount "  # noqa: S608
                f"FROM {self.checked} c JOIN {Store._meta.db_table} s ON s.id = c.store_id "
                "WHERE c.outcome IN ('new', 'unchanged') ORDER BY c.line LIMIT %s",
                [show_rows],
            )
            for line, outcome, *cells in cursor.fetchall():
                run.show(line, Outcome(outcome), tuple(cells))

    def report(self, run: "_Run") -> None:
        """Every bad row, in line order, a thousand at a time from a server-side cursor."""
        if not (self._parsers.bad_rows or self.counts.get("no_member") or self.counts.get("conflict")):
            return
        bad_rows: list[tuple[int, str]] = []
        with connection.chunked_cursor() as cursor:
            cursor.execute(
                f"""
                SELECT line, error, NULL, NULL, NULL FROM {self.staging} WHERE error IS NOT NULL
                UNION ALL
                SELECT line, NULL, outcome, CASE WHEN outcome = 'no_member' THEN mobile ELSE external_id END, differs
                FROM {self.checked} WHERE outcome IN ('no_member', 'conflict')
                ORDER BY 1
                """  # noqa: S608
            )
            while chunk := cursor.fetchmany(MAX_KEPT_ERRORS):
                for line, error, outcome, value, differs in chunk:
                    if error is not None:
                        bad_rows.append((line, error))
                    elif outcome == "no_member":
                        bad_rows.append((line, "member_mobile: " + _("No member has the mobile number %s.") % value))
                    else:
                        names = [name for name, differ in zip(_ORDER_FIELDS, differs, strict=True) if differ]
                        bad_rows.append((line, _conflict(value, names)))
                run.report(bad_rows, progress=False)
                bad_rows.clear()

    # 4. write ----------------------------------------------------------------------------------

    def insert(self, run: "_Run") -> None:
        """The new rows, in one statement. A till may have recorded one of them since the check
        (its insert then waits for ours, or ours for its): it is unchanged if it says the same,
        else a bad row.

        Many new rows against the orders already there (``INDEX_REBUILD_MIN_ROWS``) go into the
        table without its secondary indexes, which are built again afterwards
        (``_indexes_dropped``); should the table's lock not come in time, or a till have recorded
        one of the rows meanwhile (the unique index will not build), that is undone and the rows
        go in the usual way.

        The orders' foreign keys check each new row's member and store with a trigger per row
        — half the time of an insert into the indexes. Where the connection may switch row
        triggers off (``session_replication_role``: a superuser, or ``GRANT SET ON PARAMETER
        session_replication_role``), the references are checked in bulk instead and the
        statement runs without row triggers (``_references_held``); otherwise the triggers run
        as usual. The orders table has no other trigger."""
        now = timezone.now()
        sql = f"""
            INSERT INTO {Order._meta.db_table}
                (created_at, updated_at, external_id, member_id, store_id, paid_at, amount, refunded_amount, status)
            SELECT %(now)s, %(now)s, external_id, member_id, store_id, paid_at, amount, 0, %(paid)s
            FROM {self.checked} WHERE outcome = 'new'
        """  # noqa: S608 -- table names are ours
        params = {"now": now, "paid": Order.Status.PAID}
        inserted = None
        if self._rebuild_pays(run.result.created):
            try:
                with transaction.atomic(), connection.cursor() as cursor:
                    rebuild = self._indexes_dropped(cursor)
                    inserted = self._insert_plain(cursor, sql, params, table_locked=True)
                    cursor.execute("SELECT set_config('maintenance_work_mem', %s, true)", [IMPORT_MAINTENANCE_WORK_MEM])
                    for statement in rebuild:
                        cursor.execute(statement)
                self.indexes_rebuilt = True
            except DatabaseError as exc:  # the lock did not come, or a till recorded one of the rows: as usual
                logger.info("The orders' indexes were kept (%s); the rows go in with them.", exc)
                inserted = None
        if inserted is None:
            # In time order: two of the five indexes lead with the time, or the store and time.
            sql += " ORDER BY paid_at, line"
            try:
                # A plain INSERT first: cheaper than ON CONFLICT's speculative insertion, and a till
                # recording one of these orders meanwhile is rare.
                with transaction.atomic(), connection.cursor() as cursor:
                    inserted = self._insert_plain(cursor, sql, params)
            except IntegrityError:
                with connection.cursor() as cursor:
                    cursor.execute(sql + " ON CONFLICT (store_id, external_id) DO NOTHING", params)
                    inserted = cursor.rowcount
        if inserted != run.result.created:
            self._recorded_meanwhile(run, inserted, since=now)

    def _insert_plain(self, cursor, sql: str, params: dict, *, table_locked: bool = False) -> int:
        """Run the insert, without row triggers where it may; the rows inserted."""
        without_triggers = self._row_triggers_off(cursor) and self._references_held(cursor, table_locked=table_locked)
        cursor.execute(sql, params)
        inserted = cursor.rowcount
        cursor.execute("SET LOCAL session_replication_role = DEFAULT")
        self.without_row_triggers = without_triggers
        return inserted

    @classmethod
    def _rebuild_pays(cls, new_rows: int) -> bool:
        """Whether ``new_rows`` are many enough, and at least as many as the orders table holds,
        for dropping and building its indexes to beat inserting into them."""
        return new_rows >= INDEX_REBUILD_MIN_ROWS and new_rows >= cls._orders_held()

    @staticmethod
    def _orders_held() -> int:
        """About how many orders the table holds, from its size now: its statistics may be old
        (and an ``ANALYZE`` in a transaction that rolled back leaves its figures behind), its size
        is not. Dead rows count as rows: a bloated table keeps its indexes."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_relation_size(%s::regclass) / current_setting('block_size')::integer",
                [Order._meta.db_table],
            )
            (pages,) = cursor.fetchone()
        return pages * ORDERS_PER_PAGE

    @staticmethod
    def _indexes_dropped(cursor) -> list[str]:
        """Lock the orders table (``ACCESS EXCLUSIVE``, waiting ``INDEX_REBUILD_LOCK_TIMEOUT_MS`` at
        most) and drop its secondary indexes and the constraints they back; the statements that
        build them again, exactly as they were. The primary key, which other tables' foreign keys
        reference, stays."""
        table = Order._meta.db_table
        lock_exclusive(cursor, table, timeout_ms=INDEX_REBUILD_LOCK_TIMEOUT_MS)
        cursor.execute(
            """
            SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), c.conname, pg_get_constraintdef(c.oid)
            FROM pg_index i
            LEFT JOIN pg_constraint c
                   ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid AND c.contype IN ('u', 'x')
            WHERE i.indrelid = %s::regclass AND NOT i.indisprimary AND i.indisvalid
              AND NOT EXISTS (SELECT FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = i.indexrelid)
            ORDER BY 1
            """,
            [table],
        )
        rebuild = []
        for index, index_sql, constraint, constraint_sql in cursor.fetchall():
            if constraint is None:
                cursor.execute(f"DROP INDEX {index}")
                rebuild.append(index_sql)
            else:
                name = connection.ops.quote_name(constraint)
                cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
                rebuild.append(f"ALTER TABLE {table} ADD CONSTRAINT {name} {constraint_sql}")
        return rebuild

    @staticmethod
    def _row_triggers_off(cursor) -> bool:
        """Switch row triggers off for the rest of the transaction, if the connection may."""
        try:
            with transaction.atomic():
                cursor.execute("SET LOCAL session_replication_role = replica")
        except DatabaseError:
            return False
        return True

    def _references_held(self, cursor, *, table_locked: bool = False) -> bool:
        """Whether the member and the store of every new row are there, and stay there until this
        transaction ends, as the foreign keys' row triggers would make sure; if one is not
        (deleted since the check), row triggers go back on and the foreign keys will say so.

        Usually each member and store is locked ``FOR KEY SHARE``, once, as each trigger would
        lock it. With the orders table locked ``ACCESS EXCLUSIVE`` (``table_locked``) being there
        is enough: deleting a member or a store runs the foreign key's own check on the orders
        table, which has to wait for this transaction to end and will then find its rows (and a
        deletion committed before the lock came is seen here). One anti-join then replaces
        200,000 row locks at 1,000,000 orders."""
        if table_locked:
            cursor.execute(
                f"""
                SELECT count(*) FROM {self.checked} c
                LEFT JOIN {Member._meta.db_table} m ON m.id = c.member_id
                LEFT JOIN {Store._meta.db_table} s ON s.id = c.store_id
                WHERE c.outcome = 'new' AND (m.id IS NULL OR s.id IS NULL)
                """  # noqa: S608
            )
            missing = cursor.fetchone()[0]
        else:
            missing = 0
            for table, column in ((Member._meta.db_table, "member_id"), (Store._meta.db_table, "store_id")):
                cursor.execute(
                    f"""
                    WITH wanted AS (SELECT DISTINCT {column} AS id FROM {self.checked} WHERE outcome = 'new'),
                         held AS (SELECT t.id FROM {table} t JOIN wanted w ON w.id = t.id
                                  ORDER BY t.id FOR KEY SHARE OF t)
                    SELECT (SELECT count(*) FROM wanted) - (SELECT count(*) FROM held)
                    """  # noqa: S608
                )
                missing += cursor.fetchone()[0]
        if missing:
            cursor.execute("SET LOCAL session_replication_role = DEFAULT")
            return False
        return True

    def _recorded_meanwhile(self, run: "_Run", inserted: int, *, since: datetime) -> None:
        missing = run.result.created - inserted
        run.result.created, run.result.unchanged = inserted, run.result.unchanged + missing
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                SELECT c.line, c.external_id,
                       ARRAY[c.member_id <> o.member_id, c.paid_at <> o.paid_at, c.amount <> o.amount]
                FROM {self.checked} c
                JOIN {Order._meta.db_table} o ON o.store_id = c.store_id AND o.external_id = c.external_id
                WHERE c.outcome = 'new' AND o.created_at <> %s
                  AND (c.member_id <> o.member_id OR c.paid_at <> o.paid_at OR c.amount <> o.amount)
                ORDER BY c.line
                """,  # noqa: S608
                [since],
            )
            bad_rows = [
                (line, _conflict(external_id, [name for name, d in zip(_ORDER_FIELDS, differs, strict=True) if d]))
                for line, external_id, differs in cursor.fetchall()
            ]
        run.report(bad_rows, progress=False)

    def record(self, run: "_Run", *, batch_size: int) -> None:
        """The new rows in file order through ``order_record``, ``batch_size`` a savepoint, adding up
        the points and tier changes they cause. A refusal (a concurrent conflict, points out of
        range) is a bad row, and nothing more is recorded: the file will not be kept."""
        stores = {store.pk: store for store in Store.objects.all()}
        result = run.result
        with connection.chunked_cursor() as cursor:
            cursor.execute(
                f"SELECT line, external_id, member_id, store_id, paid_at, amount FROM {self.checked} "  # noqa: S608
                "WHERE outcome = 'new' ORDER BY line"
            )
            done = 0
            while chunk := cursor.fetchmany(batch_size):
                members = Member.objects.in_bulk({row[2] for row in chunk})
                refusal = _orders_record(chunk, members, stores, result)
                done += len(chunk)
                if refusal is not None:
                    run.report([refusal], progress=False)
                    return
                if self.on_rows is not None:
                    self.on_rows(done)
                    self.rows_reported = done

    def member_range(self) -> tuple[int, int]:
        """The lowest and highest member id of the new rows (from ``check``)."""
        return self.member_ranges["new"]

    def drop(self) -> None:
        """Drop the tables now: an import inside a longer transaction (a test, a second file) must
        find the names free. A rolled-back import loses them anyway."""
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.raw}, {self.staging}, {self.checked}")


_ORDER_CELLS = tuple(column.name for column in ORDER_COLUMNS)


class _NotForCopy(Exception):
    """The file cannot be staged by a COPY of its text (``_OrderStaging._stage_in_database``)."""


class _OrderCellParsers:
    """One orders row's cells to a staging row: the tills' spelling checked quickly, any other
    parsed by the cell parsers with their messages. ``tick`` moves the clock on."""

    def __init__(self):
        self.store_objects = {store.code: store for store in Store.objects.all()}
        self.stores = {code: store.pk for code, store in self.store_objects.items()}
        self.id_length = Order._meta.get_field("external_id").max_length
        self.blank_rows = 0  # raw rows (``raw_row``) without a cell
        self.bad_rows = 0  # rows staged with a message instead of values
        self.tick()

    def tick(self) -> tuple[datetime, datetime]:
        self.now = timezone.now()
        self.surely_past = timezone.localtime(self.now).replace(tzinfo=None) - _SURELY_PAST
        return self.now, self.surely_past

    def row(self, line: int, cells: Sequence[str]) -> tuple:
        external_id, mobile, store_code, paid, amount = cells
        store_id = self.stores.get(store_code)
        if (
            store_id is not None
            and 0 < len(external_id) <= self.id_length
            and _FAST_MOBILE.fullmatch(mobile)
            and _FAST_AMOUNT.fullmatch(amount)
            and _FAST_LOCAL_TIME.fullmatch(paid)
            and _naive_before(datetime.fromisoformat, paid, self.surely_past)
        ):
            return (line, external_id, mobile, store_id, paid, None, amount, None)
        # Another spelling, or a bad row: the cell parsers decide, with their messages.
        fields = RowFields()
        parsed = (
            fields.parse("order_id", parse_text, external_id, max_length=self.id_length, required=True),
            fields.parse("member_mobile", parse_mobile, mobile),
            fields.parse("store_code", _store, store_code, self.store_objects),
            fields.parse("paid_at", _moment, paid, field="paid_at", now=self.now),
            fields.parse("amount", parse_money, amount),
        )
        if fields.errors:
            self.bad_rows += 1
            return (line, None, None, None, None, None, None, fields.message)
        external_id, mobile, store, paid_at, amount = parsed
        return (line, external_id, mobile, store.pk, None, paid_at, amount, None)

    def raw_row(self, line: int, record: Sequence[str | None], positions: Sequence[int]) -> tuple | None:
        """``row`` for a record of raw cells (None: an empty cell), or None for a blank row,
        which is skipped as ``CsvReader`` skips it."""
        record = ["" if cell is None else cell for cell in record]
        if not any(cell.strip() for cell in record):
            self.blank_rows += 1
            return None
        return self.row(line, [clean_cell(record[position]) for position in positions])


class _Progress:
    """``on_progress`` (bytes read) passed on, except the first ``skip_next`` bytes: a file read
    again from its start is not counted twice."""

    def __init__(self, on_progress: ProgressCallback | None):
        self.on_progress = on_progress
        self.reported = 0
        self._skip = 0

    def skip_next(self, size: int) -> None:
        self._skip = size

    def __call__(self, size: int) -> None:
        if self._skip:
            skipped = min(size, self._skip)
            self._skip -= skipped
            size -= skipped
        if size:
            self.reported += size
            if self.on_progress is not None:
                self.on_progress(size)


def _naive_before(fromisoformat: Callable, text: str, limit: datetime) -> bool:
    """Whether ``text`` (matching ``_FAST_LOCAL_TIME``) is a valid naive time before ``limit``."""
    try:
        return fromisoformat(text) < limit
    except ValueError:
        return False


def _orders_record(
    chunk: list[tuple], members: dict[int, Member], stores: dict[int, Store], result: ImportResult
) -> tuple[int, str] | None:
    """Record ``chunk`` one by one through ``order_record``, as the API would, in one savepoint;
    the bad row that refused it (and rolled it back), or None."""
    order_ids: list[int] = []
    line = None
    try:
        with transaction.atomic():  # one savepoint a batch, not a row: a refused file is rolled back whole
            for line, external_id, member_id, store_id, paid_at, amount in chunk:  # noqa: B007 -- see except
                recorded = order_record(
                    external_id=external_id,
                    member=members[member_id],
                    store=stores[store_id],
                    paid_at=paid_at,
                    amount=amount,
                )
                if recorded.created:
                    order_ids.append(recorded.order.pk)
    except ValidationError as exc:
        return line, _refusal(exc)
    except DataError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != NUMERIC_VALUE_OUT_OF_RANGE:
            raise
        return line, "amount: " + str(_("The points this order would earn are out of range: check the amount."))
    # Recorded meanwhile by another channel with the same content: unchanged after all.
    result.unchanged += len(chunk) - len(order_ids)
    result.created -= len(chunk) - len(order_ids)
    if order_ids:
        points = PointsEntry.objects.filter(order_id__in=order_ids, kind=PointsEntry.Kind.EARN).aggregate(
            total=Sum("points")
        )["total"]
        result.points_earned += points or 0
        result.tier_changes += TierChange.objects.filter(order_id__in=order_ids).count()
    return None


def _conflict(external_id: str, differences: Sequence[str]) -> str:
    return "order_id: " + str(
        _("Order %(id)s was already recorded with a different %(fields)s.")
        % {"id": external_id, "fields": ", ".join(differences)}
    )
