"""Write a ``scripts/bench.py`` JSON report into README.md.

Usage::

    python scripts/bench.py --out bench.json
    python scripts/bench_report.py bench.json           # rewrite the README's figure blocks
    python scripts/bench_report.py bench.json --print   # only print them

Two blocks are rewritten: ``<!-- bench-figures -->`` (hot path, modules,
MQTT, hot swap in brief) and ``<!-- swap-figures -->`` (the hot swap in
detail). The README's figures therefore always come from one real run,
never typed by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[1] / "README.md"


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _ms(value: float) -> str:
    return f"{value:.2g} ms" if value < 10 else f"{value:.0f} ms"


def _case_rows(report: dict[str, Any]) -> list[str]:
    rows = ["| case | events/s | event → order intent p50 | p99 |", "| --- | ---: | ---: | ---: |"]
    for key in ("single_module", "analysis_modules", "all_modules"):
        case = report.get(key)
        if case:
            rows.append(
                f"| {case['label']} | {_n(case['events_per_s'])} | "
                f"{case['latency_p50_us']:.0f} µs | {case['latency_p99_us']:.0f} µs |"
            )
    return rows


def _module_rows(report: dict[str, Any]) -> list[str]:
    case = report.get("analysis_modules") or report["all_modules"]
    per_call, per_event = case["module_us_per_call"], case["module_us_per_event"]
    rows = ["| module | µs per call | µs per event (all kinds) |", "| --- | ---: | ---: |"]
    rows += [f"| {name} | {per_call[name]:.2f} | {per_event[name]:.3f} |" for name in per_call]
    return rows


def bench_block(report: dict[str, Any]) -> str:
    machine, stream, targets, passed = report["machine"], report["stream"], report["targets"], report["pass"]
    kinds = ", ".join(f"{_n(count)} {kind}s" for kind, count in stream["by_kind"].items())
    lines = [
        f"Python {machine['python']}, {machine['cpus']} CPUs ({machine['platform']}); "
        f"{_n(stream['events'])} simulated events ({kinds}) over {len(stream['symbols'])} symbols; "
        "the fastest of the runs per case.",
        "",
        *_case_rows(report),
        "",
        "Module cost in the six-module case (per call of its hook, and spread over every event):",
        "",
        *_module_rows(report),
    ]
    mqtt = report.get("all_modules_mqtt")
    if mqtt:
        lines += [
            "",
            f"MQTT ({mqtt['broker']}, {mqtt['label']}): {_n(mqtt['without_mqtt']['events_per_s'])} → "
            f"{_n(mqtt['with_mqtt']['events_per_s'])} events/s, {mqtt['throughput_loss_pct']:.1f} % lost "
            f"(target ≤ {targets['mqtt_throughput_loss_pct_max']:.0f} %).",
        ]
    swap = report.get("swap")
    if swap:
        lines += [
            "",
            f"Hot swap ({swap['swaps']} saves under load): save → new version serving p50 "
            f"{_ms(swap['latency_ms']['p50'])}, p95 {_ms(swap['latency_ms']['p95'])}; longest gap between "
            f"two events p50 {_ms(swap['stall_ms']['p50'])}, max {_ms(swap['stall_ms']['max'])}; "
            f"every event processed exactly once: {'yes' if swap['every_event_processed_once'] else 'NO'}.",
        ]
    verdict = ", ".join(f"{key} {'met' if ok else 'NOT met'}" for key, ok in passed.items())
    lines += [
        "",
        f"Targets: ≥ {_n(targets['events_per_s_min'])} events/s with the six analysis modules "
        f"(goal {_n(targets['events_per_s_goal'])}), p99 ≤ {targets['order_latency_p99_us_max']:.0f} µs, "
        f"MQTT loss ≤ {targets['mqtt_throughput_loss_pct_max']:.0f} %: {verdict}.",
    ]
    return "\n".join(lines)


def swap_block(swap: dict[str, Any]) -> str:
    split = swap["split_ms"]
    goal_gap = f"≤ {swap['targets']['stall_ms_max']:.0f} ms"
    measures = [
        ("save → first event processed by the new version", swap["latency_ms"], "p50 ≤ 200 ms"),
        ("of which: watcher sees the save", split["detect_ms"], "about 100 ms"),
        ("of which: load the file (worker thread)", split["load_ms"], ""),
        ("of which: plan, build and check (worker thread)", split["prepare_ms"], ""),
        ("the swap itself, on the event loop", split["swap_ms"], ""),
        ("longest gap between two events, save → new version serving", swap["stall_ms"], goal_gap),
        ("the same, net of waiting for a CPU other processes held", swap["stall_net_of_cpu_contention_ms"], goal_gap),
        ("longest gap in equally long windows without a swap (net)", swap["quiet_window_max_gap_net_ms"], ""),
    ]
    lines = [
        f"{swap['swaps']} saves while {_n(swap['events_per_s'])} events/s flowed through two modules "
        f"(load average {swap['load_average'][0]}); every event processed exactly once: "
        f"{'yes' if swap['every_event_processed_once'] else 'NO'}.",
        "",
        "| measure | p50 | p95 | max | goal |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, figures, goal in measures:
        lines.append(f"| {label} | {_ms(figures['p50'])} | {_ms(figures['p95'])} | {_ms(figures['max'])} | {goal} |")
    return "\n".join(lines)


def replace_block(text: str, name: str, body: str) -> str:
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    head, found, rest = text.partition(start)
    _, found_end, tail = rest.partition(end)
    if not found or not found_end:
        raise SystemExit(f"{README}: no {start} ... {end} block")
    return f"{head}{start}\n{body}\n{end}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="JSON written by scripts/bench.py --out")
    parser.add_argument("--print", action="store_true", help="print the blocks, leave README.md alone")
    args = parser.parse_args(argv)
    try:
        report = json.loads(args.report.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"{args.report}: {exc}", file=sys.stderr)
        return 2
    if report.get("bench") != "hot_path" or "swap" not in report:
        print(f"{args.report}: not a full scripts/bench.py report (run it without --swap-only)", file=sys.stderr)
        return 2
    blocks = {"bench-figures": bench_block(report), "swap-figures": swap_block(report["swap"])}
    if args.print:
        print("\n\n".join(blocks.values()))
        return 0
    text = README.read_text(encoding="utf-8")
    for name, body in blocks.items():
        text = replace_block(text, name, body)
    README.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
