"""The network's fixed input layout and its online standardisation.

Columns, modules sorted by name so the layout does not depend on the order of
the configuration:

    <module>:present        1 if the module has a prediction, else 0 (not scaled)
    <module>:alpha          its alpha                          (scaled)
    <module>:z              its mu / sigma                     (scaled)
    <module>:confidence     its confidence                     (scaled)
    <module>:feature:<f>    each allow-listed feature          (scaled)
    regime:<label>          one-hot of the request's regime    (not scaled)

A missing value (module absent or warming up, feature not published,
non-finite) is encoded as the column's running mean, i.e. 0 after scaling, so
it carries no signal; the presence flag says that the module is missing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from orchestrator import FusionRequest

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_NAN = math.nan
_PREDICTION_COLUMNS = ("present", "alpha", "z", "confidence")
_MISSING_PREDICTION = (0.0, _NAN, _NAN, _NAN)


class InputLayout:
    """Which value goes into which input column."""

    __slots__ = ("ablation_masks", "columns", "features", "modules", "regimes", "scaled")

    def __init__(self, modules: Sequence[str], features: Mapping[str, Sequence[str]], regimes: Sequence[str]) -> None:
        self.modules = tuple(sorted(modules))
        self.features = tuple(tuple(features.get(name, ())) for name in self.modules)
        self.regimes = tuple(regimes)
        columns: list[str] = []
        scaled: list[bool] = []
        groups: list[tuple[int, int]] = []
        for name, feature_names in zip(self.modules, self.features, strict=True):
            start = len(columns)
            columns.extend(f"{name}:{column}" for column in _PREDICTION_COLUMNS)
            scaled.extend((False, True, True, True))
            columns.extend(f"{name}:feature:{feature}" for feature in feature_names)
            scaled.extend(True for _ in feature_names)
            groups.append((start, len(columns)))
        columns.extend(f"regime:{label}" for label in self.regimes)
        scaled.extend(False for _ in self.regimes)
        self.columns = tuple(columns)
        self.scaled: BoolArray = np.array(scaled, dtype=bool)
        # Row 0 keeps every column; row i + 1 blanks module i (as if it were
        # missing), for leave-one-out attribution in one batched forward pass.
        masks = np.ones((len(self.modules) + 1, len(columns)))
        for row, (start, stop) in enumerate(groups, start=1):
            masks[row, start:stop] = 0.0
        self.ablation_masks: FloatArray = masks

    @property
    def width(self) -> int:
        return len(self.columns)

    def encode(self, request: FusionRequest, fill: Sequence[float] | None = None) -> tuple[FloatArray, list[bool]]:
        """The raw (unscaled) input row of ``request`` and, per module, whether it
        has a prediction. A missing value is ``fill[column]`` (the running mean:
        0 once standardised, without a NaN pass over the row) or NaN."""
        values: list[float] = []
        present: list[bool] = []
        outputs = request.outputs
        column = 0
        for name, feature_names in zip(self.modules, self.features, strict=True):
            output = outputs.get(name)
            prediction = None if output is None else output.prediction
            present.append(prediction is not None)
            if prediction is None:
                values += _MISSING_PREDICTION if fill is None else (0.0, *fill[column + 1 : column + 4])
            else:
                sigma = prediction.sigma
                no_z = _NAN if fill is None else fill[column + 2]
                values += (1.0, prediction.alpha, prediction.mu / sigma if sigma > 0.0 else no_z, prediction.confidence)
            column += 4
            if feature_names:
                count = len(feature_names)
                missing = [_NAN] * count if fill is None else fill[column : column + count]
                if output is None:
                    values += missing
                else:
                    get = output.features.get
                    for feature, default in zip(feature_names, missing, strict=True):
                        value = get(feature, default)
                        # value - value is 0 only for a finite value: inf and NaN count as missing.
                        values.append(value if value - value == 0.0 else default)
                column += count
        regime = request.regime
        values += [1.0 if label == regime else 0.0 for label in self.regimes]
        return np.array(values, dtype=np.float64), present

    def export(self) -> dict[str, Any]:
        return {
            "modules": list(self.modules),
            "features": [list(f) for f in self.features],
            "regimes": list(self.regimes),
        }

    @classmethod
    def restore(cls, data: Mapping[str, Any]) -> InputLayout:
        modules = [str(m) for m in data["modules"]]
        features = [tuple(str(f) for f in names) for names in data["features"]]
        return cls(modules, dict(zip(modules, features, strict=True)), [str(r) for r in data["regimes"]])

    def column_map(self, old: InputLayout) -> tuple[npt.NDArray[np.intp], BoolArray]:
        """For each of our columns, its index in ``old`` and whether it exists there."""
        index = {column: i for i, column in enumerate(old.columns)}
        source = np.array([index.get(column, 0) for column in self.columns], dtype=np.intp)
        keep = np.array([column in index for column in self.columns], dtype=bool)
        return source, keep


class RunningScaler:
    """Per-column running mean and variance, standardising a layout's rows online.

    The update is Welford's with weight 1 / min(n, window): the exact
    population mean and variance for the first ``window`` observations, then
    an exponentially weighted estimate that follows a drifting market.
    Columns not flagged ``scaled`` (presence flags, one-hots) pass through.
    """

    __slots__ = ("_constant_inverse", "count", "fill", "inverse_std", "layout", "mean", "row_scales", "var", "window")

    def __init__(self, layout: InputLayout, window: int) -> None:
        width = layout.width
        self.layout = layout
        self.window = window
        self.count = np.zeros(width)
        self.mean = np.zeros(width)
        self.var = np.zeros(width)
        # Unscaled columns pass through (x 1); scaled ones without spread yet are blanked (x 0).
        self._constant_inverse = np.where(layout.scaled, 0.0, 1.0)
        self.inverse_std = self._constant_inverse
        self.fill: list[float] = []
        self.row_scales: FloatArray = layout.ablation_masks
        self._refresh_inverse()

    def standardise(self, filled: FloatArray) -> FloatArray:
        """(x - mean) / std of a row whose missing values were filled with ``fill``
        (so they come out exactly 0), once per row of the layout's ablation masks."""
        result: FloatArray = (filled - self.mean) * self.row_scales
        return result

    def update(self, raw: FloatArray) -> None:
        """Learn from one raw row (NaN = missing, not counted). Whole-row
        arithmetic with zero weights for unseen columns: cheaper than masked
        indexing, and bit-identical (x + 0 * 0 == x, 1 * (v + 0) == v)."""
        seen = ~np.isnan(raw)  # encode turns inf into NaN too
        seen &= self.layout.scaled
        self.count += seen
        weight = seen / np.minimum(np.maximum(self.count, 1.0), self.window)
        delta = np.where(seen, raw - self.mean, 0.0)
        self.mean += weight * delta
        self.var = (1.0 - weight) * (self.var + weight * delta * delta)
        self._refresh_inverse()

    def _refresh_inverse(self) -> None:
        variance = self.var
        positive = variance > 1e-24  # never true for unscaled columns: their variance stays 0
        self.inverse_std = np.where(positive, 1.0 / np.sqrt(np.maximum(variance, 1e-300)), self._constant_inverse)
        # Cached for the refreshes until the next update: missing values and the per-row scales.
        self.fill = self.mean.tolist()
        self.row_scales = self.layout.ablation_masks * self.inverse_std

    def remap(self, layout: InputLayout, source: npt.NDArray[np.intp], keep: BoolArray) -> RunningScaler:
        fresh = RunningScaler(layout, self.window)
        carried = keep & layout.scaled & self.layout.scaled[source]
        fresh.count[carried] = self.count[source[carried]]
        fresh.mean[carried] = self.mean[source[carried]]
        fresh.var[carried] = self.var[source[carried]]
        fresh._refresh_inverse()
        return fresh

    def export(self) -> dict[str, list[float]]:
        return {"count": self.count.tolist(), "mean": self.mean.tolist(), "var": self.var.tolist()}

    def restore(self, data: Mapping[str, Sequence[float]]) -> None:
        width = self.layout.width
        arrays = [np.array(data[key], dtype=np.float64) for key in ("count", "mean", "var")]
        if any(array.shape != (width,) for array in arrays):
            raise ValueError(f"scaler state does not have {width} columns")
        if np.any(arrays[2][~self.layout.scaled] != 0.0) or np.any(arrays[2] < 0.0):
            raise ValueError("scaler variances must be >= 0, and 0 for unscaled columns")
        self.count, self.mean, self.var = arrays
        self._refresh_inverse()
