"""Issue #21's "done when": both CLV interfaces work on a fresh database after the imports — stores,
members and orders brought in with the ``import_*`` commands, then ``fit_clv`` and ``export_clv``."""

import csv
import datetime as dt
import io
import json

import pytest
from django.core.management import call_command
from django.utils import timezone

from members.models import Member, Order, Store
from segmentation.models import ClvRun

from .clv_simulation import Truth, simulate

pytestmark = pytest.mark.django_db

AS_OF = dt.date(2025, 6, 30)


def files_of_a_simulated_brand(tmp_path) -> tuple:
    """Simulated histories written as the three import files; the database emptied again."""
    simulate(members=300, as_of=AS_OF, truth=Truth(), seed=7)
    stores, members, orders = tmp_path / "stores.csv", tmp_path / "members.csv", tmp_path / "orders.csv"
    with stores.open("w", encoding="utf-8") as out:
        out.write("code,name,city\n" + "".join(f"{s.code},{s.name},上海\n" for s in Store.objects.all()))
    with members.open("w", encoding="utf-8") as out:
        out.write("mobile,name,registered_at,store_code\n")
        for member in Member.objects.select_related("home_store"):
            registered = timezone.localtime(member.registered_at).strftime("%Y-%m-%d %H:%M:%S")
            out.write(f"{member.mobile},{member.name},{registered},{member.home_store.code}\n")
    with orders.open("w", encoding="utf-8") as out:
        out.write("order_id,member_mobile,store_code,paid_at,amount\n")
        for order in Order.objects.select_related("member", "store").order_by("paid_at"):
            paid = timezone.localtime(order.paid_at).strftime("%Y-%m-%d %H:%M:%S")
            out.write(f"{order.external_id},{order.member.mobile},{order.store.code},{paid},{order.amount}\n")
    buyers = Member.objects.filter(orders__isnull=False).distinct().count()
    Order.objects.all().delete()
    Member.objects.all().delete()
    Store.objects.all().delete()
    return stores, members, orders, buyers


def test_fit_clv_and_export_clv_after_the_imports(tmp_path):
    # given a fresh database filled by the three imports
    stores, members, orders, buyers = files_of_a_simulated_brand(tmp_path)
    quiet = {"stdout": io.StringIO(), "stderr": io.StringIO()}
    call_command("import_stores", str(stores), **quiet)
    call_command("import_members", str(members), "--historical", **quiet)
    call_command("import_orders", str(orders), "--historical", **quiet)
    assert Member.objects.filter(orders__isnull=False).distinct().count() == buyers
    # when
    call_command("fit_clv", "--as-of", AS_OF.isoformat(), **quiet)
    out, params = tmp_path / "clv.csv", tmp_path / "params.json"
    call_command("export_clv", str(out), "--params", str(params), **quiet)
    # then a run of every buyer, their scores in the file, and the parameters beside it
    run = ClvRun.objects.get(is_current=True)
    assert run.status == ClvRun.Status.SUCCEEDED and run.member_count == buyers
    with out.open(encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == buyers
    assert all(0 <= float(row["p_alive"]) <= 1 and float(row["clv"]) >= 0 for row in rows)
    assert {"expected_purchases_365d", "monetary_mean"} <= set(rows[0])
    fitted = json.loads(params.read_text(encoding="utf-8"))
    assert fitted["as_of"] == AS_OF.isoformat() and fitted["unit"] == "day"
    assert set(fitted["bgnbd"]) == {"r", "alpha", "a", "b"} and set(fitted["gamma_gamma"]) == {"p", "q", "gamma"}
