"""Latency: measured on a runtime, or estimated from a target's cost model, and always labelled which.

Every row says its evidence:

- ``measured-device``: timed on the user's device (``--device ssh://...`` or ``adb://...``);
- ``measured-host``: timed with LiteRT + XNNPACK on this machine, with the target's thread count (an x86 host
  says little about an Arm board: it is a sanity check, not the device's figure);
- ``compiler-estimate``: the target's compiler predicted it (Vela's cycle count for Ethos-U55, at the profile's
  NPU clock);
- ``model-estimate``: the profile's ``cost_model`` (fitted to published figures, see
  ``data/latency/calibration.yaml`` and ``benchmarks/estimator_error.py``) applied per operator.

The cost model is a per-operator roofline with overheads. For an operator placed on the accelerator (or on the
CPU, per ``check``) with ``macs`` multiply-accumulates and ``bytes`` of activations and weights::

    t = max(macs / (macs_per_cycle * clock_hz * cores_used * efficiency[kind]), bytes / bandwidth) + op_overhead

summed over operators, plus ``invoke_overhead`` and, for accelerators with an on-chip weight cache (Edge TPU),
the streaming time of the weights that do not fit: ``(weight_bytes - cache_bytes) / stream_bandwidth``.

The pipeline (``edgecompress.pipeline.targets.bench_model``) puts the rows together: it runs ``check`` for the
placements the estimate needs.

Example:
    >>> rows = bench_model("model_int8.tflite", "raspberry-pi-4")  # doctest: +SKIP
    >>> [(r.evidence, r.median_ms) for r in rows]  # doctest: +SKIP
    [('measured-host', 0.61), ('model-estimate', 9.8)]
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from edgecompress.errors import ProfileError
from edgecompress.profile import Profile, load_profile

# Bounds on what a user may ask of one bench run: a higher count is a typo, and an interpreter asked for a
# million threads crashes inside XNNPACK instead of failing.
MAX_RUNS = 100_000
MAX_WARMUP = 10_000
MAX_THREADS = 256
EVIDENCE = ("measured-device", "measured-host", "compiler-estimate", "model-estimate")
_CONV = {"CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL", "CONV_3D"}
_FC = {"FULLY_CONNECTED", "BATCH_MATMUL"}


@dataclasses.dataclass
class OperatorCost:
    """The cost-relevant facts of one operator: its kind, MACs, and the bytes it moves.

    Args:
        kind: ``"conv"``, ``"depthwise"``, ``"fc"`` or ``"other"``.
        macs: multiply-accumulates (``edgecompress.tflite`` convention).
        activation_bytes: input + output feature-map bytes (constants excluded).
        weight_bytes: constant-tensor bytes the operator reads.
        op: the TFLite operator name, for tables.
        placement: ``"accelerator"`` or ``"cpu"``.
    """

    kind: str
    macs: int
    activation_bytes: int
    weight_bytes: int
    op: str = ""
    placement: str = "accelerator"


@dataclasses.dataclass
class BenchRow:
    """One latency row: a figure and the evidence behind it.

    Args:
        target: the profile name (or ``"host"`` for a host measurement with no target).
        evidence: one of ``EVIDENCE``.
        model: the model file name.
        dtype: the model's input type (``int8``, ``float32``).
        median_ms / p90_ms / p99_ms / min_ms / mean_ms: statistics (estimates set median only).
        runs: timed runs (0 for estimates).
        device / runtime / threads / init_ms / peak_rss_bytes: where and how it was measured.
        operators: per-operator rows (estimates: ``{"index", "op", "placement", "macs", "ms"}``).
        notes: what the reader must know (estimate status, host caveat, fit error).
    """

    target: str
    evidence: str
    model: str
    dtype: str = ""
    median_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    min_ms: float | None = None
    mean_ms: float | None = None
    runs: int = 0
    device: str = ""
    runtime: str = ""
    threads: int | None = None
    init_ms: float | None = None
    peak_rss_bytes: int | None = None
    operators: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The order in which a device target's figure is trusted: a run on the device, then the cost model fitted to
# published device figures (it states its held-out error), then the compiler's own prediction (Vela labels its
# performance estimate experimental). A host run is never a device target's figure: it is x86 timing.
BEST_EVIDENCE = ("measured-device", "model-estimate", "compiler-estimate")


def best_row(rows: list[BenchRow], target: str) -> BenchRow:
    """The row whose figure stands for ``target``: its best evidence with a figure, never a host timing.

    Args:
        rows: the rows of one ``bench`` run (``measured_rows`` + estimates).
        target: the profile name the rows are for.

    Returns:
        The first row of ``target`` with a ``median_ms`` in ``BEST_EVIDENCE`` order, or, when no such row has a
        figure, a row with ``evidence="none"`` and no figure whose notes say why (the host row is not promoted).

    Example:
        >>> best_row(bench_model("m.tflite", "esp32-s3"), "esp32-s3").evidence  # doctest: +SKIP
        'model-estimate'
    """
    for evidence in BEST_EVIDENCE:
        for row in rows:
            if row.target == target and row.evidence == evidence and row.median_ms is not None:
                return row
    model = rows[0].model if rows else ""
    reasons = [note for row in rows if row.target == target and row.median_ms is None for note in row.notes]
    return BenchRow(target=target, evidence="none", model=model,
                    notes=[f"no {target} figure: not measured on the device and not estimated"] + reasons)


# --------------------------------------------------------------------------------------------------- estimate

def operator_costs(model_info: Any, placements: list[str] | None = None) -> list[OperatorCost]:
    """``OperatorCost`` per operator of a ``ModelInfo`` (``edgecompress.tflite.read_model``).

    Args:
        model_info: the parsed model.
        placements: per-operator ``"accelerator"`` / ``"cpu"`` (from ``check``); None: all accelerator.

    Returns:
        One ``OperatorCost`` per operator, in execution order.
    """
    tensors = model_info.tensors
    costs = []
    for i, op in enumerate(model_info.operators):
        act = weight = 0
        for index in [*op.inputs, *op.outputs]:
            if index < 0 or index >= len(tensors):
                continue
            tensor = tensors[index]
            if tensor.is_constant:
                weight += tensor.nbytes
            else:
                act += tensor.nbytes
        if op.op == "DEPTHWISE_CONV_2D":
            kind = "depthwise"
        elif op.op in _FC:
            kind = "fc"
        elif op.op in _CONV:
            kind = "conv"
        else:
            kind = "other"
        placement = placements[i] if placements else "accelerator"
        costs.append(OperatorCost(kind, int(op.macs), act, weight, op.op, placement))
    return costs


def _unit_seconds(cost: OperatorCost, unit: dict[str, Any], threads: int | None) -> float:
    cores = int(unit.get("cores", 1))
    used = min(cores, threads) if threads else min(cores, int(unit.get("threads", cores)))
    peak = float(unit["macs_per_cycle"]) * float(unit["clock_hz"]) * max(1, used)
    efficiency = unit.get("efficiency", {})
    bandwidth = float(unit.get("bandwidth_bytes_per_s", 1e12))
    weight_bandwidth = float(unit.get("weight_bandwidth_bytes_per_s", bandwidth))
    memory = cost.activation_bytes / bandwidth + cost.weight_bytes / weight_bandwidth
    compute = 0.0
    if cost.kind != "other" and cost.macs:
        compute = cost.macs / (peak * float(efficiency.get(cost.kind, efficiency.get("conv", 1.0))))
    return max(compute, memory) + float(unit.get("op_overhead_s", 0.0))


def estimate_seconds(costs: list[OperatorCost], cost_model: dict[str, Any], *,
                     threads: int | None = None) -> tuple[float, list[float]]:
    """Total and per-operator seconds of ``costs`` under ``cost_model`` (a profile's ``cost_model:``).

    Args:
        costs: ``OperatorCost`` rows (with placements).
        cost_model: the mapping with ``accelerator:`` and optional ``cpu:`` units.
        threads: override the units' default thread count (multi-core CPUs).

    Returns:
        ``(total_seconds, per_operator_seconds)``.

    Example:
        >>> unit = {"macs_per_cycle": 1, "clock_hz": 1e9, "efficiency": {"conv": 0.5}}
        >>> estimate_seconds([OperatorCost("conv", 10**9, 0, 0)], {"accelerator": unit})[0]
        2.0
    """
    accelerator = cost_model["accelerator"]
    per_op = []
    for cost in costs:
        unit = cost_model.get("cpu", accelerator) if cost.placement == "cpu" else accelerator
        per_op.append(_unit_seconds(cost, unit, threads))
    total = sum(per_op) + float(accelerator.get("invoke_overhead_s", 0.0))
    cache = accelerator.get("weight_cache_bytes")
    if cache is not None:
        on_accelerator = sum(c.weight_bytes for c in costs if c.placement != "cpu")
        streamed = max(0, on_accelerator - int(cache))
        total += streamed / float(accelerator["stream_bandwidth_bytes_per_s"])
    if any(c.placement == "cpu" for c in costs) and any(c.placement != "cpu" for c in costs):
        total += float(cost_model.get("transfer_overhead_s", 0.0)) * _partition_switches(costs)
    return total, per_op


def _partition_switches(costs: list[OperatorCost]) -> int:
    return sum(1 for a, b in zip(costs, costs[1:], strict=False) if (a.placement == "cpu") != (b.placement == "cpu"))


def target_cost_model(profile: Profile) -> dict[str, Any]:
    """The profile's ``cost_model``; a ``ProfileError`` when it has no accelerator unit to estimate with.

    Args:
        profile: the target profile.

    Returns:
        The ``cost_model`` mapping.

    Example:
        >>> "accelerator" in target_cost_model(load_profile("coral-edgetpu"))  # doctest: +SKIP
        True
    """
    cost_model = profile.cost_model
    if "accelerator" not in cost_model:
        raise ProfileError(f"target {profile.name}: expected a cost_model with an accelerator unit. Received: none. "
                           "Measure on the device with --device instead.")
    return cost_model


def estimate_row(model_name: str, model_info: Any, profile: Profile, placements: list[str], *, runs_as_is: bool,
                 threads: int | None = None) -> BenchRow:
    """The ``model-estimate`` row for one target, from the operators' placements and the profile's cost model.

    Args:
        model_name: the model file name, for the row.
        model_info: the parsed model (``edgecompress.tflite.read_model``).
        profile: the target profile.
        placements: per-operator ``"accelerator"`` / ``"cpu"`` (``check``'s, unsupported ones costed on the CPU).
        runs_as_is: False when ``check`` says the model cannot run on the target (noted on the row).
        threads: CPU threads (None: the profile's ``cost_model.threads``).

    Returns:
        A ``BenchRow`` with ``evidence="model-estimate"`` and per-operator rows.

    Example:
        >>> estimate_row("m.tflite", info, profile, ["accelerator"] * 3, runs_as_is=True).median_ms  # doctest: +SKIP
        2.7
    """
    cost_model = target_cost_model(profile)
    target = profile.name
    costs = operator_costs(model_info, placements)
    total, per_op = estimate_seconds(costs, cost_model, threads=threads)
    operators = [{"index": i, "op": c.op, "placement": c.placement, "macs": c.macs, "ms": round(s * 1000, 4)}
                 for i, (c, s) in enumerate(zip(costs, per_op, strict=True))]
    notes = [f"estimate from the {target} cost model ({cost_model.get('status', 'unfitted')}); "
             f"{cost_model.get('held_out_error', 'error unknown')}"]
    if not runs_as_is:
        notes.append("check says this model cannot run on the target as is; unsupported operators were costed "
                     "on the CPU")
    dtype = model_info.tensors[model_info.inputs[0]].dtype if model_info.inputs else ""
    return BenchRow(target=target, evidence="model-estimate", model=model_name, dtype=dtype,
                    median_ms=round(total * 1000, 4), runs=0,
                    threads=threads or cost_model.get("accelerator", {}).get("threads"), operators=operators,
                    notes=notes)


def compiler_estimate(model: str | os.PathLike[str], target: str, *,
                      params: dict[str, Any] | None = None) -> BenchRow | None:
    """The ``compiler-estimate`` row when the target's compiler predicts latency (Vela for Ethos-U), else None.

    Vela's ``cycles_total`` is divided by the NPU clock of the profile's ``cost_model.accelerator.clock_hz``
    (Vela's own summary assumes its system config's clock).

    Args:
        model: a ``.tflite`` path.
        target: a profile name.
        params: profile parameters (``accelerator_config=ethos-u55-128`` ...).

    Returns:
        A ``BenchRow`` or None for targets without a predicting compiler.
    """
    profile = load_profile(target, **(params or {}))
    if profile.tool != "vela":
        return None
    from edgecompress.toolchains.vela import run_vela

    options = profile.tool_options
    accelerator_config = str(profile.params.get("accelerator_config", "ethos-u55-256"))
    result = run_vela(model, accelerator_config=accelerator_config,
                      system_config=options.get("system_config", "Ethos_U55_High_End_Embedded"),
                      memory_mode=options.get("memory_mode", "Shared_Sram"))
    clock = profile.cost_model.get("accelerator", {}).get("clock_hz")
    if result.cycles_total and clock:
        ms = result.cycles_total / float(clock) * 1000.0
    elif result.inference_time_s is not None:
        ms = result.inference_time_s * 1000.0
    else:
        return None
    notes = [f"Vela {result.version} {accelerator_config} cycle estimate ({result.cycles_total} cycles) at "
             f"{float(clock) / 1e6:g} MHz; Vela labels its performance estimate experimental" if clock else
             f"Vela {result.version} {accelerator_config} estimate at its system config's clock"]
    if result.cpu_operators:
        notes.append(f"{result.cpu_operators} operators stay on the Cortex-M and are not in Vela's figure")
    return BenchRow(target=target, evidence="compiler-estimate", model=Path(model).name, median_ms=round(ms, 4),
                    runtime=f"vela {result.version}", notes=notes)


# --------------------------------------------------------------------------------------------------- measure

def make_runner(device: str | None, *, target_delegate: str | None = None, **options: Any) -> Any:
    """The runner for a ``--device`` URI: None/``host`` -> host, ``ssh://`` -> ssh, ``adb://`` -> adb.

    Args:
        device: the URI.
        target_delegate: the profile's delegate (adb flags).
        **options: runner options (identity, known_hosts, remote_python, accept_new_host_key, timeout,
            benchmark_binary, op_profiling).

    Returns:
        An object with ``device`` and ``measure(model, runs=, warmup=, threads=)``.
    """
    from edgecompress.errors import RemoteError
    from edgecompress.runtimes.device import parse_device_uri

    kind = parse_device_uri(device).kind
    if kind == "host":
        from edgecompress.runtimes.host import HostDevice

        return HostDevice()
    if kind == "ssh":
        from edgecompress.runtimes.ssh import SshRunner

        keys = ("identity", "known_hosts", "remote_python", "accept_new_host_key", "timeout")
        return SshRunner(device, **{k: v for k, v in options.items() if k in keys and v is not None})
    if kind == "adb":
        from edgecompress.runtimes.adb import DELEGATE_FLAGS, AdbRunner

        delegate = target_delegate if target_delegate in DELEGATE_FLAGS else "xnnpack"
        keys = ("benchmark_binary", "op_profiling", "timeout")
        kwargs = {k: v for k, v in options.items() if k in keys and v is not None}
        kwargs.setdefault("benchmark_binary", None)
        return AdbRunner(device, delegate=delegate, **kwargs)
    raise RemoteError(f"expected --device ssh://user@host[:port] or adb://SERIAL. Received: {device!r}. "
                      "Omit --device to measure on this machine.")


def _row_from_measurement(measurement: Any, target: str, evidence: str) -> BenchRow:
    t = measurement.timings
    return BenchRow(target=target, evidence=evidence, model=measurement.model, dtype=measurement.dtype,
                    median_ms=t.median_ms, p90_ms=t.p90_ms, p99_ms=t.p99_ms, min_ms=t.min_ms, mean_ms=t.mean_ms,
                    runs=t.runs, device=measurement.device, runtime=measurement.runtime, threads=measurement.threads,
                    init_ms=measurement.init_ms, peak_rss_bytes=measurement.peak_rss_bytes,
                    operators=measurement.operators, notes=list(measurement.notes))


def target_threads(target: str | None, params: dict[str, Any] | None = None) -> int | None:
    """The profile's thread count (``cost_model.accelerator.threads``), or None."""
    if not target:
        return None
    return load_profile(target, **(params or {})).threads


def measured_rows(model: str | os.PathLike[str], target: str, *, device: str | None = None, runs: int = 50,
                  warmup: int = 5, threads: int | None = None, float_model: str | os.PathLike[str] | None = None,
                  params: dict[str, Any] | None = None, **runner_options: Any) -> list[BenchRow]:
    """The measured rows of ``bench``: ``model`` (and ``float_model``) timed on ``device`` or this host.

    Args:
        model: the ``.tflite`` to time.
        target: a profile name or ``"all"`` (its thread count and delegate; ``"all"``: the host's defaults).
        device: ``ssh://user@host[:port]``, ``adb://SERIAL`` or None (this machine).
        runs / warmup: timed and untimed runs.
        threads: interpreter threads (None: the target's).
        float_model: a float32 ``.tflite`` of the same network, measured beside ``model``.
        params: profile parameters.
        **runner_options: passed to the runner (see ``make_runner``).

    Returns:
        One ``BenchRow`` per measured file (``measured-device`` or ``measured-host``).

    Example:
        >>> measured_rows("m.tflite", "raspberry-pi-4")[0].evidence  # doctest: +SKIP
        'measured-host'
    """
    from edgecompress.errors import InvalidModelError

    paths = [Path(model)] + ([Path(float_model)] if float_model else [])
    for path in paths:
        if not path.is_file():
            raise InvalidModelError(f"{path}: expected a .tflite file. Received: no such file. Check the path.")
    if target != "all":
        load_profile(target, **(params or {}))  # unknown names fail before anything runs
    if runs < 1 or warmup < 0:
        raise ProfileError(f"expected --runs >= 1 and --warmup >= 0. Received: runs={runs}, warmup={warmup}. "
                           "Pass positive counts.")
    if runs > MAX_RUNS or warmup > MAX_WARMUP:
        raise ProfileError(f"expected --runs <= {MAX_RUNS} and --warmup <= {MAX_WARMUP}. Received: runs={runs}, "
                           f"warmup={warmup}. Medians settle long before that; pass smaller counts.")
    if threads is not None and not 1 <= threads <= MAX_THREADS:
        raise ProfileError(f"expected --threads from 1 to {MAX_THREADS}. Received: {threads}. Pass the board's core "
                           "count (or leave it out for the target's).")
    measured_target = "host" if target == "all" and device is None else target
    run_threads = threads if threads is not None else (None if target == "all" else target_threads(target, params))
    delegate = None if target == "all" else load_profile(target, **(params or {})).delegate
    runner = make_runner(device, target_delegate=delegate, **runner_options)
    evidence = "measured-host" if device in (None, "", "host") else "measured-device"
    if hasattr(runner, "measure_many"):
        measurements = runner.measure_many(paths, runs=runs, warmup=warmup, threads=run_threads)
    else:
        measurements = [runner.measure(p, runs=runs, warmup=warmup, threads=run_threads) for p in paths]
    rows = [_row_from_measurement(m, measured_target, evidence) for m in measurements]
    if evidence == "measured-host" and target != "all":
        for row in rows:
            row.notes.append(f"measured on this host with {target}'s thread count, not on a {target}")
    return rows
