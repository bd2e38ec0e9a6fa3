"""The ``shutdown:`` section: what a stop does with open orders, and how long it may take."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ShutdownConfig(BaseModel):
    """How the daemon stops on SIGTERM (``systemctl stop``) or SIGINT."""

    model_config = ConfigDict(extra="forbid")

    cancel_open_orders: bool = Field(
        True, description="cancel orders still working at the venue; false leaves them for the next start to adopt"
    )
    cancel_wait_s: float = Field(10.0, ge=0.0, description="how long to wait for the venues to confirm cancels")
    timeout_s: float = Field(
        30.0, gt=0.0, description="the whole stop; past it (or on a second signal) the rest is hurried, exit 1"
    )

    @model_validator(mode="after")
    def _cancel_wait_within_timeout(self) -> ShutdownConfig:
        if self.cancel_wait_s >= self.timeout_s:
            raise ValueError(
                f"cancel_wait_s ({self.cancel_wait_s}) must be shorter than timeout_s ({self.timeout_s}):"
                " the journal flush and MQTT offline come after it"
            )
        return self
