"""Specification of distillation: the student's shape and the Distiller's training."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from edgecompress.compress.distill import Distiller, make_student  # noqa: E402


def _teacher() -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, activation="relu"),
                             keras.layers.BatchNormalization(), keras.layers.Conv2D(16, 3, activation="relu"),
                             keras.layers.Flatten(), keras.layers.Dense(32, activation="relu"),
                             keras.layers.Dense(10, activation="softmax")])


def test_student_halves_filters_and_units_but_keeps_outputs():
    student = make_student(_teacher(), width=0.5)
    sizes = [getattr(layer, "filters", getattr(layer, "units", None)) for layer in student.layers]
    assert [s for s in sizes if s is not None] == [4, 8, 16, 10]
    assert student.output_shape == (None, 10)


def test_distiller_trains_the_student_and_leaves_the_teacher_frozen():
    teacher = _teacher()
    before = [w.copy() for w in teacher.get_weights()]
    student = make_student(teacher)
    distiller = Distiller(student, teacher, alpha=0.1, temperature=4.0)
    distiller.compile(optimizer="adam")
    rng = np.random.default_rng(0)
    history = distiller.fit(rng.random((32, 8, 8, 1), dtype=np.float32), rng.integers(0, 10, 32), epochs=2,
                            verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert all(np.array_equal(a, b) for a, b in zip(before, teacher.get_weights(), strict=True))
