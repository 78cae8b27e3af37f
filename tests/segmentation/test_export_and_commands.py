"""``recompute_rfm`` and ``export_rfm``: PRODUCT.md's stable command-line interfaces."""

import csv
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from segmentation.models import RfmRun

from .builders import AS_OF, member, order

pytestmark = pytest.mark.django_db


def test_recompute_rfm_runs_and_prints_a_summary_per_segment(default_scheme):
    # given
    order(member(mobile="13900000001"), days_ago=2, amount="800.00")
    member(mobile="13900000002")
    out = io.StringIO()
    # when
    call_command("recompute_rfm", "--as-of", AS_OF.isoformat(), stdout=out)
    # then
    run = RfmRun.objects.get()
    assert (run.status, run.as_of, run.member_count) == (RfmRun.Status.SUCCEEDED, AS_OF, 2)
    text = out.getvalue()
    assert f"as of {AS_OF}, 2 members (1 bought in the window)" in text
    assert any(line.split()[:2] == ["big_spenders", "1"] for line in text.splitlines())
    assert any(line.split()[:2] == ["no_purchase", "1"] for line in text.splitlines())


def test_recompute_rfm_refuses_a_bad_date(default_scheme):
    with pytest.raises(CommandError, match="--as-of wants a date"):
        call_command("recompute_rfm", "--as-of", "30/06/2025")


def test_export_rfm_writes_exactly_the_documented_csv(default_scheme, tmp_path):
    # given
    order(member(mobile="13900000001"), days_ago=2, amount="800.00")
    order(member(mobile="13900000003"), days_ago=400, amount="10.00")
    member(mobile="13900000002")
    call_command("recompute_rfm", "--as-of", AS_OF.isoformat(), stdout=io.StringIO())
    target = tmp_path / "rfm.csv"
    # when
    call_command("export_rfm", str(target), stdout=io.StringIO())
    # then
    assert target.read_text(encoding="utf-8") == (
        "member_mobile,recency_days,frequency,monetary,r_score,f_score,m_score,segment\n"
        "13900000001,2,1,800.00,H,L,H,big_spenders\n"
        "13900000003,400,0,0.00,L,L,L,lost\n"
        "13900000002,,0,0.00,L,L,L,no_purchase\n"
    )


def test_export_in_quintile_mode_writes_scores_1_to_5(quintile_scheme, tmp_path):
    # given
    for index in range(5):
        order(member(mobile=f"1390000001{index}"), days_ago=index * 10, amount=f"{(index + 1) * 100}.00")
    call_command("recompute_rfm", "--as-of", AS_OF.isoformat(), stdout=io.StringIO())
    target = tmp_path / "rfm.csv"
    # when
    call_command("export_rfm", str(target), stdout=io.StringIO())
    # then
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    assert [(row["member_mobile"], row["r_score"], row["f_score"], row["m_score"]) for row in rows] == [
        ("13900000010", "5", "1", "1"),
        ("13900000011", "4", "1", "2"),
        ("13900000012", "3", "1", "3"),
        ("13900000013", "2", "1", "4"),
        ("13900000014", "1", "1", "5"),
    ]


def test_export_refuses_when_the_active_scheme_has_no_run(default_scheme, tmp_path):
    with pytest.raises(CommandError, match="no current run"):
        call_command("export_rfm", str(tmp_path / "rfm.csv"))
