"""The ``hot_swap:`` configuration section (``HotSwapConfig`` / ``SourceWatcher``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class HotSwapConfig(BaseModel):
    """How the daemon notices and checks new module code and configuration."""

    model_config = ConfigDict(extra="forbid")

    watch: bool = Field(
        True, description="reload a module when one of its source files is saved, and the config when it is saved"
    )
    watch_step_ms: int = Field(
        25, ge=5, le=5_000, description="act on changes once none has arrived for this long (saves coalesce)"
    )
    watch_debounce_ms: int = Field(
        200, ge=10, le=60_000, description="during a steady stream of changes, act at least this often"
    )
    sample_events: int = Field(
        256, ge=16, le=8_192, description="recent events kept per kind (bar, trade, book) for self-checks"
    )
    check_timeout_s: float = Field(
        10.0, gt=0.0, le=600.0, description="give up on loading and checking a new version after this long"
    )
