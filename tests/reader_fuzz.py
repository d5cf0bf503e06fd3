"""The reader's fuzz harness: mutate real models, parse them, use the result, and classify what happened.

Shared by ``tests/unit/test_tflite_fuzz.py`` (hypothesis, bounded, in CI) and ``benchmarks/robustness.py``
(many seeded random inputs, counted). An outcome is ``ok`` (parsed, and every ModelInfo method worked),
``clean`` (InvalidModelError saying "not a valid TFLite model"), ``crash`` (any other exception, or an error
without that phrase) or ``hang`` (over the wall bound, enforced in-process with SIGALRM).
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

from edgecompress.errors import InvalidModelError
from edgecompress.tflite import read_model

SEED_DIR = Path(__file__).resolve().parent / "data" / "tflite"
WALL_SECONDS = 2.0


def seed_models() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(SEED_DIR.glob("*.tflite"))}


class Hang(BaseException):
    """Raised by the alarm; a BaseException so the reader's own error handling cannot swallow it."""


@contextlib.contextmanager
def wall_bound(seconds: float) -> Iterator[None]:
    """Interrupt the body after ``seconds`` of wall time (main thread only)."""

    def expire(signum, frame):
        raise Hang(f"over {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def use_model(data: bytes) -> None:
    """Parse and exercise everything ``inspect`` and ``check`` touch."""
    info = read_model(data)
    json.dumps(info.to_dict())
    for tensor in info.tensors:
        info.constant(tensor.index)
    info.producers()
    info.consumers()


def outcome(data: bytes, seconds: float = WALL_SECONDS) -> tuple[str, str]:
    """Classify one input: ("ok" | "clean" | "crash" | "hang", detail)."""
    try:
        with wall_bound(seconds):
            use_model(data)
    except Hang as exc:
        return "hang", str(exc)
    except InvalidModelError as exc:
        if "not a valid TFLite model" in str(exc):
            return "clean", ""
        return "crash", f"InvalidModelError without the phrase: {exc}"
    except Exception as exc:  # noqa: BLE001 - classifying every failure is the point of the harness
        return "crash", f"{type(exc).__name__}: {exc}"
    return "ok", ""


# ---------------------------------------------------------------- mutators (deterministic given an rng)

def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def flip_bits(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 16)):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


INTERESTING_WORDS = [0, 1, 2, 3, 4, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
                     0xFFFFFFFE, 0x40000000]


def overwrite_word(data: bytes, rng: random.Random) -> bytes:
    """Write an extreme or size-like 32-bit value over an aligned word (offsets, lengths, indices)."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(0, max(1, len(out) - 4), 4)
        word = rng.choice(INTERESTING_WORDS + [len(data), len(data) - at, rng.randrange(len(data))])
        out[at : at + 4] = (word & 0xFFFFFFFF).to_bytes(4, "little")
    return bytes(out)


def random_bytes(data: bytes, rng: random.Random) -> bytes:
    blob = rng.randbytes(rng.randrange(4096))
    return blob[:4] + b"TFL3" + blob[8:] if rng.random() < 0.5 else blob


def splice(data: bytes, rng: random.Random) -> bytes:
    """Copy a chunk of the model over another place in it (tables and vectors in the wrong spot)."""
    a, b = sorted(rng.randrange(len(data)) for _ in range(2))
    at = rng.randrange(len(data))
    return data[:at] + data[a:b] + data[at + (b - a):]


MUTATORS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "truncate": truncate, "flip_bits": flip_bits, "overwrite_word": overwrite_word,
    "random_bytes": random_bytes, "splice": splice,
}
