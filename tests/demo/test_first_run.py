"""The run command's set-up steps (``bin/setup``, what ``bin/run`` calls) on an empty database.

They run as a newcomer's ``bin/run`` runs them — a subprocess with its own database, migrated from
nothing — and the database must then hold a living brand: members and orders, and every ledger and
report the demo brand plays (tiers, points earned/redeemed/expired, wallets, referrals, coupons,
campaign grants against a control group, trigger firings, messages, follow-ups, two RFM runs weeks
apart). Run again, the steps leave the data alone.
"""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"), reason="needs a PostgreSQL server"
)


@pytest.fixture
def empty_database():
    """A new, empty database on the test server; dropped afterwards."""
    name = f"huiyuan_first_run_{uuid.uuid4().hex[:8]}"
    params = connection.get_connection_params()
    admin = {key: params[key] for key in ("host", "port", "user") if params.get(key)}
    with psycopg.connect(dbname="postgres", autocommit=True, **admin) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgres://{params['user']}@{params.get('host') or '127.0.0.1'}:{params.get('port') or 5432}/{name}"
    try:
        yield url, {**admin, "dbname": name}
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **admin) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def setup(url: str, var_dir: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "HUIYUAN_VAR_DIR": str(var_dir),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    return subprocess.run(
        ["bash", "bin/setup", "--members", "1000", "--orders", "10000"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def effect_reports(url: str, var_dir: Path) -> list[dict]:
    code = (
        "import json; from campaigns.models import Campaign; from campaigns.selectors.effect import campaign_effect; "
        "print(json.dumps([campaign_effect(campaign=c) for c in Campaign.objects.filter(status='ended')], default=str))"
    )
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings.local"}
    env["HUIYUAN_VAR_DIR"] = str(var_dir)
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def counts(conninfo: dict) -> dict[str, int]:
    queries = {
        "members": "SELECT COUNT(*) FROM members_member",
        "orders": "SELECT COUNT(*) FROM members_order",
        "members with a tier": "SELECT COUNT(*) FROM members_member WHERE tier_id IS NOT NULL",
        "tiers with an RFM rule": "SELECT COUNT(*) FROM members_tierrule WHERE min_rfm_score IS NOT NULL",
        "points earned": "SELECT COUNT(*) FROM members_pointsentry WHERE kind = 'earn'",
        "points redeemed": "SELECT COUNT(*) FROM members_pointsentry WHERE kind = 'redeem'",
        "points expired": "SELECT COUNT(*) FROM members_pointsentry WHERE kind = 'expire'",
        "offer top-ups": "SELECT COUNT(*) FROM members_walletentry WHERE kind = 'top_up' AND bonus_delta > 0",
        "wallet spends": "SELECT COUNT(*) FROM members_walletentry WHERE kind = 'spend'",
        "referrals completed": "SELECT COUNT(*) FROM members_referral WHERE status IN ('completed', 'reversed')",
        "referrals reversed": "SELECT COUNT(*) FROM members_referral WHERE status = 'reversed'",
        "coupons issued": "SELECT COUNT(*) FROM campaigns_coupon",
        "coupons redeemed": "SELECT COUNT(*) FROM campaigns_coupon WHERE status = 'redeemed'",
        "campaigns ended": "SELECT COUNT(*) FROM campaigns_campaign WHERE status = 'ended'",
        "control grants": "SELECT COUNT(*) FROM campaigns_campaigngrant WHERE is_control",
        "trigger firings": "SELECT COUNT(*) FROM campaigns_triggerfiring WHERE status = 'fired'",
        "messages sent": "SELECT COUNT(*) FROM campaigns_outboxmessage WHERE status = 'sent'",
        "follow-up tasks": "SELECT COUNT(*) FROM campaigns_followuptask",
        "follow-ups done": "SELECT COUNT(*) FROM campaigns_followuptask WHERE status = 'done'",
        "RFM runs": "SELECT COUNT(*) FROM segmentation_rfmrun WHERE status = 'succeeded'",
        "days between the first and last run": "SELECT MAX(as_of) - MIN(as_of) FROM segmentation_rfmrun",
        "transitions": "SELECT COUNT(*) FROM segmentation_segmenttransition",
        "favourite categories": "SELECT COUNT(*) FROM segmentation_membercategory",
        "rule tags": "SELECT COUNT(*) FROM members_membertag WHERE rule_id IS NOT NULL",
        "tag rules with members": "SELECT COUNT(*) FROM members_tagrule WHERE member_count > 0",
        "days of activity rolled up": (
            "SELECT COUNT(DISTINCT start) FROM workspace_activityrollup WHERE period = 'day' AND active > 0"
        ),
    }
    with psycopg.connect(**conninfo) as conn:
        return {label: conn.execute(sql).fetchone()[0] for label, sql in queries.items()}


def test_the_run_commands_setup_creates_a_living_brand_once(empty_database, tmp_path):
    url, conninfo = empty_database
    # when: the run command's set-up steps on an empty database
    first = setup(url, tmp_path)
    # then: they succeed and print the logins last: the superuser's, then one per role
    assert first.returncode == 0, first.stderr[-3000:]
    logins = first.stdout.rstrip("\n").split("\n")
    assert logins[0].startswith("Admin login: user admin  password ")
    roles = [line.split("\t") for line in logins[1:]]
    assert [role[0] for role in roles] == ["operator", "manager", "staff", "analyst"]
    assert all(len(role) == 4 and role[2] for role in roles)
    assert roles[1][3] == roles[2][3] != "" and roles[0][3] == roles[3][3] == ""
    found = counts(conninfo)
    assert found["members"] == 1000
    assert found["orders"] >= 10000  # and the visits of members who brought a campaign's coupon
    empty = [label for label, value in found.items() if not value]
    assert empty == [], f"nothing in: {empty}\n{found}"
    assert found["members with a tier"] == 1000
    assert found["campaigns ended"] >= 2
    assert found["RFM runs"] >= 2 and found["days between the first and last run"] >= 14
    assert found["days of activity rolled up"] >= 85  # the dashboard's activity card has its 30 days and more
    # and the ended campaigns' effect reports compare treated members with their control group
    reports = effect_reports(url, tmp_path)
    with_control = [report for report in reports if report["held_out"] and report["treated"]]
    assert with_control, reports
    assert all(report["uplift_per_member"] is not None for report in with_control)
    assert any(report["coupons_redeemed"] and report["roi"] is not None for report in with_control)

    # when: run again (a second bin/run on the same database)
    again = setup(url, tmp_path)
    # then: the data is left as it was
    assert again.returncode == 0, again.stderr[-3000:]
    assert "1000" in again.stderr and "seed" not in again.stderr.lower()
    assert counts(conninfo) == found
