"""Rebuild calibration/digits/digits_calibration.npz from scikit-learn's digits (training split only).

Run: python scripts/make_digits_calibration.py
The file holds 300 samples drawn with a fixed seed from the training split that `edgecompress demo` trains on;
the held-out test split never enters calibration.
"""

from pathlib import Path

import numpy as np

from edgecompress.load.dataset import digits_dataset

SAMPLES = 300
SEED = 1

train, _ = digits_dataset()
pick = np.sort(np.random.default_rng(SEED).choice(len(train), SAMPLES, replace=False))
out = Path(__file__).resolve().parents[1] / "edgecompress" / "data" / "calibration" / "digits" / "digits_calibration.npz"
np.savez_compressed(out, x=train.first[pick].astype(np.float32), y=train.y[pick].astype(np.int64))
print(f"wrote {out} ({out.stat().st_size} bytes, {SAMPLES} samples)")
