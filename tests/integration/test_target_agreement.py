"""Our rules against the real tools on a corpus of tiny int8 models: Ethos-U rules vs Vela's placement, and
TFLite Micro rules vs the real TFLite Micro interpreter (loads, allocates, invokes or not).

Every disagreement fails unless the profile explains it under ``tool_disagreements``. The rates are printed
(run with ``-s`` to see them).
"""

from __future__ import annotations

import pytest

from edgecompress.check.checker import check
from edgecompress.profile import load_profile
from edgecompress.tflite import read_model
from tests.target_corpus import CORPUS, build_corpus

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    import tensorflow  # noqa: F401  (imported outside the capture: absl binds its log handler at import)

    from edgecompress.capture import captured_output

    with captured_output():
        return build_corpus(tmp_path_factory.getbasetemp() / "target_corpus")


@pytest.fixture(scope="session")
def vela_runs(corpus):
    from edgecompress.toolchains.vela import run_vela

    return {name: run_vela(path) for name, path in corpus.items()}


@pytest.fixture(scope="session")
def micro_runs(corpus):
    from edgecompress.runtimes.micro import run_micro

    return {name: run_micro(path.read_bytes(), model_info=read_model(path)) for name, path in corpus.items()}


def _explained(profile, op: str) -> bool:
    return any(item["op"] == op for item in profile.data.get("tool_disagreements", []))


def test_corpus_has_at_least_fifteen_varied_full_int8_models(corpus):
    assert len(corpus) >= 15
    ops = {op.op for path in corpus.values() for op in read_model(path).operators}
    assert {"DEPTHWISE_CONV_2D", "ADD", "CONCATENATION", "RESIZE_BILINEAR", "TRANSPOSE_CONV", "SOFTMAX", "MEAN",
            "UNPACK", "TILE"} <= ops
    assert any(len(t.shape) == 5 for path in corpus.values() for t in read_model(path).tensors)


def test_ethos_u_rules_agree_with_vela_placement_on_every_operator(corpus, vela_runs):
    profile = load_profile("ethos-u55")
    total, agreed, unexplained = 0, 0, []
    for name, path in corpus.items():
        report = check(read_model(path), profile)
        for verdict in report.operators:
            vela_npu = vela_runs[name].placements[verdict.index] == "npu"
            total += 1
            if vela_npu == (verdict.placement == "accelerator"):
                agreed += 1
            elif not _explained(profile, verdict.op):
                unexplained.append(f"{name} #{verdict.index} {verdict.op}: rules={verdict.placement} "
                                   f"({verdict.reason}) vela={'npu' if vela_npu else 'cpu'} "
                                   f"({vela_runs[name].reasons.get(verdict.index, '')})")
    print(f"\nEthos-U rules vs Vela {vela_runs[next(iter(vela_runs))].version}: {agreed}/{total} operators agree "
          f"({100 * agreed / total:.1f}%) over {len(corpus)} models")
    assert not unexplained, "\n".join(unexplained)


def test_vela_refuses_what_the_corpus_was_built_to_hit(vela_runs):
    assert vela_runs["large_kernel_stride4_same"].placements[0] == "cpu"
    assert vela_runs["stride4_valid"].placements[0] == "npu"
    assert vela_runs["avgpool_9_same"].placements[0] == "cpu"
    assert vela_runs["mean_over_channels"].placements[0] == "cpu"


@pytest.mark.parametrize("target", ["arduino-nano-33-ble", "esp32-s3"])
def test_tflite_micro_rules_agree_with_the_real_interpreter_on_every_model(corpus, micro_runs, target):
    profile = load_profile(target)
    agreed, unexplained = 0, []
    for name, path in corpus.items():
        report = check(read_model(path), profile)
        rules_run = all(v.placement != "unsupported" for v in report.operators)
        if rules_run == micro_runs[name].invoked:
            agreed += 1
            continue
        refused = [v.op for v in report.operators if v.placement == "unsupported"]
        if not all(_explained(profile, op) for op in refused or ["?"]):
            unexplained.append(f"{name}: rules {'run' if rules_run else 'refuse ' + str(refused)}, "
                               f"TFLM {'invoked' if micro_runs[name].invoked else micro_runs[name].error}")
    print(f"\nTFLite Micro rules ({target}) vs the real interpreter: {agreed}/{len(corpus)} models agree "
          f"({100 * agreed / len(corpus):.1f}%)")
    assert not unexplained, "\n".join(unexplained)


def test_tflite_micro_refuses_an_operator_it_has_no_kernel_for(micro_runs):
    assert not micro_runs["resize_nearest_3x"].invoked
    assert "TILE" in micro_runs["resize_nearest_3x"].error


def test_tflite_micro_int8_outputs_stay_within_a_few_lsb_of_litert(micro_runs):
    diffs = {name: r.max_abs_diff_lsb for name, r in micro_runs.items() if r.invoked}
    print("\nTFLM vs LiteRT max |diff| in LSB:", diffs)
    assert diffs and max(diffs.values()) <= 8


def test_exact_arena_is_verified_and_never_below_the_recorded_total(micro_runs):
    for name, r in micro_runs.items():
        if r.invoked:
            assert r.arena_verified, name
            assert r.arena_bytes >= r.recorded_bytes, name


def test_arena_estimate_is_within_a_factor_of_two_of_tflite_micro(micro_runs):
    ratios = {name: r.estimate_bytes / r.arena_bytes for name, r in micro_runs.items() if r.invoked}
    print("\narena estimate / TFLM exact:", {k: round(v, 2) for k, v in ratios.items()})
    assert all(0.5 <= v <= 2.0 for v in ratios.values()), ratios


def test_every_corpus_entry_is_listed_once():
    assert len(CORPUS) == len(set(CORPUS))
