"""Parsing edgetpu_compiler's output (the compiler cannot be installed here, so the text is recorded).

The log below is NOT a verbatim compiler log: it is written in edgetpu_compiler 16's output format, with the
field labels and status strings listed in research/targets.md (section 1.1 E12 and 1.4) and the memory figures
recorded there from google-coral/edgetpu issue #512 (yolov5s: 6.89 MiB cached, 1.00 KiB remaining, 175 KiB
streamed off-chip). The operator table is illustrative.
"""

from __future__ import annotations

from edgecompress.toolchains.edgetpu import edgetpu_compiler_path, parse_compiler_log, run_edgetpu_compiler

RECORDED = """\
Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.

Model compiled successfully in 2270 ms.

Input model: model_int8.tflite
Input size: 7.01MiB
Output model: model_int8_edgetpu.tflite
Output size: 7.30MiB
On-chip memory used for caching model parameters: 6.89MiB
On-chip memory remaining for caching model parameters: 1.00KiB
Off-chip memory used for streaming uncached model parameters: 175.00KiB
Number of Edge TPU subgraphs: 1
Total number of operations: 6
Operation log: model_int8_edgetpu.log

Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of the model will \
instead run on the CPU, which is slower.
Number of operations that will run on Edge TPU: 4
Number of operations that will run on CPU: 2

Operator                       Count      Status

CONV_2D                        2          Mapped to Edge TPU
ADD                            1          Mapped to Edge TPU
TRANSPOSE                      1          Operation not supported
CONV_2D                        1          More than one subgraph is not supported
SOFTMAX                        1          Mapped to Edge TPU
"""


def test_compiler_log_memory_figures_are_parsed_in_bytes():
    result = parse_compiler_log(RECORDED)
    assert result.version == "16.0.384591198"
    assert result.on_chip_used_bytes == round(6.89 * 1024 ** 2)
    assert result.on_chip_remaining_bytes == 1024
    assert result.off_chip_bytes == 175 * 1024


def test_compiler_log_operation_counts_are_parsed():
    result = parse_compiler_log(RECORDED)
    assert (result.subgraphs, result.total_operations) == (1, 6)
    assert (result.mapped_operations, result.cpu_operations) == (4, 2)


def test_compiler_log_operator_table_keeps_each_status_row():
    rows = parse_compiler_log(RECORDED).operators
    assert {"op": "TRANSPOSE", "count": 1, "status": "Operation not supported"} in rows
    assert sum(r["count"] for r in rows if r["op"] == "CONV_2D") == 3


def test_aggregated_table_is_spread_over_operators_in_execution_order():
    result = parse_compiler_log(RECORDED)
    placed = result.placements(["CONV_2D", "ADD", "CONV_2D", "TRANSPOSE", "CONV_2D", "SOFTMAX"])
    assert [mapped for mapped, _ in placed] == [True, True, True, False, False, True]
    assert placed[3][1] == "Operation not supported"


def test_without_the_compiler_on_path_there_is_no_compiler_answer():
    if edgetpu_compiler_path() is None:
        assert run_edgetpu_compiler(b"TFL3") is None
    else:
        assert edgetpu_compiler_path().endswith("edgetpu_compiler")
