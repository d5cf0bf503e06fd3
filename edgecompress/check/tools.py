"""The real tools that can answer for a profile's rules (``tool:`` in the YAML), folded into a ``CheckReport``.

Each adapter runs its tool (Vela, TFLite Micro, edgetpu_compiler), replaces the rule-based placements with the
tool's answer, records the tool's figures under ``report.tool`` and keeps a compiled model, when the tool makes
one, in ``report.compiled_tflite`` (the pipeline writes it where the user asked). A missing tool raises
``ToolchainError``; the checker then lets the rules answer.

Example:
    >>> TOOLS["vela"](report, data, info, load_profile("ethos-u55"), None)  # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from edgecompress.check.memory import memory_verdict
from edgecompress.check.rules import _cpu_table, _Ctx, cpu_verdict
from edgecompress.profile import Profile


def _apply_vela(report: Any, data: bytes, model_info: Any, profile: Profile, inputs: Any) -> None:
    from edgecompress.toolchains.vela import (
        DEFAULT_ACCELERATOR,
        DEFAULT_MEMORY_MODE,
        DEFAULT_SYSTEM_CONFIG,
        run_vela,
    )

    options = profile.tool_options
    result = run_vela(data, accelerator_config=profile.params.get("accelerator_config", DEFAULT_ACCELERATOR),
                      system_config=options.get("system_config", DEFAULT_SYSTEM_CONFIG),
                      memory_mode=options.get("memory_mode", DEFAULT_MEMORY_MODE))
    report.compiled_tflite = result.optimised_tflite
    cpu = _cpu_table(profile)
    disagreements = []
    for verdict in report.operators:
        placed = result.placements.get(verdict.index)
        if placed is None:
            continue
        rules_on_npu = verdict.placement == "accelerator"
        if (placed == "npu") != rules_on_npu:
            disagreements.append({"index": verdict.index, "op": verdict.op, "rules": verdict.placement,
                                  "vela": placed, "rules_reason": verdict.reason})
        if placed == "npu":
            verdict.placement, verdict.reason, verdict.sources = "accelerator", "", ["vela"]
            continue
        ok, why_not = cpu_verdict(_Ctx(model_info, model_info.operators[verdict.index], profile.params), cpu)
        reason = "Vela placed it on the CPU: " + result.reasons.get(verdict.index, verdict.reason or "no reason printed")
        verdict.placement = "cpu" if ok else "unsupported"
        verdict.reason = reason if ok else f"{reason}; CPU fallback impossible: {why_not}"
        verdict.sources = ["vela"]
    report.tool["vela"] = result.to_dict()
    report.tool["rules_disagreements"] = disagreements
    mem = report.memory
    mem["vela_sram_bytes"], mem["vela_flash_bytes"] = result.sram_bytes, result.flash_bytes
    for key, limit in (("vela_sram_bytes", "ram_budget_bytes"), ("vela_flash_bytes", "flash_budget_bytes")):
        if mem.get(key) is not None and mem.get(limit) is not None and mem[key] > mem[limit]:
            mem["exceeded"].append({"limit": limit.split("_")[0], "what": f"Vela {key.split('_')[1]} use",
                                    "value": mem[key], "limit_bytes": mem[limit], "by": mem[key] - mem[limit]})
            mem["verdict"] = "exceeds"
    report.answered_by = "vela"


_TFLM_NODE = re.compile(r"Node (\w+) \(number (\d+)\) failed to (?:prepare|invoke)")
_TFLM_MISSING = re.compile(r"Didn't find op for builtin opcode '(\w+)'")


def _apply_tflm(report: Any, data: bytes, model_info: Any, profile: Profile, inputs: Any) -> None:
    from edgecompress.runtimes.micro import run_micro

    result = run_micro(data, inputs, model_info=model_info, samples=16 if inputs is not None else 4)
    report.tool["tflm"] = result.to_dict()
    report.answered_by = "tflm"
    rules_runs = not any(v.placement == "unsupported" for v in report.operators)
    report.tool["rules_disagreements"] = [] if rules_runs == result.invoked else [
        {"rules": "runs" if rules_runs else "cannot run", "tflm": "invoked" if result.invoked else result.error}]
    if result.invoked:
        fresh = memory_verdict(model_info, profile, arena_bytes=result.arena_bytes)
        fresh["arena_estimate_bytes"] = report.memory.get("arena_estimate_bytes")
        report.memory = fresh
        for verdict in report.operators:
            if verdict.placement == "unsupported":
                verdict.placement, verdict.reason = "cpu", verdict.reason + "; but TFLite Micro ran it"
        return
    failed = {int(i) for _, i in _TFLM_NODE.findall(result.error or "")}
    missing = set(_TFLM_MISSING.findall(result.error or ""))
    for verdict in report.operators:
        if verdict.index in failed or verdict.op in missing:
            verdict.placement, verdict.reason = "unsupported", f"TFLite Micro: {result.error}"
    if not any(v.placement == "unsupported" for v in report.operators):
        report.model_errors.append(f"TFLite Micro could not run the model: {result.error}")
        for verdict in report.operators:
            verdict.placement = "unsupported"
            verdict.reason = verdict.reason or f"TFLite Micro: {result.error}"


def _apply_edgetpu(report: Any, data: bytes, model_info: Any, profile: Profile, inputs: Any) -> None:
    from edgecompress.toolchains.edgetpu import run_edgetpu_compiler

    result = run_edgetpu_compiler(data)
    if result is None:
        report.warnings.append("edgetpu_compiler is not on PATH (it exists only for x86-64 Debian-based Linux): "
                               "the profile's rules answered")
        return
    for verdict, (mapped, status) in zip(report.operators, result.placements([v.op for v in report.operators]),
                                         strict=True):
        verdict.placement = "accelerator" if mapped else "cpu"
        verdict.reason = "" if mapped else f"edgetpu_compiler: {status}"
        verdict.sources = ["edgetpu_compiler"]
    report.tool["edgetpu_compiler"] = result.to_dict()
    if result.compiled_tflite:
        report.compiled_tflite = result.compiled_tflite
    if result.off_chip_bytes is not None:
        report.memory["spill_bytes"] = result.off_chip_bytes
        report.memory["cached_bytes"] = result.on_chip_used_bytes
        report.memory["verdict"] = "spills" if result.off_chip_bytes else "fits"
    report.answered_by = "edgetpu_compiler"


TOOLS: dict[str, Callable[..., None]] = {
    "vela": _apply_vela,
    "tflm": _apply_tflm,
    "edgetpu_compiler": _apply_edgetpu,
}
