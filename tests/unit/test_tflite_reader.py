"""The flatbuffer reader: what a converted model contains, read without TensorFlow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgecompress.errors import InvalidModelError
from edgecompress.tflite import read_model

SEEDS = Path(__file__).resolve().parents[1] / "data" / "tflite"


@pytest.fixture(scope="module")
def int8_model():
    return read_model(SEEDS / "conv_dw_dense_int8.tflite")


def test_full_int8_model_lists_its_operators_in_order(int8_model):
    assert [op.op for op in int8_model.operators] == ["CONV_2D", "DEPTHWISE_CONV_2D", "RESHAPE",
                                                      "FULLY_CONNECTED", "SOFTMAX"]
    assert int8_model.is_full_int8
    assert int8_model.float_tensors == [] and int8_model.quantize_ops_inside == 0


def test_macs_match_hand_computed_values(int8_model):
    conv, dw, _, fc, _ = int8_model.operators
    assert conv.macs == 8 * 8 * 4 * 3 * 3 * 1
    assert dw.macs == 8 * 8 * 4 * 3 * 3
    assert fc.macs == 256 * 10
    assert int8_model.total_macs == conv.macs + dw.macs + fc.macs


def test_conv_options_are_decoded_with_names(int8_model):
    options = int8_model.operators[0].options
    assert options["padding"] == "SAME" and options["fused_activation_function"] == "RELU"
    assert options["stride_w"] == options["stride_h"] == 1
    assert options["dilation_h_factor"] == 1


def test_weights_are_per_channel_int8_and_biases_int32(int8_model):
    conv = int8_model.operators[0]
    weights, bias = int8_model.tensors[conv.inputs[1]], int8_model.tensors[conv.inputs[2]]
    assert weights.dtype == "int8" and len(weights.scale) == 4 and weights.quantized_dimension == 0
    assert bias.dtype == "int32"
    values = int8_model.constant(weights.index)
    assert values.shape == (4, 3, 3, 1) and values.dtype == np.int8 and np.abs(values).max() == 127


def test_parameter_count_excludes_shape_operands(int8_model):
    expected = (4 * 9 + 4) + (9 * 4 + 4) + (256 * 10 + 10)
    assert int8_model.param_count == expected


def test_io_tensors_are_int8_with_batch_one(int8_model):
    io = [int8_model.tensors[i] for i in int8_model.inputs + int8_model.outputs]
    assert [(t.dtype, t.shape[0]) for t in io] == [("int8", 1), ("int8", 1)]
    assert io[0].scale and io[0].zero_point


def test_float_and_dynamic_range_models_are_not_full_int8():
    assert not read_model(SEEDS / "conv_dw_dense_float32.tflite").is_full_int8
    dynamic = read_model(SEEDS / "conv_dw_dense_dynamic_range.tflite")
    assert not dynamic.is_full_int8
    assert any(t.dtype == "int8" and t.is_constant for t in dynamic.tensors)
    assert dynamic.float_tensors


def test_residual_model_has_add_and_concatenation_and_graph_maps():
    info = read_model(SEEDS / "add_concat_int8.tflite")
    ops = [op.op for op in info.operators]
    assert "ADD" in ops and "CONCATENATION" in ops
    producers, consumers = info.producers(), info.consumers()
    add = info.operators[ops.index("ADD")]
    assert all(producers[t] < add.index for t in add.inputs)
    assert all(add.index in consumers[t] for t in add.inputs)


def test_to_dict_has_the_documented_fields(int8_model):
    d = int8_model.to_dict()
    for key in ("path", "size_bytes", "inputs", "outputs", "operators", "tensors", "param_count", "param_bytes",
                "total_macs", "op_histogram", "is_full_int8", "float_tensors", "quantize_ops_inside"):
        assert key in d
    assert d["op_histogram"]["CONV_2D"] == 1


def test_reading_imports_no_tensorflow_and_is_fast():
    code = ("import sys, time; t = time.perf_counter(); from edgecompress.tflite import read_model; "
            f"read_model({str(SEEDS / 'conv_dw_dense_int8.tflite')!r}); "
            "print(time.perf_counter() - t, 'tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    seconds, tf_loaded = out.stdout.split()
    assert tf_loaded == "False"
    assert float(seconds) < 1.0


@pytest.mark.parametrize("data,reason", [
    (b"", "identifier"),
    (b"\x00" * 64, "identifier"),
    (b"PK\x03\x04" + b"\x00" * 60, "identifier"),
])
def test_non_tflite_bytes_are_rejected_with_a_clear_reason(data, reason):
    with pytest.raises(InvalidModelError, match=f"not a valid TFLite model: .*{reason}"):
        read_model(data)


def test_missing_file_and_directory_are_clear(tmp_path):
    with pytest.raises(InvalidModelError, match="no such file"):
        read_model(tmp_path / "missing.tflite")
    with pytest.raises(InvalidModelError, match="directory"):
        read_model(tmp_path)


def test_out_of_range_tensor_index_is_rejected():
    data = bytearray((SEEDS / "conv_dw_dense_int8.tflite").read_bytes())
    info = read_model(bytes(data))
    # find the first operator's input vector in the file and point it past the tensor list
    count = len(info.tensors)
    needle = np.asarray(info.operators[0].inputs, np.int32).tobytes()
    at = bytes(data).find(needle)
    assert at > 0
    data[at : at + 4] = np.int32(count + 1000).tobytes()
    with pytest.raises(InvalidModelError, match="out of range"):
        read_model(bytes(data))


def test_huge_declared_vector_length_is_rejected_without_allocating():
    data = bytearray((SEEDS / "conv_dw_dense_int8.tflite").read_bytes())
    info = read_model(bytes(data))
    shape = np.asarray(info.tensors[info.inputs[0]].shape, np.int32)
    at = bytes(data).find(np.int32(len(shape)).tobytes() + shape.tobytes())
    assert at > 0
    data[at : at + 4] = np.int32(2**30).tobytes()
    with pytest.raises(InvalidModelError, match="not a valid TFLite model"):
        read_model(bytes(data))
