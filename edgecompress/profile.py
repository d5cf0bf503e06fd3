"""Target profiles (``data/targets/*.yaml``): load, merge ``base:`` fragments, validate, apply parameters.

A profile is data: the accelerator's operator table with per-operator rules, what happens to an operator the
accelerator refuses (``unsupported``), the CPU side that catches fallbacks, the memory limits and the latency
cost model. Files whose name starts with ``_`` are shared fragments (``base:`` / ``operators_from:``), not
targets. ``Profile`` gives callers typed fields; the checker (``edgecompress.check``) interprets them.

Example:
    >>> from edgecompress.profile import load_profile
    >>> load_profile("android-nnapi", api_level=29).params["api_level"]
    29
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from functools import cache
from importlib import resources
from typing import Any

from edgecompress.errors import ProfileError

# The keys of a profile (or a CPU table) that make up an operator table the checker evaluates.
_TABLE_KEYS = ("operators", "all_operators", "tensor_types", "tensor_type_sources", "operator_list_sources")


@dataclasses.dataclass(frozen=True)
class Profile:
    """A loaded, validated target profile with its parameters resolved.

    Args:
        name: the profile name (file stem), e.g. ``"coral-edgetpu"``.
        description / status / runtime / delegate: what the profile says about itself (``status`` is
            ``verified`` or ``unverified``; ``runtime`` e.g. ``litert``, ``tflm``).
        tool / tool_options: the real tool that can answer for the rules (``vela``, ``tflm``,
            ``edgetpu_compiler``) and its options.
        unsupported: what happens to an operator the accelerator refuses.
        accelerator_name: how reasons name the accelerator.
        accelerator_table: the accelerator's operator table (``operators``, ``all_operators``, type rules).
        cpu: the CPU side's section as written (``operators_from:`` not yet applied), None without a CPU.
        memory: the memory limits.
        model_limits: whole-model limits (``max_subgraphs``, ``static_shapes``).
        max_partitions / partition_sources: delegation limit and the sources that state it.
        warnings: conditional notes (``{"text", "when"}``) shown with every check.
        notes / sources: free notes and the source table rules cite.
        cost_model: the latency cost model (``accelerator:``, optional ``cpu:`` units).
        threads: the cost model's accelerator thread count, None when it names none.
        parameters: the declared parameters (type, default, values).
        params: the parameter values in effect (defaults filled in).
        data: the merged profile mapping (base fragments and parameter overrides applied).
    """

    name: str
    description: str
    status: str
    runtime: str
    delegate: str | None
    tool: str | None
    tool_options: dict[str, Any]
    unsupported: str
    accelerator_name: str
    accelerator_table: dict[str, Any]
    cpu: dict[str, Any] | None
    memory: dict[str, Any]
    model_limits: dict[str, Any]
    max_partitions: int | None
    partition_sources: list[str]
    warnings: list[dict[str, Any]]
    notes: list[str]
    sources: dict[str, Any]
    cost_model: dict[str, Any]
    threads: int | None
    parameters: dict[str, Any]
    params: dict[str, Any]
    data: dict[str, Any]

    @property
    def operators(self) -> dict[str, Any]:
        return self.accelerator_table.get("operators", {})

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "status": self.status,
                "runtime": self.runtime, "delegate": self.delegate, "params": self.params,
                "unsupported": self.unsupported, "notes": list(self.notes)}

    @classmethod
    def from_data(cls, name: str, data: dict[str, Any], params: dict[str, Any]) -> Profile:
        """Build the typed profile from a merged, validated mapping.

        Args:
            name: the profile name.
            data: the merged mapping.
            params: the parameter values in effect.

        Returns:
            The ``Profile``.

        Example:
            >>> Profile.from_data("x", load_profile("esp32-s3").data, {}).runtime  # doctest: +SKIP
            'tflm'
        """
        cost_model = data.get("cost_model") or {}
        unit = cost_model.get("accelerator", {})
        return cls(name=name, description=data["description"], status=data["status"], runtime=data["runtime"],
                   delegate=data.get("delegate"), tool=data.get("tool"), tool_options=data.get("tool_options", {}),
                   unsupported=data["unsupported"], accelerator_name=data.get("accelerator", {}).get("name", name),
                   accelerator_table={k: data[k] for k in _TABLE_KEYS if k in data}, cpu=data.get("cpu") or None,
                   memory=data.get("memory", {}), model_limits=data.get("model", {}),
                   max_partitions=data.get("max_partitions"),
                   partition_sources=list(data.get("partition_sources", [])),
                   warnings=list(data.get("warnings", [])), notes=list(data.get("notes", [])),
                   sources=data.get("sources", {}), cost_model=cost_model,
                   threads=int(unit["threads"]) if unit.get("threads") else None,
                   parameters=data.get("parameters", {}), params=params, data=data)


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
        raise ProfileError(unknown_target_message(name))
    try:
        data = yaml.safe_load(entry.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ProfileError(f"targets/{name}.yaml: expected valid YAML. Received: {exc}. Fix the file.") from exc
    if not isinstance(data, dict):
        raise ProfileError(f"targets/{name}.yaml: expected a mapping at the top level. "
                           f"Received: {type(data).__name__}. Fix the file.")
    return data


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``over`` onto a copy of ``base`` (mappings merge key by key; anything else replaces).

    Args:
        base: the mapping merged onto.
        over: the values that win.

    Returns:
        A new mapping; neither argument is changed.

    Example:
        >>> merge({"a": {"x": 1, "y": 2}}, {"a": {"y": 3}})
        {'a': {'x': 1, 'y': 3}}
    """
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolve(name: str) -> dict[str, Any]:
    """A profile or ``_`` fragment's mapping with its ``base:`` chain merged in (no validation, no parameters).

    Args:
        name: a YAML file stem under ``data/targets`` (``"esp32-s3"``, ``"_tflite-micro"``).

    Returns:
        The merged mapping.

    Example:
        >>> "CONV_2D" in resolve("_tflite-micro")["operators"]
        True
    """
    data = _raw(name)
    base = data.get("base")
    if base:
        data = merge(resolve(base), {k: v for k, v in data.items() if k != "base"})
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


def unknown_target_message(name: str) -> str:
    """The one-line error for a target name that is not a shipped profile, with a "did you mean" when one is close.

    Args:
        name: what the user typed.

    Returns:
        The message (expectation, what was received, the remedy).

    Example:
        >>> "Did you mean 'esp32-s3'" in unknown_target_message("esp32s3")
        True
    """
    import difflib

    names = list_targets()
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    hint = f"Did you mean {close[0]!r}? " if close else ""
    return (f"expected a target profile name from {', '.join(names)}. Received: {name!r}. "
            f"{hint}Run `edgecompress targets` to list them.")


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
        raise ProfileError(unknown_target_message(name))
    data = resolve(name)
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
            data = merge(data, override)
            validate_profile_data(name, data)
    return Profile.from_data(name, data, values)


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
    table = resolve("_tflite-micro").get("operators", {})
    custom = {"ethos-u": "AddEthosU"}
    names = []
    for op in ops:
        adder = custom.get(op) or table.get(op, {}).get("resolver")
        if adder is None:
            raise ProfileError(f"expected operators TFLite Micro can register. Received: {op}, which has no "
                               "MicroMutableOpResolver entry. Replace that layer or pick a non-microcontroller target.")
        names.append(adder)
    return names


def declared_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``params`` that target ``name`` declares (``--target all`` passes each target its own)."""
    declared = load_profile(name).parameters
    return {k: v for k, v in params.items() if k in declared}
