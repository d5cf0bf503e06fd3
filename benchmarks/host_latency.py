"""Host latency: float32 vs int8 LiteRT median latency of a MobileNetV2-shaped model, measured in the same run.

The model is ``keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3), alpha=0.35)`` (random
weights: latency does not depend on the values). It is converted to float32 and to full int8 (calibrated on 64
seeded uniform samples), and both files are timed with ``edgecompress.runtimes.host.HostDevice`` (LiteRT with
its default XNNPACK delegate) alternately per thread count, so both sides see the same machine state. These are
x86 host figures: they say nothing about an Arm board or an NPU.

    PYTHONPATH=$PWD python benchmarks/host_latency.py [--runs 200] [--warmup 20] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def build_files(directory: Path) -> tuple[Path, Path]:
    import keras
    import numpy as np

    from edgecompress.conversion.converter import convert, convert_float

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3), alpha=0.35)
    calibration = np.random.default_rng(0).uniform(-1, 1, size=(64, 96, 96, 3)).astype("float32")
    float_path, int8_path = directory / "mobilenetv2_096_035_float32.tflite", directory / "mobilenetv2_096_035_int8.tflite"
    float_path.write_bytes(convert_float(model))
    int8_path.write_bytes(convert(model, calibration, max_samples=64).tflite)
    return float_path, int8_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)
    from edgecompress.runtimes.host import HostDevice

    with tempfile.TemporaryDirectory() as tmp:
        float_path, int8_path = build_files(Path(tmp))
        sizes = {p.name: p.stat().st_size for p in (float_path, int8_path)}
        device = HostDevice()
        rows = []
        for threads in args.threads:
            for path in (float_path, int8_path):
                m = device.measure(path, runs=args.runs, warmup=args.warmup, threads=threads)
                rows.append((m.dtype, threads, sizes[path.name], m.timings, m.runtime))
    print(f"MobileNetV2 96x96 alpha 0.35 (random weights), host {platform.machine()} {platform.processor() or ''}, "
          f"{os.cpu_count()} CPUs, {rows[0][4]}, XNNPACK default delegate")
    print(f"{'dtype':8s} {'threads':>7s} {'size KB':>8s} {'min ms':>8s} {'median ms':>10s} {'p90 ms':>8s} "
          f"{'p99 ms':>8s} {'runs':>5s}")
    for dtype, threads, size, t, _ in rows:
        print(f"{dtype:8s} {threads:7d} {size / 1024:8.0f} {t.min_ms:8.3f} {t.median_ms:10.3f} {t.p90_ms:8.3f} "
              f"{t.p99_ms:8.3f} {t.runs:5d}")
    for threads in args.threads:
        f32 = next(t for d, th, _, t, _ in rows if th == threads and d == "float32")
        i8 = next(t for d, th, _, t, _ in rows if th == threads and d == "int8")
        print(f"threads {threads}: int8 median / float32 median = {i8.median_ms / f32.median_ms:.2f}")
    print(f"\ncommand: PYTHONPATH=$PWD python benchmarks/host_latency.py --runs {args.runs} --warmup {args.warmup} "
          f"--threads {' '.join(map(str, args.threads))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
