"""Weight clustering (weight sharing) for Keras 3: ``cluster_weights``, ``ClusterWeights``, ``strip_clustering``.

Each clustered kernel is ``centroids[assignment]``: the weights are assigned once to the nearest of
``n_clusters`` centroids (k-means++ or linear initialisation), then training updates only the centroids
(the gradient of a centroid is the sum of its members' gradients). Zeros of a pruned kernel stay zeros:
they are masked out of the clustering, so prune -> cluster keeps the sparsity.

This module imports Keras when imported, so its wrapper is registered before a clustered ``.keras`` loads.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from edgecompress.errors import RecipeError
from edgecompress.graph import call_with_weights, flat_layers, is_kernel_layer, map_layers

INITS = ("kmeans++", "linear")


def initial_centroids(values: np.ndarray, n_clusters: int, init: str, *, seed: int = 0,
                      iterations: int = 20) -> np.ndarray:
    """Return ``n_clusters`` sorted centroids for 1-D ``values``.

    Args:
        values: the weights to cluster (any shape; flattened).
        n_clusters: number of centroids.
        init: ``"linear"`` (evenly spaced between min and max) or ``"kmeans++"`` (seeded, then Lloyd steps).
        seed: seed of the k-means++ sampling.
        iterations: Lloyd iterations after initialisation.

    Returns:
        A float32 array of ``n_clusters`` centroids.

    Example:
        >>> initial_centroids(np.array([0.0, 1.0, 2.0, 3.0]), 2, "linear").tolist()
        [0.0, 3.0]
    """
    flat = np.asarray(values, np.float64).ravel()
    if init == "linear":
        centroids = np.linspace(flat.min(), flat.max(), n_clusters)
    else:
        rng = np.random.default_rng(seed)
        centroids = [rng.choice(flat)]
        for _ in range(1, n_clusters):
            distance = np.min(np.abs(flat[:, None] - np.array(centroids)[None]), axis=1) ** 2
            total = distance.sum()
            centroids.append(rng.choice(flat, p=distance / total) if total > 0 else rng.choice(flat))
        centroids = np.array(centroids)
    for _ in range(iterations):
        assignment = np.argmin(np.abs(flat[:, None] - centroids[None]), axis=1)
        for k in range(n_clusters):
            members = flat[assignment == k]
            if members.size:
                centroids[k] = members.mean()
    return np.sort(centroids).astype(np.float32)


@keras.saving.register_keras_serializable(package="edgecompress")
class ClusterWeights(keras.layers.Wrapper):
    """Wraps a layer whose kernel is ``centroids[assignment]`` (zeros of the original kernel kept).

    Args:
        layer: a built Conv1D, Conv2D, DepthwiseConv2D, Conv2DTranspose or Dense layer.
        n_clusters: number of shared values.
        init: ``"kmeans++"`` or ``"linear"``.

    Example:
        >>> ClusterWeights(dense_layer, 16)  # doctest: +SKIP
    """

    def __init__(self, layer: Any, n_clusters: int, init: str = "kmeans++", **kwargs: Any) -> None:
        kwargs.setdefault("name", f"cluster_{layer.name}")
        super().__init__(layer, **kwargs)
        self.n_clusters = int(n_clusters)
        self.init = init

    def build(self, input_shape: Any = None) -> None:
        super().build(input_shape)
        shape = self.layer.kernel.shape
        self.centroids = self.add_weight(name="centroids", shape=(self.n_clusters,), initializer="zeros")
        self.assignment = self.add_weight(name="assignment", shape=shape, dtype="int32", initializer="zeros",
                                          trainable=False)
        self.keep = self.add_weight(name="keep", shape=shape, initializer="ones", trainable=False)
        # The kernel is replaced by centroids[assignment] in every call: training moves the centroids, never the
        # kernel itself (left trainable, it only makes the optimizer warn that it has no gradient).
        self.layer.kernel.trainable = False
        self.built = True

    def initialize_clusters(self, seed: int = 0) -> None:
        """Cluster the current non-zero weights and record each weight's centroid."""
        kernel = ops.convert_to_numpy(self.layer.kernel)
        keep = kernel != 0
        values = kernel[keep] if keep.any() else kernel.ravel()
        centroids = initial_centroids(values, self.n_clusters, self.init, seed=seed)
        assignment = np.argmin(np.abs(kernel[..., None] - centroids), axis=-1).astype(np.int32)
        self.centroids.assign(centroids)
        self.assignment.assign(assignment)
        self.keep.assign(keep.astype(np.float32))

    def clustered_kernel(self) -> Any:
        return ops.take(self.centroids, self.assignment) * self.keep

    def call(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        return call_with_weights(self.layer, [(self.layer.kernel, self.clustered_kernel())], inputs, *args, **kwargs)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return self.layer.compute_output_shape(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"n_clusters": self.n_clusters, "init": self.init})
        return config


def cluster_weights(model: Any, n_clusters: int, init: str = "kmeans++", *,
                    skip: tuple[str, ...] | list[str] = (), seed: int = 0) -> Any:
    """Return a copy of ``model`` whose kernels share ``n_clusters`` values each (train, then strip).

    Args:
        model: a built Sequential or functional Keras model (may be pruned and stripped: zeros are kept).
        n_clusters: shared values per kernel (2..256; 16 means 4-bit indices).
        init: ``"kmeans++"`` (default) or ``"linear"``.
        skip: names of layers to leave unclustered.
        seed: seed of the k-means++ initialisation.

    Returns:
        A new model with ``ClusterWeights`` wrappers; the input model is not modified.

    Example:
        >>> clustered = cluster_weights(model, 16)  # doctest: +SKIP
        >>> plain = strip_clustering(clustered)  # doctest: +SKIP
    """
    if init not in INITS:
        raise RecipeError(f"cluster_weights: expected init in {INITS}. Received: init={init!r}. "
                          "Use 'kmeans++' or 'linear'.")
    if not (isinstance(n_clusters, int) and 2 <= n_clusters <= 256):
        raise RecipeError(f"cluster_weights: expected n_clusters as an integer in [2, 256]. Received: "
                          f"n_clusters={n_clusters!r}. Use e.g. 16.")
    wrappers: list[ClusterWeights] = []

    def replace(layer: Any) -> Any:
        if is_kernel_layer(layer) and layer.name not in skip:
            wrapper = ClusterWeights(layer, n_clusters, init)
            wrappers.append(wrapper)
            return wrapper
        return None

    clustered = map_layers(model, replace)
    for wrapper in wrappers:
        wrapper.initialize_clusters(seed)
    return clustered


def strip_clustering(model: Any) -> Any:
    """Return a plain Keras model whose kernels hold the clustered values.

    Example:
        >>> plain = strip_clustering(clustered)  # doctest: +SKIP
    """

    def replace(layer: Any) -> Any:
        if isinstance(layer, ClusterWeights):
            layer.layer.kernel.assign(layer.clustered_kernel())
            layer.layer.kernel.trainable = True
            return layer.layer
        return None

    return map_layers(model, replace)


def unique_weights(model: Any) -> dict[str, int]:
    """Return the number of distinct values in each prunable kernel (wrapped or plain)."""
    result: dict[str, int] = {}
    for layer in flat_layers(model):
        inner = getattr(layer, "layer", layer)
        if isinstance(layer, ClusterWeights):
            result[inner.name] = int(np.unique(ops.convert_to_numpy(layer.clustered_kernel())).size)
        elif is_kernel_layer(inner):
            result[inner.name] = int(np.unique(ops.convert_to_numpy(inner.kernel)).size)
    return result
