"""Specification of weight clustering: initialisation, shared centroids under training, stripping."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from edgecompress.compress.cluster import (  # noqa: E402
    ClusterWeights,
    cluster_weights,
    initial_centroids,
    strip_clustering,
    unique_weights,
)
from edgecompress.errors import RecipeError  # noqa: E402


def _model() -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, activation="relu"),
                             keras.layers.Flatten(), keras.layers.Dense(10)])


@pytest.mark.parametrize("init", ["kmeans++", "linear"])
def test_initial_centroids_are_sorted_and_counted(init):
    values = np.random.default_rng(0).normal(size=500)
    centroids = initial_centroids(values, 8, init)
    assert centroids.shape == (8,) and (np.diff(centroids) >= 0).all()


def test_centroid_count_holds_after_training_and_strip():
    clustered = cluster_weights(_model(), 4)
    rng = np.random.default_rng(0)
    before = [keras.ops.convert_to_numpy(w.centroids).copy() for w in clustered.layers if isinstance(w, ClusterWeights)]
    clustered.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    clustered.fit(rng.random((32, 8, 8, 1), dtype=np.float32), rng.integers(0, 10, 32), epochs=2, verbose=0)
    after = [keras.ops.convert_to_numpy(w.centroids) for w in clustered.layers if isinstance(w, ClusterWeights)]
    assert any(not np.allclose(a, b) for a, b in zip(after, before, strict=True))  # centroids were trained
    plain = strip_clustering(clustered)
    assert all(count <= 4 for count in unique_weights(plain).values())


def test_zeros_of_a_pruned_kernel_stay_zero():
    model = _model()
    kernel = model.layers[0].kernel
    values = keras.ops.convert_to_numpy(kernel)
    values[..., :4] = 0.0
    kernel.assign(values)
    plain = strip_clustering(cluster_weights(model, 4))
    assert (keras.ops.convert_to_numpy(plain.layers[0].kernel)[..., :4] == 0).all()


def test_clustered_model_saves_and_loads(tmp_path):
    clustered = cluster_weights(_model(), 4, init="linear")
    clustered.save(tmp_path / "c.keras")
    loaded = keras.saving.load_model(tmp_path / "c.keras")
    x = np.ones((1, 8, 8, 1), np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), clustered.predict(x, verbose=0), rtol=1e-6)


def test_bad_init_names_the_option():
    with pytest.raises(RecipeError, match="init"):
        cluster_weights(_model(), 4, init="random")
