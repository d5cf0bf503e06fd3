"""Target profiles (``targets/*.yaml``) and the generic checker: which operators run where, and does it fit.

A profile is data: the accelerator's operator table with per-operator rules, what happens to an operator the
accelerator refuses (``unsupported``: ``cpu-fallback``, ``partition-rest-to-cpu`` or ``fail``), the CPU side
that catches fallbacks, and the memory limits. The checker below knows a small vocabulary of rule *checks*
(``max_rank``, ``max_stride``, ``constant_inputs`` ...) and evaluates whatever a profile lists; no target name
appears in it. Files whose name starts with ``_`` are shared fragments (``base:`` / ``operators_from:``), not
targets.

Example:
    >>> from edgecompress.check.checker import load_profile, check
    >>> from edgecompress.tflite import read_model
    >>> report = check(read_model("model_int8.tflite"), load_profile("coral-edgetpu"))  # doctest: +SKIP
    >>> report.verdict  # doctest: +SKIP
    'accelerated'
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import re
from collections.abc import Callable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from edgecompress.errors import ProfileError

PLACEMENTS = ("accelerator", "cpu", "unsupported")
VERDICTS = ("accelerated", "fallback", "unsupported")
UNSUPPORTED_BEHAVIOURS = ("cpu-fallback", "partition-rest-to-cpu", "fail")
ANSWERED_BY = ("rules", "vela", "tflm", "edgetpu_compiler")
_ARENA_ALIGNMENT = 16


# --------------------------------------------------------------------------------------------------- profiles

@dataclasses.dataclass
class Profile:
    """A loaded, validated target profile with its parameters resolved.

    Args:
        name: the profile name (file stem), e.g. ``"coral-edgetpu"``.
        data: the merged profile mapping (base fragments applied, parameter overrides applied).
        params: the parameter values in effect (defaults filled in).
    """

    name: str
    data: dict[str, Any]
    params: dict[str, Any]

    @property
    def description(self) -> str:
        return self.data["description"]

    @property
    def status(self) -> str:
        return self.data["status"]

    @property
    def runtime(self) -> str:
        return self.data["runtime"]

    @property
    def tool(self) -> str | None:
        return self.data.get("tool")

    @property
    def unsupported(self) -> str:
        return self.data["unsupported"]

    @property
    def memory(self) -> dict[str, Any]:
        return self.data.get("memory", {})

    @property
    def operators(self) -> dict[str, Any]:
        return self.data.get("operators", {})

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "status": self.status,
                "runtime": self.runtime, "delegate": self.data.get("delegate"), "params": self.params,
                "unsupported": self.unsupported, "notes": list(self.data.get("notes", []))}


def _targets_dir():
    return resources.files("edgecompress") / "data" / "targets"


def list_targets() -> list[str]:
    """Return the names of every shipped target profile, sorted.

    Returns:
        Profile names (the YAML file stems), excluding ``_``-prefixed shared fragments.

    Example:
        >>> "coral-edgetpu" in list_targets()
        True
    """
    return sorted(entry.name[:-5] for entry in _targets_dir().iterdir()
                  if entry.name.endswith(".yaml") and not entry.name.startswith("_"))


@cache
def _schema() -> dict[str, Any]:
    return json.loads((_targets_dir() / "schema.json").read_text(encoding="utf-8"))


@cache
def _raw(name: str) -> dict[str, Any]:
    import yaml

    entry = _targets_dir() / f"{name}.yaml"
    if not entry.is_file():
        raise ProfileError(f"expected a target profile name from {', '.join(list_targets())}. "
                           f"Received: {name!r}. Run `edgecompress targets` to list them.")
    try:
        data = yaml.safe_load(entry.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ProfileError(f"targets/{name}.yaml: expected valid YAML. Received: {exc}. Fix the file.") from exc
    if not isinstance(data, dict):
        raise ProfileError(f"targets/{name}.yaml: expected a mapping at the top level. "
                           f"Received: {type(data).__name__}. Fix the file.")
    return data


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _resolved(name: str) -> dict[str, Any]:
    data = _raw(name)
    base = data.get("base")
    if base:
        data = _merge(_resolved(base), {k: v for k, v in data.items() if k != "base"})
    return data


def validate_profile_data(name: str, data: dict[str, Any]) -> None:
    """Validate a profile mapping against ``schema.json``; raise ``ProfileError`` naming the first problem.

    Args:
        name: the profile name, for the message.
        data: the merged profile mapping.

    Returns:
        None.

    Example:
        >>> validate_profile_data("x", {"name": "x"})  # doctest: +SKIP
    """
    import jsonschema

    try:
        jsonschema.validate(data, _schema())
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise ProfileError(f"targets/{name}.yaml: expected a profile matching schema.json. "
                           f"Received at {where}: {exc.message}. Fix the profile.") from exc


def load_profile(name: str, **params: Any) -> Profile:
    """Load, merge and validate a target profile, applying parameter values.

    Args:
        name: a profile name from ``list_targets()``.
        **params: values for the profile's declared ``parameters`` (e.g. ``api_level=29``); strings are
            converted to the parameter's type.

    Returns:
        The ``Profile``.

    Example:
        >>> load_profile("android-nnapi", api_level=29).params["api_level"]
        29
    """
    if name.startswith("_") or name not in list_targets():
        raise ProfileError(f"expected a target profile name from {', '.join(list_targets())}. "
                           f"Received: {name!r}. Run `edgecompress targets` to list them.")
    data = _resolved(name)
    validate_profile_data(name, data)
    declared = data.get("parameters", {})
    unknown = sorted(set(params) - set(declared))
    if unknown:
        known = ", ".join(declared) or "none"
        raise ProfileError(f"target {name}: expected parameters from ({known}). Received: {', '.join(unknown)}. "
                           "Remove them or pick another target.")
    values: dict[str, Any] = {}
    for key, spec in declared.items():
        value = params.get(key, spec["default"])
        values[key] = _parameter_value(name, key, spec, value)
    for key, value in values.items():
        override = declared[key].get("values", {}).get(str(value))
        if override:
            data = _merge(data, override)
            validate_profile_data(name, data)
    return Profile(name=name, data=data, params=values)


def _parameter_value(name: str, key: str, spec: dict[str, Any], value: Any) -> Any:
    if spec["type"] == "integer":
        try:
            value = int(value)
        except (TypeError, ValueError) as exc:
            raise ProfileError(f"target {name}: expected an integer for {key}. Received: {value!r}. "
                               f"Pass e.g. --param {key}={spec['default']}.") from exc
        low, high = spec.get("minimum", -math.inf), spec.get("maximum", math.inf)
        if not low <= value <= high:
            raise ProfileError(f"target {name}: expected {key} between {low} and {high}. Received: {value}. "
                               "Choose a value in that range.")
        return value
    value = str(value)
    choices = spec.get("choices")
    if choices and value not in choices:
        raise ProfileError(f"target {name}: expected {key} to be one of {', '.join(choices)}. "
                           f"Received: {value!r}. Choose one of those.")
    return value


def parse_params(pairs: list[str]) -> dict[str, str]:
    """Turn ``["api_level=29", ...]`` into a mapping; raise ``ProfileError`` on a malformed pair."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ProfileError(f"expected --param KEY=VALUE. Received: {pair!r}. Write e.g. --param api_level=29.")
        out[key.strip()] = value.strip()
    return out


# --------------------------------------------------------------------------------------------------- report

@dataclasses.dataclass
class OperatorVerdict:
    """Where one operator runs and why.

    Args:
        index: operator index in execution order (subgraph 0).
        op: TFLite builtin name (or custom code).
        placement: ``"accelerator"``, ``"cpu"`` or ``"unsupported"``.
        reason: empty on the accelerator; otherwise which limit, with the value found.
        sources: source tags of the rule(s) that decided.
    """

    index: int
    op: str
    placement: str
    reason: str = ""
    sources: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "op": self.op, "placement": self.placement, "reason": self.reason,
                "sources": self.sources}


@dataclasses.dataclass
class CheckReport:
    """The result of checking one model against one target.

    Args:
        target: profile name.
        verdict: ``"accelerated"`` (all on the accelerator, fits), ``"fallback"`` (runs, some on CPU or
            degraded), ``"unsupported"`` (cannot run).
        operators: one ``OperatorVerdict`` per operator.
        partitions: number of contiguous accelerator segments.
        memory: limits, values and the memory verdict.
        answered_by: ``"rules"`` or the real tool that decided the placement.
        params: profile parameters in effect.
        warnings: things the user should know (deprecations, degraded memory, tool notes).
        model_errors: whole-model problems (malformed, float, several subgraphs...).
        tool: raw figures from a real tool when one ran (Vela cycles, TFLM arena...).
    """

    target: str
    verdict: str
    operators: list[OperatorVerdict]
    partitions: int
    memory: dict[str, Any]
    answered_by: str = "rules"
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    status: str = "unverified"
    warnings: list[str] = dataclasses.field(default_factory=list)
    model_errors: list[str] = dataclasses.field(default_factory=list)
    tool: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return {"accelerated": 0, "fallback": 3, "unsupported": 4}[self.verdict]

    def counts(self) -> dict[str, int]:
        return {p: sum(1 for o in self.operators if o.placement == p) for p in PLACEMENTS}

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "verdict": self.verdict, "answered_by": self.answered_by,
                "params": self.params, "profile_status": self.status, "partitions": self.partitions,
                "counts": self.counts(), "operators": [o.to_dict() for o in self.operators],
                "memory": self.memory, "warnings": self.warnings, "model_errors": self.model_errors,
                "tool": self.tool}


# --------------------------------------------------------------------------------------------------- rule checks

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


def _condition_holds(ctx: _Ctx, when: dict[str, Any]) -> bool:
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
        if "when" in rule and not _condition_holds(ctx, rule["when"]):
            continue
        found = CHECKS[rule["check"]](ctx, rule)
        if found and found not in reasons:
            reasons.append(found)
            sources.extend(s for s in rule.get("sources", []) if s not in sources)
    return reasons, sources


def _table_verdict(ctx: _Ctx, table: dict[str, Any], label: str) -> tuple[list[str], list[str]]:
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


# --------------------------------------------------------------------------------------------------- checker

def _model_errors(model: Any, profile: Profile) -> list[str]:
    limits = profile.data.get("model", {})
    errors = []
    if limits.get("max_subgraphs") and model.subgraph_count > limits["max_subgraphs"]:
        errors.append(f"{model.subgraph_count} subgraphs > max {limits['max_subgraphs']} (control flow)")
    if limits.get("static_shapes"):
        dynamic = [t for t in model.tensors if any(d < 0 for d in t.shape_signature)]
        if dynamic:
            errors.append(f"dynamic tensor shape in {_fmt(dynamic[0])} (signature "
                          f"{list(dynamic[0].shape_signature)}); re-export with a fixed batch of 1")
    return errors


def _cpu_table(profile: Profile) -> dict[str, Any] | None:
    cpu = profile.data.get("cpu")
    if not cpu:
        return None
    if cpu.get("operators_from"):
        shared = _resolved(cpu["operators_from"])
        return _merge(shared, {k: v for k, v in cpu.items() if k != "operators_from"})
    return cpu


def _cpu_verdict(ctx: _Ctx, cpu: dict[str, Any] | None) -> tuple[bool, str]:
    if cpu is None:
        return False, "no CPU fallback on this target"
    if cpu.get("builtin_operators"):
        if ctx.op.custom:
            return False, f"custom operator {ctx.op.op} has no kernel in {cpu.get('name', 'the CPU runtime')}"
        return True, ""
    reasons, _ = _table_verdict(ctx, cpu, cpu.get("name", "CPU runtime"))
    return (not reasons), "; ".join(reasons)


def _segments(placements: list[str]) -> list[list[int]]:
    runs: list[list[int]] = []
    for i, p in enumerate(placements):
        if p == "accelerator":
            if runs and runs[-1][-1] == i - 1:
                runs[-1].append(i)
            else:
                runs.append([i])
    return runs


def check(model_info: Any, profile: Profile, *, arena_bytes: int | None = None) -> CheckReport:
    """Check a model against a target profile with the profile's rules alone.

    Args:
        model_info: a ``ModelInfo`` from ``edgecompress.tflite.read_model``.
        profile: a ``Profile`` from ``load_profile``.
        arena_bytes: a measured tensor-arena size (e.g. from TFLite Micro) to use instead of the estimate.

    Returns:
        The ``CheckReport`` (``answered_by="rules"``).

    Example:
        >>> check(read_model("m.tflite"), load_profile("esp32-s3")).verdict  # doctest: +SKIP
        'accelerated'
    """
    accel = profile.data.get("accelerator", {})
    label = accel.get("name", profile.name)
    cpu = _cpu_table(profile)
    model_errors = _model_errors(model_info, profile)
    verdicts: list[OperatorVerdict] = []
    first_refused: int | None = None
    for op in model_info.operators:
        ctx = _Ctx(model_info, op, profile.params)
        if model_errors:
            reasons, sources = list(model_errors), []
        else:
            reasons, sources = _table_verdict(ctx, profile.data, label)
        if not reasons and first_refused is None:
            verdicts.append(OperatorVerdict(op.index, op.op, "accelerator"))
            continue
        if not reasons:
            reasons = [f"after operator #{first_refused} ({model_info.operators[first_refused].op}) left the "
                       f"{label}, everything after it runs on the CPU (single partition)"]
            sources = list(profile.data.get("partition_sources", []))
        elif profile.unsupported == "partition-rest-to-cpu" and first_refused is None:
            first_refused = op.index
        reason = "; ".join(reasons)
        if profile.unsupported == "fail":
            verdicts.append(OperatorVerdict(op.index, op.op, "unsupported", reason, sources))
            continue
        ok, why_not = _cpu_verdict(ctx, cpu)
        placement = "cpu" if ok else "unsupported"
        verdicts.append(OperatorVerdict(op.index, op.op, placement,
                                        reason if ok else f"{reason}; CPU fallback impossible: {why_not}", sources))
    _limit_partitions(verdicts, profile, label)
    placements = [v.placement for v in verdicts]
    memory = memory_verdict(model_info, profile, arena_bytes=arena_bytes)
    report = CheckReport(target=profile.name, verdict="accelerated", operators=verdicts,
                         partitions=len(_segments(placements)), memory=memory, params=dict(profile.params),
                         status=profile.status, model_errors=model_errors)
    report.warnings.extend(_profile_warnings(profile))
    if memory.get("warning"):
        report.warnings.append(memory["warning"])
    finish_verdict(report)
    return report


def finish_verdict(report: CheckReport) -> None:
    """Set ``report.verdict`` from its operator placements, model errors and memory verdict."""
    placements = [v.placement for v in report.operators]
    report.partitions = len(_segments(placements))
    if "unsupported" in placements or report.memory.get("verdict") == "exceeds" or \
            (report.model_errors and not report.operators):
        report.verdict = "unsupported"
    elif "cpu" in placements or not report.operators:
        report.verdict = "fallback"
    else:
        report.verdict = "accelerated"


def _limit_partitions(verdicts: list[OperatorVerdict], profile: Profile, label: str) -> None:
    limit = profile.data.get("max_partitions")
    if not limit:
        return
    runs = _segments([v.placement for v in verdicts])
    if len(runs) <= limit:
        return
    keep = sorted(runs, key=len, reverse=True)[:limit]
    kept = {i for run in keep for i in run}
    for run in runs:
        for i in run:
            if i not in kept:
                verdicts[i].placement = "cpu"
                verdicts[i].reason = (f"{len(runs)} {label} partitions > max_partitions {limit}: only the "
                                      f"{limit} largest are delegated")
                verdicts[i].sources = list(profile.data.get("partition_sources", []))


def _profile_warnings(profile: Profile) -> list[str]:
    out = []
    for note in profile.data.get("warnings", []):
        if "when" not in note or all(
                _condition_holds(_Ctx(None, _NoOp(), profile.params), {k: v}) for k, v in note["when"].items()):
            out.append(note["text"])
    if profile.status != "verified":
        out.append(f"profile {profile.name} is {profile.status}: its rules come from documentation and source "
                   "code, not from running on the device")
    return out


class _NoOp:
    options: dict[str, Any] = {}


# --------------------------------------------------------------------------------------------------- memory

def estimate_arena_bytes(model_info: Any, *, alignment: int = _ARENA_ALIGNMENT) -> dict[str, int]:
    """Estimate a TFLite Micro tensor arena: a greedy planner over activation lifetimes plus persistent data.

    The non-persistent part mirrors TFLM's ``GreedyMemoryPlanner``: buffers sorted by size (largest first),
    each placed at the lowest offset that does not overlap a buffer alive at the same time. The persistent part
    approximates the interpreter's bookkeeping (per-tensor and per-node structs, per-channel quantization data).

    Args:
        model_info: a ``ModelInfo``.
        alignment: byte alignment of each buffer.

    Returns:
        ``{"head": planned activation bytes, "tail": persistent estimate, "total": head + tail}``.

    Example:
        >>> estimate_arena_bytes(read_model("m.tflite"))["total"]  # doctest: +SKIP
        2800
    """
    n_ops = len(model_info.operators)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for i in model_info.inputs:
        first[i] = 0
    for op in model_info.operators:
        for t in op.outputs:
            if t >= 0:
                first.setdefault(t, op.index)
                last[t] = max(last.get(t, op.index), op.index)
        for t in op.inputs:
            if t >= 0 and not model_info.tensors[t].is_constant:
                first.setdefault(t, op.index)
                last[t] = max(last.get(t, op.index), op.index)
    for i in model_info.outputs:
        last[i] = max(n_ops - 1, 0)
    buffers = []
    for t, start in first.items():
        tensor = model_info.tensors[t]
        if tensor.is_constant or tensor.is_variable:
            continue
        size = -(-tensor.nbytes // alignment) * alignment
        buffers.append((size, start, last.get(t, start), t))
    buffers.sort(key=lambda b: (-b[0], b[3]))
    placed: list[tuple[int, int, int, int]] = []  # offset, size, start, end
    head = 0
    for size, start, end, _ in buffers:
        live = sorted((o, s) for o, s, a, b in placed if not (b < start or a > end))
        offset = 0
        for o, s in live:
            if offset + size <= o:
                break
            offset = max(offset, o + s)
        placed.append((offset, size, start, end))
        head = max(head, offset + size)
    # Persistent part, calibrated on the 64-bit host build of TFLM: 24 B per TfLiteEvalTensor, 64 B per
    # NodeAndRegistration, 96 B per model input/output (TfLiteTensor + quantization), ~80 B of kernel data per
    # operator plus 8 B per output channel for per-channel multipliers/shifts, and ~1 KB for the interpreter's
    # allocator, planner and subgraph bookkeeping (fitted on the test corpus: median error ~10 %; LSTMs more).
    tail = 1000 + 24 * len(model_info.tensors) + 64 * n_ops + 96 * (len(model_info.inputs) + len(model_info.outputs))
    for op in model_info.operators:
        tail += 80
        if op.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED"):
            outs = [model_info.tensors[o] for o in op.outputs if o >= 0]
            channels = outs[0].shape[-1] if outs and outs[0].shape else 1
            tail += 8 * int(channels)
    return {"head": head, "tail": tail, "total": head + tail}


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


# --------------------------------------------------------------------------------------------------- real tools

def _apply_vela(report: CheckReport, data: bytes, model_info: Any, profile: Profile, inputs: Any,
                compiled_out: str | os.PathLike[str] | None) -> None:
    from edgecompress.toolchains.vela import (
        DEFAULT_ACCELERATOR,
        DEFAULT_MEMORY_MODE,
        DEFAULT_SYSTEM_CONFIG,
        run_vela,
    )

    options = profile.data.get("tool_options", {})
    result = run_vela(data, accelerator_config=profile.params.get("accelerator_config", DEFAULT_ACCELERATOR),
                      system_config=options.get("system_config", DEFAULT_SYSTEM_CONFIG),
                      memory_mode=options.get("memory_mode", DEFAULT_MEMORY_MODE), output_path=compiled_out)
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
        ok, why_not = _cpu_verdict(_Ctx(model_info, model_info.operators[verdict.index], profile.params), cpu)
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


def _apply_tflm(report: CheckReport, data: bytes, model_info: Any, profile: Profile, inputs: Any,
                compiled_out: str | os.PathLike[str] | None) -> None:
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


def _apply_edgetpu(report: CheckReport, data: bytes, model_info: Any, profile: Profile, inputs: Any,
                   compiled_out: str | os.PathLike[str] | None) -> None:
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
    if compiled_out is not None and result.compiled_tflite:
        from edgecompress.atomic import atomic_write_bytes

        atomic_write_bytes(compiled_out, result.compiled_tflite)
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


def check_model(source: str | os.PathLike[str] | bytes, profile: Profile, *, use_tools: bool = True,
                inputs: Any = None, compiled_out: str | os.PathLike[str] | None = None) -> CheckReport:
    """Check a ``.tflite`` against a profile, letting the profile's real tool answer when it is available.

    A file that is not a valid TFLite model gets an ``unsupported`` report naming the problem (no traceback).

    Args:
        source: a ``.tflite`` path or the flatbuffer bytes.
        profile: a ``Profile``.
        use_tools: run the profile's ``tool`` (Vela, TFLite Micro, edgetpu_compiler) when installed.
        inputs: samples for TFLite Micro's agreement check (one ``(N, ...)`` array per input).
        compiled_out: where to write the tool's compiled model (Vela-optimised or Edge TPU ``.tflite``), if any.

    Returns:
        The ``CheckReport``; ``answered_by`` says whether the rules or a real tool decided.

    Example:
        >>> check_model("m.tflite", load_profile("ethos-u55")).answered_by  # doctest: +SKIP
        'vela'
    """
    from edgecompress.errors import InvalidModelError
    from edgecompress.tflite import read_model

    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
    except OSError as exc:
        raise InvalidModelError(f"{source}: expected a readable .tflite file. Received: {exc.strerror}. "
                                "Check the path.") from exc
    try:
        info = read_model(source)
    except InvalidModelError as exc:
        return CheckReport(target=profile.name, verdict="unsupported", operators=[], partitions=0,
                           memory={"verdict": "unknown", "exceeded": []}, params=dict(profile.params),
                           status=profile.status, model_errors=[str(exc)])
    report = check(info, profile)
    runner = TOOLS.get(profile.tool or "")
    if use_tools and runner is not None and not report.model_errors:
        from edgecompress.errors import ToolchainError

        try:
            runner(report, data, info, profile, inputs, compiled_out)
        except ToolchainError as exc:
            report.warnings.append(f"{profile.tool} could not answer ({exc}); the profile's rules answered")
        finish_verdict(report)
    return report


def micro_resolver_names(ops: list[str]) -> list[str]:
    """``MicroMutableOpResolver`` method names (``AddConv2D`` ...) for TFLite operator names, from the TFLM table.

    Args:
        ops: TFLite builtin names (or ``ethos-u`` for the Vela custom operator).

    Returns:
        The resolver method names in the same order.

    Example:
        >>> micro_resolver_names(["CONV_2D", "SOFTMAX"])
        ['AddConv2D', 'AddSoftmax']
    """
    table = _resolved("_tflite-micro").get("operators", {})
    custom = {"ethos-u": "AddEthosU"}
    names = []
    for op in ops:
        adder = custom.get(op) or table.get(op, {}).get("resolver")
        if adder is None:
            raise ProfileError(f"expected operators TFLite Micro can register. Received: {op}, which has no "
                               "MicroMutableOpResolver entry. Replace that layer or pick a non-microcontroller target.")
        names.append(adder)
    return names
