#!/usr/bin/env python3
"""Draws a flame graph (SVG) of a heap profile from google-pprof's collapsed stacks.

    google-pprof --collapsed [--inuse_space|--alloc_space] PROGRAM PROFILE | flame_svg.py - OUT.svg
    flame_svg.py STACKS.txt OUT.svg [--title TEXT] [--unit bytes|objects]

Input lines are "root;caller;...;leaf COUNT" (google-pprof --collapsed, the format of Brendan Gregg's
flame graphs). The program's entry is at the bottom; each frame's width is the bytes (or objects)
allocated under it; a frame's tooltip (<title>) gives its name, figure and share. google-pprof's
address suffixes ("main<00000000000011e0>") are dropped, inlined frames keep their "[inline]".
Standard library only (tools/hakmem flame runs it).
"""
import argparse
import hashlib
import html
import re
import sys

WIDTH = 1200
FRAME_HEIGHT = 17
FONT_SIZE = 11
MARGIN = 10
TITLE_HEIGHT = 36
MIN_WIDTH = 0.3  # frames narrower than this (px) are not drawn
SUFFIX = re.compile(r"<[0-9a-fA-Fx]+>$")


class Node:
    __slots__ = ("name", "total", "children")

    def __init__(self, name):
        self.name = name
        self.total = 0
        self.children = {}

    def child(self, name):
        node = self.children.get(name)
        if node is None:
            node = self.children[name] = Node(name)
        return node


def read_stacks(stream):
    root = Node("all")
    for line in stream:
        line = line.strip()
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        try:
            value = int(float(count))
        except ValueError:
            continue
        if value <= 0 or not stack:
            continue
        root.total += value
        node = root
        for frame in stack.split(";"):
            node = node.child(SUFFIX.sub("", frame.strip()) or "?")
            node.total += value
    return root


def depth_of(node):
    return 1 + max((depth_of(c) for c in node.children.values()), default=0)


def colour(name):
    # Warm colours (the flame-graph convention), stable per name; HAKMEM's own frames in blue.
    digest = hashlib.md5(name.encode()).digest()
    if name.startswith(("hk_", "hakmem_", "tiny_", "ace_", "se_")):
        return "rgb(%d,%d,%d)" % (90 + digest[0] % 40, 140 + digest[1] % 50, 220)
    return "rgb(%d,%d,%d)" % (205 + digest[0] % 50, 80 + digest[1] % 130, 40 + digest[2] % 40)


def human(value, unit):
    if unit == "objects":
        return "{:,} objects".format(value)
    for suffix, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= scale:
            return "%.1f %s" % (value / scale, suffix)
    return "%d B" % value


def draw(root, title, unit):
    levels = depth_of(root)
    height = TITLE_HEIGHT + levels * FRAME_HEIGHT + 2 * MARGIN
    scale = (WIDTH - 2 * MARGIN) / root.total if root.total else 0
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
        'font-family="Verdana, sans-serif" font-size="%d">' % (WIDTH, height, WIDTH, height, FONT_SIZE),
        '<rect width="100%" height="100%" fill="#fbfbf4"/>',
        '<text x="%d" y="22" font-size="15" text-anchor="middle">%s</text>' % (WIDTH // 2, html.escape(title)),
        '<text x="%d" y="%d" fill="#555">total %s; hover a frame for its figure</text>'
        % (MARGIN, TITLE_HEIGHT - 4, html.escape(human(root.total, unit))),
    ]

    def visit(node, x, level):
        width = node.total * scale
        if width < MIN_WIDTH:
            return
        y = height - MARGIN - (level + 1) * FRAME_HEIGHT
        share = 100.0 * node.total / root.total
        label = "%s (%s, %.1f%%)" % (node.name, human(node.total, unit), share)
        out.append('<g><title>%s</title><rect x="%.2f" y="%d" width="%.2f" height="%d" fill="%s" rx="2"/>'
                   % (html.escape(label), x, y, width, FRAME_HEIGHT - 1, colour(node.name)))
        chars = int((width - 6) / (FONT_SIZE * 0.6))
        if chars >= 3:
            text = node.name if len(node.name) <= chars else node.name[: chars - 2] + ".."
            out.append('<text x="%.2f" y="%d">%s</text>' % (x + 3, y + FRAME_HEIGHT - 5, html.escape(text)))
        out.append("</g>")
        child_x = x
        for child in sorted(node.children.values(), key=lambda c: c.name):
            visit(child, child_x, level + 1)
            child_x += child.total * scale

    visit(root, MARGIN, 0)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stacks", help="collapsed stacks ('-': standard input)")
    parser.add_argument("out", help="the SVG to write")
    parser.add_argument("--title", default="HAKMEM heap profile")
    parser.add_argument("--unit", choices=["bytes", "objects"], default="bytes")
    args = parser.parse_args()
    stream = sys.stdin if args.stacks == "-" else open(args.stacks)
    root = read_stacks(stream)
    if root.total == 0:
        raise SystemExit("flame_svg: no stack with a positive count in %s" % args.stacks)
    with open(args.out, "w") as f:
        f.write(draw(root, args.title, args.unit))


if __name__ == "__main__":
    main()
