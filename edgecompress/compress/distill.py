"""Knowledge distillation for Keras 3: a ``Distiller`` model and ``make_student``.

The loss is ``alpha * CE(labels, student) + (1 - alpha) * T^2 * KL(softmax(t / T) || softmax(s / T))``
(Hinton et al. 2015); the teacher is frozen. Models ending in a softmax are handled by taking the log of
their probabilities as logits.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from edgecompress.errors import RecipeError
from edgecompress.graph import flat_layers

_WIDTH_KEYS = {"Conv1D": "filters", "Conv2D": "filters", "Conv2DTranspose": "filters",
               "SeparableConv2D": "filters", "Dense": "units"}


def _logits(outputs: Any, from_logits: bool) -> Any:
    return outputs if from_logits else ops.log(ops.clip(outputs, 1e-7, 1.0))


@keras.saving.register_keras_serializable(package="edgecompress")
class Distiller(keras.Model):
    """Trains ``student`` to match ``teacher`` (frozen) and the labels.

    Args:
        student: the Keras model to train; ``Distiller(x)`` returns its outputs.
        teacher: the trained Keras model to imitate (never updated).
        alpha: weight of the hard-label cross-entropy; ``1 - alpha`` weighs the distillation term.
        temperature: softening temperature ``T``.
        from_logits: True if the models output logits rather than softmax probabilities.

    Example:
        >>> distiller = Distiller(make_student(teacher), teacher, alpha=0.1, temperature=4.0)  # doctest: +SKIP
        >>> distiller.compile(optimizer="adam", metrics=["accuracy"])  # doctest: +SKIP
        >>> distiller.fit(x, y, epochs=5)  # doctest: +SKIP
    """

    def __init__(self, student: Any, teacher: Any, alpha: float = 0.1, temperature: float = 4.0,
                 from_logits: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= alpha <= 1.0 or temperature <= 0:
            raise RecipeError(f"Distiller: expected alpha in [0, 1] and temperature > 0. Received: alpha={alpha}, "
                              f"temperature={temperature}. Typical values are alpha=0.1, temperature=4.")
        self.student, self.teacher = student, teacher
        self.teacher.trainable = False
        self.alpha, self.temperature, self.from_logits = float(alpha), float(temperature), bool(from_logits)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        return self.student(inputs, training=training)

    def compute_loss(self, x: Any = None, y: Any = None, y_pred: Any = None, sample_weight: Any = None,
                     training: bool = True) -> Any:
        student_logits = _logits(y_pred, self.from_logits)
        teacher_logits = _logits(self.teacher(x, training=False), self.from_logits)
        hard = keras.losses.sparse_categorical_crossentropy(y, student_logits, from_logits=True)
        soft_teacher = ops.softmax(teacher_logits / self.temperature, axis=-1)
        log_student = ops.log_softmax(student_logits / self.temperature, axis=-1)
        kl = ops.sum(soft_teacher * (ops.log(ops.clip(soft_teacher, 1e-12, 1.0)) - log_student), axis=-1)
        loss = self.alpha * hard + (1.0 - self.alpha) * self.temperature ** 2 * kl
        return ops.mean(loss)

    def get_config(self) -> dict[str, Any]:
        return {"student": keras.saving.serialize_keras_object(self.student),
                "teacher": keras.saving.serialize_keras_object(self.teacher),
                "alpha": self.alpha, "temperature": self.temperature, "from_logits": self.from_logits}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Distiller:
        config = dict(config)
        config["student"] = keras.saving.deserialize_keras_object(config["student"])
        config["teacher"] = keras.saving.deserialize_keras_object(config["teacher"])
        return cls(**config)


def make_student(teacher: Any, width: float = 0.5) -> Any:
    """Rebuild ``teacher``'s architecture with ``width`` times the filters/units (fresh weights).

    The last layer with filters or units keeps its size (it defines the outputs); depthwise convolutions and
    normalisation layers follow their inputs.

    Args:
        teacher: a built Sequential or functional Keras model.
        width: multiplier of filters/units, in (0, 1].

    Returns:
        An untrained Keras model with the same inputs and outputs.

    Example:
        >>> student = make_student(teacher, width=0.5)  # doctest: +SKIP
    """
    if not 0.0 < width <= 1.0:
        raise RecipeError(f"make_student: expected width in (0, 1]. Received: width={width}. Use e.g. 0.5.")
    sized = [layer for layer in flat_layers(teacher) if type(layer).__name__ in _WIDTH_KEYS]
    last = sized[-1].name if sized else None

    def clone(layer: Any) -> Any:
        config = layer.get_config()
        key = _WIDTH_KEYS.get(type(layer).__name__)
        if key and layer.name != last:
            config[key] = max(1, int(round(config[key] * width)))
        return type(layer).from_config(config)

    student = keras.models.clone_model(teacher, clone_function=clone)
    student.name = f"{teacher.name}_student"
    return student
