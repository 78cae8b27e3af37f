"""Benchmark of the CLV fit (issue 21): BG/NBD + Gamma-Gamma by MAP with pymc-marketing on a
million member summaries.

    .venv/bin/python bench/clv.py                        # 1,000,000 members, seed 42, 2 rounds
    .venv/bin/python bench/clv.py --members 100000 --rounds 3

Member summaries (frequency, recency, T in days; mean repeat spend) are simulated from known
parameters, vectorised, with a fixed seed. Each measurement runs in a fresh process (its peak RSS,
``ru_maxrss``, is the memory figure):

(a) ``fit``: import ``segmentation.clv_model`` (PyMC, PyTensor), fit both models
    (``clv_model.fit``: the MAP fits and their log-likelihoods) — the *fitting time* the issue
    bounds (< 60 s) — then score everyone (``clv_model.scores``: P(alive), expected purchases at
    30/90/365 days, expected spend, CLV over 365 days). The PyTensor compile cache is
    ``<VAR_DIR>/pytensor``; the first round after an empty cache includes the one-off compile.
(b) ``baseline``, in the same run: the same data, one evaluation of the BG/NBD log-likelihood in
    plain numpy/scipy (the unit of work a maximum-likelihood fit repeats), and the memory of a
    process holding just the data.

It prints each round, then the medians: fitting seconds (absolute, and as a multiple of one
log-likelihood evaluation), scoring seconds, peak RSS (absolute, and as a multiple of the
baseline's), the recovered parameters against the true ones, and whether the bounds hold
(fitting < 60 s, peak < 1 GB).

With ``--db``, also a whole run end to end: the RFM benchmark's dataset (``bench/rfm.py``'s
``build``: ``--members`` members, ``--orders-per-member`` orders each on average, skewed, with
refunds) in its own database ``huiyuan_clvbench`` (dropped afterwards unless ``--keep``), then
``clv_fit`` as the worker runs it — summaries' SQL and COPY out, both fits, scores, the holdout
check, COPY in and the swap — in a fresh process: its total and fitting seconds and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TRUTH = {"r": 0.9, "alpha": 18.0, "a": 0.8, "b": 2.5, "p": 6.0, "q": 4.0, "gamma": 15.0}
BOUNDS = {"fit_seconds": 60.0, "rss_mb": 1024.0}


def simulate(members: int, seed: int):
    """Vectorised BG/NBD + Gamma-Gamma histories: arrays frequency, recency, T, monetary."""
    import numpy as np

    rng = np.random.default_rng(seed)
    T = rng.integers(60, 731, members).astype("float64")
    rate = rng.gamma(TRUTH["r"], 1 / TRUTH["alpha"], members)
    drop = rng.beta(TRUTH["a"], TRUTH["b"], members)
    t = np.zeros(members)
    x = np.zeros(members)
    t_x = np.zeros(members)
    alive = np.ones(members, dtype=bool)
    while alive.any():
        t = t + rng.exponential(1 / rate)
        bought = alive & (t <= T)
        x[bought] += 1
        t_x[bought] = t[bought]
        alive = bought & (rng.random(members) >= drop)
    x, t_x = np.floor(x), np.floor(t_x)
    nu = rng.gamma(TRUTH["q"], 1 / TRUTH["gamma"], members)
    repeats = np.maximum(x, 1)
    monetary = np.where(x > 0, rng.gamma(TRUTH["p"] * repeats, 1 / (nu * repeats)), np.nan)
    return x, t_x, T, monetary


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_baseline(members: int, seed: int) -> dict:
    import numpy as np
    from scipy import special

    x, t_x, T, _monetary = simulate(members, seed)
    r, alpha, a, b = TRUTH["r"], TRUTH["alpha"], TRUTH["a"], TRUTH["b"]
    clock = time.perf_counter()
    common = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    alive = special.betaln(a, b + x) - special.betaln(a, b) - (r + x) * np.log(alpha + T)
    dropped = np.where(
        x > 0,
        special.betaln(a + 1, np.maximum(b + x - 1, 1e-12)) - special.betaln(a, b) - (r + x) * np.log(alpha + t_x),
        -np.inf,
    )
    log_likelihood = float(np.sum(common + np.logaddexp(alive, dropped)))
    return {"ll_seconds": time.perf_counter() - clock, "log_likelihood": log_likelihood, "rss_mb": _peak_mb()}


def child_fit(members: int, seed: int) -> dict:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    import django

    django.setup()
    x, t_x, T, monetary = simulate(members, seed)
    clock = time.perf_counter()
    from segmentation import clv_model

    imported = time.perf_counter() - clock
    summaries = clv_model.Summaries(frequency=x, recency=t_x, age=T, monetary=monetary)
    clock = time.perf_counter()
    fitted = clv_model.fit(summaries)
    fit_seconds = time.perf_counter() - clock
    clock = time.perf_counter()
    scores = clv_model.scores({"bgnbd": fitted.bgnbd, "gamma_gamma": fitted.gamma_gamma}, summaries)
    score_seconds = time.perf_counter() - clock
    return {
        "import_seconds": imported,
        "fit_seconds": fit_seconds,
        "score_seconds": score_seconds,
        "rss_mb": _peak_mb(),
        "params": {**fitted.bgnbd, **fitted.gamma_gamma},
        "log_likelihood": fitted.log_likelihood,
        "mean_p_alive": float(scores["p_alive"].mean()),
    }


def child_run() -> dict:
    """``clv_fit`` on the database of ``DATABASE_URL`` (the ``--db`` dataset)."""
    import django

    django.setup()
    from segmentation.services.clv import clv_fit

    run = clv_fit()
    return {
        "seconds": run.seconds,
        "fit_seconds": run.fit_seconds,
        "members": run.member_count,
        "repeat": run.repeat_member_count,
        "rss_mb": _peak_mb(),
    }


def _run_child(kind: str, members: int, seed: int, env: dict | None = None) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--members", str(members), "--seed", str(seed)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=env,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def end_to_end(args) -> bool:
    from bench import rfm

    url = rfm.db_url(args.pg, "huiyuan_clvbench")
    rfm.recreate_database(args.pg, "huiyuan_clvbench")
    try:
        built = rfm.build(
            url, members=args.members, orders_per_member=args.orders_per_member, seed=args.seed, log=print
        )
        run = _run_child("run", args.members, args.seed, env=rfm.child_env(url))
    finally:
        if not args.keep:
            rfm.drop_database(args.pg, "huiyuan_clvbench")
    print(
        f"end to end: {built['orders']:,} orders, {run['members']:,} members fitted ({run['repeat']:,} came back): "
        f"run {run['seconds']:.1f} s, of which fitting {run['fit_seconds']:.1f} s; peak {run['rss_mb']:.0f} MB"
    )
    return run["fit_seconds"] < BOUNDS["fit_seconds"] and run["rss_mb"] < BOUNDS["rss_mb"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--db", action="store_true", help="Also a whole run on a database (see above).")
    parser.add_argument("--orders-per-member", type=float, default=3.0)
    parser.add_argument("--pg", default="postgres://root@127.0.0.1:5432")
    parser.add_argument("--keep", action="store_true", help="Keep the --db database.")
    parser.add_argument("--child", choices=["fit", "baseline", "run"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "run":
        print(json.dumps(child_run()))
        return
    if args.child:
        work = child_fit if args.child == "fit" else child_baseline
        print(json.dumps(work(args.members, args.seed)))
        return

    print(f"CLV fit benchmark: {args.members:,} members, seed {args.seed}, {args.rounds} rounds")
    fits, baselines = [], []
    for round_number in range(1, args.rounds + 1):
        baseline = _run_child("baseline", args.members, args.seed)
        fit = _run_child("fit", args.members, args.seed)
        baselines.append(baseline)
        fits.append(fit)
        print(
            f"round {round_number}: import {fit['import_seconds']:.1f} s, fit {fit['fit_seconds']:.1f} s, "
            f"score {fit['score_seconds']:.1f} s, peak {fit['rss_mb']:.0f} MB | baseline: one numpy "
            f"log-likelihood {baseline['ll_seconds']:.3f} s, data-only peak {baseline['rss_mb']:.0f} MB"
        )
    fit_seconds = statistics.median(fit["fit_seconds"] for fit in fits)
    score_seconds = statistics.median(fit["score_seconds"] for fit in fits)
    rss = max(fit["rss_mb"] for fit in fits)
    ll_seconds = statistics.median(baseline["ll_seconds"] for baseline in baselines)
    base_rss = statistics.median(baseline["rss_mb"] for baseline in baselines)
    params = fits[-1]["params"]
    print()
    print(f"fitting (median)      {fit_seconds:8.1f} s   = {fit_seconds / ll_seconds:6.0f} × one numpy log-likelihood")
    print(f"scoring (median)      {score_seconds:8.1f} s")
    print(f"peak memory (max)     {rss:8.0f} MB  = {rss / base_rss:6.2f} × the data-only process ({base_rss:.0f} MB)")
    print(
        "log-likelihood        pymc-marketing at its MAP "
        f"{fits[-1]['log_likelihood']:.1f}, numpy at the true parameters {baselines[-1]['log_likelihood']:.1f}"
    )
    print("parameters            " + ", ".join(f"{name} {params[name]:.3f} (true {TRUTH[name]})" for name in TRUTH))
    ok_time, ok_memory = fit_seconds < BOUNDS["fit_seconds"], rss < BOUNDS["rss_mb"]
    print(
        f"bounds                fitting < {BOUNDS['fit_seconds']:.0f} s: {'yes' if ok_time else 'NO'}; "
        f"peak < {BOUNDS['rss_mb']:.0f} MB: {'yes' if ok_memory else 'NO'}"
    )
    ok_run = end_to_end(args) if args.db else True
    sys.exit(0 if ok_time and ok_memory and ok_run else 1)


if __name__ == "__main__":
    main()
