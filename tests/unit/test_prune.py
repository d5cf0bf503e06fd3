"""Specification of magnitude pruning: schedules, masks, the wrapper, the callback and stripping."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from edgecompress.compress.prune import (  # noqa: E402
    ConstantSparsity,
    PolynomialDecay,
    PruneLowMagnitude,
    UpdatePruningStep,
    compute_mask,
    kernel_sparsity,
    prune_low_magnitude,
    strip_pruning,
)
from edgecompress.errors import RecipeError  # noqa: E402


def _sequential() -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(10),
    ])


def _functional() -> keras.Model:
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same")(inp)
    y = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = keras.layers.Add()([x, y])
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(8)(x)
    return keras.Model(inp, out)


def test_polynomial_decay_reaches_final_sparsity_exactly_at_end_step():
    schedule = PolynomialDecay(0.0, 0.75, begin_step=10, end_step=50, frequency=7)
    assert schedule.sparsity_at(9) == 0.0
    assert schedule.sparsity_at(10) == 0.0
    assert 0.0 < schedule.sparsity_at(30) < 0.75
    assert schedule.sparsity_at(50) == pytest.approx(0.75)
    assert schedule.should_prune(50) and not schedule.should_prune(51)


def test_constant_sparsity_prunes_on_its_frequency_only():
    schedule = ConstantSparsity(0.5, begin_step=2, frequency=3)
    assert [s for s in range(12) if schedule.should_prune(s)] == [2, 5, 8, 11]


def test_schedule_rejects_sparsity_of_one():
    with pytest.raises(RecipeError, match="target_sparsity"):
        ConstantSparsity(1.0)


def test_unstructured_mask_zeroes_exactly_the_requested_fraction():
    kernel = np.random.default_rng(0).normal(size=(3, 3, 4, 8))
    mask = compute_mask(kernel, 0.75)
    assert mask.shape == kernel.shape
    assert int((mask == 0).sum()) == round(0.75 * kernel.size)
    assert np.abs(kernel[mask == 0]).max() <= np.abs(kernel[mask == 1]).min()


def test_two_of_four_pattern_holds_along_input_channels():
    kernel = np.random.default_rng(1).normal(size=(3, 3, 8, 6))
    mask = compute_mask(kernel, 0.0, m_by_n=(2, 4))
    groups = np.moveaxis(mask, -1, 0).reshape(6, -1, 4)
    assert (groups.sum(axis=-1) == 2).all()


def test_block_mask_zeroes_whole_blocks():
    kernel = np.random.default_rng(2).normal(size=(16, 8))
    mask = compute_mask(kernel, 0.5, block_size=(2, 4))
    blocks = np.moveaxis(mask, -1, 0).reshape(4, 2, 4, 4).transpose(0, 2, 1, 3).reshape(4, 4, 8)
    assert set(np.unique(blocks.sum(axis=-1))) <= {0.0, 8.0}
    assert mask.mean() == pytest.approx(0.5)


def test_default_policy_skips_first_and_last_prunable_layers():
    pruned = prune_low_magnitude(_sequential(), ConstantSparsity(0.5))
    wrapped = [layer.layer.name for layer in pruned.layers if isinstance(layer, PruneLowMagnitude)]
    assert len(wrapped) == 2
    assert not isinstance(pruned.layers[0], PruneLowMagnitude)
    assert not isinstance(pruned.layers[-1], PruneLowMagnitude)


def test_wrapped_model_computes_the_same_function_before_pruning():
    model = _functional()
    pruned = prune_low_magnitude(model, ConstantSparsity(0.5), skip=())
    x = np.random.default_rng(0).random((4, 8, 8, 1), dtype=np.float32)
    np.testing.assert_allclose(pruned.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_training_reaches_scheduled_sparsity_at_end_step_and_strip_keeps_zeros():
    model = _sequential()
    pruned = prune_low_magnitude(model, PolynomialDecay(0.0, 0.75, begin_step=0, end_step=3, frequency=1),
                                 skip=())
    pruned.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 8, 8, 1), dtype=np.float32), rng.integers(0, 10, 32)
    pruned.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[UpdatePruningStep()])
    plain = strip_pruning(pruned)
    assert not any(isinstance(layer, PruneLowMagnitude) for layer in plain.layers)
    assert all(value == pytest.approx(0.75, abs=1e-6) for value in kernel_sparsity(plain).values())
    np.testing.assert_allclose(plain.predict(x, verbose=0), pruned.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


def test_pruned_model_saves_and_loads_as_keras_file(tmp_path):
    pruned = prune_low_magnitude(_functional(), ConstantSparsity(0.5, frequency=1), m_by_n=None, skip=())
    for wrapper in pruned.layers:
        if isinstance(wrapper, PruneLowMagnitude):
            wrapper.update_mask(0)
    path = tmp_path / "pruned.keras"
    pruned.save(path)
    loaded = keras.saving.load_model(path)
    x = np.ones((1, 8, 8, 1), np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), pruned.predict(x, verbose=0), rtol=1e-6)
    assert kernel_sparsity(loaded) == kernel_sparsity(pruned)


def test_m_by_n_on_incompatible_layer_names_the_layer():
    model = _sequential()
    with pytest.raises(RecipeError, match="m_by_n"):
        prune_low_magnitude(model, ConstantSparsity(0.5), m_by_n=(2, 4), skip=())
