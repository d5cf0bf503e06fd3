"""check_model with the real tools answering, and the microcontroller artefacts compiled by a C++ compiler."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from edgecompress.pipeline.targets import check_model, load_profile
from edgecompress.tflite import read_model
from tests.target_corpus import build_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import tensorflow  # noqa: F401  (imported outside the capture: absl binds its log handler at import)

    from edgecompress.capture import captured_output

    directory = tmp_path_factory.getbasetemp() / "target_corpus"
    directory.mkdir(exist_ok=True)
    with captured_output():
        return {name: build_model(name, directory) for name in
                ("conv_pool_dense_softmax", "large_kernel_stride4_same", "resize_nearest_3x")}


def test_ethos_u_check_is_answered_by_vela_with_its_memory_and_cycles(models):
    report = check_model(models["conv_pool_dense_softmax"], load_profile("ethos-u55"))
    assert report.answered_by == "vela"
    assert report.verdict == "accelerated"
    vela = report.tool["vela"]
    assert vela["cycles_total"] > 0 and vela["sram_bytes"] > 0 and vela["optimised_tflite_bytes"] > 0
    assert report.tool["rules_disagreements"] == []


def test_ethos_u_operator_vela_refuses_falls_back_with_vela_reason(models):
    report = check_model(models["large_kernel_stride4_same"], load_profile("ethos-u55"))
    assert report.verdict == "fallback" and report.exit_code == 3
    assert report.operators[0].placement == "cpu"
    assert "stride" in report.operators[0].reason


def test_smaller_ethos_u_configuration_is_passed_to_vela(models):
    report = check_model(models["conv_pool_dense_softmax"], load_profile("ethos-u55", accelerator_config="ethos-u55-32"))
    assert report.tool["vela"]["accelerator_config"] == "ethos-u55-32"


def test_vela_writes_the_optimised_model(models, tmp_path):
    from edgecompress.toolchains.vela import run_vela

    out = tmp_path / "model_vela.tflite"
    result = run_vela(models["conv_pool_dense_softmax"], output_path=out)
    assert [op.op for op in read_model(out).operators] == ["ethos-u"]
    assert result.npu_operators > 0 and result.cpu_operators == 0


def test_bench_on_ethos_u_compiles_the_model_with_vela_once(models, monkeypatch):
    import edgecompress.toolchains.vela as vela
    from edgecompress.pipeline.targets import bench_model as bench

    calls = []
    real = vela.run_tool

    def counting(name, cmd, **kwargs):  # the real Vela still runs; this only counts the runs
        calls.append(name)
        return real(name, cmd, **kwargs)

    monkeypatch.setattr(vela, "run_tool", counting)
    vela._RESULTS.clear()
    rows = bench(models["conv_pool_dense_softmax"], "ethos-u55", runs=2, warmup=0)
    assert {row.evidence for row in rows} >= {"compiler-estimate", "model-estimate"}
    assert calls == ["vela"]
    again = vela.run_vela(models["conv_pool_dense_softmax"], accelerator_config="ethos-u55-32")
    assert calls == ["vela", "vela"] and again.accelerator_config == "ethos-u55-32"


def test_microcontroller_check_reports_the_exact_tflm_arena_next_to_the_estimate(models):
    report = check_model(models["conv_pool_dense_softmax"], load_profile("arduino-nano-33-ble"))
    assert report.answered_by == "tflm"
    assert report.memory["arena_source"] == "tflm"
    assert report.memory["arena_bytes"] == report.tool["tflm"]["arena_bytes"]
    assert report.memory["arena_estimate_bytes"] > 0


def test_microcontroller_check_marks_the_operator_tflm_cannot_register(models):
    report = check_model(models["resize_nearest_3x"], load_profile("esp32-s3"))
    assert report.verdict == "unsupported"
    assert any(v.op == "TILE" and "TILE" in v.reason for v in report.operators if v.placement == "unsupported")


def test_coral_check_without_the_compiler_says_the_rules_answered(models):
    report = check_model(models["conv_pool_dense_softmax"], load_profile("coral-edgetpu"))
    if shutil.which("edgetpu_compiler"):
        assert report.answered_by == "edgetpu_compiler"
    else:
        assert report.answered_by == "rules"
        assert any("edgetpu_compiler is not on PATH" in w for w in report.warnings)


def test_malformed_file_gets_an_unsupported_verdict_naming_the_problem(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer at all")
    report = check_model(bad, load_profile("coral-edgetpu"))
    assert report.verdict == "unsupported"
    assert "not a valid TFLite model" in report.model_errors[0]


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
def test_micro_artifacts_compile_and_register_exactly_the_model_operators(models, tmp_path):
    from edgecompress.pipeline.targets import write_micro_artifacts

    path = models["conv_pool_dense_softmax"]
    info = read_model(path)
    paths = write_micro_artifacts(path.read_bytes(), tmp_path, info, 2408)
    resolver = paths["resolver"].read_text()
    assert "MicroMutableOpResolver<kNumOps>" in resolver and "kNumOps = 5;" in resolver
    for adder in ("AddConv2D", "AddMaxPool2D", "AddReshape", "AddFullyConnected", "AddSoftmax"):
        assert f"resolver.{adder}()" in resolver
    assert "kTensorArenaSize = 2656;" in paths["arena"].read_text()  # 2408 + 10 %, rounded up to 16
    stub = tmp_path / "tensorflow" / "lite" / "micro"
    stub.mkdir(parents=True)
    methods = "\n".join(f"  TfLiteStatus {name}() {{ return kTfLiteOk; }}" for name in
                        ("AddConv2D", "AddMaxPool2D", "AddReshape", "AddFullyConnected", "AddSoftmax"))
    (stub / "micro_mutable_op_resolver.h").write_text(
        "#pragma once\nenum TfLiteStatus { kTfLiteOk, kTfLiteError };\nnamespace tflite {\n"
        f"template <unsigned int N> class MicroMutableOpResolver {{\n public:\n{methods}\n}};\n}}\n")
    (tmp_path / "main.cc").write_text(
        '#include "model_data.h"\n#include "op_resolver.h"\n#include "arena_size.h"\n'
        "alignas(16) static unsigned char arena[kTensorArenaSize];\n"
        "int main() { ModelOpResolver r; return RegisterOps(r) == kTfLiteOk && g_model_len > 0 && arena[0] == 0 ? 0 : 1; }\n")
    exe = tmp_path / "check"
    subprocess.run(["g++", "-std=c++17", "-Wall", "-Werror", "-I", str(tmp_path), str(paths["model_cc"]),
                    str(tmp_path / "main.cc"), "-o", str(exe)], check=True, timeout=120)
    assert subprocess.run([str(exe)], timeout=30).returncode == 0
    data = path.read_bytes()
    cc = paths["model_cc"].read_text()
    assert f"g_model_len = {len(data)};" in cc and "alignas(16) const unsigned char g_model[]" in cc


@pytest.fixture(scope="module")
def float_model(tmp_path_factory):
    import keras

    from edgecompress.capture import captured_output
    from edgecompress.conversion.converter import convert_float

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(2, 3), keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    path = tmp_path_factory.mktemp("float") / "float.tflite"
    with captured_output():
        path.write_bytes(convert_float(model))
    return path


def test_float_model_on_the_edge_tpu_stays_on_the_cpu_with_the_type_named(float_model):
    report = check_model(float_model, load_profile("coral-edgetpu"))
    assert report.verdict == "fallback"
    assert all(v.placement == "cpu" for v in report.operators)
    assert "float32" in report.operators[0].reason


def test_float_model_on_a_microcontroller_runs_on_reference_kernels_not_the_int8_path(float_model):
    report = check_model(float_model, load_profile("arduino-nano-33-ble"))
    assert report.tool["tflm"]["invoked"]
    assert report.verdict == "fallback"
    assert {v.placement for v in report.operators} == {"cpu"}
