"""Bulk imports of stores, members and orders from CSV files (the ``import_*`` commands).

The three imports share their rules:

- **Streaming.** The file is read row by row (``members.csv_import``) and written in batches of
  ``BATCH_SIZE`` rows: per batch, one query finds the rows that already exist, one ``bulk_create``
  inserts the new ones. Nothing grows with the size of the file except the counters (and, for
  stores, which are few, a dict of them).
- **All or nothing.** The whole import runs in one transaction. Every bad row is reported with
  its line number (the header is line 1) as soon as its batch is checked, the import goes on to
  the end so that all of them are found, and if there was any, everything is rolled back.
- **Idempotent.** Importing the same file twice changes nothing. A member whose mobile number is
  already registered is left as it is; an order whose external id is already recorded with the
  same member, store, time and amount is skipped, and with a different one it is a bad row; a
  store with the same code is unchanged, or updated when its name or city differ. A row repeated
  in the file behaves the same way: earlier batches are already inserted in the transaction.
- **No per-row events.** Bulk imports do not publish ``order_recorded`` or ``member_registered``;
  a successful orders import publishes ``orders_imported`` once, after commit.
"""

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from decimal import Decimal
from typing import BinaryIO

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from members.csv_import import CsvReader, batched
from members.events import orders_imported
from members.mobile import normalize_mobile
from members.models import Member, Order, Store
from members.money import to_money
from members.referral_codes import new_referral_code

# Rows per batch. Measured on 1M orders: with 5,000 external ids PostgreSQL (random_page_cost 4)
# switches the per-batch lookup to a sequential scan; 2,000 keeps index scans and was ~30% faster.
BATCH_SIZE = 2_000
INSERT_BATCH_SIZE = 1_000  # rows per INSERT: well under PostgreSQL's 65,535 parameters, UNNEST or not
MAX_KEPT_ERRORS = 1_000
_REFERRAL_CODE_ROUNDS = 10

STORE_COLUMNS = ("code", "name", "city")
MEMBER_COLUMNS = ("mobile", "name", "registered_at", "store_code")
MEMBER_OPTIONAL_COLUMNS = ("gender", "birthday", "channel", "openid")
ORDER_COLUMNS = ("order_id", "member_mobile", "store_code", "paid_at", "amount")

ImportSource = BinaryIO | str | os.PathLike
ErrorCallback = Callable[[str], object]
ProgressCallback = Callable[[int], object]

_GENDERS = {
    **{value: value for value in Member.Gender.values},
    "男": Member.Gender.MALE,
    "女": Member.Gender.FEMALE,
    "未知": Member.Gender.UNKNOWN,
    "m": Member.Gender.MALE,
    "f": Member.Gender.FEMALE,
    "": Member.Gender.UNKNOWN,
}
_CHANNELS = {**{value: value for value in Member.Channel.values}, "": Member.Channel.IMPORT}


@dataclass
class ImportResult:
    """What an import did. ``errors`` keeps the first ``MAX_KEPT_ERRORS`` messages only;
    ``error_count`` counts them all. When ``ok`` is false nothing was written."""

    created: int = 0
    unchanged: int = 0
    updated: int = 0
    rows: int = 0
    error_count: int = 0
    errors: list[str] = field(default_factory=list)
    encoding: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error_count == 0


class _Run:
    """The bookkeeping of one import: counters, bad rows and the clock."""

    def __init__(self, on_error: ErrorCallback | None):
        self.result = ImportResult()
        self._on_error = on_error
        self._started = time.monotonic()

    def report(self, bad_rows: list[tuple[int, str]]) -> None:
        """Report a batch's bad rows, in line order."""
        for line, message in sorted(bad_rows, key=lambda bad: bad[0]):
            text = str(_("line %(line)s: %(message)s") % {"line": line, "message": message})
            self.result.error_count += 1
            if len(self.result.errors) < MAX_KEPT_ERRORS:
                self.result.errors.append(text)
            if self._on_error is not None:
                self._on_error(text)

    def finish(self) -> ImportResult:
        self.result.seconds = time.monotonic() - self._started
        return self.result


class _Fields:
    """Parses the fields of one row, collecting every field's problems instead of stopping at the first."""

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


@contextmanager
def _binary(file: ImportSource) -> Iterator[BinaryIO]:
    if isinstance(file, str | os.PathLike):
        with open(file, "rb") as opened:
            yield opened
    else:
        yield file


def _text(value: str, max_length: int, *, required: bool = True) -> str:
    if required and not value:
        raise ValidationError(_("This value is required."))
    if len(value) > max_length:
        raise ValidationError(
            _("At most %(max)s characters (this one has %(length)s).") % {"max": max_length, "length": len(value)}
        )
    return value


def _datetime(value: str, tz: tzinfo) -> datetime:
    if not value:
        raise ValidationError(_("A date and time is required."))
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(
            _("“%(value)s” is not an ISO 8601 date and time (like 2024-03-01 14:30 or 2024-03-01T14:30+08:00).")
            % {"value": value}
        ) from None
    return timezone.make_aware(parsed, tz) if parsed.tzinfo is None else parsed


def _date(value: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationError(
            _("“%(value)s” is not an ISO 8601 date (such as 1990-05-17).") % {"value": value}
        ) from None


def _choice(value: str, choices: dict[str, str]) -> str:
    try:
        return choices[value.lower()]
    except KeyError:
        raise ValidationError(
            _("“%(value)s” is not one of %(choices)s.")
            % {"value": value, "choices": ", ".join(sorted(key for key in choices if key))}
        ) from None


def _store_id(code: str, stores: dict[str, int], *, required: bool = True) -> int | None:
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
    on_error: ErrorCallback | None = None,
    on_progress: ProgressCallback | None = None,
    batch_size: int = BATCH_SIZE,
) -> ImportResult:
    """Import stores from a CSV ``code,name,city``: new codes are created, known codes with another
    name or city are updated. A code repeated in the file with another name or city is a bad row."""
    run = _Run(on_error)
    result = run.result
    with _binary(file) as binary:
        reader = CsvReader(binary, required=STORE_COLUMNS, on_progress=on_progress)
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
                    fields = _Fields()
                    code = fields.parse("code", _text, row.values["code"], Store._meta.get_field("code").max_length)
                    name = fields.parse("name", _text, row.values["name"], Store._meta.get_field("name").max_length)
                    city = fields.parse("city", _text, row.values["city"], Store._meta.get_field("city").max_length)
                    if fields.errors:
                        bad_rows.append((row.line, fields.message))
                        continue
                    seen_on = first_line.setdefault(code, row.line)
                    current = stores.get(code)
                    if current is None:
                        stores[code] = [None, name, city]
                        new.append(Store(code=code, name=name, city=city))
                        result.created += 1
                    elif (current[1], current[2]) == (name, city):
                        result.unchanged += 1
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
                for store in Store.objects.bulk_create(new, batch_size=INSERT_BATCH_SIZE):
                    stores[store.code][0] = store.pk
                Store.objects.bulk_update(changed, ["name", "city", "updated_at"], batch_size=INSERT_BATCH_SIZE)
                run.report(bad_rows)
            if not result.ok:
                transaction.set_rollback(True)
    return run.finish()


# --- Members --------------------------------------------------------------------------------


def members_import(
    *,
    file: ImportSource,
    on_error: ErrorCallback | None = None,
    on_progress: ProgressCallback | None = None,
    batch_size: int = BATCH_SIZE,
) -> ImportResult:
    """Import members from a CSV ``mobile,name,registered_at,store_code`` (and optionally
    ``gender,birthday,channel,openid``). A mobile number already registered is left as it is."""
    run = _Run(on_error)
    result = run.result
    tz = timezone.get_default_timezone()
    name_length = Member._meta.get_field("name").max_length
    openid_length = Member._meta.get_field("openid").max_length
    with _binary(file) as binary:
        reader = CsvReader(binary, required=MEMBER_COLUMNS, optional=MEMBER_OPTIONAL_COLUMNS, on_progress=on_progress)
        result.encoding = reader.encoding
        with transaction.atomic():
            stores = dict(Store.objects.values_list("code", "pk"))
            for batch in batched(reader, batch_size):
                bad_rows: list[tuple[int, str]] = []
                candidates: list[tuple[int, Member]] = []
                for row in batch:
                    result.rows += 1
                    values = row.values
                    fields = _Fields()
                    member = Member(
                        mobile=fields.parse("mobile", normalize_mobile, values["mobile"]),
                        name=fields.parse("name", _text, values["name"], name_length, required=False),
                        registered_at=fields.parse("registered_at", _datetime, values["registered_at"], tz),
                        home_store_id=fields.parse(
                            "store_code", _store_id, values["store_code"], stores, required=False
                        ),
                        gender=fields.parse("gender", _choice, values.get("gender", ""), _GENDERS),
                        birthday=fields.parse("birthday", _date, values.get("birthday", "")),
                        channel=fields.parse("channel", _choice, values.get("channel", ""), _CHANNELS),
                        openid=fields.parse("openid", _text, values.get("openid", ""), openid_length, required=False)
                        or None,
                        referral_code="",
                    )
                    if fields.errors:
                        bad_rows.append((row.line, fields.message))
                    else:
                        candidates.append((row.line, member))

                registered = set(
                    Member.objects.filter(mobile__in={member.mobile for _line, member in candidates}).values_list(
                        "mobile", flat=True
                    )
                )
                openids = {member.openid for _line, member in candidates if member.openid}
                openid_owners = (
                    dict(Member.objects.filter(openid__in=openids).values_list("openid", "mobile")) if openids else {}
                )
                new: dict[str, Member] = {}
                for line, member in candidates:
                    if member.mobile in registered or member.mobile in new:
                        result.unchanged += 1
                        continue
                    if member.openid:
                        owner = openid_owners.setdefault(member.openid, member.mobile)
                        if owner != member.mobile:
                            bad_rows.append(
                                (line, f"openid: {_('This openid belongs to the member with mobile %s.') % owner}")
                            )
                            continue
                    new[member.mobile] = member
                _assign_referral_codes(list(new.values()))
                Member.objects.bulk_create(new.values(), batch_size=INSERT_BATCH_SIZE)
                result.created += len(new)
                run.report(bad_rows)
            if not result.ok:
                transaction.set_rollback(True)
    return run.finish()


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


def orders_import(
    *,
    file: ImportSource,
    on_error: ErrorCallback | None = None,
    on_progress: ProgressCallback | None = None,
    batch_size: int = BATCH_SIZE,
) -> ImportResult:
    """Import paid orders from a CSV ``order_id,member_mobile,store_code,paid_at,amount``.

    ``paid_at`` is ISO 8601 (naive values are in ``settings.TIME_ZONE``), ``amount`` in yuan. The
    member must exist (by mobile number) and the store (by code). An order id already recorded with
    the same content is skipped; with a different member, store, time or amount it is a bad row.
    """
    run = _Run(on_error)
    result = run.result
    tz = timezone.get_default_timezone()
    id_length = Order._meta.get_field("external_id").max_length
    member_ids_from: int | None = None
    member_ids_to: int | None = None
    with _binary(file) as binary:
        reader = CsvReader(binary, required=ORDER_COLUMNS, on_progress=on_progress)
        result.encoding = reader.encoding
        with transaction.atomic():
            stores = dict(Store.objects.values_list("code", "pk"))
            for batch in batched(reader, batch_size):
                bad_rows: list[tuple[int, str]] = []
                # (line, external id, mobile, store id, paid at, amount)
                candidates: list[tuple[int, str, str, int, datetime, Decimal]] = []
                for row in batch:
                    result.rows += 1
                    values = row.values
                    fields = _Fields()
                    external_id = fields.parse("order_id", _text, values["order_id"], id_length)
                    mobile = fields.parse("member_mobile", normalize_mobile, values["member_mobile"])
                    store_id = fields.parse("store_code", _store_id, values["store_code"], stores)
                    paid_at = fields.parse("paid_at", _datetime, values["paid_at"], tz)
                    amount = fields.parse("amount", to_money, values["amount"])
                    if fields.errors:
                        bad_rows.append((row.line, fields.message))
                    else:
                        candidates.append((row.line, external_id, mobile, store_id, paid_at, amount))

                members = dict(
                    Member.objects.filter(mobile__in={candidate[2] for candidate in candidates}).values_list(
                        "mobile", "pk"
                    )
                )
                # external id → (member id, store id, paid at, amount): recorded before, or earlier in this batch.
                recorded = {
                    external_id: tuple(content)
                    for external_id, *content in Order.objects.filter(
                        external_id__in={candidate[1] for candidate in candidates}
                    ).values_list("external_id", "member_id", "store_id", "paid_at", "amount")
                }
                new: list[Order] = []
                for line, external_id, mobile, store_id, paid_at, amount in candidates:
                    member_id = members.get(mobile)
                    if member_id is None:
                        bad_rows.append((line, f"member_mobile: {_('No member has the mobile number %s.') % mobile}"))
                        continue
                    content = (member_id, store_id, paid_at, amount)
                    previous = recorded.setdefault(external_id, content)
                    if previous is not content:
                        if previous == content:
                            result.unchanged += 1
                        else:
                            bad_rows.append((line, _conflict(external_id, previous, content)))
                        continue
                    new.append(
                        Order(
                            external_id=external_id,
                            member_id=member_id,
                            store_id=store_id,
                            paid_at=paid_at,
                            amount=amount,
                        )
                    )
                    if member_ids_from is None or member_id < member_ids_from:
                        member_ids_from = member_id
                    if member_ids_to is None or member_id > member_ids_to:
                        member_ids_to = member_id
                Order.objects.bulk_create(new, batch_size=INSERT_BATCH_SIZE)
                result.created += len(new)
                run.report(bad_rows)
            if not result.ok:
                transaction.set_rollback(True)
            elif result.created:
                orders_imported.publish(
                    count=result.created, member_ids_from=member_ids_from, member_ids_to=member_ids_to
                )
    return run.finish()


def _conflict(external_id: str, previous: tuple, content: tuple) -> str:
    names = ("member", "store", "paid_at", "amount")
    differences = ", ".join(name for name, ours, theirs in zip(names, previous, content, strict=True) if ours != theirs)
    return "order_id: " + str(
        _("Order %(id)s was already recorded with a different %(fields)s.") % {"id": external_id, "fields": differences}
    )
