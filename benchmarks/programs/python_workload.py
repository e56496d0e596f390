#!/usr/bin/env python3
"""The python3 real-program workload: builds and drops large dicts, lists, strings and tuples.

Run with PYTHONMALLOC=malloc (the compare tool does) so every object comes from the allocator under
test instead of Python's own small-object arena. Prints a checksum that must not depend on the
allocator.
"""
import argparse
import hashlib
import random


def one_round(rng, scale, digest):
    # A dict of string keys to lists: an index being built.
    index = {}
    for i in range(scale):
        key = "key-%d-%d" % (i, rng.randrange(1 << 30))
        index[key] = [i, i * 2, str(i)]
    # A list of tuples, sorted: a report being prepared.
    rows = [(rng.random(), k, len(v)) for k, v in index.items()]
    rows.sort()
    digest.update(repr(rows[:: max(1, scale // 50)]).encode())
    # Grow and drop nested structures: a cache filled and evicted.
    cache = {}
    for i in range(scale):
        cache[i % (scale // 4 + 1)] = {"id": i, "payload": "x" * (i % 200), "tags": list(range(i % 16))}
    digest.update(str(sum(len(v["payload"]) for v in cache.values())).encode())
    words = " ".join(k for k in list(index)[: scale // 2]).split(" ")
    digest.update(str(len(words)).encode())
    del index, rows, cache, words


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=int, default=100000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    digest = hashlib.sha256()
    for _ in range(args.rounds):
        one_round(rng, args.scale, digest)
    print("python_workload checksum", digest.hexdigest())


if __name__ == "__main__":
    main()
