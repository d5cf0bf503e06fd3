"""Target profiles are data: every shipped profile validates, names real TFLite operators and cites its sources."""

from __future__ import annotations

import ast
import inspect
import re

import pytest

from edgecompress.check import rules as targets
from edgecompress.errors import ProfileError
from edgecompress.profile import list_targets, load_profile, validate_profile_data
from edgecompress.profile import resolve as _resolved

EXPECTED = {"android-nnapi", "coral-edgetpu", "raspberry-pi-4", "raspberry-pi-5", "arduino-nano-33-ble", "esp32-s3",
            "ethos-u55"}


def _builtin_names() -> set[str]:
    import tflite

    return {k for k in vars(tflite.BuiltinOperator) if k.isupper()}


def _rules(table: dict) -> list[dict]:
    found = list(table.get("all_operators", []))
    for entry in table.get("operators", {}).values():
        found.extend(entry.get("rules", []))
    return found


def test_the_seven_issue_targets_ship():
    assert EXPECTED <= set(list_targets())


def test_fragments_are_not_listed_as_targets():
    assert not [name for name in list_targets() if name.startswith("_")]


@pytest.mark.parametrize("name", list_targets())
def test_profile_validates_against_the_schema(name):
    profile = load_profile(name)
    validate_profile_data(name, profile.data)
    assert profile.data["name"] == name


@pytest.mark.parametrize("name", list_targets())
def test_profile_operator_names_are_tflite_builtins(name):
    profile = load_profile(name)
    names = set(profile.operators)
    cpu = targets._cpu_table(profile)
    if cpu:
        names |= set(cpu.get("operators", {}))
    unknown = names - _builtin_names()
    assert not unknown, f"{name}: not TFLite builtin operators: {sorted(unknown)}"


@pytest.mark.parametrize("name", list_targets())
def test_every_rule_cites_a_source_the_profile_defines(name):
    profile = load_profile(name)
    tables = [profile.data] + ([targets._cpu_table(profile)] if profile.data.get("cpu") else [])
    defined = set(profile.data["sources"])
    for table in tables:
        for rule in _rules(table):
            assert rule["sources"], rule
            assert set(rule["sources"]) <= defined, f"{name}: {rule} cites an undefined source"


@pytest.mark.parametrize("name", list_targets())
def test_profile_declares_status_memory_and_a_cost_model_object(name):
    profile = load_profile(name)
    assert profile.status in ("verified", "unverified")
    assert isinstance(profile.data["cost_model"], dict)
    assert isinstance(profile.memory, dict)
    assert profile.unsupported in targets.UNSUPPORTED_BEHAVIOURS


@pytest.mark.parametrize("name", list_targets())
def test_every_rule_check_is_one_the_checker_knows(name):
    profile = load_profile(name)
    for rule in _rules(profile.data):
        assert rule["check"] in targets.CHECKS


def test_shared_tflite_micro_table_names_a_resolver_method_for_every_operator():
    table = _resolved("_tflite-micro")["operators"]
    assert all(re.fullmatch(r"Add[A-Za-z0-9]+", entry["resolver"]) for entry in table.values())
    assert set(table) <= _builtin_names()


def _code_strings(tree: ast.AST) -> set[str]:
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body
                  and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings}


def test_no_target_name_appears_in_the_checker_code():
    strings = _code_strings(ast.parse(inspect.getsource(targets)))
    for name in list_targets():
        assert not any(name in text for text in strings), f"the checker names {name}: behaviour must be data"


def test_nnapi_api_level_defaults_to_30_and_accepts_27_to_35():
    assert load_profile("android-nnapi").params["api_level"] == 30
    assert load_profile("android-nnapi", api_level="27").params["api_level"] == 27
    assert load_profile("android-nnapi", api_level=35).params["api_level"] == 35


@pytest.mark.parametrize("level", [26, 36, "x"])
def test_nnapi_api_level_outside_27_to_35_is_a_profile_error(level):
    with pytest.raises(ProfileError, match="api_level"):
        load_profile("android-nnapi", api_level=level)


def test_coral_variant_parameter_switches_memory():
    board = load_profile("coral-edgetpu", variant="dev-board")
    usb = load_profile("coral-edgetpu")
    assert board.memory["ram_bytes"] == 1 << 30
    assert "ram_bytes" not in usb.memory


def test_unknown_target_is_a_profile_error_listing_the_targets():
    with pytest.raises(ProfileError, match="coral-edgetpu"):
        load_profile("jetson-nano")


def test_fragment_cannot_be_loaded_as_a_target():
    with pytest.raises(ProfileError):
        load_profile("_tflite-micro")


def test_unknown_parameter_is_a_profile_error():
    with pytest.raises(ProfileError, match="api_level"):
        load_profile("coral-edgetpu", api_level=30)


def test_schema_rejects_a_rule_without_sources():
    data = load_profile("coral-edgetpu").data
    data["operators"]["ADD"] = {"rules": [{"check": "max_rank", "value": 3}]}
    with pytest.raises(ProfileError, match="sources"):
        validate_profile_data("coral-edgetpu", data)


def test_schema_rejects_an_unknown_unsupported_behaviour():
    data = load_profile("esp32-s3").data
    data["unsupported"] = "ignore"
    with pytest.raises(ProfileError, match="unsupported"):
        validate_profile_data("esp32-s3", data)


def test_nnapi_profile_says_it_is_deprecated_from_android_15():
    warnings = [w["text"] for w in load_profile("android-nnapi").data["warnings"]]
    assert any("deprecated" in w and "Android 15" in w for w in warnings)
