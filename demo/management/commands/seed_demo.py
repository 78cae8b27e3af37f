"""``seed_demo``: a realistic, reproducible demo brand (see ``members.demo_data`` and ``demo.brand``).

    python manage.py seed_demo --members 5000 --orders 50000 --seed 42 [--as-of 2025-06-30] [--reset]
    python manage.py seed_demo --if-empty …       # does nothing (exit 0) on a database with members
    python manage.py seed_demo --history-only …   # only stores, members, orders and refunds, in bulk

Exactly N members and M orders are created (plus the orders of members who come back for a
campaign's coupon); the same arguments and as-of date always give the same data. The two years up
to the last three weeks go in through the bulk paths — COPY on PostgreSQL, ``bulk_create`` in batches
elsewhere — streamed member by member, in one transaction; the last three weeks are played through
the services (``demo.brand``), so tiers, points, wallets, referrals, coupons, campaigns, triggers
and RFM runs all have rows. A small tea-shop catalogue (``CATALOGUE``: four categories, one product
tagged 唤醒商品) is written, and every order gets one or two lines from it adding up to the
order's amount, by one ``INSERT … SELECT`` at the end (``_write_order_lines``). With
``--history-only`` everything goes in bulk (the benchmarks) and
``orders_imported`` is published once for the whole batch.
"""

import argparse
import dataclasses
import datetime as dt
import sys
import time
from contextlib import contextmanager
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.apps import apps
from django.conf import settings
from django.core.management.base import CommandError
from django.db import connection, models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from tqdm import tqdm

from demo.brand import LIVE_DAYS, DemoBrand
from members.demo_data import PAID, DemoData, DemoMember, DemoOrder, DemoRefund
from members.events import orders_imported
from members.management.translated import TranslatedHelpCommand
from members.models import Member, Order, OrderLine, Product, Refund, Store
from segmentation.models import RfmRun
from segmentation.services import product_preferences_recompute, rule_tags_recompute

#: The demo brand's tea-shop catalogue: sku, name, category, tags.
CATALOGUE = (
    ("MT-001", "珍珠奶茶", "奶茶", ["热销"]),
    ("MT-002", "芋泥波波奶茶", "奶茶", []),
    ("MT-003", "黑糖鲜奶", "奶茶", ["新品"]),
    ("FT-001", "满杯百香果", "果茶", ["唤醒商品"]),
    ("FT-002", "多肉葡萄", "果茶", ["热销"]),
    ("FT-003", "柠檬绿茶", "果茶", []),
    ("CF-001", "生椰拿铁", "咖啡", ["新品"]),
    ("CF-002", "美式咖啡", "咖啡", []),
    ("CF-003", "焦糖玛奇朵", "咖啡", []),
    ("DS-001", "芝士蛋糕", "甜点", []),
    ("DS-002", "蛋挞", "甜点", ["热销"]),
    ("DS-003", "麻薯", "甜点", []),
)
DEMO_MODELS = (RfmRun, Refund, Order, Member, Store)  # what --reset deletes, with whatever depends on it
BATCH_SIZE = 2000


@dataclasses.dataclass
class LiveHistory:
    """What ``seed_demo`` leaves to the services (``demo.brand``): the members who register from
    the live day on, the orders paid from then (with their refunds) and the later refunds of
    earlier orders; plus the ids the bulk writer gave."""

    members: list[DemoMember] = dataclasses.field(default_factory=list)
    orders: list[tuple[DemoOrder, DemoRefund | None]] = dataclasses.field(default_factory=list)
    refunds: list[DemoRefund] = dataclasses.field(default_factory=list)
    store_ids: list[int] = dataclasses.field(default_factory=list)
    first_member_id: int = 0
    first_order_id: int = 0
    written_members: int = 0


def _as_of(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(_("“%(value)s” is not a date: use YYYY-MM-DD.") % {"value": value}) from None


class Command(TranslatedHelpCommand):
    help = gettext_lazy(
        "Create realistic, reproducible demo data: stores, members, orders and refunds. "
        "The same arguments and as-of date always give the same data."
    )

    def add_arguments(self, parser):
        parser.add_argument("--members", type=int, default=1000, help=gettext_lazy("Members to create (exactly)."))
        parser.add_argument("--orders", type=int, default=10000, help=gettext_lazy("Orders to create (exactly)."))
        parser.add_argument("--seed", type=int, default=42, help=gettext_lazy("Random seed."))
        parser.add_argument(
            "--as-of",
            type=_as_of,
            default=None,
            help=gettext_lazy("Last day of the data, YYYY-MM-DD (default: yesterday in the brand's time zone)."),
        )
        parser.add_argument(
            "--reset",
            action="store_true",
            help=gettext_lazy(
                "Delete all stores, members, orders and refunds (and the rows that refer to them: wallets, "
                "points, segments …) first. Without it, the command refuses to run on a database with data."
            ),
        )
        parser.add_argument("--no-progress", action="store_true", help=gettext_lazy("Do not show a progress bar."))
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help=gettext_lazy("Do nothing (and succeed) when the database already has members."),
        )
        parser.add_argument(
            "--history-only",
            action="store_true",
            help=gettext_lazy(
                "Only stores, members, orders and refunds, all in bulk: no tiers, points, wallets, campaigns "
                "or RFM runs (for benchmarks)."
            ),
        )

    def handle(
        self, *args, members, orders, seed, as_of, reset, no_progress, if_empty, history_only, verbosity, **options
    ):
        if if_empty and not reset and Member._base_manager.exists():
            if verbosity:
                self.stdout.write(
                    _("The database already has %(members)s members: no demo data created.")
                    % {"members": Member._base_manager.count()}
                )
            return
        if members < 0 or orders < 0:
            raise CommandError(_("--members and --orders must not be negative."))
        if orders and not members:
            raise CommandError(_("Orders need members: give --members 1 or more."))
        tz = ZoneInfo(settings.TIME_ZONE)
        # Default: yesterday, so that no demo order lies later today than "now".
        as_of = as_of or timezone.now().astimezone(tz).date() - dt.timedelta(days=1)
        started = last = time.monotonic()

        def lap(step: str) -> None:  # timings of the steps, with -v 2
            nonlocal last
            now = time.monotonic()
            if verbosity >= 2:
                self.stdout.write(_("  %(step)s: %(seconds).1f s") % {"step": step, "seconds": now - last})
            last = now

        data = DemoData(members=members, orders=orders, seed=seed, as_of=as_of, tz=tz)
        live_from = None if history_only else data.calendar.last_day - LIVE_DAYS + 1
        show = not no_progress and verbosity > 0
        with transaction.atomic():
            if reset:
                deleted = _delete_demo_data()
                if verbosity and any(deleted.values()):
                    self.stdout.write(
                        _(
                            "Deleted the previous data: %(stores)s stores, %(members)s members, %(orders)s orders, "
                            "%(refunds)s refunds."
                        )
                        % deleted
                    )
            else:
                _refuse_if_not_empty()
            lap(_("previous data deleted") if reset else _("database checked"))
            writer = _CopyWriter(data, live_from=live_from)
            with tqdm(
                total=members, unit=" members", desc=_("history"), file=sys.stderr, disable=not show, leave=False
            ) as progress:
                member_ids = writer.write(progress, lap)
            if member_ids and history_only:
                orders_imported.publish(count=orders, member_ids_from=member_ids[0], member_ids_to=member_ids[-1])
        lap(_("committed (foreign keys checked)"))
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE " + ", ".join(_quoted_table(model) for model in DEMO_MODELS))
        lap(_("tables analysed"))
        story = None
        if live_from is not None:
            with tqdm(
                total=LIVE_DAYS,
                unit=" days",
                desc=_("the last %(days)s days") % {"days": LIVE_DAYS},
                file=sys.stderr,
                disable=not show,
                leave=False,
            ) as progress:
                story = DemoBrand(data=data, live=writer.live, live_from=live_from, seed=seed, progress=progress).play()
            lap(_("the last days played through the services"))
        with transaction.atomic():
            lines = _write_order_lines()
        lap(_("catalogue and order lines written (%(lines)s lines)") % {"lines": lines})
        if live_from is not None:  # the night after: favourite categories, then the tags that read them
            product_preferences_recompute()
            rule_tags_recompute()
            lap(_("product preferences and rule tags computed"))

        if verbosity:
            never = sum(1 for member in data.members() if not member.order_count)
            self.stdout.write(
                self.style.SUCCESS(
                    _(
                        "Demo data as of %(as_of)s (seed %(seed)s): %(stores)s stores, %(members)s members "
                        "(%(never)s never bought), %(orders)s orders, %(refunds)s refunds in %(seconds).1f s."
                    )
                    % {
                        "as_of": as_of.isoformat(),
                        "seed": seed,
                        "stores": len(data.stores),
                        "members": members,
                        "never": never,
                        "orders": orders,
                        "refunds": data.refund_count,
                        "seconds": time.monotonic() - started,
                    }
                )
            )
            if story is not None:
                self.stdout.write(
                    _(
                        "The last %(days)s days played through the services: %(tier_changes)s tier changes, "
                        "%(points_earned)s points earnings, %(points_redeemed)s redemptions and %(points_expired)s "
                        "expiries, %(wallet_entries)s wallet entries, %(referrals_completed)s referrals completed "
                        "(%(referrals_reversed)s reversed), %(coupons_issued)s coupons (%(coupons_redeemed)s "
                        "redeemed), %(campaign_grants)s campaign grants (%(campaigns_ended)s campaigns ended), "
                        "%(trigger_firings)s trigger firings, %(messages)s messages, %(follow_ups)s follow-up tasks, "
                        "%(rfm_runs)s RFM runs."
                    )
                    % {"days": LIVE_DAYS, **story}
                )


# --- the catalogue and the orders' lines -------------------------------------------------------
def _write_order_lines() -> int:
    """Write ``CATALOGUE`` (known skus are left as they are) and give every order without lines one
    line, or two from ¥20 up (60% and the rest), chosen from the order's id: one statement, so the
    demo's figures (amounts, points, tiers, RFM) stay as they are. Returns the lines written."""
    Product.objects.bulk_create(
        [Product(sku=sku, name=name, category=category, tags=tags) for sku, name, category, tags in CATALOGUE],
        ignore_conflicts=True,
    )
    size = len(CATALOGUE)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH catalogue AS (
                SELECT id, row_number() OVER (ORDER BY sku) - 1 AS n FROM {_quoted_table(Product)}
                WHERE sku = ANY(%(skus)s)
            )
            INSERT INTO {_quoted_table(OrderLine)}
                (order_id, product_id, quantity, amount, refunded_quantity, refunded_amount, created_at, updated_at)
            SELECT o.id, p.id, 1 + (o.id + l.k) %% 2,
                   CASE WHEN o.amount < 20 THEN o.amount
                        WHEN l.k = 0 THEN round(o.amount * 0.6, 2)
                        ELSE o.amount - round(o.amount * 0.6, 2) END,
                   0, 0, o.paid_at, o.paid_at
            FROM {_quoted_table(Order)} o
            CROSS JOIN (VALUES (0), (1)) AS l (k)
            JOIN catalogue p ON p.n = CASE
                WHEN l.k = 0 THEN o.id %% %(size)s
                ELSE (o.id %% %(size)s + 1 + (o.id / %(size)s) %% (%(size)s - 1)) %% %(size)s END
            WHERE (l.k = 0 OR o.amount >= 20)
              AND NOT EXISTS (SELECT 1 FROM {_quoted_table(OrderLine)} x WHERE x.order_id = o.id)
            """,  # noqa: S608 (table names from the models, quoted)
            {"skus": [sku for sku, *_rest in CATALOGUE], "size": size},
        )
        return cursor.rowcount


# --- an empty database, or an emptied one ---------------------------------------------------
def _refuse_if_not_empty() -> None:
    counts = {model: model._base_manager.count() for model in (Member, Store, Order)}
    if any(counts.values()):
        raise CommandError(
            _(
                "The database already has %(members)s members, %(stores)s stores and %(orders)s orders. "
                "seed_demo only fills an empty database: run it with --reset to delete them (and everything "
                "that depends on them) first."
            )
            % {"members": counts[Member], "stores": counts[Store], "orders": counts[Order]}
        )


def _delete_demo_data() -> dict[str, int]:
    """Delete every store, member, order and refund, and every row that refers to them.

    Foreign keys declared ``SET_NULL`` are cleared instead. Runs inside the caller's transaction;
    Django's foreign keys are deferred, so the tables can be emptied in any order.
    """
    deleted = {
        "stores": Store._base_manager.count(),
        "members": Member._base_manager.count(),
        "orders": Order._base_manager.count(),
        "refunds": Refund._base_manager.count(),
    }
    wiped, cleared = _dependent_tables()
    for model, field in cleared:
        model._base_manager.filter(**{f"{field.name}__isnull": False}).update(**{field.name: None})
    tables = [_quoted_table(model) for model in wiped]
    with connection.cursor() as cursor:
        # Check the rows written earlier in this transaction now: TRUNCATE refuses to run while
        # deferred foreign-key checks are pending.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        if not cleared:
            cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY")
            return deleted
        for table in tables:
            cursor.execute(f"DELETE FROM {table}")  # noqa: S608 (a table name from the models, quoted)
        # Empty tables: let the ids start at 1 again, so a re-seeded database has the same ids.
        for model in DEMO_MODELS:
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence(%s, %s), 1, false)",
                [_quoted_table(model), model._meta.pk.column],
            )
    return deleted


def _dependent_tables() -> tuple[list[type[models.Model]], list[tuple[type[models.Model], models.Field]]]:
    """The models to empty (the demo models and, transitively, all that refer to them) and the
    nullable ``SET_NULL`` foreign keys from other models to clear."""
    wiped: list[type[models.Model]] = list(DEMO_MODELS)
    existing = set(connection.introspection.table_names())  # models not migrated yet have no rows
    foreign_keys = [
        (model, field)
        for model in apps.get_models(include_auto_created=True)
        if model._meta.managed and not model._meta.proxy and model._meta.db_table in existing
        for field in model._meta.concrete_fields
        if field.is_relation and (field.many_to_one or field.one_to_one)
    ]
    grew = True
    while grew:
        grew = False
        for model, field in foreign_keys:
            refers_to_wiped = field.remote_field.model._meta.concrete_model in wiped
            set_null = field.null and field.remote_field.on_delete is models.SET_NULL
            if model not in wiped and refers_to_wiped and not set_null:
                wiped.insert(0, model)  # dependents first
                grew = True
    cleared = [
        (model, field)
        for model, field in foreign_keys
        if model not in wiped and field.remote_field.model._meta.concrete_model in wiped
    ]
    return wiped, cleared


def _quoted_table(model: type[models.Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


# --- writing the rows -------------------------------------------------------------------------
class _Writer:
    """Turns positions into ids and rows. Members and orders get explicit ids (reserved first), so
    orders can name their member and refunds their order without reading anything back."""

    member_fields = (
        "id", "mobile", "name", "gender", "birthday", "registered_at", "channel", "home_store_id", "openid",
        "referral_code", "referrer_id", "tier_id", "created_at", "updated_at",
    )  # fmt: skip
    order_fields = (
        "id", "external_id", "member_id", "store_id", "paid_at", "amount", "refunded_amount", "status",
        "created_at", "updated_at",
    )  # fmt: skip
    refund_fields = (
        "external_id", "order_id", "store_id", "amount", "refunded_at", "reason", "created_at", "updated_at",
    )  # fmt: skip

    def __init__(self, data: DemoData, *, live_from: int | None = None):
        self.data = data
        self.calendar = data.calendar
        self.live_from = live_from  # day from which the history is left to the services (demo.brand)
        self.live = LiveHistory()
        self._money: dict[int, Decimal] = {}
        self.store_ids: list[int] = []
        self.first_member_id = 0
        self.first_order_id = 0

    def is_live(self, day: int) -> bool:
        return self.live_from is not None and day >= self.live_from

    def write(self, progress, lap) -> list[int]:
        """Write the history before ``live_from`` (everything without it); return the ids of the
        members written, in registration order. What happens from ``live_from`` on is kept in
        ``self.live``, with the stores' and the written members' ids, for the services to play."""
        self.store_ids = self.write_stores()
        members = self.data.members()
        lap(_("members generated, stores written"))
        self.first_member_id = self.reserve_ids(Member, len(members))
        self.first_order_id = self.reserve_ids(Order, self.data.order_count)
        written = [member for member in members if not self.is_live(member.registered_day)]
        self.live.members = members[len(written) :]  # registration order: the live ones come last
        self.write_members(written)
        lap(_("members written"))
        refunds = self.write_orders(progress)
        lap(_("orders generated and written"))
        self.write_refunds(refunds)
        lap(_("refunds written"))
        self.live.store_ids = self.store_ids
        self.live.first_member_id, self.live.first_order_id = self.first_member_id, self.first_order_id
        self.live.written_members = len(written)
        return list(range(self.first_member_id, self.first_member_id + len(written)))

    def write_stores(self) -> list[int]:
        stores = Store.objects.bulk_create(
            Store(code=spec.code, name=spec.name, city=spec.city, is_active=spec.is_active) for spec in self.data.stores
        )
        if not all(store.pk for store in stores):  # backends that cannot return ids
            by_code = dict(Store.objects.values_list("code", "id"))
            stores = [Store(pk=by_code[spec.code]) for spec in self.data.stores]
        for store, spec in zip(stores, self.data.stores, strict=True):
            opened = self.data.store_opened_at(spec)
            Store.objects.filter(pk=store.pk).update(created_at=opened, updated_at=opened)
        return [store.pk for store in stores]

    def reserve_ids(self, model: type[models.Model], count: int) -> int:
        raise NotImplementedError

    def write_members(self, members: list[DemoMember]) -> None:
        raise NotImplementedError

    def write_orders(self, progress) -> list[tuple[DemoRefund, int]]:
        raise NotImplementedError

    def write_refunds(self, refunds: list[tuple[DemoRefund, int]]) -> None:
        raise NotImplementedError

    # --- rows, in the field order above ---
    def money(self, cents: int) -> Decimal:
        value = self._money.get(cents)
        if value is None:
            value = self._money[cents] = Decimal(cents).scaleb(-2)
        return value

    def member_row(self, m: DemoMember) -> tuple:
        registered_at = self.calendar.moment(m.registered_day, m.registered_second)
        return (
            self.first_member_id + m.index, m.mobile, m.name, m.gender, m.birthday, registered_at, m.channel,
            self.store_ids[m.home_store], m.openid, m.referral_code,
            None if m.referrer is None else self.first_member_id + m.referrer, None, registered_at, registered_at,
        )  # fmt: skip

    def order_row(self, o: DemoOrder, refund: DemoRefund | None) -> tuple:
        """The order as written: with its refund, or as paid when there is none (yet)."""
        paid_at = self.calendar.moment(o.day, o.second)
        updated_at = paid_at if refund is None else self.calendar.moment(refund.day, refund.second)
        refunded, status = (o.refunded_cents, o.status) if refund is not None else (0, PAID)
        return (
            self.first_order_id + o.number, o.external_id, self.first_member_id + o.member, self.store_ids[o.store],
            paid_at, self.money(o.cents), self.money(refunded), status, paid_at, updated_at,
        )  # fmt: skip

    def refund_row(self, r: DemoRefund, store: int) -> tuple:
        """The refund as written; ``store`` is its order's (external ids are unique per store)."""
        refunded_at = self.calendar.moment(r.day, r.second)
        return (
            r.external_id, self.first_order_id + r.order, self.store_ids[store], self.money(r.cents), refunded_at,
            r.reason, refunded_at, refunded_at,
        )  # fmt: skip

    def orders_with_refunds(self, progress):
        """Per member, the orders to write with their refunds (or None), and the refunds to write
        (with their order's store). Orders and refunds from ``live_from`` on go to ``self.live`` instead."""
        live = self.live
        for _member, orders, refunds in self.data.orders():
            by_order = {refund.order: refund for refund in refunds}
            written = []
            for order in orders:
                refund = by_order.get(order.number)
                if self.is_live(order.day):
                    live.orders.append((order, refund))
                elif refund is not None and self.is_live(refund.day):
                    written.append((order, None))
                    live.refunds.append(refund)
                else:
                    written.append((order, refund))
            yield written, [(refund, order.store) for order, refund in written if refund is not None]
            progress.update(1)


class _CopyWriter(_Writer):
    """PostgreSQL: COPY … FROM STDIN, one COPY per table, rows streamed as they are generated."""

    def reserve_ids(self, model, count):
        if not count:
            return 0
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [_quoted_table(model), model._meta.pk.column])
            (sequence,) = cursor.fetchone()
            cursor.execute("SELECT nextval(%s)", [sequence])
            (first,) = cursor.fetchone()
            cursor.execute("SELECT setval(%s, %s)", [sequence, first + count - 1])
        return first

    def write_members(self, members):
        with self._copy(Member, self.member_fields) as (copy, extras):
            for member in members:
                copy.write_row(self.member_row(member) + extras())

    def write_orders(self, progress):
        all_refunds = []
        with self._copy(Order, self.order_fields) as (copy, extras):
            for orders, refunds in self.orders_with_refunds(progress):
                for order, refund in orders:
                    copy.write_row(self.order_row(order, refund) + extras())
                all_refunds.extend(refunds)
        return all_refunds

    def write_refunds(self, refunds):
        with self._copy(Refund, self.refund_fields) as (copy, extras):
            for refund, store in refunds:
                copy.write_row(self.refund_row(refund, store) + extras())

    @contextmanager
    def _copy(self, model, attnames):
        """``COPY table (fields…) FROM STDIN``, plus the model's other columns at their defaults
        (fields added to the models later keep working; database defaults are left to the database).
        Yields the psycopg ``Copy`` and a function giving the values of those other columns."""
        by_attname = {field.attname: field for field in model._meta.concrete_fields}
        fields = [by_attname[name] for name in attnames]
        others = [
            field
            for field in by_attname.values()
            if field not in fields and not field.primary_key and field.db_default is models.NOT_PROVIDED
        ]
        columns = ", ".join(connection.ops.quote_name(field.column) for field in fields + others)
        if others:
            extras = lambda: tuple(field.get_db_prep_save(field.get_default(), connection) for field in others)  # noqa: E731
        else:
            extras = tuple
        connection.ensure_connection()
        with (
            connection.connection.cursor() as cursor,
            cursor.copy(f"COPY {_quoted_table(model)} ({columns}) FROM STDIN") as copy,
        ):
            yield copy, extras
