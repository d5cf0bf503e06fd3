"""``edgecompress.deploy``: one call from a Keras file to a checked, benched full-int8 model for several targets."""

from __future__ import annotations

import dataclasses
import json

import pytest

from edgecompress.cli import main

TARGETS = ["raspberry-pi-5", "esp32-s3"]


@pytest.fixture(scope="module")
def deployed(keras_file, calibration_npz, test_npz, tmp_path_factory):
    import edgecompress

    out = tmp_path_factory.mktemp("deploy") / "small_cnn_int8.tflite"
    return edgecompress.deploy(keras_file, calibration_npz, targets=TARGETS, out=out, eval_data=test_npz)


def test_deploy_writes_the_full_int8_file_it_reports(deployed):
    assert deployed.output.is_file()
    assert deployed.int8_size_bytes == deployed.output.stat().st_size
    assert deployed.export["model"]["is_full_int8"] is True
    assert deployed.int8_size_bytes < deployed.source_size_bytes


def test_deploy_measures_int8_and_float_accuracy_on_the_eval_data(deployed):
    assert deployed.accuracy is not None and deployed.accuracy > 0.8
    assert deployed.float_accuracy is not None and abs(deployed.accuracy - deployed.float_accuracy) < 0.05


@pytest.mark.parametrize("index", range(len(TARGETS)))
def test_each_target_verdict_is_what_edgecompress_check_says_of_the_same_file(deployed, index, capfd):
    target = deployed.targets[index]
    assert target.target == TARGETS[index]
    code = main(["check", str(deployed.output), "--target", target.target, "--json"])
    cli = json.loads(capfd.readouterr().out)
    assert (target.verdict, target.answered_by, target.exit_code) == (cli["verdict"], cli["answered_by"], code)


def test_device_latency_is_never_the_host_timing(deployed):
    for target in deployed.targets:
        assert target.latency_ms is not None and target.latency_ms > 0
        assert target.latency_evidence != "measured-host"


def test_report_names_the_file_accuracy_and_every_target(deployed):
    text = deployed.report()
    assert str(deployed.output) in text
    assert "int8 top-1" in text
    for target in deployed.targets:
        assert f"target {target.target}: {target.verdict}" in text
        assert target.latency_evidence in text


def test_result_is_frozen_and_to_dict_is_json(deployed):
    with pytest.raises(dataclasses.FrozenInstanceError):
        deployed.accuracy = 1.0
    data = json.loads(json.dumps(deployed.to_dict()))
    assert [t["target"] for t in data["targets"]] == TARGETS
    assert data["exit_code"] == max(t.exit_code for t in deployed.targets)


def test_a_mistyped_target_fails_before_any_file_is_written(keras_file, calibration_npz, tmp_path):
    import edgecompress

    out = tmp_path / "m.tflite"
    with pytest.raises(edgecompress.ProfileError, match="esp32-s4"):
        edgecompress.deploy(keras_file, calibration_npz, targets=["esp32-s4"], out=out)
    assert not out.exists()
