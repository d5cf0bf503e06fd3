"""Estimator error: each target's cost model against every published calibration figure.

For every figure in ``edgecompress/data/latency/calibration.yaml`` this prints the cost model's estimate (from the
constants in the target's profile, ``targets/<name>.yaml`` ``cost_model:``) beside the published latency, marks
whether the figure was used by the fit or held out, and prints the median absolute error on held-out figures,
per target and overall (the goal is within 35 %).

    PYTHONPATH=$PWD python benchmarks/estimator_error.py            # the table
    PYTHONPATH=$PWD python benchmarks/estimator_error.py --fit      # refit the free constants on the fit rows
    PYTHONPATH=$PWD python benchmarks/estimator_error.py --fit --write   # ... and write them into the profiles

The fit touches only the constants listed in ``FREE`` (log-space least squares on ``role: fit`` rows); every
other constant is a hardware figure with its source in the profile.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "edgecompress" / "data"

# Constants the fit may move, per target and unit (dotted paths inside cost_model).
FREE = {
    "coral-edgetpu": ["accelerator.efficiency.conv", "accelerator.op_overhead_s",
                      "accelerator.stream_bandwidth_bytes_per_s"],
    "android-nnapi": ["accelerator.efficiency.conv", "accelerator.op_overhead_s", "accelerator.invoke_overhead_s",
                      "cpu.efficiency.conv", "cpu.op_overhead_s"],
    "raspberry-pi-4": ["accelerator.efficiency.conv"],
    "arduino-nano-33-ble": ["accelerator.efficiency.conv"],
    "esp32-s3": ["accelerator.efficiency.conv"],
    "ethos-u55": ["accelerator.efficiency.conv"],
}

# CPU units whose efficiency is tied to the fitted accelerator efficiency by a stated ratio (see profile notes).
TIED_CPU = {"raspberry-pi-4": 0.5, "arduino-nano-33-ble": 54 / 2300, "esp32-s3": 54 / 2300}


def load_figures() -> dict:
    import yaml

    return yaml.safe_load((DATA / "latency" / "calibration.yaml").read_text())


def load_models() -> dict:
    return json.loads((DATA / "latency" / "calibration_models.json").read_text())["models"]


def costs_for(model: dict, unit: str):
    from edgecompress.bench import OperatorCost

    placement = "cpu" if unit == "cpu" else "accelerator"
    return [OperatorCost(kind, macs, acts, weights, placement=placement)
            for kind, macs, acts, weights in model["operators"]]


def _get(tree: dict, path: str):
    for key in path.split("."):
        tree = tree[key]
    return tree


def _set(tree: dict, path: str, value) -> None:
    keys = path.split(".")
    for key in keys[:-1]:
        tree = tree.setdefault(key, {})
    tree[keys[-1]] = value


def predict(cost_model: dict, figure: dict, models: dict) -> float:
    from edgecompress.bench import estimate_seconds

    unit = figure.get("unit", "accelerator")
    cm = copy.deepcopy(cost_model)
    if unit == "cpu":
        cm = {"accelerator": {**cm["cpu"], "invoke_overhead_s": cm["cpu"].get("invoke_overhead_s", 0.0)}}
    for key, value in (figure.get("conditions") or {}).items():
        cm["accelerator"][key] = value
    total, _ = estimate_seconds(costs_for(models[figure["model"]], unit), cm)
    return total * 1000.0


def cost_model_of(target: str) -> dict:
    from edgecompress.profile import load_profile

    return copy.deepcopy(load_profile(target).data.get("cost_model") or {})


def fit(target: str, cost_model: dict, figures: list[dict], models: dict) -> dict:
    from scipy.optimize import least_squares

    free = FREE.get(target, [])
    rows = [f for f in figures if f["role"] == "fit"]
    if not free or not rows:
        return cost_model
    start = [math.log(_get(cost_model, p)) for p in free]

    def residuals(logs):
        trial = copy.deepcopy(cost_model)
        for path, value in zip(free, logs, strict=True):
            _set(trial, path, math.exp(value))
        return [math.log(predict(trial, f, models) / f["ms"]) for f in rows]

    result = least_squares(residuals, start, bounds=([v - 12 for v in start], [v + 12 for v in start]))
    fitted = copy.deepcopy(cost_model)
    for path, value in zip(free, result.x, strict=True):
        _set(fitted, path, float(f"{math.exp(value):.4g}"))
    return fitted


def derive_ratios(cost_models: dict, ratios: list[dict]) -> None:
    """Targets calibrated by a published speed ratio to another target (same model measured on both)."""
    for ratio in ratios:
        source, target = cost_models[ratio["from"]], cost_models[ratio["target"]]
        src, dst = source["accelerator"], target["accelerator"]
        peak_src = src["macs_per_cycle"] * src["clock_hz"] * src.get("cores", 1)
        peak_dst = dst["macs_per_cycle"] * dst["clock_hz"] * dst.get("cores", 1)
        eff = src["efficiency"]["conv"] * ratio["speedup"] * peak_src / peak_dst
        dst.setdefault("efficiency", {})["conv"] = float(f"{eff:.4g}")
        if "cpu" in target and "cpu" in source:
            cpu_ratio = source["cpu"]["efficiency"]["conv"] / src["efficiency"]["conv"]
            target["cpu"].setdefault("efficiency", {})["conv"] = float(f"{eff * cpu_ratio:.4g}")


def write_profile(target: str, cost_model: dict) -> None:
    """Replace the ``cost_model:`` block of ``targets/<target>.yaml`` (other sections untouched)."""
    import yaml

    path = DATA / "targets" / f"{target}.yaml"
    lines = path.read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("cost_model:"))
    end = next((i for i in range(start + 1, len(lines)) if lines[i][:1] not in (" ", "\n", "#", "-")), len(lines))
    block = yaml.safe_dump({"cost_model": cost_model}, sort_keys=False, width=110, default_flow_style=False)
    path.write_text("".join(lines[:start]) + block + "".join(lines[end:]))


def table(cost_models: dict, calibration: dict, models: dict) -> tuple[list[tuple], dict[str, list[float]]]:
    rows, held = [], {}
    for figure in calibration["figures"]:
        target = figure["target"]
        estimate = predict(cost_models[target], figure, models)
        error = (estimate - figure["ms"]) / figure["ms"]
        unit = figure.get("unit", "accelerator")
        label = target + (" (CPU)" if unit == "cpu" else "")
        rows.append((label, figure["model"], figure["ms"], estimate, error, figure["role"], figure["source"]))
        if figure["role"] == "held-out":
            held.setdefault(label, []).append(abs(error))
    return rows, held


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true", help="refit the free constants on the fit rows")
    parser.add_argument("--write", action="store_true", help="with --fit: write the constants into the profiles")
    args = parser.parse_args(argv)
    calibration, models = load_figures(), load_models()
    targets = sorted({f["target"] for f in calibration["figures"]} | {r["target"] for r in calibration["ratios"]})
    cost_models = {t: cost_model_of(t) for t in targets}
    if args.fit:
        for target in targets:
            figures = [f for f in calibration["figures"] if f["target"] == target]
            cost_models[target] = fit(target, cost_models[target], figures, models)
            if target in TIED_CPU:
                acc = cost_models[target]["accelerator"]["efficiency"]["conv"]
                cost_models[target]["cpu"]["efficiency"]["conv"] = float(f"{acc * TIED_CPU[target]:.4g}")
        derive_ratios(cost_models, calibration["ratios"])
    rows, held = table(cost_models, calibration, models)
    print(f"{'target':28s} {'model':24s} {'published':>10s} {'estimate':>10s} {'error':>8s}  {'role':8s} source")
    for label, model, published, estimate, error, role, source in rows:
        print(f"{label:28s} {model:24s} {published:10.3f} {estimate:10.3f} {error:+8.1%}  {role:8s} {source}")
    print()
    print("median absolute error on held-out figures:")
    for label, errors in held.items():
        print(f"  {label:28s} {statistics.median(errors):6.1%}  ({len(errors)} figures)")
    pooled = [e for errors in held.values() for e in errors]
    print(f"  {'all targets':28s} {statistics.median(pooled):6.1%}  ({len(pooled)} figures; goal <= 35%)")
    no_holdout = [t for t in targets if not any(f["target"] == t and f["role"] == "held-out"
                                                for f in calibration["figures"])]
    if no_holdout:
        print(f"  no held-out figure (error unknown): {', '.join(no_holdout)}")
    if args.fit and args.write:
        for target in targets:
            cost_models[target].setdefault("status", "fitted")
            errors = held.get(target)
            cost_models[target]["held_out_error"] = (
                f"median absolute error {statistics.median(errors):.0%} on {len(errors)} held-out published "
                "figure(s)" if errors else "no held-out published figure: error unknown")
            write_profile(target, cost_models[target])
        print("wrote the fitted constants into the profiles")
    print(f"\ncommand: PYTHONPATH=$PWD python benchmarks/estimator_error.py{' --fit' if args.fit else ''}"
          f"{' --write' if args.write else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
