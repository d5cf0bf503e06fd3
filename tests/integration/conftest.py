"""Fixtures for the target-checker tests.

``read_model_info`` uses ``edgecompress.tflite.read_model`` when it exists. Until the reader lands on main, a
THROWAWAY minimal reader built on the ``tflite`` schema package stands in (same ModelInfo fields the checker
uses); delete ``_StubReader`` once ``edgecompress/tflite.py`` is merged.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def read_model_info(source: str | Path | bytes) -> Any:
    try:
        from edgecompress.tflite import read_model
    except ImportError:
        return _StubReader(source).info
    return read_model(source)


@dataclasses.dataclass
class _Tensor:
    index: int
    name: str
    shape: tuple
    shape_signature: tuple
    dtype: str
    scale: list
    zero_point: list
    quantized_dimension: int
    is_constant: bool
    nbytes: int
    is_variable: bool


@dataclasses.dataclass
class _Op:
    index: int
    op: str
    custom: bool
    version: int
    inputs: list
    outputs: list
    options: dict
    macs: int = 0


@dataclasses.dataclass
class _Info:
    path: str | None
    size_bytes: int
    subgraph_count: int
    tensors: list
    operators: list
    inputs: list
    outputs: list
    param_count: int
    param_bytes: int
    _constants: dict

    def constant(self, index: int):
        return self._constants.get(index)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class _StubReader:
    def __init__(self, source):
        import tflite

        data = Path(source).read_bytes() if not isinstance(source, bytes) else source
        model = tflite.Model.GetRootAsModel(data, 0)
        types = {v: k.lower() for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
        ops_by_code = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
        opt_names = {v: k for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_")}
        pads = {v: k for k, v in vars(tflite.Padding).items() if not k.startswith("_")}
        acts = {v: k for k, v in vars(tflite.ActivationFunctionType).items() if not k.startswith("_")}
        sg = model.Subgraphs(0)
        tensors, constants = [], {}
        np_types = {"int8": np.int8, "uint8": np.uint8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
                    "float32": np.float32, "bool": np.bool_}
        param_count = param_bytes = 0
        for i in range(sg.TensorsLength()):
            t = sg.Tensors(i)
            dtype = types[t.Type()]
            shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
            sig = tuple(int(d) for d in t.ShapeSignatureAsNumpy()) if t.ShapeSignatureLength() else shape
            q = t.Quantization()
            scale = [float(s) for s in q.ScaleAsNumpy()] if q and q.ScaleLength() else []
            zp = [int(z) for z in q.ZeroPointAsNumpy()] if q and q.ZeroPointLength() else []
            buf = model.Buffers(t.Buffer())
            raw = buf.DataAsNumpy() if buf and buf.DataLength() else None
            if raw is None and buf is not None and buf.Offset() > 1:
                raw = np.frombuffer(data[buf.Offset(): buf.Offset() + buf.Size()], np.uint8)
            const = raw is not None and dtype in np_types
            if const:
                arr = np.frombuffer(bytes(raw), np_types[dtype]).reshape(shape)
                constants[i] = arr
                param_count += arr.size
                param_bytes += arr.nbytes
            itemsize = np.dtype(np_types.get(dtype, np.uint8)).itemsize
            tensors.append(_Tensor(i, t.Name().decode(), shape, sig, dtype, scale, zp,
                                   q.QuantizedDimension() if q else 0, const,
                                   int(np.prod(shape)) * itemsize, bool(t.IsVariable())))
        ops = []
        for i in range(sg.OperatorsLength()):
            o = sg.Operators(i)
            code = model.OperatorCodes(o.OpcodeIndex())
            b = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            name = ops_by_code[b]
            custom = name == "CUSTOM"
            if custom:
                name = code.CustomCode().decode()
            options = {}
            otype = o.BuiltinOptionsType()
            if otype:
                cls = getattr(getattr(tflite, opt_names[otype]), opt_names[otype], None) or getattr(tflite, opt_names[otype])
                obj = cls()
                tab = o.BuiltinOptions()
                obj.Init(tab.Bytes, tab.Pos)
                for m in dir(obj):
                    if not m[0].isupper() or m in ("Init", "GetRootAs") or m.startswith("GetRootAs") \
                            or m.endswith(("AsNumpy", "Length", "IsNone", "HasIdentifier")):
                        continue
                    try:
                        v = getattr(obj, m)()
                    except TypeError:
                        continue
                    key = _snake(m)
                    if key == "padding":
                        v = pads.get(v, v)
                    if key == "fused_activation_function":
                        v = acts.get(v, v)
                    options[key] = v
            ops.append(_Op(i, name, custom, code.Version(), [int(x) for x in o.InputsAsNumpy()] if o.InputsLength() else [],
                           [int(x) for x in o.OutputsAsNumpy()], options))
        self.info = _Info(None, len(data), model.SubgraphsLength(), tensors, ops,
                          [int(x) for x in sg.InputsAsNumpy()], [int(x) for x in sg.OutputsAsNumpy()],
                          param_count, param_bytes, constants)


@pytest.fixture(scope="session")
def target_model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("target_models")
