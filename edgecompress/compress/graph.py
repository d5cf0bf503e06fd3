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
