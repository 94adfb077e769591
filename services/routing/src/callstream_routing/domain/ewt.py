"""Expected wait time: the queue-length estimator with abandonment (Ibrahim & Whitt).

A caller with n callers ahead, s agents each serving at rate mu and callers abandoning at rate theta,
waits on average sum_{i=0..n} 1 / (s*mu + i*theta). When the rates are unknown, the delay of the
last caller to enter service (LES) is the estimate; when that is unknown too, -1.
"""

from __future__ import annotations


def queue_length_estimate(n_ahead: int, servers: int, mu: float, theta: float) -> float:
    rate = servers * mu
    if theta <= 0.0:
        return (n_ahead + 1) / rate
    return sum(1.0 / (rate + i * theta) for i in range(n_ahead + 1))


def expected_wait(
    n_ahead: int, servers: int, mean_handle_s: float | None, mean_patience_s: float | None, last_delay_s: float | None
) -> float:
    if servers > 0 and mean_handle_s is not None and mean_handle_s > 0.0:
        theta = 1.0 / mean_patience_s if mean_patience_s else 0.0
        return queue_length_estimate(n_ahead, servers, 1.0 / mean_handle_s, theta)
    if last_delay_s is not None:
        return last_delay_s
    return -1.0
