"""Purchase histories simulated from known BG/NBD and Gamma-Gamma parameters, written as orders.

Each member: first purchase on a day in [D − max_age, D − min_age] (so T = age_days); purchase
rate λ ~ Gamma(r, rate α) per day; after each purchase they drop out with probability
p ~ Beta(a, b); purchase times are a Poisson process while alive (continuous, in days), each on
its own local day (a second purchase on the same day would merge into one purchase day, so the
simulation moves it to the next free day — rare at these rates). Spend per purchase ~
Gamma(p_gg, rate ν) with ν ~ Gamma(q, rate γ) per member, in yuan (cents).

Also the two models' log-likelihoods written out from the papers, independently of the library
(Fader, Hardie & Lee 2005: BG/NBD eq. 6; Gamma-Gamma, "RFM and CLV", appendix), for scipy.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from scipy import optimize, special

from members.models import Member, Order
from tests.factories import StoreFactory

from .builders import local


@dataclass(frozen=True)
class Truth:
    r: float = 0.9
    alpha: float = 18.0
    a: float = 0.8
    b: float = 2.5
    p: float = 6.0
    q: float = 4.0
    gamma: float = 15.0


def simulate(*, members: int, as_of: dt.date, truth: Truth, seed: int, min_age: int = 60, max_age: int = 600) -> dict:
    """Write ``members`` members and their orders; return the true per-member histories."""
    rng = np.random.default_rng(seed)
    store = StoreFactory(code="CLV1")
    ages = rng.integers(min_age, max_age + 1, members)
    rates = rng.gamma(truth.r, 1 / truth.alpha, members)
    drops = rng.beta(truth.a, truth.b, members)
    nus = rng.gamma(truth.q, 1 / truth.gamma, members)
    histories = []
    people = Member.objects.bulk_create(
        Member(
            mobile=f"137{index:08d}",
            name=f"仿真{index}",
            registered_at=local(as_of - dt.timedelta(days=int(ages[index]) + 1)),
            home_store=store,
        )
        for index in range(members)
    )
    orders = []
    for index, person in enumerate(people):
        age = int(ages[index])
        days, t = [0], 0.0
        while True:
            if rng.random() < drops[index] and len(days) > 1:
                break
            t += rng.exponential(1 / rates[index])
            if t > age:
                break
            day = int(t)
            while day in days and day < age:
                day += 1
            if day in days:
                break
            days.append(day)
        first = as_of - dt.timedelta(days=age)
        for n, day in enumerate(sorted(days)):
            amount = max(Decimal("0.01"), Decimal(str(round(float(rng.gamma(truth.p, 1 / nus[index])), 2))))
            orders.append(
                Order(
                    external_id=f"SIM-{person.pk}-{n}",
                    member=person,
                    store=store,
                    paid_at=local(first + dt.timedelta(days=day), hour=int(rng.integers(0, 24))),
                    amount=amount,
                )
            )
        histories.append(sorted(days))
    Order.objects.bulk_create(orders, batch_size=5000)
    return {"people": people, "days": histories, "ages": ages}


# --- the log-likelihoods, from the papers -------------------------------------------------------


def bgnbd_log_likelihood(params, x, t_x, T) -> float:
    r, alpha, a, b = params
    common = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    alive = special.betaln(a, b + x) - special.betaln(a, b) - (r + x) * np.log(alpha + T)
    dropped = np.where(
        x > 0,
        special.betaln(a + 1, np.maximum(b + x - 1, 1e-12)) - special.betaln(a, b) - (r + x) * np.log(alpha + t_x),
        -np.inf,
    )
    return float(np.sum(common + np.logaddexp(alive, dropped)))


def gamma_gamma_log_likelihood(params, x, z) -> float:
    p, q, gamma = params
    px = p * x
    return float(
        np.sum(
            special.gammaln(px + q)
            - special.gammaln(px)
            - special.gammaln(q)
            + q * np.log(gamma)
            + (px - 1) * np.log(z)
            + px * np.log(x)
            - (px + q) * np.log(gamma + x * z)
        )
    )


def maximise(log_likelihood, start, *data) -> tuple[np.ndarray, float]:
    """scipy's maximum of ``log_likelihood`` over positive parameters (optimised on their logs)."""
    result = optimize.minimize(
        lambda logs: -log_likelihood(np.exp(logs), *data),
        np.log(start),
        method="Nelder-Mead",
        options={"xatol": 1e-8, "fatol": 1e-8, "maxiter": 20000, "maxfev": 20000},
    )
    return np.exp(result.x), -float(result.fun)
