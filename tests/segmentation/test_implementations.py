"""The portable implementation (what SQLite runs) and the split run (what many workers run) give
exactly the numbers of the PostgreSQL recompute."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from segmentation.models import MemberRfm, RfmRun, RfmStagingRow, Scheme
from segmentation.services import segment_recompute
from segmentation.tasks import segment_recompute_task

from .builders import AS_OF, RFM_FIELDS, mixed_data

pytestmark = pytest.mark.django_db

COLUMNS = ("member_id", "as_of", *RFM_FIELDS)


def results() -> list:
    return list(MemberRfm.objects.order_by("member_id").values_list(*COLUMNS))


@pytest.mark.parametrize("scheme_slug", ["rfm-default", "seed-002-four-quadrants", "seed-000-five-layers"])
def test_the_portable_implementation_gives_the_same_numbers(default_scheme, scheme_slug):
    # given
    mixed_data()
    scheme = Scheme.objects.get(slug=scheme_slug)
    postgres = segment_recompute(as_of=AS_OF, scheme=scheme, implementation="postgres")
    expected = results()
    # when
    portable = segment_recompute(as_of=AS_OF, scheme=scheme, implementation="portable")
    # then
    assert results() == expected
    assert len(expected) == 40
    assert (portable.segment_stats, portable.cut_points) == (postgres.segment_stats, postgres.cut_points)
    assert portable.transition_count == 0


@pytest.mark.parametrize("scheme_slug", ["rfm-default", "seed-002-four-quadrants"])
def test_a_run_split_across_workers_gives_the_same_numbers(default_scheme, scheme_slug):
    # given
    mixed_data(seed=11)
    scheme = Scheme.objects.get(slug=scheme_slug)
    Scheme.objects.update(is_active=False)
    Scheme.objects.filter(pk=scheme.pk).update(is_active=True)
    single = segment_recompute(as_of=AS_OF)
    expected = results()
    # when: the task splits the run into 3 member-id ranges (a chord, run eagerly in tests)
    run_id = segment_recompute_task.delay(as_of=AS_OF.isoformat(), chunks=3).get()
    # then
    split = RfmRun.objects.get(pk=run_id)
    assert (split.status, split.chunks, split.is_current) == (RfmRun.Status.SUCCEEDED, 3, True)
    assert results() == expected
    assert (split.segment_stats, split.cut_points) == (single.segment_stats, single.cut_points)
    assert not RfmStagingRow.objects.exists()


def test_the_embedded_default_on_sqlite_gives_the_same_numbers(default_scheme, tmp_path):
    # given: the same data on a fresh SQLite database, recomputed by a separate process
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'embedded.sqlite3'}",
        "HUIYUAN_VAR_DIR": str(tmp_path),
    }
    root = Path(settings.BASE_DIR)
    manage = [sys.executable, str(root / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0", "--skip-checks"], cwd=root, env=env, check=True, timeout=120)
    script = "from tests.segmentation.builders import sqlite_equivalence_report as r; print(r())"
    completed = subprocess.run(
        [*manage, "shell", "-c", script], cwd=root, env=env, check=True, timeout=120, capture_output=True, text=True
    )
    on_sqlite = json.loads(completed.stdout.strip().splitlines()[-1])
    # when
    from .builders import sqlite_equivalence_report

    on_postgres = json.loads(sqlite_equivalence_report())
    # then
    assert on_sqlite == on_postgres
    assert len(on_postgres["rfm-default"]) == 40
