"""``compress --engine tfmot``: run a recipe with tfmot on a legacy Keras 2 (``tf_keras``) ``.h5`` model.

tfmot only works with ``tf_keras`` and switches the whole process to legacy Keras when imported, so it runs in a
subprocess (``edgecompress.compress.tfmot_worker``); this module checks the request, hands over the data and reads
the result back.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgecompress.errors import LoadError, RecipeError, ToolchainError

TFMOT_STAGES = ("prune", "cluster", "qat")
TIMEOUT_S = 3600


def run_tfmot(model: Path, stages: list[Any], train: Any, val: Any | None, out: Path, *, safe_mode: bool = True,
              recipe: str = "") -> dict[str, Any]:
    """Run prune/cluster/qat stages with tfmot in a subprocess and write ``out``.

    Args:
        model: a legacy Keras 2 ``.h5`` model.
        stages: validated recipe stages (prune, cluster, qat only).
        train: labelled training ``Dataset``; val: labelled validation ``Dataset`` or None.
        out: ``.tflite`` when the recipe has a qat stage (full int8), else ``.h5``.
        safe_mode: tf_keras loads the model inside its own safe-mode scope (the pipeline has already parsed
            the config for Lambda and TFOpLambda layers with ``load.guard.refuse_code_in_h5``).
        recipe: the recipe path, for the result.

    Returns:
        ``{"output", "recipe", "engine", "stages": [{"stage", "accuracy"}]}``.

    Example:
        >>> run_tfmot(Path("m.h5"), load_recipe("r.yaml"), train, None, Path("m_int8.tflite"))  # doctest: +SKIP
    """
    for name in ("tf_keras", "tensorflow_model_optimization"):
        if importlib.util.find_spec(name) is None:
            raise ToolchainError(f"--engine tfmot needs {name}; install it with pip install 'edgecompress[legacy]'.")
    if model.suffix.lower() not in (".h5", ".hdf5"):
        raise LoadError(f"{model}: --engine tfmot takes a legacy Keras 2 .h5 model. Received: "
                        f"'{model.suffix or 'no suffix'}'. Use the default engine for .keras models.")
    unsupported = [s.label for s in stages if s.kind not in TFMOT_STAGES]
    if unsupported:
        raise RecipeError(f"{recipe or 'recipe'}: {', '.join(unsupported)}: tfmot has no such stage; --engine tfmot "
                          f"runs {', '.join(TFMOT_STAGES)}.")
    wants = ".tflite" if any(s.kind == "qat" for s in stages) else ".h5"
    if out.suffix.lower() != wants:
        raise RecipeError(f"{out}: with --engine tfmot this recipe produces a {wants} file (a tfmot QAT model only "
                          f"leaves tf_keras as a converted .tflite). Pass --out ending in {wants}.")
    if train.y is None:
        raise RecipeError(f"{train.source}: compression fine-tunes on labels; add an integer array 'y'.")
    with tempfile.TemporaryDirectory(prefix="edgecompress-tfmot-") as tmp:
        data = Path(tmp) / "data.npz"
        arrays = {"x": train.first, "y": train.y}
        if val is not None and val.y is not None:
            arrays.update(x_val=val.first, y_val=val.y)
        np.savez(data, **arrays)
        stage_file = Path(tmp) / "stages.json"
        stage_file.write_text(json.dumps([s.settings for s in stages]))
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            proc = subprocess.run([sys.executable, "-m", "edgecompress.compress.tfmot_worker", str(model),
                                   str(stage_file), str(data), str(out), "safe" if safe_mode else "unsafe"], capture_output=True, text=True,
                                  timeout=TIMEOUT_S, env=env, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ToolchainError(f"{model}: tfmot did not finish within {TIMEOUT_S} s.") from exc
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = [ln for ln in proc.stderr.splitlines() if ln.strip()][-1:] or ["no output"]
        raise ToolchainError(f"{model}: tfmot failed ({tail[0][:300]}). Check the model is a tf_keras .h5 "
                             "model whose layers tfmot supports.")
    result = json.loads(lines[-1])
    return {"output": str(out), "recipe": recipe, "engine": "tfmot", "stages": result["stages"]}
