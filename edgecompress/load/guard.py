"""Safe mode for model files that are programs: find the code a loader would run, before it runs.

A legacy Keras 2 ``.h5`` config can name a ``Lambda`` layer (marshalled Python bytecode) or a ``TFOpLambda``
calling any TensorFlow API function (``tf.io.write_file``, ``tf.print`` to a file, ``tf.load_op_library``). A
SavedModel is a TensorFlow graph: ``WriteFile``, ``PyFunc`` or a summary writer inside it runs when the model
is called. Both checks parse the file (the JSON tree, the graph protobuf); a text match on the config is not a
check, since JSON can spell the same key in many ways.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from edgecompress.errors import LoadError

UNSAFE_HINT = "If you trust this file, pass --unsafe-load."

# TFOpLambda resolves ``function`` as tf.<function>. Namespaces of pure tensor math stay allowed; anything else
# that can touch files, devices, libraries or Python is refused by name.
SAFE_TF_NAMESPACES = frozenset({"__operators__", "math", "nn", "image", "linalg", "signal", "bitwise", "dtypes",
                                "random", "experimental.numpy", "sparse", "ragged", "strings"})
RISKY_NAME = re.compile(r"write|save|restore|file|print|load|library|py_?func|numpy_function|summary|debug|"
                        r"raw_ops|saved_model|function|control_dependencies|init_scope|"
                        r"(^|\.)(io|data|train|config|distribute|autograph|tpu|lookup|queue)(\.|$)", re.IGNORECASE)

# Graph ops that act outside the tensors: files, Python, debuggers, datasets written to disk, shared libraries.
SIDE_EFFECT_OPS = frozenset({
    "WriteFile", "ReadFile", "MatchingFiles", "PyFunc", "PyFuncStateless", "EagerPyFunc", "Save", "SaveV2",
    "SaveSlices", "MergeV2Checkpoints", "Restore", "RestoreV2", "RestoreSlice", "PrintV2", "Print",
    "ImmutableConst", "LoadAndRemapMatrix", "InitializeTableFromTextFile", "InitializeTableFromTextFileV2",
    "DatasetToTFRecord", "ExperimentalDatasetToTFRecord", "SaveDataset", "SaveDatasetV2", "LoadDataset",
    "CacheDataset", "CacheDatasetV2", "SnapshotDataset", "SnapshotDatasetV2", "ExperimentalSaveDataset",
    "Copy", "CopyHost", "TFRecordDataset", "TFRecordDatasetV2", "TextLineDataset", "FixedLengthRecordDataset",
    "FixedLengthRecordDatasetV2",
})
SIDE_EFFECT_PATTERN = re.compile(r"Summary|Debug|PyFunc|WriteFile|Checkpoint|^Write|^Save|^Restore")
# What a SavedModel's own saver (tf.train.Saver / the traced save and restore functions) legitimately holds.
CHECKPOINT_OPS = frozenset({"SaveV2", "RestoreV2", "MergeV2Checkpoints", "Save", "Restore", "RestoreSlice",
                            "SaveSlices"})


def refuse_code_in_keras_config(path: Path, config: Any) -> None:
    """Raise ``LoadError`` when a Keras (2 or 3) model config holds layers whose loading runs code.

    Args:
        path: the model file, for the message.
        config: the ``model_config`` attribute (JSON text or bytes) or the parsed dict.

    Example:
        >>> refuse_code_in_keras_config(Path("m.h5"), '{"class_name": "Sequential", "config": {}}')
    """
    if isinstance(config, bytes):
        config = config.decode("utf-8", "replace")
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except ValueError as exc:
            raise LoadError(f"{path}: the model config is not valid JSON ({exc}). Re-save the model.") from exc
    for where, node in _class_nodes(config, "model"):
        name = str(node.get("class_name", ""))
        short = name.rsplit(">", 1)[-1].rsplit(".", 1)[-1]
        if short in ("TFOpLambda", "SlicingOpLambda"):
            function = str((node.get("config") or {}).get("function", "")) if isinstance(node.get("config"), dict) \
                else ""
            if not _safe_tf_function(function):
                raise LoadError(f"{path}: layer {where} calls tf.{function or '?'} when the model runs, which "
                                f"can act outside the model (files, libraries, Python). {UNSAFE_HINT}")
        elif "lambda" in short.lower():
            raise LoadError(f"{path}: layer {where} is a {name} layer, whose Python code would run when the model "
                            f"is loaded. {UNSAFE_HINT}")
        function_type = (node.get("config") or {}).get("function_type") if isinstance(node.get("config"), dict) \
            else None
        if function_type == "lambda":
            raise LoadError(f"{path}: layer {where} ({name}) carries marshalled Python code (function_type "
                            f"'lambda'). {UNSAFE_HINT}")


def _safe_tf_function(function: str) -> bool:
    if not function or RISKY_NAME.search(function):
        return False
    function = re.sub(r"^compat\.v[12]\.", "", function)
    if "." not in function:
        return True
    namespace = function.rsplit(".", 1)[0]
    return namespace in SAFE_TF_NAMESPACES or namespace.split(".")[0] in SAFE_TF_NAMESPACES


def _class_nodes(tree: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every dict in the tree that names a class (layers, wrapped layers, nested models), with a path."""
    if isinstance(tree, dict):
        if "class_name" in tree:
            name = tree.get("config", {}).get("name") if isinstance(tree.get("config"), dict) else None
            where = f"'{name}'" if name else where
            yield where, tree
        for value in tree.values():
            yield from _class_nodes(value, where)
    elif isinstance(tree, list):
        for item in tree:
            yield from _class_nodes(item, where)


def refuse_non_regular_files(saved_model_dir: Path) -> None:
    """Raise ``LoadError`` when anything TensorFlow would read in a SavedModel is not a regular file.

    A FIFO named ``saved_model.pb`` blocks the reader forever, and a device (``/dev/zero``) never ends; only
    regular files (or links to them) are read.

    Example:
        >>> refuse_non_regular_files(Path("exported_model"))  # doctest: +SKIP
    """
    import stat

    candidates = [saved_model_dir / name for name in ("saved_model.pb", "saved_model.pbtxt", "fingerprint.pb")]
    for sub in ("variables", "assets"):
        if (saved_model_dir / sub).is_dir():
            candidates += sorted((saved_model_dir / sub).rglob("*"))
    for candidate in candidates:
        try:
            mode = os.stat(candidate).st_mode
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise LoadError(f"{candidate}: cannot be read ({exc.strerror}). Check the SavedModel directory.") from exc
        if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
            raise LoadError(f"{candidate}: expected a regular file in the SavedModel. Received: a pipe, socket or "
                            "device, which could block or never end. Replace it with the exported file.")


def refuse_side_effect_ops(saved_model_dir: Path) -> None:
    """Raise ``LoadError`` when a SavedModel's graph holds ops that act outside its tensors.

    The SavedModel's own saver (the functions behind ``saver_def``) may hold checkpoint ops; nothing else may.

    Args:
        saved_model_dir: the directory holding ``saved_model.pb``.

    Example:
        >>> refuse_side_effect_ops(Path("exported_model"))  # doctest: +SKIP
    """
    from tensorflow.core.protobuf import saved_model_pb2

    pb = saved_model_dir / "saved_model.pb"
    refuse_non_regular_files(saved_model_dir)
    if not pb.is_file():
        return  # a .pbtxt SavedModel or a missing file: TensorFlow's loader gives the error
    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString(pb.read_bytes())
    except Exception as exc:  # protobuf's DecodeError
        raise LoadError(f"{pb}: not a valid SavedModel protobuf ({type(exc).__name__}). Re-export the model.") from exc
    for graph in proto.meta_graphs:
        _check_graph(saved_model_dir, graph)


def _check_graph(path: Path, meta_graph: Any) -> None:
    graph = meta_graph.graph_def
    functions = {f.signature.name: f for f in graph.library.function}
    nodes = {n.name: n for n in graph.node}
    saver = meta_graph.saver_def
    saver_roots = [name.split(":")[0].lstrip("^") for name in (saver.save_tensor_name, saver.restore_op_name,
                                                                 saver.filename_tensor_name) if name]
    saver_nodes = _input_closure(nodes, saver_roots)
    saver_functions = _function_closure(functions, [n for name in saver_nodes for n in _called(nodes[name])])
    other_roots = [fn for name, node in nodes.items() if name not in saver_nodes for fn in _called(node)]
    other_roots += list(meta_graph.object_graph_def.concrete_functions)
    other_roots += [name for name in functions if name not in saver_functions]
    model_functions = _function_closure(functions, other_roots)
    for name, node in nodes.items():
        _check_node(path, node, name, in_saver=name in saver_nodes)
    for fname, function in functions.items():
        in_saver = fname in saver_functions and fname not in model_functions
        for node in function.node_def:
            _check_node(path, node, f"{node.name} in function {fname}", in_saver=in_saver)


def _check_node(path: Path, node: Any, where: str, *, in_saver: bool) -> None:
    op = node.op
    if in_saver and op in CHECKPOINT_OPS:
        return
    if op in SIDE_EFFECT_OPS or SIDE_EFFECT_PATTERN.search(op):
        raise LoadError(f"{path}: the SavedModel's graph runs op {op} (node {where}), which acts outside the "
                        f"model (files, Python, debuggers) when it is called. {UNSAFE_HINT}")


def _called(node: Any) -> list[str]:
    names = [node.op]
    for value in node.attr.values():
        if value.HasField("func"):
            names.append(value.func.name)
        if value.HasField("list"):
            names.extend(f.name for f in value.list.func)
    return names


def _closure(roots: list[str], known: dict[str, Any], neighbours: Callable[[Any], Iterable[str]]) -> set[str]:
    """Every name reachable from ``roots`` through ``neighbours`` (names outside ``known`` are skipped)."""
    seen: set[str] = set()
    stack = [r for r in roots if r in known]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(n for n in neighbours(known[name]) if n in known and n not in seen)
    return seen


def _function_closure(functions: dict[str, Any], roots: list[str]) -> set[str]:
    """Functions reachable from ``roots`` through the calls their nodes make."""
    return _closure(roots, functions, lambda f: (c for node in f.node_def for c in _called(node)))


def _input_closure(nodes: dict[str, Any], roots: list[str]) -> set[str]:
    """Graph nodes that feed ``roots`` (data and control inputs)."""
    return _closure(roots, nodes, lambda node: (i.lstrip("^").split(":")[0] for i in node.input))


def read_h5_config(path: Path) -> Any:
    """The ``model_config`` attribute of a Keras ``.h5`` file, or a ``LoadError`` saying why there is none.

    Example:
        >>> read_h5_config(Path("legacy.h5"))  # doctest: +SKIP
        b'{"class_name": "Sequential", ...}'
    """
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            config = handle.attrs.get("model_config")
    except OSError as exc:
        raise LoadError(f"{path}: not a readable HDF5 file ({exc}). Check the file is a complete Keras .h5 "
                        "model.") from exc
    if config is None:
        raise LoadError(f"{path}: the .h5 file holds weights only (no model_config). Save the whole model "
                        "(model.save('model.h5')) or rebuild the architecture and load the weights.")
    return config


def refuse_code_in_h5(path: Path) -> None:
    """``refuse_code_in_keras_config`` on a legacy ``.h5`` file's ``model_config``.

    Example:
        >>> refuse_code_in_h5(Path("legacy.h5"))  # doctest: +SKIP
    """
    refuse_code_in_keras_config(path, read_h5_config(path))
