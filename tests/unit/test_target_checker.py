"""The generic checker on small hand-built operator graphs: each rule decides from profile data, with its reason."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edgecompress.arena import estimate_arena_bytes
from edgecompress.check.checker import check
from edgecompress.check.memory import memory_verdict
from edgecompress.profile import load_profile


@dataclasses.dataclass
class Tensor:
    index: int
    shape: tuple
    dtype: str = "int8"
    is_constant: bool = False
    name: str = ""
    scale: list = dataclasses.field(default_factory=lambda: [0.1])
    zero_point: list = dataclasses.field(default_factory=lambda: [0])
    is_variable: bool = False

    @property
    def shape_signature(self) -> tuple:
        return self.shape

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize


@dataclasses.dataclass
class Op:
    index: int
    op: str
    inputs: list
    outputs: list
    options: dict = dataclasses.field(default_factory=dict)
    version: int = 1
    custom: bool = False


@dataclasses.dataclass
class Model:
    tensors: list
    operators: list
    size_bytes: int = 2000
    param_bytes: int = 100
    subgraph_count: int = 1
    constants: dict = dataclasses.field(default_factory=dict)

    @property
    def inputs(self) -> list:
        return [0]

    @property
    def outputs(self) -> list:
        return [self.operators[-1].outputs[0]]

    def constant(self, index: int):
        return self.constants.get(index)


def chain(ops: list[tuple[str, dict]], shape=(1, 8, 8, 4), dtype="int8", **model_kw) -> Model:
    """A straight chain of elementwise-shaped operators: op i reads tensor i and writes tensor i+1."""
    tensors = [Tensor(i, shape, dtype) for i in range(len(ops) + 1)]
    operators = [Op(i, name, [i], [i + 1], options) for i, (name, options) in enumerate(ops)]
    return Model(tensors, operators, **model_kw)


def conv_model(stride=1, padding="SAME", kernel=3, dilation=1, shape=(1, 16, 16, 2)) -> Model:
    tensors = [Tensor(0, shape), Tensor(1, (2, kernel, kernel, shape[-1]), is_constant=True),
               Tensor(2, (2,), "int32", is_constant=True), Tensor(3, (1, shape[1] // stride, shape[2] // stride, 2))]
    options = {"stride_w": stride, "stride_h": stride, "padding": padding, "dilation_w_factor": dilation,
               "dilation_h_factor": dilation, "fused_activation_function": "NONE"}
    constants = {1: np.ones((2, kernel, kernel, shape[-1]), np.int8), 2: np.zeros(2, np.int32)}
    return Model(tensors, [Op(0, "CONV_2D", [0, 1, 2], [3], options, version=3)], constants=constants)


def placements(report) -> list[str]:
    return [o.placement for o in report.operators]


def test_coral_first_unsupported_operator_sends_every_later_operator_to_the_cpu():
    model = chain([("ADD", {}), ("EXP", {}), ("ADD", {}), ("RELU", {})], shape=(1, 4, 4))
    report = check(model, load_profile("coral-edgetpu"))
    assert placements(report) == ["accelerator", "cpu", "cpu", "cpu"]
    assert "EXP is not in the Edge TPU operator list" in report.operators[1].reason
    assert "after operator #1 (EXP)" in report.operators[2].reason
    assert report.verdict == "fallback"


def test_ethos_u_refused_operator_is_a_cpu_island_and_later_operators_return_to_the_npu():
    model = chain([("ADD", {}), ("GATHER", {}), ("ADD", {})])
    report = check(model, load_profile("ethos-u55"))
    assert placements(report) == ["accelerator", "cpu", "accelerator"]
    assert report.partitions == 2


def test_coral_rejects_tensors_with_more_than_three_non_unit_dimensions():
    report = check(chain([("ADD", {})], shape=(2, 4, 4, 3)), load_profile("coral-edgetpu"))
    assert report.operators[0].placement == "cpu"
    assert "innermost 3" in report.operators[0].reason


def test_coral_accepts_batch_one_four_d_tensors():
    report = check(chain([("ADD", {})], shape=(1, 4, 4, 3)), load_profile("coral-edgetpu"))
    assert report.verdict == "accelerated"


def test_nnapi_keeps_only_the_three_largest_partitions():
    # EXP is float-only in NNAPI, so an int8 EXP splits the graph: partitions of 3, 1, 2 and 2 operators.
    ops = [("ADD", {})] * 3 + [("EXP", {}), ("ADD", {}), ("EXP", {})] + [("ADD", {})] * 2 + [("EXP", {})] + \
        [("ADD", {})] * 2
    report = check(chain(ops), load_profile("android-nnapi"))
    demoted = [o.index for o in report.operators if "max_partitions 3" in o.reason]
    assert demoted == [4]
    assert report.operators[4].placement == "cpu"
    assert report.partitions == 3


def test_nnapi_operator_needing_a_newer_api_level_falls_back_on_older_devices():
    model = chain([("TANH", {})])
    assert check(model, load_profile("android-nnapi", api_level=29)).verdict == "accelerated"
    old = check(model, load_profile("android-nnapi", api_level=28))
    assert old.operators[0].placement == "cpu"
    assert "api_level >= 29" in old.operators[0].reason and "api_level=28" in old.operators[0].reason


def test_nnapi_rejects_an_operator_version_above_its_maximum():
    model = chain([("SOFTMAX", {})])
    model.operators[0].version = 3
    report = check(model, load_profile("android-nnapi"))
    assert "op version 3 > max 2" in report.operators[0].reason


def test_nnapi_profile_always_warns_that_it_is_deprecated():
    report = check(chain([("ADD", {})]), load_profile("android-nnapi"))
    assert any("deprecated" in w for w in report.warnings)


@pytest.mark.parametrize(("stride", "padding", "expected"), [(3, "SAME", "accelerator"), (4, "SAME", "cpu"),
                                                              (4, "VALID", "accelerator")])
def test_ethos_u_conv_stride_above_three_needs_valid_padding(stride, padding, expected):
    report = check(conv_model(stride=stride, padding=padding), load_profile("ethos-u55"))
    assert report.operators[0].placement == expected
    if expected == "cpu":
        assert f"stride {stride}x{stride} > max 3" in report.operators[0].reason


def test_ethos_u_weight_sum_limit_names_the_value_found():
    model = conv_model(kernel=3)
    model.constants[1] = np.full((2, 3, 3, 2), 127, np.int8)
    assert check(model, load_profile("ethos-u55")).verdict == "accelerated"
    big = conv_model(kernel=200, shape=(1, 256, 256, 2))
    big.constants[1] = np.full((2, 200, 200, 2), 127, np.int8)
    report = check(big, load_profile("ethos-u55"))
    assert "sum of |weights| per output channel = 10160000 > max 8323072" in report.operators[0].reason


def test_coral_conv_needs_equal_dilation():
    model = conv_model()
    model.operators[0].options["dilation_h_factor"] = 2
    report = check(model, load_profile("coral-edgetpu"))
    assert "dilation w=1 h=2 differ" in report.operators[0].reason


def test_microcontroller_runs_float_operators_on_the_reference_kernels():
    report = check(chain([("ADD", {})], dtype="float32"), load_profile("arduino-nano-33-ble"))
    assert report.operators[0].placement == "cpu"
    assert "float32" in report.operators[0].reason
    assert report.verdict == "fallback"


def test_microcontroller_operator_missing_from_tflite_micro_is_unsupported():
    report = check(chain([("TILE", {})]), load_profile("esp32-s3"))
    assert report.operators[0].placement == "unsupported"
    assert report.verdict == "unsupported"
    assert report.exit_code == 4


def test_raspberry_pi_operator_outside_xnnpack_falls_back_to_builtin_kernels():
    report = check(chain([("SOFTMAX", {})]), load_profile("raspberry-pi-5"))
    assert report.operators[0].placement == "cpu"
    assert report.exit_code == 3


def test_raspberry_pi_custom_operator_cannot_run():
    model = chain([("ADD", {})])
    model.operators[0] = Op(0, "MyCustomOp", [0], [1], custom=True)
    report = check(model, load_profile("raspberry-pi-4"))
    assert report.operators[0].placement == "unsupported"


def test_model_with_two_subgraphs_runs_entirely_on_coral_cpu():
    report = check(chain([("ADD", {})], subgraph_count=2), load_profile("coral-edgetpu"))
    assert report.operators[0].placement == "cpu"
    assert "2 subgraphs > max 1" in report.model_errors[0]


def test_edge_tpu_parameters_beyond_the_cache_spill_with_the_byte_count():
    profile = load_profile("coral-edgetpu")
    memory = memory_verdict(chain([("ADD", {})], param_bytes=10_000_000), profile)
    usable = profile.memory["accelerator_cache_usable_bytes"]
    assert memory["verdict"] == "spills"
    assert memory["spill_bytes"] == 10_000_000 - usable


def test_microcontroller_flash_limit_says_by_how_much_it_is_exceeded():
    profile = load_profile("arduino-nano-33-ble")
    memory = memory_verdict(chain([("ADD", {})], size_bytes=900_000), profile)
    budget = profile.memory["flash_bytes"] - profile.memory["reserved_flash_bytes"]
    assert memory["verdict"] == "exceeds"
    assert memory["exceeded"] == [{"limit": "flash", "what": "model flatbuffer", "value": 900_000,
                                   "limit_bytes": budget, "by": 900_000 - budget}]
    assert check(chain([("ADD", {})], size_bytes=900_000), profile).verdict == "unsupported"


def test_microcontroller_arena_beyond_ram_is_unsupported():
    big = chain([("ADD", {}), ("ADD", {})], shape=(1, 200, 200, 4))
    report = check(big, load_profile("arduino-nano-33-ble"))
    assert report.memory["exceeded"][0]["limit"] == "ram"
    assert report.verdict == "unsupported"


def test_arena_planner_reuses_memory_of_dead_activations():
    # A chain a -> b -> c -> d of equal buffers needs two live buffers at a time, not four.
    plan = estimate_arena_bytes(chain([("ADD", {}), ("ADD", {}), ("ADD", {})], shape=(1, 10, 10, 16)))
    assert plan["head"] == 2 * 1600


def test_report_json_has_the_names_scripts_rely_on():
    payload = check(chain([("ADD", {})]), load_profile("ethos-u55")).to_dict()
    assert {"target", "verdict", "operators", "memory", "answered_by"} <= set(payload)
    assert set(payload["operators"][0]) >= {"index", "op", "placement", "reason"}
