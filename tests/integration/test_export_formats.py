"""Every supported model format exports to a full-int8 flatbuffer that LiteRT runs and that agrees with float."""

from __future__ import annotations

import numpy as np
import pytest

from edgecompress.load.dataset import load_data
from edgecompress.pipeline import export
from edgecompress.tflite import read_model
from edgecompress.validate.evaluate import evaluate

DYNAMIC_BATCH_OPS = {"SHAPE", "STRIDED_SLICE", "PACK"}


def assert_full_int8(info) -> None:
    io = [info.tensors[i] for i in info.inputs + info.outputs]
    assert [t.dtype for t in io] == ["int8"] * len(io)
    float_tensors = [t.name for t in info.tensors if t.dtype in ("float32", "float16")]
    assert float_tensors == []
    ops = {op.op for op in info.operators}
    assert not ops & DYNAMIC_BATCH_OPS, ops
    assert "QUANTIZE" not in ops and "DEQUANTIZE" not in ops
    for t in io:
        assert t.shape[0] == 1
    for op in info.operators:
        if op.op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            weights, bias = info.tensors[op.inputs[1]], info.tensors[op.inputs[2]]
            assert weights.dtype == "int8" and len(weights.scale) == weights.shape[
                3 if op.op == "DEPTHWISE_CONV_2D" else 0] > 1, "weights must be per-channel"
            assert bias.dtype == "int32"
        if op.op == "FULLY_CONNECTED":
            assert info.tensors[op.inputs[1]].dtype == "int8"
            assert info.tensors[op.inputs[2]].dtype == "int32"


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["keras", "h5", "savedmodel"])
def test_keras_formats_export_full_int8_and_agree_with_float(fmt, request, calibration_npz, test_npz, tmp_path):
    model_path = {"keras": "keras_file", "h5": "h5_file", "savedmodel": "savedmodel_dir"}[fmt]
    source = request.getfixturevalue(model_path)
    out = tmp_path / f"{fmt}_int8.tflite"
    result = export(source, calibration_npz, out, evaluation=test_npz)
    assert out.exists() and out.read_bytes()[4:8] == b"TFL3"
    assert_full_int8(read_model(out))
    assert result.source["format"] == fmt
    assert result.evaluation["agreement"] >= 0.95
    assert result.evaluation["top1"] >= result.evaluation["reference_top1"] - 0.03


@pytest.mark.slow
def test_onnx_exports_offline_to_full_int8(onnx_bundle, tmp_path, monkeypatch):
    # any attempt to reach the internet fails fast through a dead proxy: the export must not need it
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    out = tmp_path / "gap_int8.tflite"
    result = export(onnx_bundle["model"], onnx_bundle["calibration"], out, evaluation=onnx_bundle["test"])
    info = read_model(out)
    assert_full_int8(info)
    assert result.source["format"] == "onnx"
    assert any("NCHW to NHWC" in note for note in result.source["notes"])
    # compare with the ONNX graph itself, run by onnxruntime, on the held-out split
    import onnxruntime as ort

    test = load_data(onnx_bundle["test"], purpose="evaluation")
    session = ort.InferenceSession(str(onnx_bundle["model"]))
    reference = np.concatenate([session.run(None, {"input": test.first[i : i + 1]})[0] for i in range(len(test))])
    nhwc = load_data({"x": test.first.transpose(0, 2, 3, 1), "y": test.y}, purpose="evaluation")
    ev = evaluate(out, nhwc, reference=reference)
    assert ev.agreement >= 0.95
    assert ev.top1 >= ev.reference_top1 - 0.03
    # validate --reference model.onnx: onnxruntime outputs, and per-layer error through the same onnx2tf path
    from edgecompress.pipeline.reference import load_reference
    from edgecompress.validate.layers import layer_errors

    ref = load_reference(onnx_bundle["model"], nhwc)
    np.testing.assert_allclose(ref.outputs, reference, atol=1e-5)
    report = layer_errors(out, ref.float_tflite, nhwc, max_samples=16)
    assert report.int8_tensors >= 3 and report.matched == report.int8_tensors
    assert report.output_snr_db > 20 and report.diagnosis


@pytest.mark.parametrize("io_dtype", ["uint8", "float32"])
def test_io_dtype_relaxes_only_the_model_edges(io_dtype, small_cnn, digits, tmp_path):
    from edgecompress.conversion.converter import convert

    result = convert(small_cnn, digits[0].take(100), io_dtype=io_dtype)
    info = read_model(result.tflite)
    assert [info.tensors[i].dtype for i in info.inputs + info.outputs] == [io_dtype, io_dtype]
    inner = [t for t in info.tensors if t.index not in info.inputs + info.outputs and not t.is_constant]
    assert {t.dtype for t in inner} <= {"int8", "int32"}
    ev = evaluate(result.tflite, digits[1], reference=small_cnn)
    assert ev.agreement >= 0.95


def _model_with_sine(shape=(8, 8, 1)):
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input(shape=shape, name="input")
    x = keras.layers.Conv2D(4, 3, padding="same")(inp)
    x = keras.ops.sin(x)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inp, out, name="sine_net")


def test_model_that_cannot_be_full_int8_names_the_float_operator(digits):
    from edgecompress.conversion.converter import convert
    from edgecompress.errors import ConversionError

    with pytest.raises(ConversionError, match=r"cannot be made full-int8: .*SIN") as err:
        convert(_model_with_sine(), digits[0].take(50))
    assert "--allow-float-fallback" in str(err.value)


def test_float_fallback_writes_mixed_model_and_says_so(digits):
    from edgecompress.conversion.converter import convert

    result = convert(_model_with_sine(), digits[0].take(50), allow_float_fallback=True)
    assert not result.full_int8
    assert [op["op"] for op in result.float_ops] == ["SIN"]
    assert "stayed float32" in result.warnings[0]
    assert not read_model(result.tflite).is_full_int8
    out = evaluate(result.tflite, digits[1].take(20))
    assert out.n == 20


def test_dynamic_batch_model_converts_with_static_batch_one(digits):
    import keras

    from edgecompress.conversion.converter import convert

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Reshape((64,)), keras.layers.Dense(10)])
    info = read_model(convert(model, digits[0].take(50)).tflite)
    assert not {op.op for op in info.operators} & DYNAMIC_BATCH_OPS
    assert info.tensors[info.inputs[0]].shape == (1, 8, 8, 1)


@pytest.mark.slow
def test_export_for_a_microcontroller_writes_firmware_sources_with_the_measured_arena(
        keras_file, calibration_npz, tmp_path):
    out = tmp_path / "m_int8.tflite"
    result = export(keras_file, calibration_npz, out, target="arduino-nano-33-ble")
    assert result.check["target"] == "arduino-nano-33-ble" and result.check["answered_by"] == "tflm"
    micro = tmp_path / "m_int8_micro"
    assert sorted(p.name for p in micro.iterdir()) == ["arena_size.h", "model_data.cc", "model_data.h",
                                                       "op_resolver.h"]
    arena = result.check["memory"]["arena_bytes"]
    assert f"{arena} bytes needed" in (micro / "arena_size.h").read_text()
    resolver = (micro / "op_resolver.h").read_text()
    assert "AddConv2D()" in resolver and "AddFullyConnected()" in resolver and "AddDepthwiseConv2D" not in resolver
    assert str(out.stat().st_size) in (micro / "model_data.cc").read_text().replace(",", "")


@pytest.mark.slow
def test_export_with_eval_points_at_validate_when_int8_loses_agreement(small_cnn, digits, tmp_path):
    from tests.integration.test_validate_layers import broken_dense_model

    train, test = digits
    np.savez(tmp_path / "calib.npz", x=train.first[:200])
    np.savez(tmp_path / "test.npz", x=test.first, y=test.y)
    messages = {}
    for name, model in (("good", small_cnn), ("broken", broken_dense_model(small_cnn))):
        model.save(tmp_path / f"{name}.keras")
        result = export(tmp_path / f"{name}.keras", tmp_path / "calib.npz", tmp_path / f"{name}.tflite",
                        evaluation=tmp_path / "test.npz")
        messages[name] = [w for w in result.calibration["warnings"] if "edgecompress validate" in w]
    assert messages["good"] == []
    assert len(messages["broken"]) == 1 and "broken.tflite --reference broken.keras" in messages["broken"][0]


@pytest.mark.slow
@pytest.mark.parametrize("spelling", ["relative", "absolute"])
def test_onnx_loads_from_relative_and_absolute_paths(onnx_bundle, monkeypatch, spelling):
    # the onnx2tf worker runs in its own working directory: a relative model.onnx used to be "not found" there
    from pathlib import Path

    from edgecompress.load.model import load_model

    model_path = Path(onnx_bundle["model"]).resolve()
    monkeypatch.chdir(model_path.parent)
    path = Path(model_path.name) if spelling == "relative" else model_path
    loaded = load_model(path, calibration=load_data(onnx_bundle["calibration"], purpose="calibration"))
    assert loaded.source_format == "onnx"
    x = load_data(onnx_bundle["test"], purpose="evaluation").first[:1].transpose(0, 2, 3, 1)  # onnx2tf fixes batch 1
    expected = onnx_bundle["keras"].predict(x, verbose=0)
    out = loaded.model(x)
    out = next(iter(out.values())) if isinstance(out, dict) else out
    np.testing.assert_allclose(np.asarray(out), expected, atol=1e-4)
