"""Fuzzing the reader: random, truncated and corrupted models parse or fail with InvalidModelError, quickly."""

from __future__ import annotations

import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecompress.errors import InvalidModelError
from edgecompress.tflite import read_model

SEEDS = sorted((Path(__file__).resolve().parents[1] / "data" / "tflite").glob("*.tflite"))
SEED_BYTES = [p.read_bytes() for p in SEEDS]
PER_INPUT_SECONDS = 2.0
FUZZ = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


def parse_or_clean_error(data: bytes) -> None:
    start = time.perf_counter()
    try:
        read_model(data)
    except InvalidModelError as exc:
        assert "not a valid TFLite model" in str(exc) or "TFL3" in str(exc)
    assert time.perf_counter() - start < PER_INPUT_SECONDS


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data):
    parse_or_clean_error(data)


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes_with_a_valid_identifier(data):
    parse_or_clean_error(data[:4].ljust(4, b"\x00") + b"TFL3" + data[4:])


@FUZZ
@given(st.sampled_from(range(len(SEED_BYTES))), st.floats(0.0, 1.0))
def test_truncated_real_models(seed, fraction):
    data = SEED_BYTES[seed]
    parse_or_clean_error(data[: int(len(data) * fraction)])


@FUZZ
@given(st.sampled_from(range(len(SEED_BYTES))),
       st.lists(st.tuples(st.floats(0.0, 0.9999), st.integers(0, 7)), min_size=1, max_size=16))
def test_bit_flipped_real_models(seed, flips):
    data = bytearray(SEED_BYTES[seed])
    for where, bit in flips:
        data[int(where * len(data))] ^= 1 << bit
    parse_or_clean_error(bytes(data))


@FUZZ
@given(st.sampled_from(range(len(SEED_BYTES))), st.floats(0.0, 0.9999),
       st.sampled_from([b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80", b"\xff\xff\xff\xff", b"\x00\x00\x00\x00"]))
def test_extreme_integers_written_over_real_models(seed, where, word):
    data = bytearray(SEED_BYTES[seed])
    at = int(where * (len(data) - 4))
    data[at : at + 4] = word
    parse_or_clean_error(bytes(data))
