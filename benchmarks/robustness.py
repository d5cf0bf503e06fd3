"""Robustness figures: how the flatbuffer reader copes with hostile input, counted.

Run: python benchmarks/robustness.py [N] [--seed S]

N fuzz inputs (default 5000) are made from the committed seed models (tests/data/tflite) by five seeded
mutators (truncate, bit flips, extreme 32-bit words over aligned offsets, random bytes, spliced chunks), plus
hand-built hostile files (vectors and tables that alias each other, up to ~1 MB). Each input is parsed and the
result used as ``inspect`` uses it (to_dict + JSON, every constant, graph maps), in-process under a 2 s wall
bound. Outcomes: parsed ok; clean error (InvalidModelError "not a valid TFLite model"); crash (any other
exception); hang (over 2 s). Max RSS growth is the process's peak resident set after the run minus before.
Target: zero crashes and zero hangs.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.reader_fuzz import MUTATORS, WALL_SECONDS, outcome, seed_models  # noqa: E402
from tests.tflite_craft import aliased_shapes_model  # noqa: E402

KINDS = ("ok", "clean", "crash", "hang")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="?", default=5000, help="fuzz inputs to try (default 5000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for the mutators")
    args = parser.parse_args(argv)

    seeds = list(seed_models().items())
    rng = random.Random(args.seed)
    names = sorted(MUTATORS)
    counts: dict[str, Counter] = {name: Counter() for name in [*names, "hostile"]}
    examples: list[str] = []
    slowest = 0.0
    rss_before = peak_rss_mib()
    start = time.perf_counter()

    def record(group: str, data: bytes) -> None:
        nonlocal slowest
        t = time.perf_counter()
        kind, detail = outcome(data, WALL_SECONDS)
        slowest = max(slowest, time.perf_counter() - t)
        counts[group][kind] += 1
        if kind in ("crash", "hang") and len(examples) < 10:
            examples.append(f"{group}: {kind}: {detail[:200]}")

    for i in range(args.n):
        mutator = names[i % len(names)]
        _, data = seeds[rng.randrange(len(seeds))]
        record(mutator, MUTATORS[mutator](data, rng))
    for tensor_count in (100, 1000, 10_000, 100_000, 250_000):
        record("hostile", aliased_shapes_model(tensor_count))
    elapsed = time.perf_counter() - start
    rss_growth = peak_rss_mib() - rss_before

    total = Counter()
    print(f"{'inputs':<16}{'tried':>8}{'parsed ok':>11}{'clean error':>13}{'crashes':>9}{'hangs':>7}")
    for group, counter in counts.items():
        total.update(counter)
        print(f"{group:<16}{sum(counter.values()):>8}" + "".join(
            f"{counter[k]:>{w}}" for k, w in zip(KINDS, (11, 13, 9, 7), strict=True)))
    print(f"{'total':<16}{sum(total.values()):>8}" + "".join(
        f"{total[k]:>{w}}" for k, w in zip(KINDS, (11, 13, 9, 7), strict=True)))
    print(f"\nseeds: {', '.join(name for name, _ in seeds)}")
    print(f"wall time {elapsed:.1f} s, slowest input {slowest * 1000:.0f} ms (bound {WALL_SECONDS:.0f} s), "
          f"max RSS growth {rss_growth:.1f} MiB")
    for line in examples:
        print(line)
    print(f"\ncommand: python benchmarks/robustness.py {args.n} --seed {args.seed}")
    return 1 if total["crash"] or total["hang"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
