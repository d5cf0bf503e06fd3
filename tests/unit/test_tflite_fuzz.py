"""Fuzzing the reader: random, truncated and corrupted models parse or fail with InvalidModelError, quickly.

Every input is parsed in-process under a SIGALRM wall bound (tests/reader_fuzz.py), and a model that parses
is also used (to_dict, JSON, every constant, the graph maps), because that is what ``inspect`` does next.
The committed seeds in tests/data/tflite are real converter output (tests/data/make_seed_models.py).
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reader_fuzz import MUTATORS, outcome, seed_models

SEEDS = seed_models()
SEED_BYTES = list(SEEDS.values())
FUZZ = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


def assert_parses_or_fails_cleanly(data: bytes) -> None:
    kind, detail = outcome(data)
    assert kind in ("ok", "clean"), f"{kind}: {detail}"


def test_seed_models_parse_and_are_usable():
    assert len(SEEDS) >= 4
    for data in SEED_BYTES:
        assert outcome(data) == ("ok", "")


def test_every_truncation_of_the_smallest_seed_fails_cleanly():
    data = min(SEED_BYTES, key=len)
    kinds = [outcome(data[:end])[0] for end in range(len(data))]
    assert set(kinds) <= {"ok", "clean"}
    assert kinds[:8] == ["clean"] * 8


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data):
    assert_parses_or_fails_cleanly(data)


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes_with_a_valid_identifier(data):
    assert_parses_or_fails_cleanly(data[:4].ljust(4, b"\x00") + b"TFL3" + data[4:])


@FUZZ
@given(st.sampled_from(range(len(SEED_BYTES))),
       st.lists(st.tuples(st.floats(0.0, 0.9999), st.integers(0, 7)), min_size=1, max_size=16))
def test_bit_flipped_real_models(seed, flips):
    data = bytearray(SEED_BYTES[seed])
    for where, bit in flips:
        data[int(where * len(data))] ^= 1 << bit
    assert_parses_or_fails_cleanly(bytes(data))


@FUZZ
@given(st.sampled_from(range(len(SEED_BYTES))), st.floats(0.0, 0.9999),
       st.sampled_from([b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80", b"\xff\xff\xff\xff", b"\x00\x00\x00\x00",
                        b"\x01\x00\x00\x00", b"\x00\x00\x00\x40"]))
def test_extreme_integers_written_over_real_models(seed, where, word):
    data = bytearray(SEED_BYTES[seed])
    at = int(where * (len(data) - 4))
    data[at : at + 4] = word
    assert_parses_or_fails_cleanly(bytes(data))


@pytest.mark.parametrize("mutator", sorted(MUTATORS))
def test_seeded_mutations_of_every_seed(mutator):
    rng = random.Random(f"reader-{mutator}")
    results = [outcome(MUTATORS[mutator](data, rng)) for data in SEED_BYTES for _ in range(60)]
    failures = [detail for kind, detail in results if kind not in ("ok", "clean")]
    assert failures == []
