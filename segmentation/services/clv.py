"""A CLV run: ``clv_fit`` — summaries in SQL, BG/NBD and Gamma-Gamma fitted by MAP
(``segmentation.clv_model``), every member's scores written set-based and swapped in.

Steps (``ClvRun.phase``, committed as it goes, so the admin shows progress while it runs):

1. *summarising* — one SQL statement (``segmentation.clv_sql.summaries_sql``), streamed out of
   PostgreSQL with ``COPY … TO STDOUT`` into numpy arrays (no row becomes a Python object);
2. *fitting* — both models, by MAP with flat priors (the maximum-likelihood estimate);
3. *scoring* — P(alive), expected purchases in 30/90/365 days, expected spend per purchase and
   CLV over the run's horizon and discount rate, for everyone at once (vectorised);
4. *calibrating* — the same fit on the data up to D − holdout, whose expected purchases in the
   holdout are compared with the actual ones, grouped by calibration frequency (0–6, 7+);
5. *writing* — in one transaction: a new table filled with ``COPY … FROM STDIN``, its primary key
   built, then swapped in place of ``MemberClv`` (readers keep the previous scores until then).

One run at a time: a session-level advisory lock (``segmentation.clv``); a second run raises
``ClvAlreadyRunning``. A failure marks the run ``failed`` with the error; the scores stay.

This module imports PyMC (through ``clv_model``): only the worker (``segmentation.clv_tasks``) and
the management commands import it — never the web process.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import time
from decimal import Decimal

import numpy as np
import pandas as pd
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from members.advisory_locks import namespace_key, session_lock
from segmentation import clv_model, clv_sql
from segmentation.clv_selectors import clv_default_discount_rate, clv_default_horizon_days
from segmentation.models import ClvRun

logger = logging.getLogger(__name__)

LOCK_NAMESPACE = namespace_key("segmentation.clv")
HORIZONS = (30, 90, 365)
CALIBRATION_GROUPS = 8  # calibration frequency 0, 1, …, 6 and "7 or more"
MIN_MEMBERS = 10


class ClvAlreadyRunning(Exception):
    """Another CLV run holds the lock; this one did nothing."""


class ClvNotEnoughData(Exception):
    """Too few members have bought to fit the models."""


# --- reading summaries --------------------------------------------------------------------------


def read_frame(sql: str, params: dict) -> pd.DataFrame:
    """The rows of ``sql`` as a DataFrame, streamed with COPY (CSV) and parsed by pandas."""
    buffer = io.BytesIO()
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER true)", params) as copy,
    ):
        for block in copy:
            buffer.write(block)
    buffer.seek(0)
    # Money stays text (exactly as PostgreSQL wrote it) for the write-back; the models get floats.
    return pd.read_csv(buffer, dtype={"monetary_mean": str})


def summaries_from(frame: pd.DataFrame) -> clv_model.Summaries:
    return clv_model.Summaries(
        frequency=frame["frequency"].to_numpy(dtype="float64"),
        recency=frame["recency_days"].to_numpy(dtype="float64"),
        age=frame["age_days"].to_numpy(dtype="float64"),
        monetary=pd.to_numeric(frame["monetary_mean"]).to_numpy(dtype="float64"),
    )


# --- the run ------------------------------------------------------------------------------------


def clv_run_queue(*, as_of: dt.date | None = None, horizon_days: int | None = None, discount_rate=None) -> ClvRun:
    """A run waiting for the worker (the admin's "run now"); ``clv_fit(run=…)`` carries it out."""
    run = ClvRun(
        as_of=as_of or timezone.localdate(),
        started_at=timezone.now(),
        status=ClvRun.Status.RUNNING,
        phase=ClvRun.Phase.QUEUED,
    )
    run.horizon_days = clv_default_horizon_days() if horizon_days is None else horizon_days
    run.discount_rate = clv_default_discount_rate() if discount_rate is None else Decimal(discount_rate)
    run.full_clean()
    run.save()
    return run


def _phase(run: ClvRun, phase: str) -> None:
    run.phase = phase
    ClvRun.objects.filter(pk=run.pk).update(phase=phase, updated_at=timezone.now())


def clv_fit(*, as_of: dt.date | None = None, run: ClvRun | None = None) -> ClvRun:
    """Fit, score everyone, swap the scores in; returns the succeeded run. With ``run`` (queued by
    ``clv_run_queue``) its as-of date, horizon and discount rate are used; otherwise a new run as of
    ``as_of`` (default today) with the default horizon and rate. Progress is committed as it goes
    (others see it only when the caller is not inside a transaction of its own)."""
    with session_lock(LOCK_NAMESPACE) as locked:
        if not locked:
            if run is not None:
                ClvRun.objects.filter(pk=run.pk).update(
                    status=ClvRun.Status.FAILED, error=_("Another CLV run was running; this one did nothing.")
                )
            raise ClvAlreadyRunning(_("Another CLV run is running; this one did nothing."))
        if run is None:
            run = clv_run_queue(as_of=as_of)
        clock = time.monotonic()
        try:
            _carry_out(run, clock)
        except Exception as exc:
            if isinstance(exc, ClvNotEnoughData):
                logger.warning("CLV run %s not fitted: %s", run.pk, exc)
            else:
                logger.exception("CLV run %s failed", run.pk)
            ClvRun.objects.filter(pk=run.pk).update(
                status=ClvRun.Status.FAILED,
                finished_at=timezone.now(),
                seconds=time.monotonic() - clock,
                error=f"{type(exc).__name__}: {exc}"[:2000],
                updated_at=timezone.now(),
            )
            raise
    run.refresh_from_db()
    return run


def _carry_out(run: ClvRun, clock: float) -> None:
    ClvRun.objects.filter(pk=run.pk).update(started_at=timezone.now())
    _phase(run, ClvRun.Phase.SUMMARISING)
    frame = read_frame(*clv_sql.summaries_sql(as_of=run.as_of))
    if len(frame) < MIN_MEMBERS:
        raise ClvNotEnoughData(
            _("Only %(n)s members have bought by %(day)s: too few to fit.") % {"n": len(frame), "day": run.as_of}
        )
    summaries = summaries_from(frame)
    _phase(run, ClvRun.Phase.FITTING)
    fit_clock = time.monotonic()
    fitted = clv_model.fit(summaries)
    fit_seconds = time.monotonic() - fit_clock
    params = {"bgnbd": fitted.bgnbd, "gamma_gamma": fitted.gamma_gamma}
    _phase(run, ClvRun.Phase.SCORING)
    scores = clv_model.scores(
        params,
        summaries,
        horizons=HORIZONS,
        horizon_days=run.horizon_days,
        discount_rate=float(run.discount_rate),
    )
    _phase(run, ClvRun.Phase.CALIBRATING)
    calibration = _calibrate(run)
    _phase(run, ClvRun.Phase.WRITING)
    with transaction.atomic():
        _write_scores(run, frame, scores)
        ClvRun.objects.filter(is_current=True).exclude(pk=run.pk).update(is_current=False)
        run.status = ClvRun.Status.SUCCEEDED
        run.phase = ClvRun.Phase.DONE
        run.is_current = True
        run.params = params
        run.member_count = len(frame)
        run.repeat_member_count = int((summaries.frequency > 0).sum())
        run.log_likelihood = fitted.log_likelihood
        run.gg_log_likelihood = fitted.gg_log_likelihood
        run.fit_seconds = fit_seconds
        run.calibration = calibration
        run.finished_at = timezone.now()
        run.seconds = time.monotonic() - clock
        run.error = ""
        run.save()


def _calibrate(run: ClvRun) -> dict:
    """Expected vs actual purchases in the holdout, by calibration frequency (module docstring)."""
    holdout = int(run.holdout_days)
    frame = read_frame(*clv_sql.calibration_sql(as_of=run.as_of, holdout_days=holdout))
    if len(frame) < MIN_MEMBERS or not (frame["frequency"] > 0).any():
        return {"holdout_days": holdout, "members": len(frame), "groups": []}
    summaries = summaries_from(frame)
    fitted = clv_model.fit(summaries)
    expected = clv_model.expected_purchases(fitted.bgnbd, summaries, holdout)
    group = np.minimum(summaries.frequency, CALIBRATION_GROUPS - 1).astype(int)
    actual = frame["holdout_purchases"].to_numpy(dtype="float64")
    groups = []
    for index in range(CALIBRATION_GROUPS):
        members = group == index
        if members.any():
            groups.append(
                {
                    "frequency": index,
                    "or_more": index == CALIBRATION_GROUPS - 1,
                    "members": int(members.sum()),
                    "expected": round(float(expected[members].mean()), 4),
                    "actual": round(float(actual[members].mean()), 4),
                }
            )
    return {
        "holdout_days": holdout,
        "calibration_end": (run.as_of - dt.timedelta(days=holdout)).isoformat(),
        "members": len(frame),
        "expected_total": round(float(expected.sum()), 2),
        "actual_total": int(actual.sum()),
        "bgnbd": fitted.bgnbd,
        "groups": groups,
    }


def _money(values: np.ndarray) -> np.ndarray:
    return np.round(np.nan_to_num(values, nan=0.0, posinf=0.0), 2)


def _write_scores(run: ClvRun, frame: pd.DataFrame, scores: dict[str, np.ndarray]) -> None:
    """Fill a new table with COPY and swap it in (inside the caller's transaction)."""
    out = pd.DataFrame(
        {
            "member_id": frame["member_id"],
            "run_id": run.pk,
            "frequency": frame["frequency"],
            "recency_days": frame["recency_days"],
            "age_days": frame["age_days"],
            "monetary_mean": frame["monetary_mean"],
            "p_alive": scores["p_alive"],
            "expected_purchases_30": scores["expected_purchases_30"],
            "expected_purchases_90": scores["expected_purchases_90"],
            "expected_purchases_365": scores["expected_purchases_365"],
            "expected_spend": _money(scores["expected_spend"]),
            "clv": _money(scores["clv"]),
        },
        columns=list(clv_sql.COLUMNS),
    )
    # %.12g: probabilities to 12 digits, money (already rounded to cents) exactly up to ¥9,999,999,999.99.
    text = out.to_csv(index=False, header=False, float_format="%.12g", quoting=csv.QUOTE_MINIMAL)
    with connection.cursor() as cursor:
        for statement in clv_sql.create_next_statements():
            cursor.execute(statement)
        with cursor.cursor.copy(clv_sql.copy_statement()) as copy:
            copy.write(text)
        for statement in clv_sql.swap_statements():
            cursor.execute(statement)


# --- export -------------------------------------------------------------------------------------


def clv_export_frame(*, horizon_days: int = 365) -> tuple[ClvRun, pd.DataFrame]:
    """The current run's scores as ``export_clv`` writes them (PRODUCT.md), one row per member in
    member-id order, every column already text. ``expected_purchases_<N>d`` and ``clv`` are the
    stored ones when the run stored that horizon, else computed from the run's parameters (CLV with
    the run's discount rate). Raises ``LookupError`` before the first run."""
    run = ClvRun.objects.filter(is_current=True).first()
    if run is None:
        raise LookupError(_("No CLV run yet: run fit_clv first."))
    sql = f"""
        SELECT m.mobile AS member_mobile, c.frequency, c.recency_days, c.age_days, c.monetary_mean, c.p_alive,
               c.expected_purchases_30, c.expected_purchases_90, c.expected_purchases_365, c.expected_spend, c.clv
        FROM {clv_sql.CLV_TABLE} c JOIN {clv_sql.MEMBER_TABLE} m ON m.id = c.member_id
        ORDER BY c.member_id
    """  # noqa: S608 - table names from model metadata
    frame = read_frame(sql, {})
    frame["member_mobile"] = frame["member_mobile"].astype(str)
    stored = f"expected_purchases_{horizon_days}"
    if stored in frame and horizon_days == run.horizon_days:
        purchases, clv = frame[stored].to_numpy(), frame["clv"].to_numpy()
    else:
        computed = clv_model.scores(
            run.params,
            summaries_from(frame),
            horizons=(horizon_days,),
            horizon_days=horizon_days,
            discount_rate=float(run.discount_rate),
        )
        purchases = frame[stored].to_numpy() if stored in frame else computed[f"expected_purchases_{horizon_days}"]
        clv = _money(computed["clv"])
    out = pd.DataFrame(
        {
            "member_mobile": frame["member_mobile"],
            "frequency": frame["frequency"].astype("int64"),
            "recency_days": frame["recency_days"].astype("int64"),
            "age_days": frame["age_days"].astype("int64"),
            "monetary_mean": frame["monetary_mean"].fillna(""),
            "p_alive": np.char.mod("%.6f", frame["p_alive"].to_numpy(dtype="float64")),
            f"expected_purchases_{horizon_days}d": np.char.mod("%.6f", np.asarray(purchases, dtype="float64")),
            "expected_spend": np.char.mod("%.2f", frame["expected_spend"].to_numpy(dtype="float64")),
            "clv": np.char.mod("%.2f", np.asarray(clv, dtype="float64")),
        }
    )
    return run, out


def clv_params_document(run: ClvRun) -> dict:
    """The ``--params`` JSON of PRODUCT.md."""
    return {
        "as_of": run.as_of.isoformat(),
        "unit": "day",
        "bgnbd": {name: run.params["bgnbd"][name] for name in ("r", "alpha", "a", "b")},
        "gamma_gamma": (
            {name: run.params["gamma_gamma"][name] for name in ("p", "q", "gamma")}
            if run.params.get("gamma_gamma")
            else None
        ),
    }
