"""Does the model fit: the profile's memory limits against the model's flash, RAM and arena needs.

Example:
    >>> memory_verdict(read_model("m.tflite"), load_profile("arduino-nano-33-ble"))["verdict"]  # doctest: +SKIP
    'fits'
"""

from __future__ import annotations

import math
from typing import Any

from edgecompress.arena import estimate_arena_bytes
from edgecompress.profile import Profile


def memory_verdict(model_info: Any, profile: Profile, *, arena_bytes: int | None = None) -> dict[str, Any]:
    """Compare the model with the profile's memory limits.

    Args:
        model_info: a ``ModelInfo``.
        profile: the target profile (``memory:`` section).
        arena_bytes: a measured arena size to use instead of the estimate.

    Returns:
        A mapping with the figures, ``verdict`` (``"fits"``, ``"spills"``, ``"exceeds"``) and ``exceeded``
        (one entry per limit: which, value, limit, by how many bytes).

    Example:
        >>> memory_verdict(info, load_profile("arduino-nano-33-ble"))["verdict"]  # doctest: +SKIP
        'fits'
    """
    mem = profile.memory
    out: dict[str, Any] = {"model_bytes": int(model_info.size_bytes), "param_bytes": int(model_info.param_bytes)}
    exceeded: list[dict[str, Any]] = []
    verdict = "fits"
    if mem.get("arena"):
        estimate = estimate_arena_bytes(model_info)
        out["arena_estimate_bytes"] = estimate["total"]
        out["arena_bytes"] = int(arena_bytes) if arena_bytes is not None else estimate["total"]
        out["arena_source"] = "tflm" if arena_bytes is not None else "estimate"
        headroom = float(mem.get("arena_headroom", 0.0))
        out["arena_with_headroom_bytes"] = int(math.ceil(out["arena_bytes"] * (1 + headroom)))
    if mem.get("ram_bytes"):
        budget = int(mem["ram_bytes"]) - int(mem.get("reserved_ram_bytes", 0))
        need = out.get("arena_with_headroom_bytes")
        what = "tensor arena (with headroom)"
        if need is None:
            need, what = int(model_info.size_bytes) * 2, "model loaded in RAM (x2 for runtime copies)"
        if mem.get("model_in_ram"):
            need += int(model_info.size_bytes)
            what += " + model"
        out.update(ram_bytes=int(mem["ram_bytes"]), ram_budget_bytes=budget, ram_needed_bytes=need)
        if need > budget:
            exceeded.append({"limit": "ram", "what": what, "value": need, "limit_bytes": budget, "by": need - budget})
    if mem.get("flash_bytes"):
        budget = int(mem["flash_bytes"]) - int(mem.get("reserved_flash_bytes", 0))
        out.update(flash_bytes=int(mem["flash_bytes"]), flash_budget_bytes=budget)
        if model_info.size_bytes > budget:
            exceeded.append({"limit": "flash", "what": "model flatbuffer", "value": int(model_info.size_bytes),
                             "limit_bytes": budget, "by": int(model_info.size_bytes) - budget})
    if mem.get("accelerator_cache_bytes"):
        usable = int(mem.get("accelerator_cache_usable_bytes", mem["accelerator_cache_bytes"]))
        spill = max(0, int(model_info.param_bytes) - usable)
        out.update(accelerator_cache_bytes=int(mem["accelerator_cache_bytes"]), cache_usable_bytes=usable,
                   cached_bytes=min(int(model_info.param_bytes), usable), spill_bytes=spill)
        if spill:
            verdict = "spills"
            out["warning"] = (f"parameters ({model_info.param_bytes} B) exceed the usable on-chip cache ({usable} B): "
                              f"{spill} B are streamed from host memory each inference (slower)")
    if exceeded:
        verdict = "exceeds"
    out["verdict"] = verdict
    out["exceeded"] = exceeded
    return out
