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
one row at a time into a temporary table).
Progress is reported by two optional callbacks: ``on_progress`` with the bytes of each read (the
commands' progress bar) and ``on_rows`` with the rows handled so far, after each batch (the
admin's import jobs, ``members.services.import_jobs``); ``on_bad_row`` gets each bad row's line
and message as they are found (the jobs' error report).
"""

import os
import re
import time
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
from members.referral_codes import new_referral_code
from members.services.members import member_register
from members.services.orders import moment_check, order_record
from members.services.tiers import tiers_assign_missing

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
# 1. **Stage.** The file is streamed once (``CsvReader.records``) and COPied into a temporary table
#    with each row's line. Cells in the usual spellings (11-digit mobile, ``38.50``, a local
#    ``2024-03-01 12:00``) pass a cheap pattern and go in as text for PostgreSQL to convert; any
#    other row is parsed by the cell parsers every import uses (``+86 …``, ``¥38.5``, an offset),
#    and a row they refuse is staged with its message instead of its values. Stores (few) are
#    resolved here, members are not.
# 2. **Check** in one statement: members joined by mobile; each row's reference — the order of the
#    same store and id already recorded, or else the first row of the file with that store and id
#    — compared field by field: new, unchanged, or a conflict naming the fields that differ.
# 3. **Report** every bad row in line order from one query (the parse errors of step 1, unknown
#    members and conflicts of step 2), read through a server-side cursor.
# 4. **Write**, only if there was none: historical, one ``INSERT … SELECT`` of the new rows; loyalty,
#    the new rows in file order through ``order_record``, a batch of members at a time.
#
# Memory stays bounded: Python holds one row (one batch of members in loyalty mode), PostgreSQL
# the staging tables.

ORDER_STAGING = "import_order_staging"
ORDER_CHECKED = "import_order_checked"
#: PostgreSQL memory for the check's sort and hash joins (per node, this transaction only).
IMPORT_WORK_MEM = "64MB"
_FAST_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_FAST_AMOUNT = re.compile(r"(?=[0-9.]*[1-9])[0-9]{1,10}(?:\.[0-9]{1,2})?")  # > 0, ≤ MAX_AMOUNT, 2 places
_FAST_LOCAL_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[ T][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?)?")
#: A naive time at least this far before the local "now" cannot be in the future in any time
#: zone's transitions: it skips the exact (slower) check.
_SURELY_PAST = timedelta(days=1)
#: The rows in the tills' spelling are parsed in PostgreSQL (``_OrderStaging._parse_in_database``):
#: a subset of what the cell parsers accept, read the same way; a day past the month's end, a time
#: with an offset or fractions, a cell ``clean_cell`` would change and anything else go to the parsers.
ORDER_RAW = "import_order_raw"
_STAGING_COPY = (
    f"COPY {ORDER_STAGING} (line, external_id, mobile, store_id, paid_local, paid_at, amount, error) FROM STDIN"
)
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
    """The temporary tables of one orders import, on the default connection, in its transaction."""

    def __init__(self, *, batch_size: int, on_rows: ProgressCallback | None):
        self.batch_size = max(1, batch_size)
        self.on_rows = on_rows
        self.rows_reported = 0  # the last figure given to ``on_rows``
        self.without_row_triggers = False  # whether ``insert`` could check the references in bulk
        self.tz = timezone.get_default_timezone_name()
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {ORDER_STAGING}, {ORDER_CHECKED}")
            cursor.execute("SELECT set_config('work_mem', %s, true)", [IMPORT_WORK_MEM])
            # ``paid_local``: a naive time, to be read in TIME_ZONE; ``paid_at``: a parsed aware one.
            cursor.execute(
                f"CREATE TEMPORARY TABLE {ORDER_STAGING} (line integer NOT NULL, external_id text, mobile text, "
                "store_id bigint, paid_local timestamp, paid_at timestamptz, amount numeric(14, 2), error text)"
            )

    # 1. stage ----------------------------------------------------------------------------------

    def stage(self, reader: CsvReader, *, reread: Callable[[], CsvReader]) -> int:
        """Every row of the file into the staging table, parsed; the number of rows.

        First the fast way (``_stage_in_database``): the text itself COPYed into a table of raw
        cells, the rows in the simple spelling tills write parsed there in one statement, and only
        the others through the cell parsers here. Should the file not suit it — quoted cells, a
        line COPY cannot read, a row of the wrong width — the file is read again (``reread``) row
        by row, the way that gives every line its message."""
        self._parsers = _OrderCellParsers()
        staged = self._stage_in_database(reader)
        if staged is None:
            staged = self._stage_in_python(reread())
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {ORDER_STAGING}")
        return staged

    def _stage_in_python(self, reader: CsvReader) -> int:
        """COPY every row of ``reader`` into the staging table, parsed here; the number of rows."""
        parsers = self._parsers
        count = 0
        next_report = self.batch_size
        connection.ensure_connection()
        with connection.connection.cursor() as cursor, cursor.copy(_STAGING_COPY) as copy:
            write = copy.write_row
            for line, cells in reader.records(_ORDER_CELLS):
                count += 1
                if count >= next_report:  # the bytes read are the progress here (``on_progress``)
                    next_report += self.batch_size
                    parsers.tick()
                write(parsers.row(line, cells))
        return count

    def _stage_in_database(self, reader: CsvReader) -> int | None:
        """The file's text COPYed as it is into ``ORDER_RAW`` (one text column per header cell,
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
                cursor.execute(f"DROP TABLE IF EXISTS {ORDER_RAW}")
                cursor.execute(
                    f"CREATE TEMPORARY TABLE {ORDER_RAW} "
                    f"(line integer GENERATED ALWAYS AS IDENTITY (START WITH {reader.header_lines + 1}), {cells})"
                )
                columns = ", ".join(f"c{index}" for index in range(width))
                with cursor.copy(f"COPY {ORDER_RAW} ({columns}) FROM STDIN (FORMAT csv)") as copy:
                    for chunk in reader.text_chunks():
                        if '"' in chunk:
                            raise _NotForCopy
                        lines += chunk.count("\n")
                        ends_with_newline = chunk.endswith("\n")
                        copy.write(chunk)
                copied = cursor.rowcount
                if copied != lines + (not ends_with_newline):
                    raise _NotForCopy
                self._parse_in_database(cursor, positions, width)
                cursor.execute(f"DROP TABLE {ORDER_RAW}")
        except (_NotForCopy, DatabaseError, psycopg.Error):
            return None
        return copied - self._parsers.blank_rows

    def _parse_in_database(self, cursor, positions: list[int], width: int) -> None:
        """Stage the raw rows: those in the tills' spelling by one ``INSERT … SELECT``; the others
        (another spelling of a time or a mobile, a bad cell, a blank row) through the parsers.
        The checks are string functions rather than regular expressions: a third of the time."""
        external_id, mobile, store_code, paid, amount = (f"r.c{position}" for position in positions)
        _now, surely_past = self._parsers.tick()
        cursor.execute(f"ANALYZE {ORDER_RAW}")
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
        # The filters' selectivities multiply to an estimate of a handful of rows, for which the
        # planner would compare every row with every store: a hash join it is.
        cursor.execute("SET LOCAL enable_nestloop = off")
        cursor.execute(
            f"""
            INSERT INTO {ORDER_STAGING} (line, external_id, mobile, store_id, paid_local, amount)
            SELECT r.line, {external_id}, {mobile}, s.id, {paid}::timestamp, {amount}::numeric(14, 2)
            FROM {ORDER_RAW} r JOIN {Store._meta.db_table} s ON s.code = {store_code}
            WHERE length({external_id}) BETWEEN 1 AND %(id_length)s
              AND btrim({external_id}, %(whitespace)s) = {external_id} AND left({external_id}, 1) <> %(guard)s
              AND translate({mobile}, '0123456789', '9999999999') = '99999999999'
              AND left({mobile}, 1) = '1' AND substr({mobile}, 2, 1) >= '3'
              AND {amount_ok}
              AND CASE WHEN {time_ok} THEN {paid}::timestamp < %(surely_past)s END
            """,  # noqa: S608 -- table and column names are ours
            {
                "id_length": Order._meta.get_field("external_id").max_length,
                "whitespace": WHITESPACE,
                "guard": FORMULA_GUARD,
                "surely_past": surely_past,
            },
        )
        cursor.execute("SET LOCAL enable_nestloop TO DEFAULT")
        columns = ", ".join(f"r.c{index}" for index in range(width))
        parsers = self._parsers
        with connection.connection.cursor(name="import_order_unparsed") as unparsed:  # bounded memory
            unparsed.execute(
                f"SELECT r.line, {columns} FROM {ORDER_RAW} r "  # noqa: S608
                f"WHERE NOT EXISTS (SELECT FROM {ORDER_STAGING} s WHERE s.line = r.line) ORDER BY r.line"
            )
            while chunk := unparsed.fetchmany(self.batch_size):
                rows = [parsers.raw_row(line, record, positions) for line, *record in chunk]
                with cursor.copy(_STAGING_COPY) as copy:
                    for row in rows:
                        if row is not None:
                            copy.write_row(row)
                parsers.tick()

    # 2. check ----------------------------------------------------------------------------------

    def check(self) -> dict[str, int]:
        """Classify every staged row without an error: ``new``, ``unchanged``, ``no_member`` or
        ``conflict`` (with the fields that differ); the number of rows of each outcome."""
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                CREATE TEMPORARY TABLE {ORDER_CHECKED} AS
                WITH resolved AS (
                    SELECT s.line, s.external_id, s.mobile, s.store_id, m.id AS member_id,
                           COALESCE(s.paid_at, s.paid_local AT TIME ZONE %(tz)s) AS paid_at, s.amount
                    FROM {ORDER_STAGING} s LEFT JOIN {Member._meta.db_table} m ON m.mobile = s.mobile
                    WHERE s.error IS NULL
                ),
                candidate AS (  -- the first row of the file with a store and id is the reference of the others
                    SELECT r.*,
                           first_value(r.line) OVER same_id AS first_line,
                           first_value(r.member_id) OVER same_id AS first_member_id,
                           first_value(r.paid_at) OVER same_id AS first_paid_at,
                           first_value(r.amount) OVER same_id AS first_amount
                    FROM resolved r WHERE r.member_id IS NOT NULL
                    WINDOW same_id AS (PARTITION BY r.store_id, r.external_id ORDER BY r.line)
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
                """,  # noqa: S608 -- table names are constants
                {"tz": self.tz},
            )
            cursor.execute(f"ANALYZE {ORDER_CHECKED}")
            cursor.execute(f"SELECT outcome, count(*) FROM {ORDER_CHECKED} GROUP BY outcome")  # noqa: S608
            return dict(cursor.fetchall())

    # 3. report ---------------------------------------------------------------------------------

    def show(self, run: "_Run", show_rows: int) -> None:
        if not show_rows:
            return
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT c.line, c.outcome, c.external_id, c.mobile, s.code, c.paid_at, c.amount "  # noqa: S608
                f"FROM {ORDER_CHECKED} c JOIN {Store._meta.db_table} s ON s.id = c.store_id "
                "WHERE c.outcome IN ('new', 'unchanged') ORDER BY c.line LIMIT %s",
                [show_rows],
            )
            for line, outcome, *cells in cursor.fetchall():
                run.show(line, Outcome(outcome), tuple(cells))

    def report(self, run: "_Run") -> None:
        """Every bad row, in line order, a thousand at a time from a server-side cursor."""
        bad_rows: list[tuple[int, str]] = []
        with connection.chunked_cursor() as cursor:
            cursor.execute(
                f"""
                SELECT line, error, NULL, NULL, NULL FROM {ORDER_STAGING} WHERE error IS NOT NULL
                UNION ALL
                SELECT line, NULL, outcome, CASE WHEN outcome = 'no_member' THEN mobile ELSE external_id END, differs
                FROM {ORDER_CHECKED} WHERE outcome IN ('no_member', 'conflict')
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

        The orders' foreign keys check each new row's member and store with a trigger per row
        — half the time of the whole insert. Where the connection may switch row triggers off
        (``session_replication_role``: a superuser, or ``GRANT SET ON PARAMETER
        session_replication_role``), the references are checked and held once per member and
        store instead (``_references_held``: the same ``FOR KEY SHARE`` lock each trigger would
        take, so none of them can go before this transaction ends) and the statement runs without
        row triggers; otherwise the triggers run as usual. The orders table has no other trigger."""
        now = timezone.now()
        sql = f"""
            INSERT INTO {Order._meta.db_table}
                (created_at, updated_at, external_id, member_id, store_id, paid_at, amount, refunded_amount, status)
            SELECT %(now)s, %(now)s, external_id, member_id, store_id, paid_at, amount, 0, %(paid)s
            FROM {ORDER_CHECKED} WHERE outcome = 'new' ORDER BY paid_at, line
        """  # noqa: S608 -- in time order: two of the five indexes lead with the time or the store and time
        params = {"now": now, "paid": Order.Status.PAID}
        try:
            # A plain INSERT first: cheaper than ON CONFLICT's speculative insertion, and a till
            # recording one of these orders meanwhile is rare.
            with transaction.atomic(), connection.cursor() as cursor:
                without_triggers = self._row_triggers_off(cursor) and self._references_held(cursor)
                cursor.execute(sql, params)
                inserted = cursor.rowcount
                cursor.execute("SET LOCAL session_replication_role = DEFAULT")
            self.without_row_triggers = without_triggers
        except IntegrityError:
            with connection.cursor() as cursor:
                cursor.execute(sql + " ON CONFLICT (store_id, external_id) DO NOTHING", params)
                inserted = cursor.rowcount
        if inserted != run.result.created:
            self._recorded_meanwhile(run, inserted, since=now)

    @staticmethod
    def _row_triggers_off(cursor) -> bool:
        """Switch row triggers off for the rest of the transaction, if the connection may."""
        try:
            with transaction.atomic():
                cursor.execute("SET LOCAL session_replication_role = replica")
        except DatabaseError:
            return False
        return True

    @staticmethod
    def _references_held(cursor) -> bool:
        """Lock the member and the store of every new row ``FOR KEY SHARE``, once each; whether
        all of them are there. If one is not (deleted since the check), row triggers go back on
        and the foreign keys will say so."""
        for table, column in ((Member._meta.db_table, "member_id"), (Store._meta.db_table, "store_id")):
            cursor.execute(
                f"""
                WITH wanted AS (SELECT DISTINCT {column} AS id FROM {ORDER_CHECKED} WHERE outcome = 'new'),
                     held AS (SELECT t.id FROM {table} t JOIN wanted w ON w.id = t.id ORDER BY t.id FOR KEY SHARE OF t)
                SELECT (SELECT count(*) FROM wanted), (SELECT count(*) FROM held)
                """  # noqa: S608
            )
            wanted, held = cursor.fetchone()
            if held != wanted:
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
                FROM {ORDER_CHECKED} c
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
                f"SELECT line, external_id, member_id, store_id, paid_at, amount FROM {ORDER_CHECKED} "  # noqa: S608
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
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT min(member_id), max(member_id) FROM {ORDER_CHECKED} WHERE outcome = 'new'")  # noqa: S608
            return cursor.fetchone()

    def drop(self) -> None:
        """Drop the tables now: an import inside a longer transaction (a test, a second file) must
        find the names free. A rolled-back import loses them anyway."""
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {ORDER_STAGING}, {ORDER_CHECKED}")


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
