"""Queueing formulas for contact-center staffing: Erlang B, Erlang C and Erlang A.

Conventions
-----------
* ``traffic`` (offered load, in Erlangs) is ``A = λ · AHT`` = ``calls * aht_s / interval_s``.
* ``arrival_rate`` is λ in calls per second; ``aht_s`` is the mean handling time 1/μ in seconds.
* ``t_s`` is the service-level answer threshold *T* (e.g. 20 s in an "80/20" target).

Erlang C (M/M/N, infinitely patient callers)
    Computed from the Erlang B recursion ``B(k) = A·B(k-1) / (k + A·B(k-1))`` which never forms a
    factorial or a power and is stable for any N (it just underflows gracefully towards 0 when N ≫ A).
    ``C = N·B / (N − A·(1 − B))`` for ``N > A``; for ``N ≤ A`` the queue is unstable and
    ``C = 1``, service level 0, ASA = ∞, occupancy 1.

Erlang A (M/M/N+M, exponential patience with mean ``patience_s`` = 1/θ)
    We solve the birth–death chain exactly instead of evaluating the incomplete-gamma closed forms
    of Garnett, Mandelbaum & Reiman (2002) / Zeltyn & Mandelbaum (2005), which need special
    functions and lose precision for large N. States ``k ≤ N`` have the Erlang B weights (their
    total mass relative to ``π_N`` is ``1/B(N, A)``); queue states ``N + j`` have
    ``π_{N+j}/π_N = Π_{m=1..j} λ / (Nμ + mθ)``. The chain is truncated at the first ``j`` where a
    rigorous geometric bound on the remaining mass (and on the remaining ``Σ j·π``) falls below
    1e-17 of the accumulated sum, so the result is exact to double precision. Sums are done in
    the log domain (numpy), so overloaded systems (λ ≫ Nμ) do not overflow.

    Per-caller quantities follow from a tagged arrival that finds ``j`` callers waiting ahead
    (probability ``π_{N+j}`` by PASTA): it moves up at rate ``Nμ + mθ`` while ``m`` are ahead and
    abandons at rate θ, so

    * ``P(answered | j) = Nμ / (Nμ + (j+1)θ)`` (the product telescopes);
    * its time in queue is independent of the outcome and is a sum of exponentials with rates
      ``θ(c + m)``, ``m = 0..j``, ``c = (Nμ + θ)/θ``; then ``exp(−θ·W) ~ Beta(c, j+1)``, so
      ``P(W ≤ T) = 1 − x^c Σ_{l=0..j} (c)_l/l! (1−x)^l`` with ``x = e^{−θT}``;
    * the expected wait is ``Σ_{m=0..j} 1 / (Nμ + (m+1)θ)``.

    Reported figures (Zeltyn's definitions):

    * ``prob_wait`` = P(W > 0) (all agents busy on arrival);
    * ``abandon_rate`` = P(Ab) = θ·E[Q]/λ;
    * ``service_level`` = P(answered and waited ≤ T) / offered — abandoned calls count as misses
      (``service_level_answered`` gives the fraction of *answered* calls answered within T);
    * ``asa_s`` = mean wait of answered calls (industry ASA); ``avg_wait_s`` = E[Q]/λ over all
      offered calls, abandoned ones included;
    * ``occupancy`` = carried load / N = A·(1 − P(Ab)) / N.

    When ``patience_s`` → ∞ (θ → 0) every figure converges to the Erlang C one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "QueueMetrics",
    "StaffingResult",
    "erlang_a_metrics",
    "erlang_b",
    "erlang_c",
    "erlang_c_asa",
    "erlang_c_metrics",
    "erlang_c_service_level",
    "occupancy",
    "required_agents",
    "traffic_intensity",
]

_TAIL_EPS = 1e-17
_MAX_QUEUE_STATES = 20_000_000
# Tolerance used when comparing achieved figures with goals, so that e.g. 7 Erlangs at 70 %
# occupancy needs 10 agents and not 11 because 7/0.7 == 10.000000000000002.
_GOAL_TOL = 1e-12


def traffic_intensity(calls: float, interval_s: float, aht_s: float) -> float:
    """Offered load in Erlangs: ``calls * aht_s / interval_s``."""
    if calls < 0:
        raise ValueError("calls must be >= 0")
    if interval_s <= 0:
        raise ValueError("interval_s must be > 0")
    if aht_s <= 0:
        raise ValueError("aht_s must be > 0")
    return calls * aht_s / interval_s


def _check_agents_traffic(agents: int, traffic: float) -> None:
    if agents < 0:
        raise ValueError("agents must be >= 0")
    if traffic < 0 or not math.isfinite(traffic):
        raise ValueError("traffic must be a finite number >= 0")


def erlang_b(agents: int, traffic: float) -> float:
    """Blocking probability of M/M/N/N (Erlang B) via the stable recursion."""
    _check_agents_traffic(agents, traffic)
    b = 1.0
    for k in range(1, agents + 1):
        b = traffic * b / (k + traffic * b)
    return b


def _erlang_c_from_b(agents: int, traffic: float, b: float) -> float:
    if traffic == 0:
        return 0.0
    if agents <= traffic:
        return 1.0
    return agents * b / (agents - traffic * (1.0 - b))


def erlang_c(agents: int, traffic: float) -> float:
    """Probability that a caller has to wait (Erlang C); 1.0 when ``agents <= traffic``."""
    return _erlang_c_from_b(agents, traffic, erlang_b(agents, traffic))


def erlang_c_service_level(agents: int, traffic: float, aht_s: float, t_s: float) -> float:
    """Fraction of calls answered within ``t_s`` seconds: ``1 − C·exp(−(N − A)·T/AHT)``."""
    pw = erlang_c(agents, traffic)
    return _sl_c(agents, traffic, aht_s, t_s, pw)


def _sl_c(agents: int, traffic: float, aht_s: float, t_s: float, pw: float) -> float:
    if traffic == 0:
        return 1.0
    if agents <= traffic:
        return 0.0
    return max(0.0, 1.0 - pw * math.exp(-(agents - traffic) * t_s / aht_s))


def erlang_c_asa(agents: int, traffic: float, aht_s: float) -> float:
    """Average speed of answer in seconds: ``C·AHT/(N − A)`` (``inf`` when unstable)."""
    pw = erlang_c(agents, traffic)
    return _asa_c(agents, traffic, aht_s, pw)


def _asa_c(agents: int, traffic: float, aht_s: float, pw: float) -> float:
    if traffic == 0:
        return 0.0
    if agents <= traffic:
        return math.inf
    return pw * aht_s / (agents - traffic)


def occupancy(agents: int, traffic: float) -> float:
    """Erlang C agent occupancy ``A/N``, capped at 1 (an overloaded queue keeps agents 100 % busy)."""
    _check_agents_traffic(agents, traffic)
    if traffic == 0:
        return 0.0
    if agents == 0:
        return 1.0
    return min(1.0, traffic / agents)


@dataclass(frozen=True, slots=True)
class QueueMetrics:
    """Steady-state figures of one interval for a given number of agents."""

    agents: int
    traffic: float
    prob_wait: float
    service_level: float
    asa_s: float
    occupancy: float
    abandon_rate: float = 0.0
    avg_wait_s: float = 0.0
    service_level_answered: float = 1.0


def erlang_c_metrics(agents: int, arrival_rate: float, aht_s: float, t_s: float) -> QueueMetrics:
    """All Erlang C figures for ``agents`` agents, λ = ``arrival_rate`` calls/s."""
    if arrival_rate < 0:
        raise ValueError("arrival_rate must be >= 0")
    if aht_s <= 0:
        raise ValueError("aht_s must be > 0")
    if t_s < 0:
        raise ValueError("t_s must be >= 0")
    traffic = arrival_rate * aht_s
    return _metrics_c(agents, traffic, aht_s, t_s, erlang_b(agents, traffic))


def _metrics_c(agents: int, traffic: float, aht_s: float, t_s: float, b: float) -> QueueMetrics:
    pw = _erlang_c_from_b(agents, traffic, b)
    sl = _sl_c(agents, traffic, aht_s, t_s, pw)
    asa = _asa_c(agents, traffic, aht_s, pw)
    return QueueMetrics(
        agents=agents,
        traffic=traffic,
        prob_wait=pw,
        service_level=sl,
        asa_s=asa,
        occupancy=occupancy(agents, traffic),
        abandon_rate=0.0,
        avg_wait_s=asa,
        service_level_answered=sl,
    )


def _log_sum_exp(v: np.ndarray) -> float:
    if v.size == 0:
        return -math.inf
    m = float(np.max(v))
    if m == -math.inf:
        return -math.inf
    return m + math.log(float(np.sum(np.exp(v - m))))


def _queue_log_weights(lam: float, n_mu: float, theta: float) -> np.ndarray:
    """``log(π_{N+j}/π_N)`` for j = 0..K with the tail beyond K negligible (see module doc)."""
    # Index of the mode: ratios λ/(Nμ + (j+1)θ) are >= 1 before it.
    j_peak = max(0, math.ceil((lam - n_mu) / theta))
    k = j_peak + 64
    while True:
        if k > _MAX_QUEUE_STATES:
            raise ValueError("Erlang A chain too long to truncate; patience is too long for this load")
        m = np.arange(1, k + 1, dtype=np.float64)
        logw = np.empty(k + 1, dtype=np.float64)
        logw[0] = 0.0
        np.cumsum(math.log(lam) - np.log(n_mu + m * theta), out=logw[1:])
        r = lam / (n_mu + (k + 1) * theta)
        if r < 1.0:
            # Σ_{s≥1} (K+s)·q_K·r^s = q_K·(K·r/(1−r) + r/(1−r)²) bounds both neglected sums.
            bound = math.log(k * r / (1 - r) + r / (1 - r) ** 2)
            tail = float(logw[-1]) + bound
            # Compare with the mass and with the first moment accumulated so far.
            if tail < _log_sum_exp(logw) + math.log(_TAIL_EPS):
                return logw
        k *= 2


def erlang_a_metrics(agents: int, arrival_rate: float, aht_s: float, t_s: float, patience_s: float) -> QueueMetrics:
    """All Erlang A (M/M/N+M) figures; ``patience_s`` is the mean caller patience 1/θ.

    ``patience_s = math.inf`` gives the Erlang C figures.
    """
    if arrival_rate < 0:
        raise ValueError("arrival_rate must be >= 0")
    if aht_s <= 0:
        raise ValueError("aht_s must be > 0")
    if t_s < 0:
        raise ValueError("t_s must be >= 0")
    if not patience_s > 0:
        raise ValueError("patience_s must be > 0")
    traffic = arrival_rate * aht_s
    b = erlang_b(agents, traffic)
    return _metrics_a(agents, arrival_rate, aht_s, t_s, patience_s, b)


def _metrics_a(agents: int, lam: float, aht_s: float, t_s: float, patience_s: float, b: float) -> QueueMetrics:
    traffic = lam * aht_s
    if math.isinf(patience_s):
        return _metrics_c(agents, traffic, aht_s, t_s, b)
    if lam == 0:
        return QueueMetrics(agents, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
    theta = 1.0 / patience_s
    n_mu = agents / aht_s
    if agents == 0:
        # Nobody answers: everyone abandons, P(wait) = 1.
        return QueueMetrics(0, traffic, 1.0, 0.0, math.inf, 1.0, 1.0, patience_s, 0.0)

    logq = _queue_log_weights(lam, n_mu, theta)
    j = np.arange(logq.size, dtype=np.float64)
    # log of the normaliser relative to π_N: 1/B (states 0..N) + Σ_{j≥1} q_j.
    log_below = -math.log(b) if b > 0 else math.inf
    if math.isinf(log_below):
        # Queue mass is below double precision relative to the idle states.
        return _metrics_c(agents, traffic, aht_s, t_s, b)
    log_z = float(np.logaddexp(log_below, _log_sum_exp(logq[1:])))
    p = np.exp(logq - log_z)  # π_{N+j}, j = 0..K

    prob_wait = float(p.sum())
    mean_queue = float((j * p).sum())
    abandon = min(1.0, theta * mean_queue / lam)
    answered_prob = 1.0 - abandon

    # Tagged caller with j ahead.
    p_ans_given_j = n_mu / (n_mu + (j + 1.0) * theta)
    w = p * p_ans_given_j  # P(sees j ahead and gets answered)
    # E[wait | j] = Σ_{m=0..j} 1/(Nμ + (m+1)θ)
    exp_wait_given_j = np.cumsum(1.0 / (n_mu + (j + 1.0) * theta))
    wait_answered_total = float((w * exp_wait_given_j).sum())
    asa = wait_answered_total / answered_prob if answered_prob > 0 else math.inf

    # P(answered, W > T) = Σ_j w_j · x^c Σ_{l≤j} t_l = Σ_l x^c t_l · Σ_{j≥l} w_j.
    if t_s == 0:
        late_answered = float(w.sum())
    else:
        c = (n_mu + theta) / theta
        log1mx = math.log(-math.expm1(-theta * t_s))  # log(1 − e^{−θT})
        ell = j[1:]
        log_terms = np.empty_like(j)
        log_terms[0] = -(n_mu + theta) * t_s  # log x^c
        np.cumsum(np.log(c + ell - 1.0) - np.log(ell) + log1mx, out=log_terms[1:])
        log_terms[1:] += log_terms[0]
        suffix = np.cumsum(w[::-1])[::-1]
        with np.errstate(divide="ignore"):
            late_answered = float(np.exp(log_terms + np.log(suffix)).sum())
    within_t = max(0.0, (1.0 - prob_wait) + (float(w.sum()) - late_answered))
    service_level = min(1.0, within_t)
    sl_answered = min(1.0, service_level / answered_prob) if answered_prob > 0 else 0.0
    return QueueMetrics(
        agents=agents,
        traffic=traffic,
        prob_wait=min(1.0, prob_wait),
        service_level=service_level,
        asa_s=asa,
        occupancy=min(1.0, traffic * answered_prob / agents),
        abandon_rate=abandon,
        avg_wait_s=mean_queue / lam,
        service_level_answered=sl_answered,
    )


@dataclass(frozen=True, slots=True)
class StaffingResult:
    """Agents needed for one interval and the figures they achieve.

    ``raw_agents`` are productive agents on the phones; ``agents`` adds shrinkage
    (``ceil(raw / (1 − shrinkage))``). The achieved figures are for ``raw_agents``.
    """

    raw_agents: int
    agents: int
    traffic: float
    service_level: float
    asa_s: float
    occupancy: float
    abandon_rate: float
    prob_wait: float
    model: str


def _ceil_tol(x: float) -> int:
    return math.ceil(x - 1e-9)


def required_agents(  # noqa: C901 (the targets' search, one bracket per kind of goal)
    calls: float,
    interval_s: float,
    aht_s: float,
    sl_target: float,
    t_s: float,
    *,
    max_occupancy: float = 1.0,
    asa_goal: float | None = None,
    abandon_goal: float | None = None,
    patience_s: float | None = None,
    shrinkage: float = 0.0,
) -> StaffingResult:
    """Smallest number of agents meeting every goal for ``calls`` offered in ``interval_s``.

    Goals: service level ≥ ``sl_target`` within ``t_s`` seconds, occupancy ≤ ``max_occupancy``,
    ASA ≤ ``asa_goal`` seconds (if given), abandonment ≤ ``abandon_goal`` (if given; Erlang C has no
    abandonment so it is always met there). ``patience_s=None`` uses Erlang C, otherwise Erlang A.
    All figures are monotone in the number of agents, so the first N meeting every goal is the
    answer. An interval with no calls needs 0 agents.
    """
    if not 0.0 <= sl_target <= 1.0:
        raise ValueError("sl_target must be in [0, 1]")
    if not 0.0 < max_occupancy <= 1.0:
        raise ValueError("max_occupancy must be in (0, 1]")
    if not 0.0 <= shrinkage < 1.0:
        raise ValueError("shrinkage must be in [0, 1)")
    if asa_goal is not None and asa_goal < 0:
        raise ValueError("asa_goal must be >= 0")
    if abandon_goal is not None and not 0.0 <= abandon_goal <= 1.0:
        raise ValueError("abandon_goal must be in [0, 1]")
    if t_s < 0:
        raise ValueError("t_s must be >= 0")
    traffic = traffic_intensity(calls, interval_s, aht_s)
    lam = calls / interval_s
    model = "erlang_c" if patience_s is None else "erlang_a"
    if traffic == 0:
        return StaffingResult(0, 0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, model)

    def ok(m: QueueMetrics) -> bool:
        return (
            m.service_level >= sl_target - _GOAL_TOL
            and m.occupancy <= max_occupancy + _GOAL_TOL
            and (asa_goal is None or m.asa_s <= asa_goal + _GOAL_TOL)
            and (abandon_goal is None or m.abandon_rate <= abandon_goal + _GOAL_TOL)
        )

    limit = int(10 * traffic) + 1000
    if patience_s is None:
        # Linear scan with the incremental Erlang B recursion: O(N) overall. Each candidate is tested
        # goal by goal, cheapest first (occupancy, then service level, then ASA), the same tests as
        # `ok`; the full figures are built once, for the answer.
        b = 1.0
        # No count up to `below` can be an answer: it would be over the occupancy ceiling (A/N > max, and
        # max <= 1 also covers N <= A). One more below the quotient so float rounding never skips a candidate.
        below = max(0, math.ceil(traffic / (max_occupancy + _GOAL_TOL)) - 2)
        for k in range(1, below + 1):
            b = traffic * b / (k + traffic * b)
        n = below
        while True:
            n += 1
            b = traffic * b / (n + traffic * b)
            if n <= traffic or traffic / n > max_occupancy + _GOAL_TOL:
                continue
            pw = _erlang_c_from_b(n, traffic, b)
            if _sl_c(n, traffic, aht_s, t_s, pw) >= sl_target - _GOAL_TOL and (
                    asa_goal is None or _asa_c(n, traffic, aht_s, pw) <= asa_goal + _GOAL_TOL):
                break
            if n > limit:
                raise ValueError("goals cannot be met")
        metrics = _metrics_c(n, traffic, aht_s, t_s, b)
    else:
        if not patience_s > 0:
            raise ValueError("patience_s must be > 0")

        def at(n: int) -> QueueMetrics:
            return _metrics_a(n, lam, aht_s, t_s, patience_s, erlang_b(n, traffic))

        # Galloping then binary search from a guess (each evaluation costs O(N + queue states)): the
        # Erlang C count for the same SL, ASA and occupancy goals is usually within a few agents of the
        # answer, so this takes 2-5 evaluations where a search from the traffic took 8-10. The answer is
        # the same: the smallest count meeting every goal (the figures are monotone in the count).
        try:
            guess = required_agents(calls, interval_s, aht_s, sl_target, t_s, max_occupancy=max_occupancy,
                                    asa_goal=asa_goal).raw_agents
        except ValueError:  # no Erlang C count meets them; abandonment may still make it possible
            guess = math.ceil(traffic)
        guess = max(1, guess)
        step = 1
        if ok(at(guess)):
            lo, hi = guess - 1, guess
            while lo > 0 and ok(at(lo)):
                hi, lo = lo, max(0, lo - 2 * step)
                step *= 2
        else:
            lo, hi = guess, guess + 1
            while not ok(at(hi)):
                lo, hi = hi, hi + 2 * step
                step *= 2
                if hi > 4 * limit:
                    raise ValueError("goals cannot be met")
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if ok(at(mid)):
                hi = mid
            else:
                lo = mid
        n = hi
        metrics = at(n)
    return StaffingResult(
        raw_agents=n,
        agents=_ceil_tol(n / (1.0 - shrinkage)),
        traffic=traffic,
        service_level=metrics.service_level,
        asa_s=metrics.asa_s,
        occupancy=metrics.occupancy,
        abandon_rate=metrics.abandon_rate,
        prob_wait=metrics.prob_wait,
        model=model,
    )
