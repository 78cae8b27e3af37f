"""The two buy-till-you-die models of a CLV run, fitted with ``pymc-marketing`` by MAP — with flat
priors, so MAP is the maximum-likelihood estimate — and the per-member figures they give.

- **BG/NBD** (Fader, Hardie & Lee 2005, "Counting your customers the easy way"): while alive a
  member buys at rate λ ~ Gamma(r, α); after each purchase they drop out with probability
  p ~ Beta(a, b). Fitted on ``(frequency, recency, T)`` in days.
- **Gamma-Gamma** (Fader, Hardie & Lee 2005, "RFM and CLV"): spend per purchase is Gamma(p, ν)
  with ν ~ Gamma(q, γ) per member, independent of the purchase process. Fitted on
  ``(frequency, monetary_mean)`` of members with ``frequency > 0``. pymc-marketing calls γ ``v``;
  parameters are stored and exported as ``gamma``.

**Only the worker and the management commands import this module** (through
``segmentation.services.clv``): importing PyMC costs seconds and hundreds of MB, which the web
process never pays. PyTensor compiles the models' C code once and caches it under
``<VAR_DIR>/pytensor`` (``PYTENSOR_FLAGS=compiledir=…``, set here before PyTensor is imported
unless the environment already names a compile directory).

**CLV** over a horizon of H days with an annual discount rate d: the expected spend per purchase
times the expected purchases in each 30-day step (the last one shorter), each discounted by
``(1 + d) ** (t / 365)`` with t the end of the step — the method of ``lifetimes``'
``customer_lifetime_value``, with days and an annual rate instead of months and a monthly one.
"""

import gc
import logging
import os
import warnings
from dataclasses import dataclass

from django.conf import settings

_compiledir = settings.VAR_DIR / "pytensor"
if "compiledir" not in os.environ.get("PYTENSOR_FLAGS", ""):
    os.environ["PYTENSOR_FLAGS"] = ",".join(
        filter(None, [os.environ.get("PYTENSOR_FLAGS"), f"compiledir={_compiledir}"])
    )

import arviz as az  # noqa: E402 - after PYTENSOR_FLAGS
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402
from pymc_extras.prior import Prior  # noqa: E402
from pymc_marketing.clv import BetaGeoModel, GammaGammaModel  # noqa: E402

logger = logging.getLogger(__name__)

STEP_DAYS = 30
SCORE_CHUNK = 200_000
FLAT_BGNBD = {name: Prior("HalfFlat") for name in ("r", "alpha", "a", "b")}
FLAT_GAMMA_GAMMA = {name: Prior("HalfFlat") for name in ("p", "q", "v")}
# Our names for the Gamma-Gamma parameters (the papers') and pymc-marketing's.
GG_NAMES = {"p": "p", "q": "q", "gamma": "v"}


@dataclass(frozen=True)
class Summaries:
    """Per member, as float arrays of one length: purchase days after the first, days from first
    to last, days from first to the as-of date, mean repeat day total (any value where
    ``frequency`` is 0)."""

    frequency: np.ndarray
    recency: np.ndarray
    age: np.ndarray
    monetary: np.ndarray

    def __len__(self) -> int:
        return len(self.frequency)

    def slice(self, start: int, stop: int) -> "Summaries":
        return Summaries(
            frequency=self.frequency[start:stop],
            recency=self.recency[start:stop],
            age=self.age[start:stop],
            monetary=self.monetary[start:stop],
        )

    def bgnbd_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {"customer_id": np.arange(len(self)), "frequency": self.frequency, "recency": self.recency, "T": self.age}
        )

    def gamma_gamma_frame(self, *, repeat_only: bool) -> pd.DataFrame:
        frequency, monetary = self.frequency, np.where(self.frequency > 0, self.monetary, 0.0)
        if repeat_only:
            keep = frequency > 0
            frequency, monetary = frequency[keep], monetary[keep]
        return pd.DataFrame(
            {"customer_id": np.arange(len(frequency)), "frequency": frequency, "monetary_value": monetary}
        )


@dataclass(frozen=True)
class Fit:
    bgnbd: dict  # r, alpha, a, b
    gamma_gamma: dict | None  # p, q, gamma (None: nobody came back, nothing to fit)
    log_likelihood: float
    gg_log_likelihood: float | None


def _log_likelihood(clv_model, values: dict[str, float]) -> float:
    """The model's own log-likelihood at ``values`` (flat priors contribute nothing; no Jacobian)."""
    model = clv_model.model
    point = {}
    for rv in model.free_RVs:
        value_var = model.rvs_to_values[rv]
        transform = model.rvs_to_transforms.get(rv)
        value = np.asarray(values[rv.name], dtype="float64")
        point[value_var.name] = transform.forward(value).eval() if transform is not None else value
    return float(model.compile_logp(jacobian=False)(point))


def _map_values(clv_model, names) -> dict[str, float]:
    posterior = clv_model.fit_result
    return {name: float(np.asarray(posterior[name]).reshape(-1)[0]) for name in names}


def _fit_bgnbd(summaries: Summaries) -> tuple[dict[str, float], float]:
    model = BetaGeoModel(data=summaries.bgnbd_frame(), model_config=dict(FLAT_BGNBD))
    model.build_model()
    model.fit(method="map", progressbar=False)
    values = _map_values(model, ("r", "alpha", "a", "b"))
    return values, _log_likelihood(model, values)


def _fit_gamma_gamma(summaries: Summaries) -> tuple[dict[str, float] | None, float | None]:
    repeat = summaries.gamma_gamma_frame(repeat_only=True)
    if len(repeat) < 2:
        return None, None
    model = GammaGammaModel(data=repeat, model_config=dict(FLAT_GAMMA_GAMMA))
    model.build_model()
    model.fit(method="map", progressbar=False)
    fitted = _map_values(model, ("p", "q", "v"))
    return {ours: fitted[theirs] for ours, theirs in GG_NAMES.items()}, _log_likelihood(model, fitted)


def fit(summaries: Summaries) -> Fit:
    """Both models by MAP (= maximum likelihood) on ``summaries``, one after the other (each
    model, with its copy of the data and its compiled graph, is freed before the next: peak memory)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bgnbd, log_likelihood = _fit_bgnbd(summaries)
        gc.collect()
        gamma_gamma, gg_log_likelihood = _fit_gamma_gamma(summaries)
        gc.collect()
    return Fit(
        bgnbd=bgnbd,
        gamma_gamma=gamma_gamma,
        log_likelihood=log_likelihood,
        gg_log_likelihood=gg_log_likelihood,
    )


def _posterior(values: dict[str, float]) -> az.InferenceData:
    return az.InferenceData(
        posterior=xr.Dataset({name: (("chain", "draw"), [[float(value)]]) for name, value in values.items()})
    )


def _bgnbd_with(params: dict, frame: pd.DataFrame) -> BetaGeoModel:
    model = BetaGeoModel(data=frame, model_config=dict(FLAT_BGNBD))
    model.build_model()
    model.idata = _posterior({name: params[name] for name in ("r", "alpha", "a", "b")})
    return model


def _gamma_gamma_with(params: dict, frame: pd.DataFrame) -> GammaGammaModel:
    model = GammaGammaModel(data=frame, model_config=dict(FLAT_GAMMA_GAMMA))
    model.build_model()
    model.idata = _posterior({theirs: params[ours] for ours, theirs in GG_NAMES.items()})
    return model


def _flat(array) -> np.ndarray:
    return np.asarray(array, dtype="float64").reshape(-1)


def expected_purchases(params: dict, summaries: Summaries, days: float) -> np.ndarray:
    """E[purchases in the next ``days`` days | history] per member (BG/NBD)."""
    frame = summaries.bgnbd_frame()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _flat(_bgnbd_with(params, frame).expected_purchases(data=frame, future_t=float(days)))


def scores(
    params: dict,
    summaries: Summaries,
    *,
    horizons: tuple[int, ...] = (30, 90, 365),
    horizon_days: int = 365,
    discount_rate: float = 0.1,
    chunk: int = SCORE_CHUNK,
) -> dict[str, np.ndarray]:
    """Per member: ``p_alive``, ``expected_purchases_<h>`` for each of ``horizons``,
    ``expected_spend`` (per purchase; NaN without a Gamma-Gamma fit) and ``clv`` over
    ``horizon_days`` discounted at ``discount_rate`` a year (see the module docstring). Computed
    ``chunk`` members at a time (the library's intermediate arrays grow with the rows)."""
    parts = [
        _scores(params, summaries.slice(start, start + chunk), horizons, horizon_days, discount_rate)
        for start in range(0, len(summaries), chunk)
    ]
    names = ["p_alive", *(f"expected_purchases_{horizon}" for horizon in horizons), "expected_spend", "clv"]
    return {name: np.concatenate([part[name] for part in parts]) if parts else np.zeros(0) for name in names}


def _scores(params, summaries, horizons, horizon_days, discount_rate) -> dict[str, np.ndarray]:
    frame = summaries.bgnbd_frame()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bgnbd = _bgnbd_with(params["bgnbd"], frame)
        result = {"p_alive": _flat(bgnbd.expected_probability_alive(data=frame))}
        cumulative = {}
        clv_steps = [*range(STEP_DAYS, horizon_days, STEP_DAYS), horizon_days]
        for day in sorted({*clv_steps, *horizons}):
            cumulative[day] = _flat(bgnbd.expected_purchases(data=frame, future_t=float(day)))
        for horizon in horizons:
            result[f"expected_purchases_{horizon}"] = cumulative[horizon]
        if params.get("gamma_gamma"):
            spend_frame = summaries.gamma_gamma_frame(repeat_only=False)
            spend = _flat(_gamma_gamma_with(params["gamma_gamma"], spend_frame).expected_customer_spend(spend_frame))
        else:
            spend = np.full(len(summaries), np.nan)
    result["expected_spend"] = spend
    clv = np.zeros(len(summaries))
    previous = np.zeros(len(summaries))
    for day in clv_steps:
        clv += spend * (cumulative[day] - previous) / (1.0 + discount_rate) ** (day / 365.0)
        previous = cumulative[day]
    result["clv"] = clv
    return result
