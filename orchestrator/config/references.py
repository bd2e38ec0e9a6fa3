"""Names one part of the configuration uses and another part defines.

A per-symbol limit or route for a symbol that is not traded, or a bucket
limit or route for a bucket that does not exist, is almost always a typo,
and would otherwise leave that limit or route silently unapplied (orders of
the misspelt symbol go to the default venue, under the general limit).
Module names in bucket lists, fusion weights and dependencies are checked
when the modules are resolved (``orchestrator.engine.plan``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from orchestrator.config.models import OrchestratorConfig
from orchestrator.validation import key_path

_LISTED = 8  # names quoted in a message at most


def _known(kind: str, names: Collection[str]) -> str:
    shown = ", ".join(list(names)[:_LISTED]) + (", ..." if len(names) > _LISTED else "")
    return f"{kind}: {shown}" if names else f"no {kind}"


def _unknown_keys(
    table: Mapping[str, object], known: Collection[str], path: tuple[str, ...], what: str, kind: str
) -> Iterable[tuple[str, str]]:
    for name in table:
        if name not in known:
            yield key_path(*path, name), f"{name!r} is not {what} ({_known(kind, known)})"


def reference_problems(config: OrchestratorConfig) -> list[tuple[str, str]]:
    """``(key path, message)`` for every name that refers to nothing."""
    symbols = config.all_symbols()
    buckets = list(config.bucket_map())
    problems: list[tuple[str, str]] = []
    risk, execution = config.risk, config.execution
    traded, bucket = "a traded symbol", "a bucket"
    problems.extend(
        _unknown_keys(
            risk.max_position_notional_by_symbol,
            symbols,
            ("risk", "max_position_notional_by_symbol"),
            traded,
            "symbols",
        )
    )
    problems.extend(
        _unknown_keys(risk.max_bucket_notional, buckets, ("risk", "max_bucket_notional"), bucket, "buckets")
    )
    problems.extend(_unknown_keys(execution.routes, symbols, ("execution", "routes"), traded, "symbols"))
    problems.extend(_unknown_keys(execution.bucket_routes, buckets, ("execution", "bucket_routes"), bucket, "buckets"))
    return problems
