"""What a fusion provider is given for one symbol."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from orchestrator.signals import ModuleOutput


class FusionRequest(NamedTuple):
    """The latest outputs of a bucket's modules for one symbol.

    ``outputs`` holds only modules in service (isolated ones are removed);
    ``weights`` are the effective weights, regime multipliers applied.
    ``outputs`` is the pipeline's live view, not a copy: it changes with the
    next event, so a provider that needs the values later copies what it uses
    instead of keeping the request.

    A NamedTuple like ``Prediction``: one is made per event when a module
    provides fusion.
    """

    symbol: str
    bucket: str
    ts: int
    outputs: Mapping[str, ModuleOutput]
    weights: Mapping[str, float]
    regime: str | None
    method: str
