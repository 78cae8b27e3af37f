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
  number in any spelling, orders by ``order_id`` (their external id), stores by code. An order id
  already recorded with the same member, store, time and amount is unchanged — whichever way it
  was recorded, so it never earns twice — and with different content it is a bad row. A row
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
  it again would double them. Set-based: one lookup and one ``bulk_create`` per ``BATCH_SIZE``
  rows, no per-row events — no points, no tier upgrades, no referral rewards, no after-order
  triggers. Afterwards members still without a tier get the one their recorded history qualifies
  them for (``tiers_assign_missing``: the entry level for a new member), and a successful orders
  import publishes ``orders_imported`` once, after commit, so segmentation recomputes RFM.

An order already recorded is unchanged in either mode, so a file imported once historically and
then again in loyalty mode (or the reverse) earns nothing the second time.

Memory stays bounded whatever the file's size: rows are read and handled a batch at a time.
Progress is reported by two optional callbacks: ``on_progress`` with the bytes of each read (the
commands' progress bar) and ``on_rows`` with the rows handled so far, after each batch (the
admin's import jobs, ``members.services.import_jobs``); ``on_bad_row`` gets each bad row's line
and message as they are found (the jobs' error report).
"""

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import BinaryIO

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Sum, TextChoices
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from members.csv_import import (
    ChoiceParser,
    Column,
    CsvReader,
    RowFields,
    batched,
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

    def report(self, bad_rows: list[tuple[int, str]]) -> None:
        """Report a batch's bad rows, in line order, then the rows handled so far (``on_rows``)."""
        for line, message in sorted(bad_rows, key=lambda bad: bad[0]):
            text = str(_("line %(line)s: %(message)s") % {"line": line, "message": message})
            self.result.error_count += 1
            if len(self.result.errors) < MAX_KEPT_ERRORS:
                self.result.errors.append(text)
            if self._on_error is not None:
                self._on_error(text)
            if self._on_bad_row is not None:
                self._on_bad_row(line, message)
        if self._on_rows is not None:
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


@dataclass(slots=True)
class _OrderRow:
    line: int
    external_id: str
    mobile: str
    store: Store
    paid_at: datetime
    amount: Decimal
    member: Member | None = None

    def cells(self) -> tuple:
        return (self.external_id, self.mobile, self.store, self.paid_at, self.amount)


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
    ``amount`` in yuan. The member must exist (by mobile number) and the store (by code). New
    orders go through ``order_record`` and earn what they would over the API, or are inserted in
    bulk without loyalty effects when ``historical``.
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
    id_length = Order._meta.get_field("external_id").max_length
    member_ids_from: int | None = None
    member_ids_to: int | None = None
    # external id → (member id, store id, paid at, amount) of rows found new but not written.
    unwritten: dict[str, tuple] = {}
    with _binary(file) as binary:
        reader = CsvReader(binary, columns=ORDER_COLUMNS, on_progress=on_progress)
        result.encoding = reader.encoding
        with transaction.atomic():
            stores = {store.code: store for store in Store.objects.all()}
            for batch in batched(reader, batch_size):
                now = timezone.now()
                bad_rows: list[tuple[int, str]] = []
                candidates: list[_OrderRow] = []
                for row in batch:
                    result.rows += 1
                    values = row.values
                    fields = RowFields()
                    candidate = _OrderRow(
                        line=row.line,
                        external_id=fields.parse(
                            "order_id", parse_text, values["order_id"], max_length=id_length, required=True
                        ),
                        mobile=fields.parse("member_mobile", parse_mobile, values["member_mobile"]),
                        store=fields.parse("store_code", _store, values["store_code"], stores),
                        paid_at=fields.parse("paid_at", _moment, values["paid_at"], field="paid_at", now=now),
                        amount=fields.parse("amount", parse_money, values["amount"]),
                    )
                    if fields.errors:
                        bad_rows.append((row.line, fields.message))
                    else:
                        candidates.append(candidate)

                mobiles = {candidate.mobile for candidate in candidates}
                if historical:
                    members = {
                        mobile: Member(pk=pk, mobile=mobile)
                        for mobile, pk in Member.objects.filter(mobile__in=mobiles).values_list("mobile", "pk")
                    }
                else:
                    members = {member.mobile: member for member in Member.objects.filter(mobile__in=mobiles)}
                # external id → (member id, store id, paid at, amount): recorded before, or earlier in the file.
                external_ids = {candidate.external_id for candidate in candidates}
                recorded = {
                    external_id: tuple(content)
                    for external_id, *content in Order.objects.filter(external_id__in=external_ids).values_list(
                        "external_id", "member_id", "store_id", "paid_at", "amount"
                    )
                }
                recorded |= {external_id: unwritten[external_id] for external_id in external_ids & unwritten.keys()}
                new: list[_OrderRow] = []
                for candidate in candidates:
                    member = members.get(candidate.mobile)
                    if member is None:
                        message = _("No member has the mobile number %s.") % candidate.mobile
                        bad_rows.append((candidate.line, f"member_mobile: {message}"))
                        continue
                    candidate.member = member
                    content = (member.pk, candidate.store.pk, candidate.paid_at, candidate.amount)
                    previous = recorded.setdefault(candidate.external_id, content)
                    if previous is not content:
                        if previous == content:
                            result.unchanged += 1
                            run.show(candidate.line, Outcome.UNCHANGED, candidate.cells())
                        else:
                            bad_rows.append((candidate.line, _conflict(candidate.external_id, previous, content)))
                        continue
                    new.append(candidate)
                    run.show(candidate.line, Outcome.NEW, candidate.cells())
                result.created += len(new)

                pending = new
                if result.ok and not bad_rows and historical:
                    _orders_insert(new)
                    pending = []
                    if new:
                        low = min(candidate.member.pk for candidate in new)
                        high = max(candidate.member.pk for candidate in new)
                        member_ids_from = low if member_ids_from is None else min(member_ids_from, low)
                        member_ids_to = high if member_ids_to is None else max(member_ids_to, high)
                elif result.ok and not bad_rows:
                    pending = _orders_record(new, bad_rows, result)
                unwritten.update((c.external_id, (c.member.pk, c.store.pk, c.paid_at, c.amount)) for c in pending)
                run.report(bad_rows)
            if run.end() and historical and result.created:
                tiers_assign_missing(as_of=timezone.now())
                orders_imported.publish(
                    count=result.created, member_ids_from=member_ids_from, member_ids_to=member_ids_to
                )
    return run.finish()


def _orders_record(rows: list[_OrderRow], bad_rows: list[tuple[int, str]], result: ImportResult) -> list[_OrderRow]:
    """Record ``rows`` one by one through ``order_record``, as the API would, and add up the
    points and tier changes they caused. A refusal is a bad row: the batch's orders are rolled
    back (the file will not be kept) and all its rows returned as not written; otherwise none are."""
    order_ids: list[int] = []
    row = None
    try:
        with transaction.atomic():  # one savepoint a batch, not a row: a refused file is rolled back whole
            for row in rows:
                recorded = order_record(
                    external_id=row.external_id,
                    member=row.member,
                    store=row.store,
                    paid_at=row.paid_at,
                    amount=row.amount,
                )
                if recorded.created:
                    order_ids.append(recorded.order.pk)
    except ValidationError as exc:
        bad_rows.append((row.line, _refusal(exc)))
        return rows
    # Recorded meanwhile by another channel with the same content: unchanged after all.
    result.unchanged += len(rows) - len(order_ids)
    result.created -= len(rows) - len(order_ids)
    if order_ids:
        points = PointsEntry.objects.filter(order_id__in=order_ids, kind=PointsEntry.Kind.EARN).aggregate(
            total=Sum("points")
        )["total"]
        result.points_earned += points or 0
        result.tier_changes += TierChange.objects.filter(order_id__in=order_ids).count()
    return []


def _orders_insert(rows: list[_OrderRow]) -> None:
    Order.objects.bulk_create(
        [
            Order(
                external_id=row.external_id,
                member_id=row.member.pk,
                store_id=row.store.pk,
                paid_at=row.paid_at,
                amount=row.amount,
            )
            for row in rows
        ],
        batch_size=INSERT_BATCH_SIZE,
    )


def _conflict(external_id: str, previous: tuple, content: tuple) -> str:
    names = ("member", "store", "paid_at", "amount")
    differences = ", ".join(name for name, ours, theirs in zip(names, previous, content, strict=True) if ours != theirs)
    return "order_id: " + str(
        _("Order %(id)s was already recorded with a different %(fields)s.") % {"id": external_id, "fields": differences}
    )
