"""Recipes: a YAML list of compression stages run in order (distill -> prune -> cluster -> qat).

A recipe file looks like ``edgecompress/data/recipes/default.yaml``::

    stages:
      - {kind: distill, width: 0.5, alpha: 0.1, temperature: 4.0, epochs: 20}
      - {kind: prune, sparsity: 0.75, schedule: polynomial, epochs: 6}
      - {kind: cluster, clusters: 16, epochs: 4}
      - {kind: qat, epochs: 4}

Every stage takes ``epochs``, ``batch_size`` and ``optimizer: {name, learning_rate}``. Later stages preserve what
earlier ones made: clustering keeps pruned zeros, QAT keeps zeros and shared values. Unknown keys and bad values
are a ``RecipeError`` naming the stage and the key.
"""

from __future__ import annotations

import dataclasses
import gzip
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgecompress.errors import RecipeError
from edgecompress.yaml_input import read_user_yaml

COMMON_KEYS = {"kind": str, "epochs": int, "batch_size": int, "optimizer": dict}
STAGE_KEYS: dict[str, dict[str, Any]] = {
    "distill": {"width": float, "alpha": float, "temperature": float},
    "prune": {"sparsity": float, "schedule": str, "m_by_n": list, "block_size": list, "skip": list},
    "cluster": {"clusters": int, "init": str},
    "qat": {},
}
DEFAULTS: dict[str, dict[str, Any]] = {
    "distill": {"width": 0.5, "alpha": 0.1, "temperature": 4.0, "epochs": 10},
    "prune": {"sparsity": 0.75, "schedule": "polynomial", "skip": ["first", "last"], "epochs": 4},
    "cluster": {"clusters": 16, "init": "kmeans++", "epochs": 3},
    "qat": {"epochs": 3},
}
OPTIMIZERS = ("adam", "sgd", "rmsprop", "adamw")
ORDER = ("distill", "prune", "cluster", "qat")


@dataclasses.dataclass
class Stage:
    """One validated recipe stage with defaults filled in."""

    index: int
    kind: str
    settings: dict[str, Any]

    @property
    def label(self) -> str:
        return f"stage {self.index + 1} ({self.kind})"


@dataclasses.dataclass
class StageResult:
    """What one stage produced, measured on the validation data and on its int8 export."""

    stage: str
    accuracy: float | None
    parameters: int
    nonzeros: int
    max_unique_per_kernel: int
    int8_bytes: int
    gzip_bytes: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def default_recipe_path() -> Path:
    """The shipped recipe that shows all four stages on the digits model."""
    return shipped_recipes()["default"]


def shipped_recipes() -> dict[str, Path]:
    """The recipes that ship with edgecompress, by name (``default``: all four stages; ``qat``: QAT only)."""
    from importlib import resources

    folder = Path(str(resources.files("edgecompress") / "data" / "recipes"))
    return {path.stem: path for path in sorted(folder.glob("*.yaml"))}


def load_recipe(source: str | Path | Mapping[str, Any]) -> list[Stage]:
    """Read and validate a recipe.

    Args:
        source: a YAML file path, the name of a shipped recipe (``default``, ``qat``), or the already-parsed
            mapping ``{"stages": [...]}``.

    Returns:
        The stages, in order, with defaults filled in.

    Raises:
        RecipeError: the file is unreadable, or a stage has an unknown key, a wrong type or a bad value.

    Example:
        >>> [s.kind for s in load_recipe({"stages": [{"kind": "prune", "sparsity": 0.5}, {"kind": "qat"}]})]
        ['prune', 'qat']
    """
    name = "<recipe>"
    if isinstance(source, Mapping):
        data: Any = source
    else:
        path = Path(source)
        if not path.exists() and str(source) in shipped_recipes():
            path = shipped_recipes()[str(source)]
        name = str(path)
        try:
            data = read_user_yaml(path, RecipeError, "recipe")
        except FileNotFoundError as exc:
            raise RecipeError(f"{path}: no such recipe file. Pass a YAML file with a 'stages' list, or a shipped "
                              f"recipe: {', '.join(shipped_recipes())}.") from exc
    if not isinstance(data, Mapping) or not isinstance(data.get("stages"), list) or not data["stages"]:
        raise RecipeError(f"{name}: expected a mapping with a non-empty 'stages' list. Received: "
                          f"{type(data).__name__}.")
    extra = sorted(set(data) - {"stages"})
    if extra:
        raise RecipeError(f"{name}: unknown top-level key(s) {', '.join(extra)}; only 'stages' is allowed.")
    stages = [_validate_stage(name, i, raw) for i, raw in enumerate(data["stages"])]
    positions = [ORDER.index(s.kind) for s in stages]
    if positions != sorted(positions) or len(set(positions)) != len(positions):
        raise RecipeError(f"{name}: stages must appear at most once each, in the order "
                          f"{' -> '.join(ORDER)}. Received: {' -> '.join(s.kind for s in stages)}.")
    return stages


def _validate_stage(name: str, index: int, raw: Any) -> Stage:
    where = f"{name}: stage {index + 1}"
    if not isinstance(raw, Mapping) or "kind" not in raw:
        raise RecipeError(f"{where}: expected a mapping with a 'kind' ({', '.join(ORDER)}). Received: {raw!r}.")
    kind = raw["kind"]
    if not isinstance(kind, str) or kind not in STAGE_KEYS:
        raise RecipeError(f"{where}: unknown kind {kind!r}. Allowed: {', '.join(ORDER)}.")
    where = f"{name}: stage {index + 1} ({kind})"
    allowed = {**COMMON_KEYS, **STAGE_KEYS[kind]}
    for key, value in raw.items():
        if key not in allowed:
            raise RecipeError(f"{where}: unknown key {key!r}. Allowed keys: {', '.join(sorted(allowed))}.")
        expected = allowed[key]
        ok = isinstance(value, expected) or (expected is float and isinstance(value, int))
        if not ok or isinstance(value, bool):
            raise RecipeError(f"{where}: key {key!r} must be {expected.__name__}. Received: {value!r}.")
    settings = {**DEFAULTS[kind], "batch_size": 32, "optimizer": {"name": "adam", "learning_rate": 1e-3},
                **dict(raw)}
    _check_values(where, kind, settings)
    return Stage(index, kind, settings)


def _check_values(where: str, kind: str, s: dict[str, Any]) -> None:
    def bad(key: str, expected: str) -> RecipeError:
        return RecipeError(f"{where}: key {key!r} must be {expected}. Received: {s[key]!r}.")

    if s["epochs"] < 1 or s["epochs"] > 1000:
        raise bad("epochs", "an integer from 1 to 1000")
    if s["batch_size"] < 1:
        raise bad("batch_size", "a positive integer")
    opt = s["optimizer"]
    unknown = sorted(set(opt) - {"name", "learning_rate"})
    if unknown:
        raise RecipeError(f"{where}: unknown optimizer key(s) {', '.join(unknown)}. Allowed: name, learning_rate.")
    if not isinstance(opt.get("name", "adam"), str) or opt.get("name", "adam") not in OPTIMIZERS:
        raise RecipeError(f"{where}: optimizer name must be one of {', '.join(OPTIMIZERS)}. "
                          f"Received: {opt.get('name')!r}.")
    rate = opt.get("learning_rate", 1e-3)
    if not isinstance(rate, int | float) or not 0 < rate < 10:
        raise RecipeError(f"{where}: optimizer learning_rate must be a number in (0, 10). Received: {rate!r}.")
    if kind == "distill":
        if not 0 < s["width"] <= 1:
            raise bad("width", "a number in (0, 1]")
        if not 0 <= s["alpha"] <= 1:
            raise bad("alpha", "a number in [0, 1]")
        if s["temperature"] <= 0:
            raise bad("temperature", "a positive number")
    if kind == "prune":
        if not 0 <= s["sparsity"] < 1:
            raise bad("sparsity", "a number in [0, 1)")
        if s["schedule"] not in ("constant", "polynomial"):
            raise bad("schedule", "'constant' or 'polynomial'")
        for key in ("m_by_n", "block_size"):
            value = s.get(key)
            if value is not None and (len(value) != 2 or not all(isinstance(v, int) and v > 0 for v in value)):
                raise bad(key, "a list of two positive integers, e.g. [2, 4]")
        if not all(isinstance(v, str) for v in s["skip"]) or set(s["skip"]) - {"first", "last"}:
            raise bad("skip", "a list drawn from 'first' and 'last'")
    if kind == "cluster":
        if not 2 <= s["clusters"] <= 256:
            raise bad("clusters", "an integer from 2 to 256")
        if s["init"] not in ("kmeans++", "linear"):
            raise bad("init", "'kmeans++' or 'linear'")


def _optimizer(settings: dict[str, Any]) -> Any:
    import keras

    opt = settings["optimizer"]
    classes = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop,
               "adamw": keras.optimizers.AdamW}
    return classes[opt.get("name", "adam")](learning_rate=float(opt.get("learning_rate", 1e-3)))


def run_recipe(model: Any, stages: list[Stage], train: Any, val: Any | None = None, *,
               calibration_samples: int = 200, on_epoch: Callable[[Stage, int], None] | None = None,
               export: Callable[[Any, Any], bytes]) -> tuple[Any, list[StageResult]]:
    """Run the stages in order on a trained Keras model.

    Args:
        model: the trained float Keras model (the teacher, when the recipe distills).
        stages: from ``load_recipe``.
        train: a labelled ``Dataset`` to fine-tune on.
        val: a labelled ``Dataset`` for the per-stage accuracy (default: ``train``).
        calibration_samples: training samples used to calibrate each stage's int8 export.
        on_epoch: called after every epoch with the stage and the epoch number (progress bars).
        export: ``(model, calibration samples) -> int8 .tflite bytes``, for each stage's size columns (the
            pipeline passes the converter: compression does not import a later stage).

    Returns:
        ``(model, results)``: the final model (plain Keras, or a QAT model that converts to clean int8) and one
        ``StageResult`` per stage, preceded by the input model's row.

    Example:
        >>> final, rows = run_recipe(model, load_recipe(default_recipe_path()), train, test, export=int8)  # doctest: +SKIP
    """
    import keras

    from edgecompress.compress.cluster import cluster_weights, strip_clustering
    from edgecompress.compress.distill import Distiller, make_student
    from edgecompress.compress.prune import (
        ConstantSparsity,
        PolynomialDecay,
        UpdatePruningStep,
        prune_low_magnitude,
        strip_pruning,
    )
    from edgecompress.compress.qat import quantize_model

    if train.y is None:
        raise RecipeError(f"{train.source}: compression fine-tunes on labels; the training data has no 'y'.")
    val = val if val is not None else train
    x, y = train.first, train.y
    preserve: list[str] = []
    results = [_measure("input", model, val, train, calibration_samples, 0.0, export)]

    class Progress(keras.callbacks.Callback):
        def __init__(self, stage: Stage) -> None:
            super().__init__()
            self.stage = stage

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if on_epoch is not None:
                on_epoch(self.stage, epoch + 1)

    def fit(target: Any, stage: Stage, callbacks: list[Any] | None = None, **compile_args: Any) -> Any:
        target.compile(optimizer=_optimizer(stage.settings), **compile_args)
        target.fit(x, y, epochs=stage.settings["epochs"], batch_size=stage.settings["batch_size"], verbose=0,
                   callbacks=[*(callbacks or []), Progress(stage)])
        return target

    for stage in stages:
        started = time.perf_counter()
        s = stage.settings
        if stage.kind == "distill":
            student = make_student(model, width=s["width"])
            fit(Distiller(student, model, alpha=s["alpha"], temperature=s["temperature"]), stage)
            model = student
        elif stage.kind == "prune":
            steps = s["epochs"] * math.ceil(len(x) / s["batch_size"])
            schedule = (ConstantSparsity(s["sparsity"], begin_step=0) if s["schedule"] == "constant" else
                        PolynomialDecay(0.0, s["sparsity"], begin_step=0, end_step=max(steps - 1, 1), frequency=10))
            pruned = prune_low_magnitude(model, schedule, m_by_n=_pair(s.get("m_by_n")),
                                         block_size=_pair(s.get("block_size")), skip=tuple(s["skip"]))
            model = strip_pruning(fit(pruned, stage, [UpdatePruningStep()], loss=_loss(model)))
            preserve.append("sparsity")
        elif stage.kind == "cluster":
            clustered = cluster_weights(model, s["clusters"], s["init"])
            model = strip_clustering(fit(clustered, stage, loss=_loss(model)))
            preserve.append("clusters")
        else:
            model = fit(quantize_model(model, preserve=tuple(preserve)), stage, loss=_loss(model))
        results.append(_measure(stage.kind, model, val, train, calibration_samples, time.perf_counter() - started,
                                export))
    return model, results


def _pair(value: list[int] | None) -> tuple[int, int] | None:
    return None if value is None else (int(value[0]), int(value[1]))


def _loss(model: Any) -> Any:
    import keras

    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    probabilities = activation is not None and getattr(activation, "__name__", "") == "softmax" or (
        type(last).__name__ == "Softmax")
    return keras.losses.SparseCategoricalCrossentropy(from_logits=not probabilities)


def _measure(name: str, model: Any, val: Any, train: Any, calibration_samples: int, seconds: float,
             export: Callable[[Any, Any], bytes]) -> StageResult:
    import keras

    # a direct call, not predict(): predict retraces a tf.function for every new model and warns each time
    predictions = keras.ops.convert_to_numpy(model(val.first, training=False))
    accuracy = float(np.mean(predictions.reshape(len(val), -1).argmax(1) == val.y))
    # weights and biases only: QAT's range variables and BatchNorm statistics are not parameters that ship
    params = [np.asarray(w.numpy()) for w in model.weights if w.path.endswith(("kernel", "bias"))]
    kernels = [p for w, p in zip([w for w in model.weights if w.path.endswith(("kernel", "bias"))], params,
                                 strict=True) if w.path.endswith("kernel")]
    parameters = int(sum(p.size for p in params))
    nonzeros = int(sum(np.count_nonzero(p) for p in params))
    unique = max((int(np.unique(k).size) for k in kernels), default=0)
    tflite = export(model, train.take(calibration_samples))
    return StageResult(name, accuracy, parameters, nonzeros, unique, len(tflite), len(gzip.compress(tflite, 9)),
                       round(seconds, 2))
