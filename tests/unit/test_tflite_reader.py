"""The flatbuffer reader: what a converted model contains, read without TensorFlow."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgecompress.errors import InvalidModelError
from edgecompress.tflite import read_model
from tests.tflite_craft import Code, Op, Tensor, aliased_shapes_model, build_model, conv_model

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


# ---------------------------------------------------------------- hand-built models: one property each

def test_strided_conv_macs_match_hand_computed_value():
    info = read_model(conv_model(in_hw=8, in_ch=3, out_ch=5, kernel=3, stride=2))
    out_hw = (8 - 3) // 2 + 1
    assert info.operators[0].macs == (1 * out_hw * out_hw * 5) * 3 * 3 * 3


def test_param_count_and_bytes_cover_weights_and_biases():
    info = read_model(conv_model(in_ch=3, out_ch=5, kernel=3))
    assert info.param_count == 5 * 3 * 3 * 3 + 5
    assert info.param_bytes == 5 * 3 * 3 * 3 * 1 + 5 * 4


def test_deprecated_builtin_code_is_read_when_the_new_field_is_zero():
    tensors = [Tensor([1, 4]), Tensor([1, 4])]
    data = build_model(tensors, [Op(0, [0], [1])], [Code("ADD", deprecated=3)], [None], [0], [1])
    assert read_model(data).operators[0].op == "CONV_2D"


def test_operators_past_127_are_named_from_the_extended_code():
    tensors = [Tensor([1, 4]), Tensor([1, 4])]
    data = build_model(tensors, [Op(0, [0], [1])], [Code("GELU", deprecated=127)], [None], [0], [1])
    assert read_model(data).operators[0].op == "GELU"


def test_custom_operator_is_named_by_its_custom_code():
    tensors = [Tensor([1, 4]), Tensor([1, 4])]
    data = build_model(tensors, [Op(0, [0], [1])], [Code("CUSTOM", custom="ethos-u")], [None], [0], [1])
    op = read_model(data).operators[0]
    assert (op.op, op.custom, op.options) == ("ethos-u", True, {})


@pytest.mark.parametrize("code,options,expected", [
    ("AVERAGE_POOL_2D", ("Pool2DOptions", {"Padding": 1, "StrideW": 2, "StrideH": 2, "FilterWidth": 2,
                                           "FilterHeight": 3, "FusedActivationFunction": 3}),
     {"padding": "VALID", "stride_w": 2, "filter_height": 3, "fused_activation_function": "RELU6"}),
    ("RESHAPE", ("ReshapeOptions", {"NewShape": [1, -1]}), {"new_shape": [1, -1]}),
    ("SQUEEZE", ("SqueezeOptions", {"SqueezeDims": [1, 2]}), {"squeeze_dims": [1, 2]}),
    ("CONCATENATION", ("ConcatenationOptions", {"Axis": 3}), {"axis": 3, "fused_activation_function": "NONE"}),
    ("MEAN", ("ReducerOptions", {"KeepDims": True}), {"keep_dims": True}),
    ("STRIDED_SLICE", ("StridedSliceOptions", {"BeginMask": 5, "ShrinkAxisMask": 2}),
     {"begin_mask": 5, "shrink_axis_mask": 2, "end_mask": 0}),
    ("RESIZE_BILINEAR", ("ResizeBilinearOptions", {"HalfPixelCenters": True}),
     {"half_pixel_centers": True, "align_corners": False}),
    ("SOFTMAX", ("SoftmaxOptions", {"Beta": 0.5}), {"beta": 0.5}),
    ("FULLY_CONNECTED", ("FullyConnectedOptions", {"KeepNumDims": True}),
     {"keep_num_dims": True, "weights_format": "DEFAULT"}),
    ("DEPTHWISE_CONV_2D", ("DepthwiseConv2DOptions", {"DepthMultiplier": 2, "DilationHFactor": 2}),
     {"depth_multiplier": 2, "dilation_h_factor": 2, "padding": "SAME"}),
])
def test_builtin_options_are_decoded_to_snake_case_with_enum_names(code, options, expected):
    tensors = [Tensor([1, 4]), Tensor([1, 4])]
    data = build_model(tensors, [Op(0, [0], [1], options)], [Code(code)], [None], [0], [1])
    decoded = read_model(data).operators[0].options
    assert {key: decoded.get(key) for key in expected} == expected


@pytest.mark.parametrize("dtype,numpy_dtype", [("INT8", np.int8), ("UINT8", np.uint8), ("INT16", np.int16),
                                               ("INT32", np.int32), ("INT64", np.int64),
                                               ("FLOAT32", np.float32), ("FLOAT16", np.float16)])
def test_constants_decode_to_their_dtype_and_shape(dtype, numpy_dtype):
    values = np.arange(6).astype(numpy_dtype).reshape(2, 3)
    tensors = [Tensor([2, 3], dtype, buffer=1), Tensor([2, 3], dtype)]
    data = build_model(tensors, [Op(0, [0], [1])], [Code("ABS")], [None, values.tobytes()], [], [1])
    info = read_model(data)
    decoded = info.constant(0)
    assert decoded.dtype == numpy_dtype and decoded.shape == (2, 3)
    np.testing.assert_array_equal(decoded, values)
    assert info.constant(1) is None


# ---------------------------------------------------------------- "is this really int8?"

def _chain(dtypes: list[str], ops: list[str], scales: list[bool] | None = None) -> bytes:
    """tensor 0 -op0-> tensor 1 -op1-> ... with the given dtypes."""
    scales = scales or [True] * len(dtypes)
    tensors = [Tensor([1, 4], d, name=f"t{i}", scale=[0.1] if s else [], zero_point=[0] if s else [])
               for i, (d, s) in enumerate(zip(dtypes, scales, strict=True))]
    names = list(dict.fromkeys(ops))
    chain = [Op(names.index(op), [i], [i + 1]) for i, op in enumerate(ops)]
    return build_model(tensors, chain, [Code(n) for n in names], [None], [0], [len(dtypes) - 1])


def test_requantize_between_int8_tensors_is_still_full_int8():
    info = read_model(_chain(["INT8", "INT8", "INT8"], ["QUANTIZE", "RELU"]))
    assert info.is_full_int8 and info.quantize_ops_inside == 0


def test_float_io_edges_are_named_but_not_counted_as_inside_quantize_ops():
    info = read_model(_chain(["FLOAT32", "INT8", "INT8", "FLOAT32"], ["QUANTIZE", "RELU", "DEQUANTIZE"]))
    assert info.quantize_ops_inside == 0
    assert info.float_tensors == ["t0", "t3"]
    assert not info.is_full_int8


def test_dequantize_inside_the_graph_is_counted():
    info = read_model(_chain(["INT8", "FLOAT32", "FLOAT32", "INT8"], ["DEQUANTIZE", "TANH", "QUANTIZE"]))
    assert info.quantize_ops_inside == 2 and info.float_tensors == ["t1", "t2"]
    assert not info.is_full_int8


def test_int16_activations_are_not_full_int8():
    info = read_model(_chain(["INT16", "INT16"], ["RELU"]))
    assert info.non_int8_tensors == ["t0", "t1"] and not info.is_full_int8


def test_unquantized_int32_indices_do_not_break_full_int8():
    info = read_model(_chain(["INT8", "INT32"], ["ARG_MAX"], scales=[True, False]))
    assert info.is_full_int8


# ---------------------------------------------------------------- hostile structure

def test_vectors_that_alias_each_other_are_rejected_quickly():
    data = aliased_shapes_model(8000)  # 64 KB; reading every alias would take 8000 x 8000 steps
    start = time.perf_counter()
    with pytest.raises(InvalidModelError, match="overlap"):
        read_model(data)
    assert time.perf_counter() - start < 0.5


def test_operator_code_index_out_of_range_is_rejected():
    data = build_model([Tensor([1]), Tensor([1])], [Op(7, [0], [1])], [Code("ABS")], [None], [0], [1])
    with pytest.raises(InvalidModelError, match="opcode index 7 is out of range"):
        read_model(data)


def test_buffer_index_out_of_range_is_rejected():
    data = build_model([Tensor([1], buffer=9), Tensor([1])], [Op(0, [0], [1])], [Code("ABS")], [None], [0], [1])
    with pytest.raises(InvalidModelError, match="buffer index 9 is out of range"):
        read_model(data)


def test_negative_dimension_is_rejected_but_dynamic_signature_is_not():
    with pytest.raises(InvalidModelError, match="negative dimension"):
        read_model(build_model([Tensor([1, -4])], [], [], [None], [0], [0]))
    info = read_model(build_model([Tensor([1, 4], shape_signature=[-1, 4])], [], [], [None], [0], [0]))
    assert info.tensors[0].shape_signature == (-1, 4)


def test_absurd_element_count_is_rejected():
    with pytest.raises(InvalidModelError, match="elements"):
        read_model(build_model([Tensor([65536, 65536, 2])], [], [], [None], [0], [0]))


def test_wrong_file_identifier_is_rejected():
    data = build_model([Tensor([1])], [], [], [None], [0], [0], identifier=b"XXXX")
    with pytest.raises(InvalidModelError, match="TFL3"):
        read_model(data)


def test_a_path_with_a_nul_character_is_a_clean_error():
    with pytest.raises(InvalidModelError, match="NUL"):
        read_model("model\x00.tflite")


def test_device_files_are_refused_without_reading_them():
    with pytest.raises(InvalidModelError, match="not a regular file"):
        read_model("/dev/zero")


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "model.tflite"
    os.mkfifo(fifo)
    with pytest.raises(InvalidModelError, match="not a regular file"):
        read_model(fifo)


def test_models_over_two_gib_are_mapped_and_their_external_buffers_read(tmp_path):
    offset = (2 << 30) + 4096  # past 2 GiB, as in the large-model format
    weights = np.arange(-6, 6, dtype=np.int8)
    header = build_model([Tensor([3, 4], buffer=1), Tensor([3, 4])], [Op(0, [0], [1])], [Code("ABS")],
                         [None, (offset, weights.nbytes)], [], [1])
    big = tmp_path / "large.tflite"
    with open(big, "wb") as handle:  # sparse: the hole costs no disk space
        handle.write(header)
        handle.seek(offset)
        handle.write(weights.tobytes())
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    info = read_model(big)
    np.testing.assert_array_equal(info.constant(0), weights.reshape(3, 4))
    assert info.size_bytes == offset + weights.nbytes and info.param_bytes == weights.nbytes
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert grown_kib < 256 * 1024  # the 2 GiB file was mapped, not read


def test_external_buffer_past_the_end_of_the_file_is_rejected():
    data = build_model([Tensor([4], buffer=1), Tensor([4])], [Op(0, [0], [1])], [Code("ABS")],
                       [None, (10_000, 4)], [], [1])
    with pytest.raises(InvalidModelError, match="buffer 1 points past the end"):
        read_model(data)


def _single_op(code: str, shapes: list[list[int]], options=None, constant: tuple[int, ...] = ()) -> int:
    """MACs of one operator whose last shape is the output; operands in ``constant`` get a (zero) buffer."""
    tensors, buffers = [], [None]
    for i, shape in enumerate(shapes):
        buffer = 0
        if i in constant:
            buffers.append(bytes(int(np.prod(shape))))
            buffer = len(buffers) - 1
        tensors.append(Tensor(shape, "INT32" if code == "TRANSPOSE_CONV" and i == 0 else "INT8", buffer=buffer))
    n = len(shapes) - 1
    data = build_model(tensors, [Op(0, list(range(n)), [n], options)], [Code(code)], buffers, [], [n])
    return read_model(data).operators[0].macs


@pytest.mark.parametrize("code,shapes,options,constant,expected", [
    ("FULLY_CONNECTED", [[1, 6, 8], [4, 8], [1, 6, 4]], ("FullyConnectedOptions", {"KeepNumDims": True}), (1,),
     6 * 8 * 4),
    ("DEPTHWISE_CONV_2D", [[1, 5, 5, 2], [1, 3, 3, 4], [1, 3, 3, 4]], None, (1,), 3 * 3 * 4 * 3 * 3),
    ("TRANSPOSE_CONV", [[4], [6, 3, 3, 2], [1, 4, 4, 2], [1, 8, 8, 6]], None, (0, 1), 4 * 4 * 2 * 3 * 3 * 6),
    ("BATCH_MATMUL", [[1, 5, 7], [1, 7, 3], [1, 5, 3]], None, (), 5 * 3 * 7),
    ("MAX_POOL_2D", [[1, 8, 8, 3], [1, 4, 4, 3]], ("Pool2DOptions", {"FilterWidth": 2, "FilterHeight": 2}), (),
     4 * 4 * 3 * 2 * 2),
    ("MUL", [[1, 4, 4, 3], [1, 1, 1, 3], [1, 4, 4, 3]], None, (), 4 * 4 * 3),
    ("MEAN", [[1, 4, 4, 3], [2], [1, 3]], None, (1,), 4 * 4 * 3),
    ("RESHAPE", [[1, 4, 4, 3], [2], [1, 48]], None, (1,), 0),
])
def test_macs_follow_the_documented_convention(code, shapes, options, constant, expected):
    assert _single_op(code, shapes, options, constant) == expected
