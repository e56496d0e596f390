#!/usr/bin/env python3
"""Writes a deterministic web-server-style log to stdout, the input of the gawk and perl rows of
benchmarks/compare.py (awk_workload.awk, perl_workload.pl).

Text processors are allocator-bound through their strings: every field split off a line, every
concatenation and every associative-array key is a heap block, most of them short-lived, some
(the aggregates) growing for the whole run. Each line: date, time, host, method, path, status,
bytes and user agent.
"""
import argparse
import random

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
         "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo"]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=150000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    out = []
    for i in range(args.lines):
        out.append("2024-01-%02d %02d:%02d:%02d host%d %s /%s/%s/%d status=%d bytes=%d agent=%s-%d" % (
            1 + i % 28, rng.randrange(24), rng.randrange(60), rng.randrange(60), rng.randrange(40),
            rng.choice(["GET", "POST", "PUT", "DELETE"]), rng.choice(WORDS), rng.choice(WORDS),
            rng.randrange(5000), rng.choice([200, 200, 200, 301, 404, 500]), rng.randrange(100000),
            rng.choice(WORDS), rng.randrange(20)))
    print("\n".join(out))


if __name__ == "__main__":
    main()
