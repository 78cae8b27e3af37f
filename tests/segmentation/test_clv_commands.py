"""The CLV summaries (purchase days in the brand's time zone, refunds) and the two commands of
PRODUCT.md: ``fit_clv`` and ``export_clv`` with their exact CSV and JSON."""

import csv
import datetime as dt
import json
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from members.models import Order
from segmentation import clv_sql
from segmentation.models import ClvRun, MemberClv
from segmentation.services.clv import read_frame

from .builders import local, member, order, refund_fully
from .clv_simulation import Truth, simulate

AS_OF = dt.date(2025, 6, 30)


def _summaries(as_of=AS_OF) -> dict:
    frame = read_frame(*clv_sql.summaries_sql(as_of=as_of))
    return {
        int(row.member_id): (
            int(row.frequency),
            int(row.recency_days),
            int(row.age_days),
            None if isinstance(row.monetary_mean, float) else Decimal(row.monetary_mean),
        )
        for row in frame.itertuples()
    }


@pytest.mark.django_db
def test_summaries_count_local_purchase_days_net_of_refunds():
    # given: a member who bought twice on one local day (one order just after local midnight,
    # which is the previous day in UTC), once refunded in full, once partly, and once after D
    regular = member(mobile="13800000001")
    order(regular, paid_at=local(dt.date(2025, 1, 10), 9), amount="50.00")  # first day
    order(regular, paid_at=local(dt.date(2025, 3, 1), 0, 5), amount="30.00")  # 00:05 local = Feb 28 UTC
    order(regular, paid_at=local(dt.date(2025, 3, 1), 20), amount="20.00")  # same local day: 50.00
    refund_fully(order(regular, paid_at=local(dt.date(2025, 4, 1), 12), amount="999.00"))  # not a purchase day
    partly = order(regular, paid_at=local(dt.date(2025, 6, 30), 23, 59), amount="100.00")  # on D, the last minute
    Order.objects.filter(pk=partly.pk).update(refunded_amount=Decimal("25.50"))  # net 74.50
    order(regular, paid_at=local(dt.date(2025, 7, 1), 0, 1), amount="80.00")  # after D
    once = member(mobile="13800000002")
    order(once, paid_at=local(dt.date(2025, 5, 1), 12), amount="10.00")
    never = member(mobile="13800000003")
    refund_fully(order(never, paid_at=local(dt.date(2025, 5, 1), 12), amount="10.00"))

    # when
    summaries = _summaries()

    # then: days Jan 10, Mar 1 (50.00), Jun 30 (74.50); the repeat days' mean is 62.25
    assert summaries[regular.pk] == (2, (dt.date(2025, 6, 30) - dt.date(2025, 1, 10)).days, 171, Decimal("62.25"))
    assert summaries[once.pk] == (0, 0, 60, None)
    assert never.pk not in summaries
    # as of the day before, the June 30 order is not there yet
    assert _summaries(dt.date(2025, 6, 29))[regular.pk] == (1, 50, 170, Decimal("50.00"))


@pytest.mark.django_db
def test_calibration_summaries_split_at_the_holdout():
    # given
    who = member(mobile="13800000001")
    for day in (dt.date(2025, 1, 1), dt.date(2025, 2, 1), dt.date(2025, 4, 15), dt.date(2025, 6, 1)):
        order(who, paid_at=local(day, 12), amount="10.00")
    late = member(mobile="13800000002")
    order(late, paid_at=local(dt.date(2025, 5, 1), 12))  # first bought in the holdout: not calibrated

    # when: D − 90 days = April 1
    frame = read_frame(*clv_sql.calibration_sql(as_of=AS_OF, holdout_days=90))

    # then
    rows = {int(row.member_id): row for row in frame.itertuples()}
    assert set(rows) == {who.pk}
    row = rows[who.pk]
    assert (row.frequency, row.recency_days, row.age_days, row.holdout_purchases) == (1, 31, 90, 2)


@pytest.fixture
def fitted(db):
    simulate(members=400, as_of=AS_OF, truth=Truth(), seed=11)
    call_command("fit_clv", "--as-of", AS_OF.isoformat(), stdout=open("/dev/null", "w"))  # noqa: SIM115
    return ClvRun.objects.get(is_current=True)


HEADER = (
    "member_mobile,frequency,recency_days,age_days,monetary_mean,p_alive,expected_purchases_{n}d,expected_spend,clv"
)


@pytest.mark.django_db
def test_export_clv_writes_the_csv_and_the_parameters(fitted, tmp_path):
    # when
    out, params = tmp_path / "clv.csv", tmp_path / "params.json"
    call_command("export_clv", str(out), "--params", str(params), stdout=open("/dev/null", "w"))  # noqa: SIM115

    # then: one row per member who bought, the stored scores, formatted as PRODUCT.md says
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == HEADER.format(n=365)
    rows = list(csv.DictReader(lines))
    assert len(rows) == fitted.member_count == 400
    stored = {row.member.mobile: row for row in MemberClv.objects.select_related("member")}
    for row in rows:
        score = stored[row["member_mobile"]]
        assert row["frequency"] == str(score.frequency) and row["recency_days"] == str(score.recency_days)
        assert row["age_days"] == str(score.age_days)
        assert row["monetary_mean"] == ("" if score.monetary_mean is None else f"{score.monetary_mean:.2f}")
        assert row["p_alive"] == f"{score.p_alive:.6f}"
        assert row["expected_purchases_365d"] == f"{score.expected_purchases_365:.6f}"
        assert row["expected_spend"] == f"{score.expected_spend:.2f}" and row["clv"] == f"{score.clv:.2f}"
    document = json.loads(params.read_text())
    assert document == {
        "as_of": "2025-06-30",
        "unit": "day",
        "bgnbd": {name: fitted.params["bgnbd"][name] for name in ("r", "alpha", "a", "b")},
        "gamma_gamma": {name: fitted.params["gamma_gamma"][name] for name in ("p", "q", "gamma")},
    }


@pytest.mark.django_db
def test_export_clv_computes_another_horizon_from_the_parameters(fitted, tmp_path):
    # when
    out = tmp_path / "clv.csv"
    call_command("export_clv", str(out), "--horizon-days", "90", stdout=open("/dev/null", "w"))  # noqa: SIM115
    call_command("export_clv", str(tmp_path / "180.csv"), "--horizon-days", "180", stdout=open("/dev/null", "w"))  # noqa: SIM115

    # then: 90 days is a stored column; CLV over 90 days is less than over the run's 365
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert list(rows[0]) == HEADER.format(n=90).split(",")
    stored = {row.member.mobile: row for row in MemberClv.objects.select_related("member")}
    assert all(
        row["expected_purchases_90d"] == f"{stored[row['member_mobile']].expected_purchases_90:.6f}" for row in rows
    )
    assert all(Decimal(row["clv"]) <= stored[row["member_mobile"]].clv for row in rows)
    assert any(Decimal(row["clv"]) < stored[row["member_mobile"]].clv for row in rows)
    longer = {row["member_mobile"]: row for row in csv.DictReader((tmp_path / "180.csv").read_text().splitlines())}
    for row in rows:
        other = longer[row["member_mobile"]]
        assert float(row["expected_purchases_90d"]) <= float(other["expected_purchases_180d"])
        assert Decimal(row["clv"]) <= Decimal(other["clv"]) <= stored[row["member_mobile"]].clv


@pytest.mark.django_db
def test_commands_refuse_what_they_cannot_do(tmp_path):
    with pytest.raises(CommandError, match="No CLV run yet"):
        call_command("export_clv", str(tmp_path / "x.csv"))
    with pytest.raises(CommandError, match="too few to fit"):
        call_command("fit_clv", "--as-of", "2025-06-30")
    assert ClvRun.objects.get().status == ClvRun.Status.FAILED
    with pytest.raises(CommandError, match="--as-of"):
        call_command("fit_clv", "--as-of", "30/06/2025")
    with pytest.raises(CommandError, match="--horizon-days"):
        call_command("export_clv", "x.csv", "--horizon-days", "0")
