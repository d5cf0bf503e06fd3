"""Model files that carry code, for the safe-mode tests and benchmarks/robustness_hostile.py: each payload writes
a marker file when its code runs, so a test can prove it did not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

LEGACY_LAMBDA = textwrap.dedent(r"""
    import os, sys
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tf_keras as k
    # the marker path is a literal in the marshalled code, so the payload runs in whatever process loads it
    exec(f"def evil(x):\n    open({sys.argv[2]!r}, 'w').write('ran')\n    return x\n", globals())
    if sys.argv[3] == "nested":
        inner = k.Sequential([k.layers.Input((8, 8, 1)), k.layers.Lambda(evil)], name="inner")
        inp = k.Input((8, 8, 1))
        out = k.layers.Dense(10)(k.layers.Flatten()(inner(inp)))
        m = k.Model(inp, out)
    else:
        m = k.Sequential([k.layers.Input((8, 8, 1)), k.layers.Lambda(evil), k.layers.Flatten(),
                          k.layers.Dense(10)])
    m.save(sys.argv[1])
""")


def legacy_lambda_h5(path: Path, marker: Path, variant: str) -> Path:
    """A tf_keras .h5 whose Lambda writes ``marker`` when it runs; ``variant`` spells its config: compact, unicode,
    tabs (JSON rewritten after saving) or nested (the Lambda inside a sub-model)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run([sys.executable, "-c", LEGACY_LAMBDA, str(path), str(marker),
                    "nested" if variant == "nested" else "flat"], check=True, capture_output=True, timeout=300,
                   env=env)
    import h5py

    with h5py.File(path, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        if variant == "compact":
            text = json.dumps(config, separators=(",", ":"))
        elif variant == "unicode":
            text = json.dumps(config).replace('"Lambda"', '"\\u004cambda"')
        elif variant == "tabs":
            text = json.dumps(config, indent="\t").replace('": "', '":\t"')
        else:
            text = json.dumps(config)
        handle.attrs["model_config"] = text
    marker.unlink(missing_ok=True)
    return path


EVIL_SAVED_MODEL = textwrap.dedent("""
    import sys
    import tensorflow as tf
    class Evil(tf.Module):
        def __init__(self):
            self.w = tf.Variable(tf.ones((64, 10)))
        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 1], tf.float32)])
        def serve(self, x):
            tf.io.write_file(sys.argv[2], "ran")
            return {"output_0": tf.nn.softmax(tf.matmul(tf.reshape(x, [-1, 64]), self.w))}
    e = Evil()
    tf.saved_model.save(e, sys.argv[1], signatures={"serving_default": e.serve})
""")


def undeclared_weights_keras(source: Path, path: Path, shape: tuple[int, ...] = (24000, 24000)) -> Path:
    """A copy of the ``.keras`` archive ``source`` whose first weight declares ``shape`` (float32) but stores
    nothing: HDF5 allocates late, so the file stays tens of KB while reading the weight would allocate the whole
    declared array (24000 x 24000 x 4 B = 2.1 GiB by default)."""
    import io
    import zipfile

    import h5py

    with zipfile.ZipFile(source) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    buffer = io.BytesIO(members["model.weights.h5"])
    with h5py.File(buffer, "r+") as h5:
        names: list[str] = []
        h5.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
        victim = names[0]
        del h5[victim]
        h5.create_dataset(victim, shape=shape, dtype="float32")
    members["model.weights.h5"] = buffer.getvalue()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path
