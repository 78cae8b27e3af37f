"""Operators use the CLV scores: scheme rules with P(alive) and CLV conditions place members in the
recompute, the per-order refresh and the explanation alike; campaign targeting narrows by them; and
the web process never loads PyMC."""

import subprocess
import sys
from decimal import Decimal

import pytest
from django.conf import settings
from django.utils import timezone

from campaigns.models import Campaign
from campaigns.services.campaigns import campaign_estimate
from config.celery import app
from segmentation.models import ClvRun, MemberClv, MemberRfm, SegmentRule
from segmentation.rules import describe_rule
from segmentation.selectors import segment_explain
from segmentation.services import member_rfm_refresh, segment_recompute
from tests.factories import CampaignFactory

from .builders import AS_OF, ago, member, order

pytestmark = pytest.mark.django_db


def champion():
    """Three orders in the last week, ¥600: champions by the default scheme's cells (as of today,
    so that the per-order refresh, which scores as of today, sees the same)."""
    who = member()
    for days in (1, 3, 5):
        order(who, paid_at=ago(days), amount="200.00")
    return who


def scored(who, *, p_alive: float, clv: str) -> MemberClv:
    run = ClvRun.objects.filter(is_current=True).first() or ClvRun.objects.create(
        as_of=AS_OF, started_at=timezone.now(), status=ClvRun.Status.SUCCEEDED, is_current=True
    )
    return MemberClv.objects.create(
        member=who,
        run=run,
        frequency=2,
        recency_days=4,
        age_days=5,
        monetary_mean=Decimal("200.00"),
        p_alive=p_alive,
        expected_purchases_30=0.5,
        expected_purchases_90=1.2,
        expected_purchases_365=3.0,
        expected_spend=Decimal("180.00"),
        clv=Decimal(clv),
    )


@pytest.fixture
def slipping(default_scheme, segments):
    """ "P(alive) < 0.3 and M high → 重要挽留用户", tried before every other rule."""
    return SegmentRule.objects.create(
        scheme=default_scheme,
        segment=segments["win_back"],
        priority=1,
        kind=SegmentRule.Kind.CELL,
        m="H",
        p_alive_below=Decimal("0.300"),
    )


def test_a_p_alive_rule_places_members_in_the_recompute_the_refresh_and_the_explanation(slipping, segments):
    # given: three champions by R, F and M — one likely gone, one likely alive, one not scored
    gone, alive, unscored = champion(), champion(), champion()
    scored(gone, p_alive=0.12, clv="40.00")
    scored(alive, p_alive=0.91, clv="1500.00")

    # when
    segment_recompute()

    # then
    slugs = dict(MemberRfm.objects.values_list("member_id", "segment__slug"))
    assert (slugs[gone.pk], slugs[alive.pk], slugs[unscored.pk]) == ("win_back", "champions", "champions")
    explained = segment_explain(member=gone)
    assert explained["matched_rule"]["priority"] == 1
    assert "P(alive) < 0.300" in explained["matched_rule"]["description"]
    assert segment_explain(member=alive)["matched_rule"]["priority"] != 1

    # when the alive one's P(alive) falls (a later CLV run) and an order refreshes them
    MemberClv.objects.filter(member=alive).update(p_alive=0.2)
    member_rfm_refresh(member_id=alive.pk)

    # then the per-order refresh reads the same rule
    assert MemberRfm.objects.get(member=alive).segment.slug == "win_back"


def test_a_clv_rule_and_its_description():
    rule = {"kind": "cell", "r": "", "f": "", "m": "", "value": None, "clv_at_least": "1000.00"}
    assert describe_rule(rule).endswith("CLV ≥ 1000.00 yuan")


def test_campaign_targeting_narrows_by_p_alive_and_clv(default_scheme, segments):
    # given: two scored champions and one without scores
    gone, alive, _unscored = champion(), champion(), champion()
    scored(gone, p_alive=0.12, clv="40.00")
    scored(alive, p_alive=0.91, clv="1500.00")
    segment_recompute()
    campaign = CampaignFactory(target_kind=Campaign.TargetKind.SEGMENT)
    campaign.segments.set([segments["champions"]])

    # then: no narrowing reaches all three; each narrowing keeps only the scored members that meet it
    assert campaign_estimate(campaign=campaign).reach == 3
    Campaign.objects.filter(pk=campaign.pk).update(p_alive_at_least=Decimal("0.5"))
    assert campaign_estimate(campaign=Campaign.objects.get(pk=campaign.pk)).reach == 1
    Campaign.objects.filter(pk=campaign.pk).update(p_alive_at_least=None, p_alive_below=Decimal("0.5"))
    assert campaign_estimate(campaign=Campaign.objects.get(pk=campaign.pk)).reach == 1
    Campaign.objects.filter(pk=campaign.pk).update(p_alive_below=None, clv_at_least=Decimal("1000.00"))
    assert campaign_estimate(campaign=Campaign.objects.get(pk=campaign.pk)).reach == 1
    Campaign.objects.filter(pk=campaign.pk).update(clv_at_least=Decimal("2000.00"))
    assert campaign_estimate(campaign=Campaign.objects.get(pk=campaign.pk)).reach == 0


def test_the_web_process_never_imports_pymc():
    # given a fresh interpreter that loads the web application and resolves every URL module
    script = (
        "import sys, django; django.setup();"
        "import config.urls, config.wsgi;"
        "from django.urls import get_resolver; get_resolver().url_patterns;"
        "from django.contrib import admin; admin.autodiscover();"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('pymc', 'pymc_marketing', 'pytensor'));"
        "print(','.join(heavy))"
    )
    # when
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=settings.BASE_DIR, check=False
    )
    # then
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_the_worker_finds_the_clv_task():
    # when the worker imports its task modules
    app.loader.import_default_modules()
    # then
    assert "segmentation.clv_tasks.clv_fit_task" in app.tasks
