"""Self-contained latency runner copied to a remote device and run there (standard library + numpy only).

It imports whichever TFLite interpreter the device has (``ai_edge_litert``, else ``tflite_runtime``, else
``tensorflow.lite``), loads the model with the requested thread count (XNNPACK is applied by default in all
three), feeds seeded random inputs of the right dtype, runs ``--warmup`` untimed and ``--runs`` timed
invocations, and prints ONE line ``EDGECOMPRESS_BENCH_JSON {...}`` on stdout with the per-run times, the
initialisation time, the peak RSS and a summary of the outputs. Nothing else of edgecompress is needed on the
device. This file must not import edgecompress.

With ``--eval INPUTS.npz --save OUTPUTS.npz`` it runs real data instead: ``INPUTS.npz`` holds ``in0``, ``in1``, ...
(one array per model input, samples along the first axis, already in the input tensors' dtypes), every sample is
invoked once (each invoke timed) and the raw output tensors are saved as ``out0``, ``out1``, ... in
``OUTPUTS.npz``. Quantizing inputs and dequantizing outputs stays with the caller.

Usage: python3 bench_script.py MODEL.tflite --runs 50 --warmup 5 [--threads 4] [--seed 0]
       python3 bench_script.py MODEL.tflite --eval INPUTS.npz --save OUTPUTS.npz [--threads 4]
"""

import argparse
import json
import platform
import resource
import sys
import time

MARKER = "EDGECOMPRESS_BENCH_JSON "


def _interpreter_class():
    try:
        import ai_edge_litert
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai_edge_litert " + getattr(ai_edge_litert, "__version__", "?")
    except ImportError:
        pass
    try:
        import tflite_runtime
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite_runtime " + getattr(tflite_runtime, "__version__", "?")
    except ImportError:
        pass
    try:
        import tensorflow as tf

        return tf.lite.Interpreter, "tensorflow " + tf.__version__
    except ImportError:
        return None, ""


def _random_input(np, detail, rng):
    shape = [int(d) if d > 0 else 1 for d in detail["shape"]]
    dtype = np.dtype(detail["dtype"])
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(max(info.min, -128), min(info.max, 127) + 1, size=shape).astype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    return rng.standard_normal(size=shape).astype(dtype)


def _evaluate(np, interpreter, args, result):
    """Invoke every sample of ``args.eval`` once and save the raw outputs to ``args.save``."""
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    try:
        with np.load(args.eval, allow_pickle=False) as data:
            arrays = [data[f"in{i}"] for i in range(len(inputs))]
    except Exception as exc:  # a missing key, a truncated upload: report it as data
        result["error"] = "the input arrays could not be read: " + str(exc)[:300]
        print(MARKER + json.dumps(result))
        return 4
    count = len(arrays[0]) if arrays else 0
    if count == 0:
        result["error"] = "no samples to evaluate"
        print(MARKER + json.dumps(result))
        return 4
    for detail, arr in zip(inputs, arrays):  # noqa: B905 - zip(strict=) needs Python 3.10; devices may be older
        if len(arr) != count or np.dtype(arr.dtype) != np.dtype(detail["dtype"]) \
                or int(np.prod(arr.shape[1:])) != int(np.prod(detail["shape"][1:])):
            result["error"] = (f"input {detail['name']} expects {np.dtype(detail['dtype']).name} "
                               f"{list(detail['shape'])} per sample; received {arr.dtype.name} {list(arr.shape)}")
            print(MARKER + json.dumps(result))
            return 4
    collected = [[] for _ in outputs]
    samples = []
    for i in range(count):
        for detail, arr in zip(inputs, arrays):  # noqa: B905
            interpreter.set_tensor(detail["index"], arr[i : i + 1].reshape(detail["shape"]))
        t0 = time.perf_counter_ns()
        interpreter.invoke()
        samples.append((time.perf_counter_ns() - t0) / 1e6)
        for slot, detail in zip(collected, outputs):  # noqa: B905
            slot.append(interpreter.get_tensor(detail["index"]).copy())
    np.savez(args.save, **{f"out{j}": np.stack(slot) for j, slot in enumerate(collected)})
    result.update(ok=True, samples=count, samples_ms=samples, warmup=0, threads=args.threads,
                  input_dtype=np.dtype(inputs[0]["dtype"]).name if inputs else "")
    print(MARKER + json.dumps(result))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval", default=None, help="npz of inputs in0, in1, ... (samples first)")
    parser.add_argument("--save", default=None, help="where --eval writes the raw outputs out0, out1, ...")
    args = parser.parse_args(argv)
    result = {"ok": False, "python": platform.python_version(), "machine": platform.machine()}
    try:
        import numpy as np
    except ImportError:
        result["error"] = "numpy is not installed on the device"
        print(MARKER + json.dumps(result))
        return 3
    interpreter_class, runtime = _interpreter_class()
    if interpreter_class is None:
        result["error"] = "no TFLite interpreter on the device (ai-edge-litert, tflite-runtime or tensorflow)"
        print(MARKER + json.dumps(result))
        return 3
    result["runtime"] = runtime
    start = time.perf_counter()
    try:
        interpreter = interpreter_class(model_path=args.model, num_threads=args.threads)
        interpreter.allocate_tensors()
    except Exception as exc:  # the interpreter raises ValueError/RuntimeError; report any as data
        result["error"] = "the interpreter could not load the model: " + str(exc)[:500]
        print(MARKER + json.dumps(result))
        return 4
    result["init_ms"] = (time.perf_counter() - start) * 1000.0
    if args.eval:
        return _evaluate(np, interpreter, args, result)
    rng = np.random.default_rng(args.seed)
    inputs = interpreter.get_input_details()
    for detail in inputs:
        interpreter.set_tensor(detail["index"], _random_input(np, detail, rng))
    result["input_dtype"] = np.dtype(inputs[0]["dtype"]).name if inputs else ""
    for _ in range(max(0, args.warmup)):
        interpreter.invoke()
    samples = []
    for _ in range(max(1, args.runs)):
        t0 = time.perf_counter_ns()
        interpreter.invoke()
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    outputs = []
    for detail in interpreter.get_output_details():
        value = interpreter.get_tensor(detail["index"])
        outputs.append({"shape": list(value.shape), "dtype": value.dtype.name,
                        "head": value.reshape(-1)[:16].astype(float).tolist()})
    # ru_maxrss is KiB on Linux (bytes on macOS).
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result.update(ok=True, samples_ms=samples, warmup=args.warmup, threads=args.threads,
                  peak_rss_bytes=rss if sys.platform == "darwin" else rss * 1024, outputs=outputs)
    print(MARKER + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
