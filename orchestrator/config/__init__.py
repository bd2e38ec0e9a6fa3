"""Configuration: YAML profiles validated into typed models."""

from orchestrator.config.loader import LoadedConfig, load_config
from orchestrator.config.models import OrchestratorConfig

__all__ = ["LoadedConfig", "OrchestratorConfig", "load_config"]
