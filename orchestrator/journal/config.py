"""Configuration of the order journal."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class JournalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="a live venue refuses to start without it")
    path: Path | None = Field(None, description="SQLite file; default <state_dir>/journal.sqlite")
    record_decisions: bool = Field(True, description="also record decisions that led to no order")
    batch_max: int = Field(512, ge=1, le=100_000, description="most records committed in one transaction")

    def resolve_path(self, state_dir: Path) -> Path:
        return self.path if self.path is not None else state_dir / "journal.sqlite"
