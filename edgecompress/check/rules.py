"""The rule vocabulary of target profiles: each ``check:`` name a profile may use, registered in ``CHECKS``.

A rule is ``{"check": NAME, "value": ..., "sources": [...], "when": {...}}``; ``CHECKS[NAME](ctx, rule)`` returns
the reason the operator breaks the rule (with the value found), or None. An operator table (the accelerator's,
or the CPU side's) is evaluated with ``table_verdict``: an empty reason list means supported. No target name
appears here: behaviour is data.

Example:
    >>> sorted(CHECKS)[:3]
    ['batch_one', 'constant_inputs', 'constant_values_in']
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from edgecompress.profile import Profile, merge, resolve

# What happens to an operator the accelerator refuses (a profile's ``unsupported:``).
UNSUPPORTED_BEHAVIOURS = ("cpu-fallback", "partition-rest-to-cpu", "fail")


@dataclasses.dataclass
class _Ctx:
    model: Any
    op: Any
    params: dict[str, Any]

    def tensor(self, index: int) -> Any:
        return self.model.tensors[index]

    def inputs(self) -> list[Any]:
        return [self.tensor(i) for i in self.op.inputs if i >= 0]

    def outputs(self) -> list[Any]:
        return [self.tensor(i) for i in self.op.outputs if i >= 0]

    def input(self, position: int) -> Any | None:
        if position < len(self.op.inputs) and self.op.inputs[position] >= 0:
            return self.tensor(self.op.inputs[position])
        return None

    def feature_maps(self, scope: str = "all") -> list[Any]:
        first = self.input(0)
        chosen = {"inputs": self.inputs(), "outputs": self.outputs(), "all": self.inputs() + self.outputs(),
                  "first_input": [first] if first is not None else []}[scope]
        return [t for t in chosen if not t.is_constant]

    def constant(self, position: int) -> Any | None:
        tensor = self.input(position)
        return None if tensor is None else self.model.constant(tensor.index)

    def option(self, key: str, default: Any = None) -> Any:
        return self.op.options.get(key, default)


def _shape(t: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in t.shape)


def _fmt(t: Any) -> str:
    return f"{t.name or '#' + str(t.index)} {list(_shape(t))}"


def _check_max_version(ctx: _Ctx, rule: dict[str, Any]) -> str | None:
    if ctx.op.version > rule["value"]:
        return f"op version {ctx.op.version} > max {rule['value']}"
    return None


def _check_min_param(ctx: _Ctx, rule: dict[str, Any]) -> str | None:
    key = rule["param"]
    if ctx.params.get(key, math.inf) < rule["value"]:
        return f"needs {key} >= {rule['value']}, profile has {key}={ctx.params.get(key)}"
    return None


def _check_tensor_types(ctx: _Ctx, rule: dict[str, Any]) -> str | None:
    for t in ctx.feature_maps(rule.get("scope", "all")):
        if t.dtype not in rule["value"]:
            return f"tensor {_fmt(t)} is {t.dtype}; allowed feature-map types: {', '.join(rule['value'])}"
    return None


def _check_input_types(ctx: _Ctx, rule: dict[str, Any]) -> str | None:
    for position, allowed in rule["value"].items():
        t = ctx.input(int(position))
        if t is not None and t.dtype not in allowed:
            return f"input {position} ({_fmt(t)}) is {t.dtype}; allowed: {', '.join(allowed)}"
    return None


def _check_max_rank(ctx: _Ctx, rule: dict[str, Any]) -> str | None:
    for t in ctx.feature_maps(rule.get("scope", "all")):
        if len(_shape(t)) > rule["value"]:
            return f"tensor {_fmt(t)} has rank {len(_shape(t))} > max {rule['value']}"
    return None


def _check_min_rank(ctx: _Ctx, rule: dict[str, Any]) -> str | None:
    for t in ctx.feature_maps(rule.get("scope", "all")):
        if len(_shape(t)) < rule["value"]:
            return f"tensor {_fmt(t)} has rank {len(_shape(t))} < min {rule['value']}"
    return None


def _check_leading_dims_one(ctx: _Ctx, rule: dict[str, Any]) -> str | None:
    keep = rule["value"]
    for t in ctx.feature_maps(rule.get("scope", "all")):
        shape = _shape(t)
        leading = shape[:-keep] if len(shape) > keep else ()
        if any(d != 1 for d in leading):
            return f"tensor {_fmt(t)}: only the innermost {keep} dimension(s) may exceed 1"
    return None


def _check_max_dim(ctx: _Ctx, rule: dict[str, Any]) -> str | None:
    for t in ctx.feature_maps(rule.get("scope", "all")):
        if any(d > rule["value"] for d in _shape(t)):
            return f"tensor {_fmt(t)} has a dimension > {rule['value']}"
    return None


def _check_max_elements(ctx: _Ctx, rule: dict[str, Any]) -> str | None:
    for t in ctx.feature_maps(rule.get("scope", "inputs")):
        n = math.prod(_shape(t))
        if n > rule["value"]:
            return f"tensor {_fmt(t)} has {n} elements > max {rule['value']}"
    return None


def _check_max_spatial_product(ctx: _Ctx, rule: dict[str, Any]) -> str | None:
    t = ctx.input(0)
    if t is None:
        return None
    shape = _shape(t)
    spatial = math.prod(shape[1:-1]) if len(shape) > 2 else 1
    if spatial > rule["value"]:
        return f"input {_fmt(t)}: height*width = {spatial} > max {rule['value']}"
    return None


def _check_constant_inputs(ctx: _Ctx, rule: dict[str, Any]) -> str | None:
    for position in rule["value"]:
        t = ctx.input(position)
        if t is not None and not t.is_constant:
            return f"input {position} ({_fmt(t)}) must be a compile-time constant but is computed at run time"
    return None


def _check_option_in(ctx: _Ctx, rule: dict[str, Any]) -> str | None:
    for key, allowed in rule["value"].items():
        value = ctx.option(key)
        if value is not None and value not in allowed:
            return f"{key}={value}; allowed: {', '.join(str(a) for a in allowed)}"
    return None


def _check_equal_dilation(ctx: _Ctx, rule: dict[str, Any]) -> str | None:
    w, h = ctx.option("dilation_w_factor", 1), ctx.option("dilation_h_factor", 1)
    if w != h:
        return f"dilation w={w} h={h} differ; must be equal"
    return None


def _check_max_dilation(ctx: _Ctx, rule: dict[str, Any]) -> str | None:
    w, h = ctx.option("dilation_w_factor", 1), ctx.option("dilation_h_factor", 1)
    if max(w, h) > rule["value"]:
        return f"dilation {w}x{h} > max {rule['value']}"
    return None


def _check_max_stride(ctx: _Ctx, rule: dict[str, Any]) -> str | None:
    w, h = ctx.option("stride_w", 1), ctx.option("stride_h", 1)
    if max(w, h) <= rule["value"]:
        return None
    if rule.get("unless_valid_undilated") and ctx.option("padding") == "VALID" and \
            ctx.option("dilation_w_factor", 1) == 1 and ctx.option("dilation_h_factor", 1) == 1:
        return None
    extra = " (larger strides only with VALID padding and no dilation)" if rule.get("unless_valid_undilated") else ""
    return f"stride {w}x{h} > max {rule['value']}{extra}"


def _check_strides_in(ctx: _Ctx, rule: dict[str, Any]) -> str | None:
    w, h = ctx.option("stride_w", 1), ctx.option("stride_h", 1)
    if [w, h] not in [list(p) for p in rule["value"]]:
        return f"stride {w}x{h} not in allowed {', '.join(f'{a}x{b}' for a, b in rule['value'])}"
    return None


def _kernel_hw(ctx: _Ctx) -> tuple[int, int] | None:
    if "filter_height" in ctx.op.options:
        return ctx.option("filter_height"), ctx.option("filter_width")
    weights = ctx.input(1)
    if weights is not None and len(_shape(weights)) == 4:
        shape = _shape(weights)  # CONV/TRANSPOSE_CONV: O,H,W,I ; DEPTHWISE: 1,H,W,O
        return shape[1], shape[2]
    return None


def _check_max_kernel(ctx: _Ctx, rule: dict[str, Any]) -> str | None:
    hw = _kernel_hw(ctx)
    if hw and max(hw) > rule["value"]:
        return f"kernel {hw[0]}x{hw[1]} > max {rule['value']}"
    return None


def _check_max_kernel_height(ctx: _Ctx, rule: dict[str, Any]) -> str | None:
    hw = _kernel_hw(ctx)
    if hw and hw[0] > rule["value"]:
        return f"kernel height {hw[0]} > max {rule['value']}"
    return None


def _check_max_kernel_area(ctx: _Ctx, rule: dict[str, Any]) -> str | None:
    hw = _kernel_hw(ctx)
    if hw and hw[0] * hw[1] > rule["value"]:
        return f"kernel area {hw[0]}x{hw[1]}={hw[0] * hw[1]} > max {rule['value']}"
    return None


def _check_max_abs_weight_sum(ctx: _Ctx, rule: dict[str, Any]) -> str | None:
    import numpy as np

    weights, tensor = ctx.constant(1), ctx.input(1)
    if weights is None or tensor is None:
        return None
    zero = np.asarray(tensor.zero_point or [0], dtype=np.int64)
    w = weights.astype(np.int64)
    # Sum per output channel: axis 0 for CONV/FC/TRANSPOSE_CONV (O,...), last axis for DEPTHWISE (1,H,W,O).
    axis = len(w.shape) - 1 if ctx.op.op == "DEPTHWISE_CONV_2D" else 0
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    zp = zero.reshape(-1, 1) if zero.size == moved.shape[0] else zero.reshape(1, 1)[:1]
    worst = int(np.abs(moved - zp).sum(axis=1).max()) if moved.size else 0
    if worst > rule["value"]:
        return f"sum of |weights| per output channel = {worst} > max {rule['value']}"
    return None


def _check_no_batch_axis(ctx: _Ctx, rule: dict[str, Any]) -> str | None:
    params = ctx.constant(1)
    data = ctx.input(0)
    if params is None or data is None:
        return None
    rank = len(_shape(data))
    if ctx.op.op in ("PAD", "PADV2", "MIRROR_PAD"):
        if params.size and int(abs(params.reshape(-1, 2)[0]).sum()) != 0:
            return "pads the batch dimension"
        return None
    axes = {int(a) % max(rank, 1) for a in params.reshape(-1)}
    if 0 in axes:
        return f"operates on the batch dimension (axes {sorted(axes)})"
    return None


def _reduced_axes(ctx: _Ctx) -> tuple[set[int], tuple[int, ...]] | None:
    params, data = ctx.constant(1), ctx.input(0)
    if params is None or data is None:
        return None
    shape = _shape(data)
    return {int(a) % max(len(shape), 1) for a in params.reshape(-1)}, shape


def _check_max_reduced_elements(ctx: _Ctx, rule: dict[str, Any]) -> str | None:
    found = _reduced_axes(ctx)
    if not found:
        return None
    axes, shape = found
    n = math.prod(shape[a] for a in axes)
    if n > rule["value"]:
        return f"reduces {n} elements > max {rule['value']}"
    return None


def _check_max_reduced_axis(ctx: _Ctx, rule: dict[str, Any]) -> str | None:
    found = _reduced_axes(ctx)
    if not found:
        return None
    axes, shape = found
    worst = max((shape[a] for a in axes), default=0)
    if worst > rule["value"]:
        return f"reduced axis of size {worst} > max {rule['value']}"
    return None


def _check_depth_reduction_needs_unit_dim(ctx: _Ctx, rule: dict[str, Any]) -> str | None:
    found = _reduced_axes(ctx)
    if not found:
        return None
    axes, shape = found
    if len(shape) >= 3 and (len(shape) - 1) in axes and all(d != 1 for d in shape[-3:]):
        return f"reduces over depth of input {list(shape)} with none of H, W, C equal to 1"
    return None


def _check_reduce_axes_in(ctx: _Ctx, rule: dict[str, Any]) -> str | None:
    found = _reduced_axes(ctx)
    if not found:
        return None
    axes, shape = found
    allowed = [set(a) for a in rule["value"]]
    if axes not in allowed:
        return f"reduces axes {sorted(axes)} of rank-{len(shape)} input; allowed: {rule['value']}"
    return None


def _check_batch_one(ctx: _Ctx, rule: dict[str, Any]) -> str | None:
    for t in ctx.feature_maps("inputs"):
        shape = _shape(t)
        if len(shape) >= 2 and shape[0] != 1:
            return f"tensor {_fmt(t)} has batch {shape[0]}; must be 1"
    return None


def _check_resize_scale_in(ctx: _Ctx, rule: dict[str, Any]) -> str | None:
    ifm, ofm = ctx.input(0), ctx.outputs()[0] if ctx.outputs() else None
    if ifm is None or ofm is None or len(_shape(ifm)) != 4:
        return None
    _, ih, iw, _ = _shape(ifm)
    _, oh, ow, _ = _shape(ofm)
    if (ih == iw == 1) or _shape(ifm) == _shape(ofm):
        return None
    align = bool(ctx.option("align_corners", False))

    def factor(o: int, i: int) -> float:
        if align:
            return (o - 1) / (i - 1) if i > 1 else float(o)
        return o / i

    fh, fw = factor(oh, ih), factor(ow, iw)
    if fh != fw:
        if not ((oh == 1 and fh == 1) or (ow == 1 and fw == 1)):
            return f"height scale {fh:g} != width scale {fw:g}"
        fh = fw = max(fh, fw)
    allowed = rule["half_pixel"] if ctx.option("half_pixel_centers", False) and "half_pixel" in rule \
        else rule["value"]
    if fh not in allowed:
        return f"scale factor {fh:g}x not in allowed {', '.join(f'{a}x' for a in allowed)}"
    return None


def _check_transpose_conv_shape(ctx: _Ctx, rule: dict[str, Any]) -> str | None:
    ifm = ctx.input(2)
    ofm = ctx.outputs()[0] if ctx.outputs() else None
    hw = _kernel_hw(ctx)
    if ifm is None or ofm is None or hw is None or len(_shape(ifm)) != 4:
        return None
    sh, sw = ctx.option("stride_h", 1), ctx.option("stride_w", 1)
    _, ih, iw, _ = _shape(ifm)
    _, oh, ow, _ = _shape(ofm)
    if ctx.option("padding") == "SAME":
        want = (ih * sh, iw * sw)
    else:
        want = (ih * sh + max(hw[0] - sh, 0), iw * sw + max(hw[1] - sw, 0))
    if (oh, ow) != want:
        return f"output {oh}x{ow} != expected {want[0]}x{want[1]} for {ctx.option('padding')} padding"
    return None


def _check_same_quantization(ctx: _Ctx, rule: dict[str, Any]) -> str | None:
    outs = ctx.outputs()
    if not outs:
        return None
    ref = (list(outs[0].scale), list(outs[0].zero_point))
    for t in ctx.feature_maps("inputs"):
        if (list(t.scale), list(t.zero_point)) != ref:
            return f"input {_fmt(t)} quantization differs from the output's"
    return None


def _check_max_inputs(ctx: _Ctx, rule: dict[str, Any]) -> str | None:
    n = len(ctx.inputs())
    if n > rule["value"]:
        return f"{n} inputs > max {rule['value']}"
    return None


def _check_per_tensor_weights(ctx: _Ctx, rule: dict[str, Any]) -> str | None:
    weights = ctx.input(1)
    if weights is not None and len(weights.scale) > 1:
        return f"weights {_fmt(weights)} are per-channel quantized ({len(weights.scale)} scales)"
    return None


def _check_constant_values_in(ctx: _Ctx, rule: dict[str, Any]) -> str | None:
    values = ctx.constant(rule["input"])
    if values is None:
        return None
    bad = sorted({int(v) for v in values.reshape(-1)} - set(rule["value"]))
    if bad:
        return f"input {rule['input']} has values {bad}; allowed: {rule['value']}"
    return None


def _check_unsupported(ctx: _Ctx, rule: dict[str, Any]) -> str | None:
    return rule.get("reason", "not supported")


CHECKS: dict[str, Callable[[_Ctx, dict[str, Any]], str | None]] = {
    "max_version": _check_max_version,
    "min_param": _check_min_param,
    "tensor_types": _check_tensor_types,
    "input_types": _check_input_types,
    "max_rank": _check_max_rank,
    "min_rank": _check_min_rank,
    "leading_dims_one": _check_leading_dims_one,
    "max_dim": _check_max_dim,
    "max_elements": _check_max_elements,
    "max_spatial_product": _check_max_spatial_product,
    "constant_inputs": _check_constant_inputs,
    "option_in": _check_option_in,
    "equal_dilation": _check_equal_dilation,
    "max_dilation": _check_max_dilation,
    "max_stride": _check_max_stride,
    "strides_in": _check_strides_in,
    "max_kernel": _check_max_kernel,
    "max_kernel_height": _check_max_kernel_height,
    "max_kernel_area": _check_max_kernel_area,
    "max_abs_weight_sum": _check_max_abs_weight_sum,
    "no_batch_axis": _check_no_batch_axis,
    "max_reduced_elements": _check_max_reduced_elements,
    "max_reduced_axis": _check_max_reduced_axis,
    "depth_reduction_needs_unit_dim": _check_depth_reduction_needs_unit_dim,
    "reduce_axes_in": _check_reduce_axes_in,
    "batch_one": _check_batch_one,
    "resize_scale_in": _check_resize_scale_in,
    "transpose_conv_shape": _check_transpose_conv_shape,
    "same_quantization": _check_same_quantization,
    "max_inputs": _check_max_inputs,
    "per_tensor_weights": _check_per_tensor_weights,
    "constant_values_in": _check_constant_values_in,
    "unsupported": _check_unsupported,
}


def condition_holds(ctx: _Ctx, when: dict[str, Any]) -> bool:
    """``when: {api_level: {lt: 29}, padding: SAME}``: profile parameters first, then operator options."""
    for key, expected in when.items():
        value = ctx.params.get(key, ctx.op.options.get(key))
        if isinstance(expected, dict):
            for cmp, bound in expected.items():
                if value is None:
                    return False
                ok = {"lt": value < bound, "le": value <= bound, "gt": value > bound, "ge": value >= bound,
                      "eq": value == bound, "ne": value != bound}[cmp]
                if not ok:
                    return False
        elif value != expected:
            return False
    return True


def _evaluate_rules(ctx: _Ctx, rules: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    reasons, sources = [], []
    for rule in rules:
        if "when" in rule and not condition_holds(ctx, rule["when"]):
            continue
        found = CHECKS[rule["check"]](ctx, rule)
        if found and found not in reasons:
            reasons.append(found)
            sources.extend(s for s in rule.get("sources", []) if s not in sources)
    return reasons, sources


def table_verdict(ctx: _Ctx, table: dict[str, Any], label: str) -> tuple[list[str], list[str]]:
    """Evaluate an operator table (``operators`` + ``all_operators`` rules); ([], []) means supported."""
    entry = table.get("operators", {}).get(ctx.op.op)
    if entry is None:
        return [f"{ctx.op.op} is not in the {label} operator list"], list(table.get("operator_list_sources", []))
    rules = list(table.get("all_operators", []))
    if table.get("tensor_types"):
        rules.insert(0, {"check": "tensor_types", "value": table["tensor_types"],
                         "sources": list(table.get("tensor_type_sources", []))})
    exempt = set(entry.get("exempt", []))
    rules = [r for r in rules if r["check"] not in exempt]
    return _evaluate_rules(ctx, rules + list(entry.get("rules", [])))


def _cpu_table(profile: Profile) -> dict[str, Any] | None:
    """The CPU side's operator table, ``operators_from:`` applied; None on a target without CPU fallback."""
    cpu = profile.cpu
    if not cpu:
        return None
    if cpu.get("operators_from"):
        shared = resolve(cpu["operators_from"])
        return merge(shared, {k: v for k, v in cpu.items() if k != "operators_from"})
    return cpu


def cpu_verdict(ctx: _Ctx, cpu: dict[str, Any] | None) -> tuple[bool, str]:
    """Whether the CPU side can run the operator, and why not."""
    if cpu is None:
        return False, "no CPU fallback on this target"
    if cpu.get("builtin_operators"):
        if ctx.op.custom:
            return False, f"custom operator {ctx.op.op} has no kernel in {cpu.get('name', 'the CPU runtime')}"
        return True, ""
    reasons, _ = table_verdict(ctx, cpu, cpu.get("name", "CPU runtime"))
    return (not reasons), "; ".join(reasons)
