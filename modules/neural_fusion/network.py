"""The fusion network: scikit-learn's ``MLPRegressor`` trained with ``partial_fit``,
evaluated by a small numpy forward pass, exported to and rebuilt from JSON lists.

Training goes through the library (Adam, L2, Glorot initialisation, shuffled
minibatches with a fixed seed); inference reads ``coefs_`` / ``intercepts_``
directly because ``MLPRegressor.predict`` validates its input on every call
(~40 µs), which is too slow for the event path.

Exact continuation after a restart needs more than the weights: Adam's
moment estimates and step count live in the estimator's private
``_optimizer`` (an ``AdamOptimizer``), so they are exported and rebuilt
too. ``self_check`` of the module verifies this against the installed
scikit-learn version before the module enters service.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.neural_network import MLPRegressor
from sklearn.neural_network._stochastic_optimizers import AdamOptimizer

FloatArray = npt.NDArray[np.float64]


class FusionNetwork:
    """One MLP shared by every symbol of the bucket (inputs and targets are scale-free)."""

    __slots__ = (
        "_hidden",
        "_output_bias",
        "_output_weights",
        "_relu",
        "activation",
        "hidden_layers",
        "l2",
        "learning_rate",
        "minibatch",
        "mlp",
        "seed",
    )

    def __init__(
        self,
        *,
        hidden_layers: Sequence[int],
        activation: str,
        learning_rate: float,
        l2: float,
        minibatch: int,
        seed: int,
    ) -> None:
        self.hidden_layers = tuple(hidden_layers)
        self.activation = activation
        self._relu = activation == "relu"
        self.learning_rate = learning_rate
        self.l2 = l2
        self.minibatch = minibatch
        self.seed = seed
        self.mlp: Any = None  # created by the first partial_fit, which also draws the initial weights
        self._hidden: tuple[tuple[FloatArray, FloatArray], ...] = ()
        self._output_weights: FloatArray = np.zeros(0)
        self._output_bias: FloatArray = np.zeros(1)

    def _bind(self) -> None:
        """Point the forward pass at the estimator's arrays. Adam updates them in
        place, so this is needed only when arrays are replaced (first fit,
        restore, layout change), not after every training step."""
        coefs, intercepts = self.mlp.coefs_, self.mlp.intercepts_
        self._hidden = tuple(zip(coefs[:-1], intercepts[:-1], strict=True))
        self._output_weights = coefs[-1][:, 0]  # a view: follows the in-place updates
        self._output_bias = intercepts[-1]

    def _estimator(self) -> Any:
        return MLPRegressor(
            hidden_layer_sizes=self.hidden_layers,
            activation=self.activation,
            solver="adam",
            alpha=self.l2,
            batch_size=self.minibatch,
            learning_rate_init=self.learning_rate,
            # An int seed is re-read on every partial_fit, so the shuffles are a
            # function of the call alone: nothing random to carry across restarts.
            random_state=self.seed,
            shuffle=True,
        )

    @property
    def trained(self) -> bool:
        return self.mlp is not None

    def partial_fit(self, inputs: FloatArray, targets: FloatArray) -> None:
        first = self.mlp is None
        if first:
            self.mlp = self._estimator()
        self.mlp.partial_fit(inputs, targets)
        # The estimator appends one loss per call; over months that is a leak.
        del self.mlp.loss_curve_[:-1]
        if first:
            self._bind()

    def _last_hidden(self, batch: FloatArray) -> FloatArray:
        activation = batch
        relu = self._relu
        for weights, bias in self._hidden:
            activation = activation @ weights
            activation += bias
            if relu:
                np.maximum(activation, 0.0, out=activation)
            else:
                np.tanh(activation, out=activation)
        return activation

    def forward(self, batch: FloatArray) -> FloatArray:
        """Network output for each row of ``batch``; the arithmetic of ``MLPRegressor.predict``."""
        output: FloatArray = self._last_hidden(batch) @ self._output_weights
        output += self._output_bias
        return output

    def outputs(self, batch: FloatArray) -> list[float]:
        """``forward`` as plain floats, for the few rows of a refresh (the input and
        its ablations): the output bias is added in Python, one numpy call fewer."""
        bias = float(self._output_bias[0])
        return [value + bias for value in (self._last_hidden(batch) @ self._output_weights).tolist()]

    # ------------------------------------------------------------ layout changes

    def remap_inputs(self, source: npt.NDArray[np.intp], keep: npt.NDArray[np.bool_]) -> None:
        """New input column ``j`` takes old column ``source[j]`` where ``keep[j]``;
        new columns start with zero weights (no say until trained), dropped
        columns are forgotten, Adam's moments follow their weights."""
        if self.mlp is None:
            return
        mlp = self.mlp
        first = mlp.coefs_[0]
        moved = np.zeros((len(source), first.shape[1]))
        moved[keep] = first[source[keep]]
        mlp.coefs_[0] = moved
        optimizer = mlp._optimizer
        for moments in (optimizer.ms, optimizer.vs):
            old = moments[0]
            fresh = np.zeros_like(moved)
            fresh[keep] = old[source[keep]]
            moments[0] = fresh
        mlp._best_coefs = [c.copy() for c in mlp.coefs_]
        mlp.n_features_in_ = len(source)
        self._bind()

    # ------------------------------------------------------------ state

    def export(self) -> dict[str, Any] | None:
        mlp = self.mlp
        if mlp is None:
            return None
        optimizer = mlp._optimizer
        return {
            "coefs": [c.tolist() for c in mlp.coefs_],
            "intercepts": [b.tolist() for b in mlp.intercepts_],
            "adam_t": int(optimizer.t),
            "adam_ms": [m.tolist() for m in optimizer.ms],
            "adam_vs": [v.tolist() for v in optimizer.vs],
            "samples_seen": int(mlp.t_),
            "best_loss": float(mlp.best_loss_),
            "no_improvement": int(mlp._no_improvement_count),
            "loss": float(mlp.loss_),
        }

    def restore(self, data: dict[str, Any] | None) -> None:
        """Rebuild the fitted estimator exactly as ``partial_fit`` left it."""
        if data is None:
            self.mlp = None
            return
        coefs = [np.array(c, dtype=np.float64) for c in data["coefs"]]
        intercepts = [np.array(b, dtype=np.float64) for b in data["intercepts"]]
        expected = [coefs[0].shape[0], *self.hidden_layers, 1]
        shapes = [c.shape for c in coefs]
        if shapes != list(itertools.pairwise(expected)):
            raise ValueError(f"network shape {shapes} does not match hidden layers {list(self.hidden_layers)}")
        mlp = self._estimator()
        mlp.coefs_ = coefs
        mlp.intercepts_ = intercepts
        mlp.n_features_in_ = coefs[0].shape[0]
        mlp.n_outputs_ = 1
        mlp.n_layers_ = len(coefs) + 1
        mlp.out_activation_ = "identity"
        mlp.n_iter_ = 1
        mlp.t_ = int(data["samples_seen"])
        mlp.loss_ = float(data["loss"])
        mlp.loss_curve_ = [mlp.loss_]
        mlp.best_loss_ = float(data["best_loss"])
        mlp._no_improvement_count = int(data["no_improvement"])
        mlp.validation_scores_ = None
        mlp.best_validation_score_ = None
        mlp._best_coefs = [c.copy() for c in coefs]
        mlp._best_intercepts = [b.copy() for b in intercepts]
        optimizer = AdamOptimizer(coefs + intercepts, self.learning_rate, 0.9, 0.999, 1e-8)
        optimizer.t = int(data["adam_t"])
        optimizer.ms = [np.array(m, dtype=np.float64) for m in data["adam_ms"]]
        optimizer.vs = [np.array(v, dtype=np.float64) for v in data["adam_vs"]]
        # The learning rate is recomputed from t on every step; set it for reading.
        step = max(optimizer.t, 1)
        optimizer.learning_rate = self.learning_rate * math.sqrt(1.0 - 0.999**step) / (1.0 - 0.9**step)
        mlp._optimizer = optimizer
        self.mlp = mlp
        self._bind()


def self_check_network(template: FusionNetwork) -> list[str]:
    """Train a throw-away copy of ``template`` on seeded data and check that the
    fast forward pass matches ``predict`` and that an exported network, rebuilt,
    predicts and trains on exactly as the original (scikit-learn internals we
    rely on could change between versions)."""
    settings: dict[str, Any] = {
        "hidden_layers": template.hidden_layers,
        "activation": template.activation,
        "learning_rate": template.learning_rate,
        "l2": template.l2,
        "minibatch": template.minibatch,
        "seed": template.seed,
    }
    rng = np.random.default_rng(12345)
    rows = max(4 * template.minibatch, 32)
    inputs = rng.standard_normal((3 * rows, 6))
    targets = np.tanh(inputs[:, 0] - 0.5 * inputs[:, 1]) + 0.1 * rng.standard_normal(3 * rows)
    original = FusionNetwork(**settings)
    original.partial_fit(inputs[:rows], targets[:rows])
    problems: list[str] = []
    fast, reference = original.forward(inputs), original.mlp.predict(inputs)
    if not np.allclose(fast, reference, rtol=1e-9, atol=1e-12):
        problems.append(f"forward pass differs from MLPRegressor.predict by {np.abs(fast - reference).max():.3g}")
    rebuilt = FusionNetwork(**settings)
    try:
        rebuilt.restore(original.export())
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        return [*problems, f"exported network does not rebuild: {type(exc).__name__}: {exc}"]
    original.partial_fit(inputs[rows:], targets[rows:])
    rebuilt.partial_fit(inputs[rows:], targets[rows:])
    if not np.array_equal(original.forward(inputs), rebuilt.forward(inputs)):
        problems.append("a rebuilt network trains differently from the original (optimizer state not restored)")
    return problems
