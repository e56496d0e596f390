#!/usr/bin/env python3
"""Writes a deterministic JSON document to stdout for the jq row of benchmarks/compare.py.

jq keeps every value (each object, array, string and number) in its own reference-counted heap
block and copies on write, so parsing, filtering and rebuilding a document of many small records
is a steady stream of small mallocs, reallocs and frees. The document is an array of orders, each
with a nested customer object, a list of line items and free-text tags.
"""
import argparse
import json
import random

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
         "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo"]
CITIES = ["Lyon", "Osaka", "Quito", "Perth", "Oslo", "Accra", "Lima", "Riga", "Dakar", "Hanoi"]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    orders = []
    for i in range(args.orders):
        items = [{"sku": "%s-%04d" % (rng.choice(WORDS), rng.randrange(5000)),
                  "qty": rng.randrange(1, 9),
                  "price": rng.randrange(100, 100000) / 100}
                 for _ in range(rng.randrange(1, 7))]
        orders.append({
            "id": i,
            "customer": {"name": "%s %s" % (rng.choice(WORDS).title(), rng.choice(WORDS).title()),
                         "city": rng.choice(CITIES),
                         "vip": rng.random() < 0.1},
            "items": items,
            "tags": rng.sample(WORDS, rng.randrange(0, 4)),
            "note": " ".join(rng.choice(WORDS) for _ in range(rng.randrange(0, 12))),
        })
    # One record per line: a 20,000-order document is about 7 MB.
    print("[")
    print(",\n".join(json.dumps(o, sort_keys=True) for o in orders))
    print("]")


if __name__ == "__main__":
    main()
