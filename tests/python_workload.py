"""A deterministic Python workload: dicts, lists, sets, strings, bytes, objects and garbage.

Prints digests of what it built, so two runs (glibc and HAKMEM) can be compared line by line.
"""
import collections
import hashlib
import json
import random
import re


def digest(value):
    return hashlib.sha256(repr(value).encode()).hexdigest()[:16]


def dicts(rng):
    table = {}
    for i in range(300_000):
        key = "k%d_%s" % (rng.randrange(100_000), "x" * rng.randrange(20))
        table[key] = table.get(key, 0) + i
        if i % 7 == 0:
            table.pop("k%d_" % rng.randrange(100_000), None)
    nested = {i: {"name": str(i) * (i % 13), "tags": list(range(i % 17))} for i in range(40_000)}
    merged = collections.Counter()
    for value in nested.values():
        merged.update(value["tags"])
    return len(table), digest(sorted(table.items())[:1000]), digest(sorted(merged.items()))


def lists(rng):
    data = [rng.random() for _ in range(200_000)]
    data.sort()
    chunks = [data[i:i + rng.randrange(1, 500)] for i in range(0, len(data), 250)]
    flat = [x for chunk in chunks for x in chunk]
    grown = []
    for i in range(100_000):
        grown.append((i, str(i)))
        if i % 3 == 0:
            grown.insert(len(grown) // 2, ("mid", i))
        if i % 5 == 0:
            grown.pop(0)
    return len(flat), digest(flat[:2000]), len(grown), digest(grown[::997])


def strings(rng):
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randrange(1, 12)))
             for _ in range(60_000)]
    text = " ".join(words)
    upper = text.upper()
    counts = collections.Counter(re.findall(r"\b[a-z]{3,5}\b", text))
    replaced = re.sub(r"([aeiou])([^aeiou ]+)", r"\2\1", text)
    pieces = []
    for i in range(50_000):
        pieces.append(f"{i:08d}:{words[i % len(words)]}|")
    joined = "".join(pieces)
    encoded = joined.encode("utf-16").decode("utf-16")
    blob = bytearray()
    for i in range(20_000):
        blob += words[i].encode() * (i % 4)
    return (len(text), digest(upper[:5000]), digest(counts.most_common(50)), digest(replaced[-5000:]),
            encoded == joined, hashlib.sha256(bytes(blob)).hexdigest()[:16])


class Node:
    __slots__ = ("value", "children", "parent")

    def __init__(self, value, parent=None):
        self.value = value
        self.children = []
        self.parent = parent


def objects(rng):
    root = Node(0)
    nodes = [root]
    for i in range(1, 150_000):
        parent = nodes[rng.randrange(len(nodes))]
        child = Node(i, parent)
        parent.children.append(child)
        nodes.append(child)
    depth_sum = 0
    for node in nodes[::50]:
        depth = 0
        while node.parent is not None:
            node = node.parent
            depth += 1
        depth_sum += depth
    # Reference cycles for the garbage collector.
    for _ in range(30_000):
        a, b = {}, {}
        a["b"], b["a"] = b, a
    doc = json.dumps({str(i): [i, str(i), {"x": i}] for i in range(30_000)})
    back = json.loads(doc)
    return depth_sum, len(back), digest(doc[:3000])


def main():
    rng = random.Random(7)
    for name, func in (("dicts", dicts), ("lists", lists), ("strings", strings), ("objects", objects)):
        print(name, func(rng))


if __name__ == "__main__":
    main()
