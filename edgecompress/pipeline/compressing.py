"""``compress``: load -> run a recipe (ours, or tfmot in a subprocess) -> write the compressed model."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from edgecompress.atomic import atomic_path, check_output
from edgecompress.errors import CalibrationError
from edgecompress.pipeline.model_data import model_data


@dataclasses.dataclass
class CompressResult:
    """What ``compress`` produced.

    Args:
        output: path of the written model (``.keras``; with the tfmot engine ``.h5`` or ``.tflite``).
        recipe: the recipe it ran, as given.
        stages: one row per stage, ``StageResult.to_dict()`` keys (the tfmot engine's rows have the same).
        engine: "keras" (ours) or "tfmot".

    Example:
        >>> CompressResult("small.keras", "default", []).to_dict()
        {'output': 'small.keras', 'recipe': 'default', 'stages': []}
    """

    output: str
    recipe: str
    stages: list[dict[str, Any]]
    engine: str = "keras"

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``edgecompress compress --json``: ``engine`` is only named when it is not ours."""
        data: dict[str, Any] = {"output": self.output, "recipe": self.recipe}
        if self.engine != "keras":
            data["engine"] = self.engine
        data["stages"] = self.stages
        return data


def compress(model: str | Path, recipe: str | Path, data: Any, out: str | Path, *, val: Any = None,
             safe_mode: bool = True, on_epoch: Any = None, engine: str = "keras") -> CompressResult:
    """Run a compression recipe on a model file and save the result atomically as ``.keras``.

    Args:
        model: a ``.keras``/``.h5`` file or SavedModel directory (a trained float model).
        recipe: the recipe YAML.
        data: labelled training data (anything ``load_data`` accepts).
        out: the output ``.keras`` path.
        val: labelled validation data for per-stage accuracy (default: the training data).
        safe_mode: Keras safe mode for loading.
        on_epoch: progress callback ``(stage, epoch)``.
        engine: "keras" (ours, Keras 3) or "tfmot" (tfmot on a legacy ``tf_keras`` ``.h5``, in a subprocess;
            prune, cluster and qat stages; with qat the output is a full-int8 ``.tflite``, else an ``.h5``).

    Returns:
        A ``CompressResult``.

    Example:
        >>> compress("model.keras", "recipe.yaml", "train.npz", "small.keras")  # doctest: +SKIP
    """
    from edgecompress.compress.recipe import load_recipe, run_recipe
    from edgecompress.load.dataset import load_data
    from edgecompress.pipeline.loading import load_model

    check_output(out, model, recipe, data, val)
    stages = load_recipe(recipe)
    if engine == "tfmot":
        from edgecompress.compress.tfmot_engine import run_tfmot
        from edgecompress.load.guard import refuse_code_in_h5

        if safe_mode and Path(model).suffix.lower() in (".h5", ".hdf5") and Path(model).is_file():
            refuse_code_in_h5(Path(model))
        done = run_tfmot(Path(model), stages, load_data(data, purpose="evaluation"),
                         None if val is None else load_data(val, purpose="evaluation"), Path(out),
                         safe_mode=safe_mode, recipe=str(recipe))
        return CompressResult(done["output"], done["recipe"], done["stages"], engine=done["engine"])
    loaded = load_model(model, safe_mode=safe_mode)
    train = model_data(data, loaded, None, "calibration")
    validation = model_data(val, loaded, None, "evaluation") if val is not None else None
    if validation is not None and validation.y is not None:
        from edgecompress.validate.evaluate import refuse_labels_outside

        classes = math.prod(int(d or 1) for d in loaded.model.outputs[0].shape[1:])
        refuse_labels_outside(validation.y, classes, validation.source)
    if train.y is None:
        raise CalibrationError(f"{train.source}: compression fine-tunes on labels; add an integer array 'y'.")
    final, rows = run_recipe(loaded.model, stages, train, validation, on_epoch=on_epoch, export=int8_bytes)
    with atomic_path(out) as tmp:
        final.save(tmp)
    return CompressResult(str(out), str(recipe), [row.to_dict() for row in rows])


def int8_bytes(model: Any, calibration: Any) -> bytes:
    """The full-int8 export of a compression stage's model, for the per-stage size columns."""
    from edgecompress.conversion.converter import convert

    return convert(model, calibration).tflite
