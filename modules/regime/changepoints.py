"""Bayesian online change-point detection (Adams & MacKay, "Bayesian Online
Changepoint Detection", arXiv:0710.3742, 2007) for a Gaussian series with
unknown mean and variance: Normal-Gamma prior, Student-t predictive, constant
hazard, run length truncated at ``max_run``.

Truncation: runs longer than ``max_run`` share the top bin ("at least
max_run"), which keeps the statistics of the last max_run observations, so
each update is O(max_run) and the posterior never loses mass. One vectorised
numpy update per observation.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
LOG_ZERO = -1e30  # log probability of an unreachable run length: finite, so states stay plain JSON


class RunLengthConstants:
    """What depends on the run length alone, computed once per module."""

    def __init__(self, *, max_run: int, hazard: float, prior_kappa: float, prior_alpha: float) -> None:
        runs = np.arange(max_run + 1, dtype=np.float64)
        kappa = prior_kappa + runs
        alpha = prior_alpha + 0.5 * runs
        # Student-t predictive (nu = 2 alpha, scale^2 = beta (kappa + 1) / (alpha kappa)) in the form
        # log p = log_norm + alpha log beta - (alpha + 1/2) log beta', where
        # beta' = beta + spread x (x - mu)^2 is also the posterior beta after x: one log per update.
        self.alpha: FloatArray = alpha
        self.half_nu1: FloatArray = alpha + 0.5
        log_gamma_ratio = np.array([math.lgamma(a + 0.5) - math.lgamma(a) for a in alpha.tolist()])
        self.log_norm: FloatArray = (
            log_gamma_ratio - 0.5 * math.log(math.pi) - 0.5 * np.log(2.0 * (kappa + 1.0) / kappa)
        )
        self.spread: FloatArray = kappa / (2.0 * (kappa + 1.0))
        self.gain: FloatArray = 1.0 / (kappa + 1.0)  # posterior mean: mu + (x - mu) / (kappa + 1)
        self.log_growth = math.log1p(-hazard)
        self.log_hazard = math.log(hazard)
        self.hazard = hazard
        self.alpha0 = prior_alpha


class RunLengthPosterior:
    """Truncated BOCPD state, one row per quantity and one column per run length r:
    log P(r | returns so far), and the run's Normal-Gamma mean, beta and alpha_r x log beta_r.

    Keeping alpha x log beta pays off: the quadratic term of one update,
    (alpha_r + 1/2) log beta'_r, is alpha_r+1 log beta_r+1 of the next, so an
    update takes one log. The rows move together, so one slice copy shifts them
    all. At bar frequency numpy's per-call overhead dominates, so the update
    works in place on views made once.
    """

    __slots__ = ("_views", "rows")

    def __init__(self, max_run: int, beta0: float, c: RunLengthConstants, window: int) -> None:
        size = max_run + 1
        self.rows: FloatArray = np.empty((4, size))
        self.rows[0] = LOG_ZERO
        self.rows[0, 0] = 0.0  # the first run starts with certainty
        self.rows[1] = 0.0
        self.rows[2] = beta0
        self.rows[3] = c.alpha * math.log(beta0)
        new = np.empty((4, size))  # the updated rows, before the shift by one run length
        deviation, scaled = np.empty((2, size))
        self._views = (*self.rows, new, *new, deviation, scaled, scaled[:window], self.rows[:, 1:], new[:, :-1])

    def update(self, x: float, beta0: float, c: RunLengthConstants) -> tuple[float, int]:
        """Adams & MacKay's growth / change-point recursion for one return, then the
        statistics; returns P(r <= window) and the most probable r afterwards."""
        (log_prob, mu, beta, shape_log_beta, _, log_joint, mu_new, beta_new, next_shape, deviation, scaled,
         recent_scaled, shifted_rows, unshifted_new) = self._views  # fmt: skip
        np.subtract(x, mu, out=deviation)
        np.multiply(deviation, deviation, out=beta_new)
        beta_new *= c.spread
        beta_new += beta
        np.log(beta_new, out=next_shape)
        next_shape *= c.half_nu1
        np.add(log_prob, c.log_norm, out=log_joint)
        log_joint += shape_log_beta
        log_joint -= next_shape
        top = float(np.maximum.reduce(log_joint))
        np.subtract(log_joint, top, out=scaled)
        np.exp(scaled, out=scaled)
        total = float(np.add.reduce(scaled))
        # Growth from r < window lands on 1 <= r <= window; r = 0 holds the hazard.
        # (With window >= max_run every run length counts: the top bin is max_run.)
        recent = float(np.add.reduce(recent_scaled)) / total if len(recent_scaled) < len(scaled) - 1 else 1.0
        log_evidence = top + math.log(total)
        # The top bin keeps what reaches it: log(exp(a) + exp(b)) of its two sources.
        a, b = float(log_joint[-2]), float(log_joint[-1])
        oldest = max(a, b) + math.log1p(math.exp(-abs(a - b)))
        log_joint += c.log_growth - log_evidence
        np.multiply(deviation, c.gain, out=mu_new)
        mu_new += mu
        shifted_rows[...] = unshifted_new
        log_prob[0] = c.log_hazard
        log_prob[-1] = oldest + c.log_growth - log_evidence
        beta[0] = beta0
        shape_log_beta[0] = c.alpha0 * math.log(beta0)
        return c.hazard + (1.0 - c.hazard) * recent, int(np.argmax(log_prob))
