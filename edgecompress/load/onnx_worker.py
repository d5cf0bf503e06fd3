"""Subprocess worker: ONNX -> SavedModel through onnx2tf, fully offline.

Run as ``python -m edgecompress.load.onnx_worker MODEL.onnx OUT_DIR SAMPLES.npz``. It lives in its own process
because onnx2tf seeds global RNGs, calls ``sys.exit`` on errors and imports ``tf_keras``. onnx2tf fetches sample
images from the internet for its internal check of image models; that function is replaced here by one that
returns the user's calibration samples (or seeded uniform noise when none were given), so nothing is downloaded.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

SAMPLE_COUNT = 20


def _offline_samples(samples_path: Path):
    def provide() -> np.ndarray:
        arrays = dict(np.load(samples_path)) if samples_path.exists() else {}
        for arr in arrays.values():
            if arr.ndim == 4:
                # onnx2tf expects NHWC images with 3 channels here; accept NCHW too
                if arr.shape[-1] != 3 and arr.shape[1] == 3:
                    arr = arr.transpose(0, 2, 3, 1)
                if arr.shape[-1] == 3:
                    return np.asarray(arr[:SAMPLE_COUNT], np.float32)
        return np.random.default_rng(0).uniform(0.0, 1.0, (SAMPLE_COUNT, 128, 128, 3)).astype(np.float32)

    return provide


def main(argv: list[str]) -> int:
    onnx_path, out_dir, samples_path = (Path(arg).resolve() for arg in argv[:3])
    import onnx2tf
    import onnx2tf.onnx2tf as o2t_main
    import onnx2tf.utils.common_functions as o2t_common

    provide = _offline_samples(samples_path)
    o2t_main.download_test_image_data = provide
    o2t_common.download_test_image_data = provide
    onnx2tf.convert(
        input_onnx_file_path=str(onnx_path),
        output_folder_path=str(out_dir),
        output_signaturedefs=True,
        batch_size=1,
        non_verbose=True,
        verbosity="error",
    )
    if not (out_dir / "saved_model.pb").exists():
        print("error: onnx2tf finished without writing saved_model.pb", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
