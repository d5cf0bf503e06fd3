"""Loading user models is a security boundary: code inside a model file must not run in safe mode."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from edgecompress.errors import LoadError
from edgecompress.load.model import load_model

LEGACY_LAMBDA = textwrap.dedent("""
    import sys
    import tf_keras as k
    def evil(x):
        open(sys.argv[2], "w").write("ran")
        return x
    m = k.Sequential([k.layers.Input((8, 8, 1)), k.layers.Lambda(evil), k.layers.Flatten(), k.layers.Dense(10)])
    m.save(sys.argv[1])
""")


def test_legacy_h5_lambda_is_refused_and_does_not_run(tmp_path):
    path, marker = tmp_path / "lambda.h5", tmp_path / "pwned"
    subprocess.run([sys.executable, "-c", LEGACY_LAMBDA, str(path), str(marker)], check=True,
                   capture_output=True, timeout=300)
    marker.unlink(missing_ok=True)
    with pytest.raises(LoadError, match="--unsafe-load"):
        load_model(path)
    assert not marker.exists()


def test_unknown_custom_layer_gives_a_registration_hint(tmp_path):
    script = textwrap.dedent(f"""
        import keras
        @keras.saving.register_keras_serializable(package="private")
        class Twice(keras.layers.Layer):
            def call(self, x):
                return 2 * x
        inp = keras.Input((4,))
        keras.Model(inp, keras.layers.Dense(2)(Twice()(inp))).save({str(tmp_path / 'custom.keras')!r})
    """)
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, timeout=300)
    with pytest.raises(LoadError, match="register_keras_serializable"):
        load_model(tmp_path / "custom.keras")


def test_weights_only_h5_is_explained(tmp_path):
    import h5py

    path = tmp_path / "weights.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("dense/kernel", data=[[1.0]])
    with pytest.raises(LoadError, match="weights only"):
        load_model(path)


def test_onnx_external_data_outside_the_model_directory_is_refused(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    tensor = helper.make_tensor("w", TensorProto.FLOAT, [1], [0.0])
    tensor.data_location = TensorProto.EXTERNAL
    tensor.ClearField("float_data")
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], initializer=[tensor])
    path = tmp_path / "escape.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(LoadError, match="outside the model's directory"):
        load_model(path)


def test_garbage_onnx_is_a_load_error(tmp_path):
    pytest.importorskip("onnx")
    path = tmp_path / "garbage.onnx"
    path.write_bytes(b"\xff\x00not protobuf" * 10)
    with pytest.raises(LoadError, match="garbage.onnx"):
        load_model(path)


def test_a_keras_archive_whose_weights_declare_an_unstored_array_is_refused_before_loading(keras_file, tmp_path):
    from tests.payloads import undeclared_weights_keras

    payload = undeclared_weights_keras(keras_file, tmp_path / "liar.keras")
    assert payload.stat().st_size < 1 << 20  # the 2.1 GiB weight is declared, not stored
    with pytest.raises(LoadError, match=r"liar.keras: expected weights that the file actually stores\. Received: "
                                        r"model.weights.h5: dataset .* declares 2304000000 bytes .* but stores 0"):
        load_model(payload)


def test_a_legacy_h5_whose_dataset_declares_an_unstored_array_is_refused(h5_file, tmp_path):
    import shutil

    import h5py

    liar = shutil.copy(h5_file, tmp_path / "liar.h5")
    with h5py.File(liar, "r+") as h5:
        names: list[str] = []
        h5.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
        del h5[names[0]]
        h5.create_dataset(names[0], shape=(24000, 24000), dtype="float32")
    with pytest.raises(LoadError, match="liar.h5: expected weights that the file actually stores.*but stores 0"):
        load_model(liar)


def test_honest_keras_and_h5_weights_pass_the_declared_size_check(keras_file, h5_file):
    assert load_model(keras_file).model is not None
    assert load_model(h5_file).model is not None
