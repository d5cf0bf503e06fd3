"""Model surgery shared by the compression wrappers: copying a model, rebuilding it with some layers
wrapped, and calling a layer with substituted weight values.

The wrappers (pruning, clustering, quantization) never rewrite a layer's maths. They call the wrapped
layer inside a ``keras.StatelessScope`` that maps its kernel variable to a computed tensor (the masked,
clustered or fake-quantized kernel), so gradients flow through the computation back to the variables and
any Keras layer with a ``kernel`` works without a per-class reimplementation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgecompress.errors import InvalidModelError

# Layers whose ``kernel`` the compression stages may rewrite, by class name (no keras import at module load).
KERNEL_LAYERS = ("Conv1D", "Conv2D", "DepthwiseConv2D", "Conv2DTranspose", "Dense")


def is_kernel_layer(layer: Any) -> bool:
    """Return True if ``layer`` is one of the plain Keras layers with a prunable/clusterable kernel."""
    return type(layer).__name__ in KERNEL_LAYERS and type(layer).__module__.startswith("keras")


def copy_model(model: Any) -> Any:
    """Return an independent copy of ``model`` (new layers, same weights).

    Args:
        model: a built Sequential or functional Keras model.

    Returns:
        The copy; changing its weights leaves ``model`` untouched.

    Example:
        >>> twin = copy_model(model)  # doctest: +SKIP
    """
    import keras

    if not model.built:
        raise InvalidModelError(
            f"{model.name}: expected a built Keras model. Received: an unbuilt model with no input shape. "
            "Build it with keras.Input(...) or call it once on data before compressing.")
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    return twin


def map_layers(model: Any, replace: Callable[[Any], Any | None]) -> Any:
    """Rebuild ``model`` with each layer ``replace(layer)`` returns (None keeps the layer).

    The model is copied first, so the returned model never shares layers or weights with ``model``;
    ``replace`` receives the copy's layers and may wrap them as they are.

    Args:
        model: a built Sequential or functional Keras model (nested models are processed recursively).
        replace: called once per layer; returns a replacement layer or None.

    Returns:
        The rebuilt model (Sequential stays Sequential, functional stays functional).

    Example:
        >>> plain = map_layers(model, lambda layer: None)  # doctest: +SKIP
    """
    import keras

    twin = copy_model(model)

    def clone(layer: Any) -> Any:
        new = replace(layer)
        return layer if new is None else new

    return keras.models.clone_model(twin, clone_function=clone, recursive=True)


def flat_layers(model: Any) -> list[Any]:
    """Return the model's layers in order, descending into nested models."""
    import keras

    found: list[Any] = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.extend(flat_layers(layer))
        else:
            found.append(layer)
    return found


def call_with_weights(layer: Any, substitutes: list[tuple[Any, Any]], *args: Any, **kwargs: Any) -> Any:
    """Call ``layer`` with some of its variables replaced by computed tensors.

    Args:
        layer: a built Keras layer.
        substitutes: ``(variable, tensor)`` pairs; the tensor must have the variable's shape.
        *args: positional arguments for the layer call.
        **kwargs: keyword arguments for the layer call.

    Returns:
        The layer's outputs, computed with the substituted values (differentiable w.r.t. the tensors).

    Example:
        >>> y = call_with_weights(conv, [(conv.kernel, conv.kernel * mask)], x)  # doctest: +SKIP
    """
    import keras

    with keras.StatelessScope(state_mapping=substitutes, initialize_variables=False):
        return layer(*args, **kwargs)


def inline_nested(model: Any) -> Any:
    """A flat functional model computing ``model``, with every nested model's layers called directly.

    ``Sequential([base_model, GlobalAveragePooling2D(), Dense(10)])`` (a pretrained backbone inside a head) is
    the common case: quantization and calibration place their nodes per layer, so the backbone must not stay one
    opaque layer. The result has its own copies of the layers (same weights; a layer called twice stays one
    shared copy), each called once per use, so graph checks such as "this convolution feeds only that
    BatchNormalization" see one call, not the original one as well. A flat model comes back as a functional
    view of itself (layers shared).

    Args:
        model: a built Sequential or functional Keras model, nested to any depth.

    Returns:
        A functional model without nested models.

    Example:
        >>> flat = inline_nested(keras.Sequential([keras.Input((32, 32, 3)), backbone, head]))  # doctest: +SKIP
        >>> any(isinstance(layer, keras.Model) for layer in flat.layers)  # doctest: +SKIP
        False
    """
    import keras

    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError) as exc:
        raise InvalidModelError(f"{model.name}: expected a model with defined inputs. Received: a model without "
                                "an input signature. Give it a keras.Input first.") from exc
    flat = model if hasattr(model, "_run_through_graph") and not isinstance(model, keras.Sequential) else \
        keras.Model(inputs, outputs, name=model.name)
    if not any(isinstance(layer, keras.Model) for layer in flat.layers):
        return flat

    copies: dict[int, Any] = {}

    def copy_of(layer: Any) -> Any:
        if id(layer) not in copies:
            try:
                copies[id(layer)] = layer.__class__.from_config(layer.get_config())
            except (NotImplementedError, TypeError, ValueError) as exc:
                raise InvalidModelError(f"layer '{layer.name}' inside a nested model cannot be copied to inline "
                                        f"it ({exc}). Give the layer a get_config(), or rebuild the model flat.") from exc
        return copies[id(layer)]

    def call(layer: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(layer, keras.Model):
            twin = copy_of(layer)
            out = twin(*args, **kwargs)
            # Keras ops (``x + 1`` on symbolic tensors) are operations without weights.
            if getattr(twin, "weights", None) and not getattr(twin, "_edgecompress_weights_set", False):
                twin.set_weights(layer.get_weights())
                twin._edgecompress_weights_set = True
            return out
        inner = layer
        if isinstance(layer, keras.Sequential) or not hasattr(layer, "_run_through_graph"):
            inner = keras.Model(layer.inputs, layer.outputs, name=layer.name)
        return inner._run_through_graph(args[0] if len(args) == 1 else list(args), operation_fn=lambda op: op,
                                        call_fn=call)

    fresh = [keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t.name.split(":")[0]) for t in flat.inputs]
    result = flat._run_through_graph(fresh, operation_fn=lambda op: op, call_fn=call)
    try:
        return keras.Model(fresh if len(fresh) > 1 else fresh[0], result, name=model.name)
    except ValueError as exc:
        raise InvalidModelError(f"{model.name}: its nested models cannot be inlined ({str(exc).splitlines()[0]}). "
                                "Give the inner layers names that differ from the outer ones.") from exc
