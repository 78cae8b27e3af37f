"""The nightly CLV run: its horizon and discount rate come from settings, and it waits for an RFM
recompute still running instead of fitting beside it."""

from decimal import Decimal
from unittest import mock

import pytest
from celery.exceptions import Retry

from segmentation import clv_tasks
from segmentation.clv_tasks import clv_fit_task
from segmentation.models import ClvRun, RfmRun
from segmentation.services.clv import clv_run_queue
from tests.factories import RfmRunFactory

pytestmark = pytest.mark.django_db


def test_the_nightly_run_takes_its_horizon_and_discount_rate_from_settings(settings):
    settings.HUIYUAN_CLV_HORIZON_DAYS = 180
    settings.HUIYUAN_CLV_DISCOUNT_RATE = "0.08"

    run = clv_run_queue()

    assert (run.horizon_days, run.discount_rate) == (180, Decimal("0.0800"))
    assert clv_run_queue(horizon_days=30, discount_rate="0.2").horizon_days == 30


def test_the_admin_form_proposes_the_configured_defaults(settings):
    from segmentation.admin import ClvFitForm

    settings.HUIYUAN_CLV_HORIZON_DAYS = 730
    settings.HUIYUAN_CLV_DISCOUNT_RATE = "0.05"

    form = ClvFitForm()

    assert form["horizon_days"].initial == 730
    assert form["discount_rate"].initial == Decimal("0.05")


def _run_nightly(*, retries: int = 0):
    """The task body as the worker would run it at its ``retries``-th try, with the fit replaced."""
    with (
        mock.patch.object(clv_tasks, "clv_fit") as fit,
        mock.patch.object(clv_fit_task, "retry", side_effect=Retry()) as retry,
    ):
        fit.return_value = ClvRun(pk=7)
        clv_fit_task.push_request(retries=retries)
        try:
            try:
                result = clv_fit_task.run()
            except Retry:
                result = "retried"
        finally:
            clv_fit_task.pop_request()
    return result, fit, retry


def test_the_nightly_fit_waits_while_a_recompute_is_running(settings):
    settings.HUIYUAN_CLV_WAIT_SECONDS = 600
    RfmRunFactory(status=RfmRun.Status.RUNNING)

    result, fit, retry = _run_nightly()

    assert result == "retried"
    fit.assert_not_called()
    assert retry.call_args.kwargs["countdown"] == 600


def test_the_nightly_fit_runs_once_the_recompute_has_finished():
    RfmRunFactory(status=RfmRun.Status.SUCCEEDED)

    result, fit, retry = _run_nightly()

    assert result == 7
    fit.assert_called_once()
    retry.assert_not_called()


def test_the_nightly_fit_stops_waiting_after_its_tries(settings):
    settings.HUIYUAN_CLV_WAIT_TRIES = 3
    RfmRunFactory(status=RfmRun.Status.RUNNING)

    result, fit, _retry = _run_nightly(retries=3)

    assert result == 7
    fit.assert_called_once()


def test_a_run_queued_from_the_admin_does_not_wait():
    RfmRunFactory(status=RfmRun.Status.RUNNING)
    queued = clv_run_queue()

    with mock.patch.object(clv_tasks, "clv_fit") as fit:
        fit.return_value = queued
        assert clv_fit_task.run(run_id=queued.pk) == queued.pk
