"""The configuration schema. Every model rejects unknown keys.

Each section is a small model of its own, paired with the class it
configures (``PaperExchangeConfig`` / ``PaperExchange``), and the whole tree
exports a JSON schema (``orchestrator config-schema``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from orchestrator.execution.config import ExecutionConfig
from orchestrator.feeds.config import FeedConfig
from orchestrator.fusion.config import FusionConfig
from orchestrator.hotswap.config import HotSwapConfig
from orchestrator.journal.config import JournalConfig
from orchestrator.mqtt.config import MqttConfig
from orchestrator.risk.config import RiskConfig
from orchestrator.service.config import ShutdownConfig

DEFAULT_BUCKET = "default"
NAME_PATTERN = r"^[A-Za-z0-9_-]+$"  # instance and bucket names: they become paths and MQTT topic levels

Symbol = Annotated[str, StringConstraints(min_length=1)]
BucketName = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LogConfig(StrictModel):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "console", "json"] = Field(
        "auto", description="auto: readable on a terminal, JSON lines otherwise (journald)"
    )


class ModuleConfig(StrictModel):
    """One module instance. The key under ``modules:`` is the instance name."""

    enabled: bool = True
    module: str | None = Field(None, description="implementation to load; defaults to the instance name")
    path: Path | None = Field(None, description="load the implementation from this file or package directory")
    params: dict[str, Any] = Field(default_factory=dict)
    weight: float = Field(1.0, ge=0.0, description="fusion weight")
    latency_budget_us: float | None = Field(None, gt=0.0, description="overrides the module's own budget")

    @field_validator("module")
    @classmethod
    def _a_name_not_a_path(cls, value: str | None) -> str | None:
        if value is not None and (not value or "\0" in value or any(c in value for c in "/\\") or value[0] == "."):
            raise ValueError("must be a module name, not a path (a file or directory goes under 'path')")
        return value

    @field_validator("path")
    @classmethod
    def _a_usable_path(cls, value: Path | None) -> Path | None:
        if value is not None and "\0" in str(value):
            raise ValueError("contains a NUL character")
        return value

    def implementation(self, instance: str) -> str:
        return self.module or instance


class BucketConfig(StrictModel):
    """A group of symbols with its own module list, parameters and fusion."""

    symbols: list[Symbol] = Field(min_length=1)
    modules: list[str] | None = Field(None, min_length=1, description="enabled modules used here; default: all enabled")
    params: dict[str, dict[str, Any]] = Field(default_factory=dict, description="per-module parameter overrides")
    fusion: FusionConfig | None = None

    @field_validator("modules")
    @classmethod
    def _each_module_once(cls, value: list[str] | None) -> list[str] | None:
        names = value or []
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"{', '.join(repr(n) for n in twice)} listed more than once")
        return value


class DecisionConfig(StrictModel):
    min_change: float = Field(0.05, ge=0.0, le=2.0, description="emit a decision when the target moves this much")
    min_interval_ms: int = Field(0, ge=0, description="at most one decision per symbol per interval (event time)")


class EngineConfig(StrictModel):
    isolate_after_errors: int = Field(5, gt=0, description="consecutive errors before a module is isolated")
    isolate_after_overruns: int = Field(20, gt=0, description="consecutive budget overruns before isolation")
    retry_isolated_after_s: float = Field(
        30.0, gt=0.0, description="event-time seconds before an isolated module is retried"
    )


class OrchestratorConfig(StrictModel):
    """The root of a configuration file."""

    instance: str = Field("default", pattern=NAME_PATTERN, description="names the daemon in MQTT and state")
    state_dir: Path = Field(Path("state"), description="journal, module state, control socket")
    log: LogConfig = Field(default_factory=LogConfig)
    feed: FeedConfig = Field(default_factory=FeedConfig)
    symbols: list[Symbol] | None = Field(None, min_length=1, description="shortcut for a single bucket named 'default'")
    buckets: dict[BucketName, BucketConfig] | None = Field(None, min_length=1)
    modules_path: list[Path] = Field(default_factory=list, description="extra directories searched for modules")
    modules: dict[str, ModuleConfig] = Field(default_factory=dict)
    fusion: FusionConfig = Field(default_factory=FusionConfig)
    decision: DecisionConfig = Field(default_factory=DecisionConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    journal: JournalConfig = Field(default_factory=JournalConfig)
    hot_swap: HotSwapConfig = Field(default_factory=HotSwapConfig)
    shutdown: ShutdownConfig = Field(default_factory=ShutdownConfig)
    mqtt: MqttConfig | None = Field(None, description="status and commands over MQTT; absent: no MQTT")

    @model_validator(mode="after")
    def _one_way_to_name_symbols(self) -> OrchestratorConfig:
        if self.symbols is not None and self.buckets is not None:
            raise ValueError("use either 'symbols' (one bucket) or 'buckets', not both")
        if self.symbols is None and self.buckets is None:
            raise ValueError("name the traded symbols under 'symbols' or 'buckets'")
        return self

    def bucket_map(self) -> dict[str, BucketConfig]:
        if self.buckets is not None:
            return self.buckets
        return {DEFAULT_BUCKET: BucketConfig(symbols=list(self.symbols or []))}

    def all_symbols(self) -> list[str]:
        return [symbol for bucket in self.bucket_map().values() for symbol in bucket.symbols]

    def enabled_modules(self) -> dict[str, ModuleConfig]:
        return {name: module for name, module in self.modules.items() if module.enabled}
