#!/usr/bin/env python3
"""Writes a deterministic XML document to stdout for the xmllint row of benchmarks/compare.py.

libxml2 builds its DOM as one heap block per node, attribute, namespace and (non-interned) text,
and XPath evaluation allocates node sets and objects per step; xmllint then serialises the tree.
The document is a catalogue of sections, products with attributes, nested specs and text.
"""
import argparse
import random

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
         "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo"]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--products", type=int, default=60000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    out = ['<?xml version="1.0" encoding="UTF-8"?>', '<catalog xmlns:x="urn:hakmem:extra" version="3">']
    per_section = 500
    for start in range(0, args.products, per_section):
        out.append('  <section id="s%d" name="%s">' % (start // per_section, rng.choice(WORDS)))
        for i in range(start, min(start + per_section, args.products)):
            out.append('    <product id="p%d" sku="%s-%d" price="%d.%02d" stock="%d">'
                       % (i, rng.choice(WORDS), rng.randrange(10000), rng.randrange(1000), rng.randrange(100),
                          rng.randrange(50)))
            out.append('      <title>%s &amp; %s</title>' % (rng.choice(WORDS).title(), rng.choice(WORDS)))
            out.append('      <specs>')
            for _ in range(rng.randrange(1, 6)):
                out.append('        <spec key="%s" x:unit="%s">%d</spec>'
                           % (rng.choice(WORDS), rng.choice(["mm", "g", "ml", "pcs"]), rng.randrange(1000)))
            out.append('      </specs>')
            out.append('      <desc>%s</desc>' % " ".join(rng.choice(WORDS) for _ in range(rng.randrange(3, 25))))
            out.append('    </product>')
        out.append('  </section>')
    out.append('</catalog>')
    print("\n".join(out))


if __name__ == "__main__":
    main()
