"""Where the converter quantizes a tensor on its own: the quantization points of a Keras graph.

Where the fake-quant nodes go (measured with TensorFlow 2.21, see ``quantization_points``):

* not between a Conv/Dense/DepthwiseConv and the BatchNormalization or ReLU that the converter fuses into it
  (the node would block the fusion);
* not after layers whose int8 kernel must keep its input's scale (pooling, reshape, padding, dropout): a second
  range there makes the converter insert a requantizing QUANTIZE operator;
* not on a tensor that feeds a Concatenate: the converter gives every concatenation input the output's scale,
  and the concatenation's own range covers its inputs;
* not after softmax/sigmoid/tanh, whose output scales the int8 kernels fix;
* the model inputs keep their min/max range: clipping an input only throws away what the user fed in.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from edgecompress.errors import CalibrationError

_FUSED_PRODUCERS = ("Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D", "Dense",
                    "BatchNormalization", "Add")
_WEIGHT_LAYERS = ("Conv2D", "DepthwiseConv2D", "Dense", "Conv1D")
# Layers whose int8 kernels require the output scale to equal the input scale (TFLite quantization spec)
# or that vanish at inference: a fake-quant node after them conflicts with their input's range.
_SAME_SCALE = ("MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
               "AveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "Reshape",
               "Flatten", "Permute", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D",
               "Cropping2D", "Cropping3D", "UpSampling1D", "UpSampling2D", "UpSampling3D", "RepeatVector",
               "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
               "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Identity", "InputLayer")
_FIXED_SCALE_ACTIVATIONS = ("softmax", "sigmoid", "tanh", "log_softmax", "hard_sigmoid")
_FUSABLE_ACTIVATIONS = ("relu", "relu6", "linear")


@dataclasses.dataclass
class QuantizationPoint:
    """A tensor whose int8 range calibration chooses: a model input or a layer's output.

    Args:
        name: the layer name (or the input's name).
        kind: "input" or "layer".
        layer_class: the Keras class of the producing layer.
    """

    name: str
    kind: str
    layer_class: str


def _functional(model: Any) -> Any:
    """The Keras model behind ``model`` as a flat functional graph (Sequential models re-wrapped and nested
    models inlined, sharing layers)."""
    import keras

    model = model if hasattr(model, "inputs") else getattr(model, "model", model)
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError) as exc:
        raise CalibrationError(f"model '{getattr(model, 'name', model)}': calibration needs a built model with "
                               "defined inputs. Give it an Input layer (or call it on data) first.") from exc
    if isinstance(model, keras.Sequential) or not hasattr(model, "_nodes_by_depth"):
        model = keras.Model(inputs, outputs, name=model.name)
    if any(isinstance(layer, keras.Model) for layer in model.layers):
        from edgecompress.graph import inline_nested

        model = inline_nested(model)  # a backbone inside a head: calibrate its layers, not one opaque output
    return model


def _activation_name(layer: Any) -> str | None:
    fn = getattr(layer, "activation", None)
    return getattr(fn, "__name__", None) if fn is not None else None


def _fuses_into(producer: Any, consumer: Any) -> bool:
    """Whether the converter folds ``consumer`` into ``producer`` (so the tensor between them is never int8)."""
    p_cls, c_cls = type(producer).__name__, type(consumer).__name__
    if p_cls not in _FUSED_PRODUCERS or _activation_name(producer) not in (None, "linear"):
        return False
    if c_cls == "BatchNormalization":
        return p_cls in _WEIGHT_LAYERS or p_cls.startswith(("Conv", "DepthwiseConv"))
    if c_cls == "ReLU":
        config = consumer.get_config()
        return (not config.get("negative_slope") and not config.get("threshold")
                and config.get("max_value") in (None, 6, 6.0))
    if c_cls == "Activation":
        return _activation_name(consumer) in _FUSABLE_ACTIVATIONS
    return False


def _graph(model: Any) -> tuple[list[Any], dict[str, list[Any]], dict[str, int]]:
    """Nodes in execution order, each layer's consumers and how often each layer is called."""
    nodes = [node for depth in sorted(model._nodes_by_depth, reverse=True) for node in model._nodes_by_depth[depth]]
    consumers: dict[str, list[Any]] = {}
    calls: dict[str, int] = {}
    for node in nodes:
        calls[node.operation.name] = calls.get(node.operation.name, 0) + 1
        for parent in node.parent_nodes:
            consumers.setdefault(parent.operation.name, []).append(node.operation)
    return nodes, consumers, calls


def quantization_points(model: Any) -> list[QuantizationPoint]:
    """The tensors of ``model`` whose int8 range calibration should choose (see the module docstring).

    Args:
        model: a built Keras 3 model (functional or Sequential) or a ``LoadedModel``.

    Returns:
        The model inputs first, then the layer outputs in execution order.

    Example:
        >>> [p.name for p in quantization_points(model)]  # doctest: +SKIP
        ['input', 'conv1', 'conv2', 'dense', 'logits']
    """
    fn = _functional(model)
    nodes, consumers, calls = _graph(fn)
    points = [QuantizationPoint(t.name.split(":")[0], "input", "InputLayer") for t in fn.inputs
              if "float" in str(t.dtype)]
    for node in nodes:
        layer = node.operation
        cls = type(layer).__name__
        if cls in _SAME_SCALE or calls[layer.name] > 1 or len(node.outputs) != 1:
            continue
        if "float" not in str(node.outputs[0].dtype) or not node.parent_nodes:
            continue
        if cls == "Softmax" or _activation_name(layer) in _FIXED_SCALE_ACTIVATIONS:
            continue
        users = consumers.get(layer.name, [])
        if any(type(user).__name__ == "Concatenate" for user in users):
            continue
        if len(users) == 1 and _fuses_into(layer, users[0]):
            continue
        points.append(QuantizationPoint(layer.name, "layer", cls))
    return points
