"""Robustness of the command line on malformed files and killed runs, counted.

Run: python benchmarks/robustness_cli.py [--kills 8]

Part 1 runs `edgecompress export` on malformed inputs (truncated/renamed/zip-bomb .keras, weights-only and
truncated .h5, a corrupt SavedModel, garbage and escaping .onnx, broken calibration data) and counts, for each:
exit code 2 with one `error:` line (clean), a traceback, another exit code, and files left at the output path.
Part 2 starts a real export and SIGKILLs it at evenly spaced points across its run time, then counts runs that
left a file at the output path that does not parse as a complete TFLite model (partial files) and stray
temporary files. A final rerun must succeed. Part 3 runs benchmarks/robustness_hostile.py's cases (code in model
files, hostile outputs and option values; issue 23: output sets, declared sizes, lying data, FIFOs). Target:
zero tracebacks, zero partial files, zero code ran.
Companion: benchmarks/robustness.py fuzzes the flatbuffer reader.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}


def cli(*args: object, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgecompress", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def make_inputs(work: Path) -> tuple[Path, Path, dict[str, tuple[Path, Path]]]:
    from edgecompress.load.dataset import digits_dataset
    from tests.models import train_small_cnn, write_legacy_h5

    train, _ = digits_dataset()
    model = train_small_cnn(train, epochs=2)
    good_model = work / "good.keras"
    model.save(good_model)
    good_data = work / "good.npz"
    np.savez(good_data, x=train.first[:120], y=train.y[:120])
    h5 = write_legacy_h5(work / "legacy.h5", train)
    cases: dict[str, tuple[Path, Path]] = {}

    def case(name: str, model_path: Path, data_path: Path = good_data) -> None:
        cases[name] = (model_path, data_path)

    raw = good_model.read_bytes()
    for fraction in (0.1, 0.5, 0.9):
        path = work / f"truncated_{fraction}.keras"
        path.write_bytes(raw[: int(len(raw) * fraction)])
        case(f"keras truncated at {fraction:.0%}", path)
    renamed = work / "renamed_h5.keras"
    renamed.write_bytes(h5.read_bytes())
    case("h5 renamed .keras", renamed)
    no_config = work / "no_config.keras"
    with zipfile.ZipFile(no_config, "w") as archive:
        archive.writestr("readme.txt", "hello")
    case("keras without config.json", no_config)
    bomb = work / "bomb.keras"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", "{}")
        with archive.open("model.weights.h5", "w", force_zip64=True) as member:
            for _ in range(20):
                member.write(b"\x00" * (16 << 20))
    case("keras zip bomb", bomb)
    truncated_h5 = work / "truncated.h5"
    truncated_h5.write_bytes(h5.read_bytes()[:4000])
    case("h5 truncated", truncated_h5)
    weights_only = work / "weights_only.h5"
    import h5py

    with h5py.File(weights_only, "w") as handle:
        handle.create_dataset("kernel", data=np.zeros((2, 2)))
    case("h5 weights only", weights_only)
    saved = work / "broken_savedmodel"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(os.urandom(2000))
    case("SavedModel corrupt", saved)
    garbage_onnx = work / "garbage.onnx"
    garbage_onnx.write_bytes(os.urandom(3000))
    case("onnx garbage", garbage_onnx)
    from onnx import TensorProto, helper

    tensor = helper.make_tensor("w", TensorProto.FLOAT, [1], [0.0])
    tensor.data_location = TensorProto.EXTERNAL
    tensor.ClearField("float_data")
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../../../etc/passwd"
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], initializer=[tensor])
    escaping = work / "escaping.onnx"
    import onnx

    onnx.save(helper.make_model(graph), str(escaping))
    case("onnx external data escapes", escaping)
    for name, array in {"data wrong shape": np.zeros((50, 8, 8)), "data NaN": np.full((50, 8, 8, 1), np.nan),
                        "data empty": np.zeros((0, 8, 8, 1)), "data too few": np.zeros((3, 8, 8, 1))}.items():
        path = work / (name.replace(" ", "_") + ".npz")
        np.savez(path, x=array)
        case(name, good_model, path)
    corrupt_npz = work / "corrupt.npz"
    corrupt_npz.write_bytes(b"PK\x03\x04" + os.urandom(500))
    case("data corrupt npz", good_model, corrupt_npz)
    return good_model, good_data, cases


def partial_output(path: Path) -> bool:
    from edgecompress.errors import InvalidModelError
    from edgecompress.tflite import read_model

    if not path.exists():
        return False
    try:
        read_model(path)
    except InvalidModelError:
        return True
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=8, help="kill points spread over one export (default 8)")
    parser.add_argument("--skip-hostile", action="store_true", help="leave out part 3 (robustness_hostile.py)")
    args = parser.parse_args()
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        good_model, good_data, cases = make_inputs(work)
        print(f"{'malformed input':<32}{'exit':>5}{'clean':>7}{'traceback':>11}{'files left':>12}")
        totals = {"tried": 0, "clean": 0, "traceback": 0, "files": 0}
        for name, (model_path, data_path) in cases.items():
            out = work / "out" / f"{abs(hash(name))}.tflite"
            proc = cli("export", model_path, "--calibration", data_path, "--out", out)
            errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
            traceback = "Traceback" in proc.stderr + proc.stdout
            clean = proc.returncode == 2 and len(errors) == 1 and not traceback
            left = len(list(out.parent.glob("*"))) if out.parent.exists() else 0
            totals["tried"] += 1
            totals["clean"] += clean
            totals["traceback"] += traceback
            totals["files"] += left
            print(f"{name:<32}{proc.returncode:>5}{'yes' if clean else 'NO':>7}{'YES' if traceback else 'no':>11}"
                  f"{left:>12}")
        print(f"{'total':<32}{'':>5}{totals['clean']:>7}{totals['traceback']:>11}{totals['files']:>12}"
              f"   ({totals['tried']} malformed inputs tried)\n")
        bad += totals["tried"] - totals["clean"] + totals["files"]

        start = time.perf_counter()
        reference = cli("export", good_model, "--calibration", good_data, "--out", work / "reference.tflite")
        duration = time.perf_counter() - start
        if reference.returncode != 0:
            print(reference.stderr[-2000:])
            return 1
        partial = stray = finished = 0
        for i in range(args.kills):
            delay = duration * (i + 0.5) / args.kills
            out = work / "kill" / f"k{i}.tflite"
            out.parent.mkdir(exist_ok=True)
            proc = subprocess.Popen([sys.executable, "-m", "edgecompress", "export", str(good_model), "--calibration",
                                     str(good_data), "--out", str(out)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, env=ENV)
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            partial += partial_output(out)
            finished += out.exists() and not partial_output(out)
            stray += len([p for p in out.parent.iterdir() if p.name.startswith(f".k{i}.tflite.tmp-")])
        rerun = cli("export", good_model, "--calibration", good_data, "--out", work / "kill" / "rerun.tflite")
        print(f"kill points tried: {args.kills} over a {duration:.1f} s export; partial files at the output path: "
              f"{partial}; complete outputs (kill after the rename): {finished}; stray temporary files: {stray} "
              "(a SIGKILL cannot clean up; their names start with '.' and end in .tmp-*); "
              f"rerun after kills: {'ok' if rerun.returncode == 0 else 'FAILED'}")
        bad += partial + (rerun.returncode != 0)
        if not args.skip_hostile:
            from benchmarks.robustness_hostile import make_cases, run

            print("\nhostile input, rounds 2 and 3 (benchmarks/robustness_hostile.py):")
            hostile = run(make_cases(work / "hostile"))
            bad += hostile["tried"] - hostile["clean"] + hostile["code ran"] + hostile["leftover"]
    print("\ncommand: python benchmarks/robustness_cli.py " + " ".join(sys.argv[1:]))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
