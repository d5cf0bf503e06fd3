"""Calibration/evaluation data loading: every source, and one clear error line for every bad input."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from edgecompress.errors import CalibrationError
from edgecompress.load.dataset import digits_dataset, load_data, shipped_calibration
from edgecompress.samples import Dataset

SHAPE = [(8, 8, 1)]


def test_npz_with_x_and_y_loads_as_float32_with_integer_labels(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.ones((20, 8, 8, 1), np.float64), y=np.arange(20))
    ds = load_data(path, input_names=["input"], input_shapes=SHAPE)
    assert ds.first.dtype == np.float32 and ds.first.shape == (20, 8, 8, 1)
    assert ds.y.tolist() == list(range(20))


def test_one_hot_labels_become_class_indices(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((12, 8, 8, 1)), y=np.eye(3)[np.arange(12) % 3])
    assert load_data(path).y.tolist() == [i % 3 for i in range(12)]


def test_missing_channel_axis_is_one_line_naming_file_expected_shape_and_fix(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((20, 8, 8)))
    with pytest.raises(CalibrationError) as err:
        load_data(path, input_names=["input"], input_shapes=SHAPE)
    message = str(err.value)
    assert str(path) in message and "(8, 8, 1)" in message and "Add the channel axis" in message
    assert "\n" not in message


def test_channels_first_data_is_recognised_in_the_message(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((20, 3, 32, 32)))
    with pytest.raises(CalibrationError, match="channels-first"):
        load_data(path, input_shapes=[(32, 32, 3)])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_and_inf_are_rejected_with_a_count(tmp_path, bad):
    x = np.zeros((20, 8, 8, 1))
    x[3, 0, 0, 0] = bad
    path = tmp_path / "d.npz"
    np.savez(path, x=x)
    with pytest.raises(CalibrationError, match="1 NaN/Inf"):
        load_data(path, input_shapes=SHAPE)


def test_empty_data_is_an_error(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((0, 8, 8, 1)))
    with pytest.raises(CalibrationError, match="empty"):
        load_data(path, input_shapes=SHAPE)


def test_too_few_samples_is_an_error_and_under_100_warns(tmp_path):
    with pytest.raises(CalibrationError, match="too few"):
        load_data(np.zeros((5, 8, 8, 1)), input_shapes=SHAPE)
    with pytest.warns(UserWarning, match="only 50 calibration samples"):
        load_data(np.zeros((50, 8, 8, 1)), input_shapes=SHAPE)


def test_evaluation_data_may_be_small(tmp_path):
    assert len(load_data(np.zeros((3, 8, 8, 1)), input_shapes=SHAPE, purpose="evaluation")) == 3


def test_missing_file_and_wrong_suffix_are_clear(tmp_path):
    with pytest.raises(CalibrationError, match="no such file"):
        load_data(tmp_path / "nope.npz")
    txt = tmp_path / "data.csv"
    txt.write_text("1,2,3")
    with pytest.raises(CalibrationError, match=r"expected an \.npz file"):
        load_data(txt)


def test_corrupt_npz_is_clear(tmp_path):
    path = tmp_path / "d.npz"
    path.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(CalibrationError, match="not a readable numpy file"):
        load_data(path)


def test_pickled_object_arrays_are_refused(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.array([{"a": 1}] * 20, dtype=object))
    with pytest.raises(CalibrationError):
        load_data(path)


def test_multi_input_arrays_are_keyed_by_input_name(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, image=np.zeros((20, 4, 4, 3)), meta=np.zeros((20, 2)), y=np.zeros(20, int))
    ds = load_data(path, input_names=["image", "meta"], input_shapes=[(4, 4, 3), (2,)])
    assert list(ds.x) == ["image", "meta"]
    with pytest.raises(CalibrationError, match="one array per model input"):
        load_data(path, input_names=["image", "other"], input_shapes=[(4, 4, 3), (2,)])


def test_image_folder_with_preprocess_yaml_and_class_subfolders(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(tmp_path / label / f"{i}.png")
    (tmp_path / "preprocess.yaml").write_text("size: [16, 16]\nchannels: 3\nscale: 0.00392156862745098\n"
                                              "mean: 0.5\nstd: 0.5\n")
    ds = load_data(tmp_path, input_shapes=[(16, 16, 3)], purpose="evaluation")
    assert ds.first.shape == (12, 16, 16, 3)
    assert ds.y.tolist() == [0] * 6 + [1] * 6
    assert -1.0 <= ds.first.min() and ds.first.max() <= 1.0


def test_image_folder_unknown_preprocess_key_is_named(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "preprocess.yaml").write_text("size: [4, 4]\nnormalise: true\n")
    with pytest.raises(CalibrationError, match="normalise"):
        load_data(tmp_path, purpose="evaluation")


def test_unreadable_image_names_the_file(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(CalibrationError, match="broken.png"):
        load_data(tmp_path, preprocess={"size": [4, 4], "channels": 1}, purpose="evaluation")


def test_module_function_returning_pairs(tmp_path, monkeypatch):
    (tmp_path / "mydata.py").write_text(
        "import numpy as np\n"
        "def samples():\n"
        "    return [(np.full((8, 8, 1), i, np.float32), i % 10) for i in range(30)]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ds = load_data("mydata:samples", input_shapes=SHAPE)
    assert ds.first.shape == (30, 8, 8, 1) and ds.y[:3].tolist() == [0, 1, 2]
    sys.modules.pop("mydata", None)


def test_module_function_that_raises_is_reported(tmp_path, monkeypatch):
    (tmp_path / "baddata.py").write_text("def samples():\n    raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(CalibrationError, match="RuntimeError: boom"):
        load_data("baddata:samples")
    sys.modules.pop("baddata", None)


def test_digits_split_is_fixed_and_shipped_calibration_comes_from_train_only():
    train, test = digits_dataset()
    again, _ = digits_dataset()
    assert np.array_equal(train.first, again.first)
    assert len(train) + len(test) == 1797
    shipped = load_data(shipped_calibration("digits") / "digits_calibration.npz", input_shapes=SHAPE)
    assert len(shipped) == 300 and shipped.y is not None
    train_rows = {row.tobytes() for row in train.first}
    test_rows = {row.tobytes() for row in test.first}
    calib_rows = {row.tobytes() for row in shipped.first}
    assert calib_rows <= train_rows
    assert not (calib_rows & test_rows - train_rows)


def test_dataset_take_and_shuffle_are_deterministic():
    ds = Dataset({"input": np.arange(10, dtype=np.float32)[:, None]}, np.arange(10))
    assert ds.take(3).y.tolist() == [0, 1, 2]
    assert ds.shuffled(1).y.tolist() == ds.shuffled(1).y.tolist() != list(range(10))


@pytest.mark.parametrize("spec, words", [
    ({"size": [0, 0]}, "between 1x1"), ({"size": [-4, 4]}, "between 1x1"), ({"size": [100000, 100000]}, "between 1x1"),
    ({"size": [4]}, r"\[H, W\]"), ({"size": "big"}, r"\[H, W\]"), ({"size": [4.5, 4]}, "whole number"),
    ({"size": [4, 4], "scale": [1, 2, 3, 4]}, "scale"), ({"size": [4, 4], "mean": "x"}, "mean"),
    ({"size": [4, 4], "std": 0}, "std"), ({"size": [4, 4], "std": float("nan")}, "std"),
    ({"size": [4, 4], "channels": [3]}, "channels"), ({"size": [4, 4], "channel_order": ["rgb"]}, "channel_order"),
    ({"size": [4, 4], "labels": "cat"}, "labels"),
])
def test_preprocessing_values_are_checked_before_any_image_is_read(tmp_path, spec, words):
    from PIL import Image

    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(CalibrationError, match=words):
        load_data(tmp_path, preprocess=spec, purpose="evaluation")


def test_a_list_where_a_number_belongs_in_preprocess_yaml_names_the_file(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "preprocess.yaml").write_text("size: [4, 4]\nscale: [[1], 2]\n")
    with pytest.raises(CalibrationError, match="preprocess.yaml.*scale"):
        load_data(tmp_path, purpose="evaluation")


def test_a_decompression_bomb_png_is_refused_without_decoding_it(tmp_path):
    import zlib

    from PIL import Image

    # a valid PNG header declaring 30000x30000 pixels (900 Mpx, over Pillow's 2x limit) with almost no data
    def chunk(kind: bytes, data: bytes) -> bytes:
        import struct

        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    import struct

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    (tmp_path / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                                        + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))
    assert Image.MAX_IMAGE_PIXELS is not None
    with pytest.raises(CalibrationError, match="decompression bomb"):
        load_data(tmp_path, preprocess={"size": [4, 4], "channels": 1}, purpose="evaluation")


def test_an_image_folder_too_large_for_memory_is_refused_before_decoding(tmp_path):
    from PIL import Image

    for i in range(25):  # 25 x 4096 x 4096 x 3 float32 = 4.7 GiB
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / f"{i}.png")
    with pytest.raises(CalibrationError, match="GiB"):
        load_data(tmp_path, preprocess={"size": [4096, 4096], "channels": 3}, purpose="evaluation")
