#!/usr/bin/env python3
"""Draws HAKMEM's memory timeline (the CSV that HAKMEM_TIMELINE writes) as an SVG chart.

    timeline_svg.py TIMELINE.csv OUT.svg [--title TEXT]

The committed memory is drawn as stacked areas (in use by tiny, mid and huge blocks; cached in
slabs, the huge cache and arena; free slabs of the pool; metadata), with the process's RSS as a
line over them. The program's phases show as bands under the chart: where the memory in use grows,
where it shrinks, and where it holds still (the band's colour; a phase lasts at least 3 rows).
Standard library only.
"""
import argparse
import csv
import html
import sys

COLUMNS = ["ms", "rss_kib", "committed_kib", "tiny_in_use_kib", "tiny_cached_kib", "mid_in_use_kib",
           "mid_cached_kib", "huge_in_use_kib", "huge_cached_kib", "pool_free_kib", "metadata_kib",
           "given_back_kib"]

# (label, colour, function of a row giving KiB), bottom to top.
LAYERS = [
    ("tiny in use", "#4878cf", lambda r: r["tiny_in_use_kib"]),
    ("mid in use", "#6acc65", lambda r: r["mid_in_use_kib"]),
    ("huge in use", "#d65f5f", lambda r: r["huge_in_use_kib"]),
    ("cached (bins, slabs, huge)", "#f0c05a",
     lambda r: r["tiny_cached_kib"] + r["mid_cached_kib"] + r["huge_cached_kib"]),
    ("free slabs of the pool", "#c4ad66", lambda r: r["pool_free_kib"]),
    ("metadata", "#b0b0b0", lambda r: r["metadata_kib"]),
]
PHASE_COLOURS = {"grows": "#9ecae1", "shrinks": "#fdae6b", "steady": "#e0e0e0"}


def read_rows(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise SystemExit("timeline_svg: %s lacks columns %s" % (path, ", ".join(missing)))
        rows = [{k: int(v) for k, v in row.items() if k in COLUMNS} for row in reader]
    if not rows:
        raise SystemExit("timeline_svg: %s has no rows" % path)
    return rows


def in_use(row):
    return row["tiny_in_use_kib"] + row["mid_in_use_kib"] + row["huge_in_use_kib"]


def phases(rows):
    """Splits the rows into phases by the trend of the memory in use: (first, last, kind)."""
    if len(rows) < 2:
        return [(0, len(rows) - 1, "steady")]
    peak = max(max(in_use(r) for r in rows), 1)
    kinds = []
    for before, after in zip(rows, rows[1:]):
        change = in_use(after) - in_use(before)
        kinds.append("grows" if change > peak * 0.01 else "shrinks" if change < -peak * 0.01 else "steady")
    # Runs shorter than 3 steps join the run before them, so noise does not make a phase.
    runs = []
    for i, kind in enumerate(kinds):
        if runs and runs[-1][2] == kind:
            runs[-1][1] = i + 1
        else:
            runs.append([i, i + 1, kind])
    merged = []
    for run in runs:
        if merged and (run[1] - run[0] < 3 or merged[-1][2] == run[2]):
            merged[-1][1] = run[1]
        else:
            merged.append(run)
    return [tuple(r) for r in merged]


def nice_step(span, ticks=6):
    raw = span / ticks if span > 0 else 1
    magnitude = 10 ** len(str(int(raw))) / 10 if raw >= 1 else 1
    for step in (1, 2, 5, 10):
        if raw <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def draw(rows, title):
    width, height = 960, 480
    left, right, top, bottom = 70, 250, 40, 90
    plot_w, plot_h = width - left - right, height - top - bottom
    t0, t1 = rows[0]["ms"], rows[-1]["ms"]
    seconds = max((t1 - t0) / 1000.0, 0.001)
    top_kib = max(max(r["rss_kib"], sum(f(r) for _, _, f in LAYERS)) for r in rows)
    top_mib = max(top_kib / 1024.0, 1.0) * 1.05

    def x(row):
        return left + (row["ms"] - t0) / 1000.0 / seconds * plot_w

    def y(kib):
        return top + plot_h - (kib / 1024.0) / top_mib * plot_h

    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" '
           'font-size="12">' % (width, height),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="22" font-size="15">%s</text>' % (left, html.escape(title))]
    # Axes and grid.
    step = nice_step(top_mib)
    value = 0.0
    while value <= top_mib:
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#eee"/>' % (left, left + plot_w, y(value * 1024),
                                                                                  y(value * 1024)))
        out.append('<text x="%d" y="%.1f" text-anchor="end">%g</text>' % (left - 6, y(value * 1024) + 4, value))
        value += step
    out.append('<text x="16" y="%d" transform="rotate(-90 16 %d)" text-anchor="middle">MiB</text>' % (
        top + plot_h // 2, top + plot_h // 2))
    tstep = nice_step(seconds)
    value = 0.0
    while value <= seconds + 1e-9:
        px = left + value / seconds * plot_w
        out.append('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#999"/>' % (px, px, top + plot_h,
                                                                                  top + plot_h + 4))
        out.append('<text x="%.1f" y="%d" text-anchor="middle">%g</text>' % (px, top + plot_h + 17, value))
        value += tstep
    out.append('<text x="%d" y="%d" text-anchor="middle">seconds</text>' % (left + plot_w // 2, top + plot_h + 33))
    # Stacked areas.
    base = [0] * len(rows)
    for label, colour, part in LAYERS:
        upper = [b + part(r) for b, r in zip(base, rows)]
        points = ["%.1f,%.1f" % (x(r), y(u)) for r, u in zip(rows, upper)]
        points += ["%.1f,%.1f" % (x(r), y(b)) for r, b in reversed(list(zip(rows, base)))]
        out.append('<polygon points="%s" fill="%s" fill-opacity="0.85" stroke="none"/>' % (" ".join(points), colour))
        base = upper
    # RSS over them.
    out.append('<polyline points="%s" fill="none" stroke="black" stroke-width="1.6"/>' % " ".join(
        "%.1f,%.1f" % (x(r), y(r["rss_kib"])) for r in rows))
    out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#666"/>' % (left, top, plot_w, plot_h))
    # Phases, as a band under the axis.
    band_y = top + plot_h + 44
    for first, last, kind in phases(rows):
        x0, x1 = x(rows[first]), x(rows[last])
        out.append('<rect x="%.1f" y="%d" width="%.1f" height="12" fill="%s"><title>%s, %.1f-%.1f s</title></rect>' % (
            x0, band_y, max(x1 - x0, 1.0), PHASE_COLOURS[kind], kind, (rows[first]["ms"] - t0) / 1000.0,
            (rows[last]["ms"] - t0) / 1000.0))
    out.append('<text x="%d" y="%d" text-anchor="end">phase</text>' % (left - 6, band_y + 10))
    # Legend.
    lx, ly = left + plot_w + 16, top + 6
    out.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="black" stroke-width="1.6"/>' % (lx, lx + 18, ly, ly))
    out.append('<text x="%d" y="%d">RSS (whole process)</text>' % (lx + 24, ly + 4))
    for i, (label, colour, _) in enumerate(reversed(LAYERS)):
        yy = ly + 20 + i * 18
        out.append('<rect x="%d" y="%d" width="18" height="11" fill="%s"/>' % (lx, yy - 6, colour))
        out.append('<text x="%d" y="%d">%s</text>' % (lx + 24, yy + 4, html.escape(label)))
    yy = ly + 20 + len(LAYERS) * 18 + 14
    for i, (kind, colour) in enumerate(PHASE_COLOURS.items()):
        out.append('<rect x="%d" y="%d" width="18" height="11" fill="%s"/>' % (lx, yy + i * 18 - 6, colour))
        out.append('<text x="%d" y="%d">in use %s</text>' % (lx + 24, yy + i * 18 + 4, kind))
    last = rows[-1]
    yy += len(PHASE_COLOURS) * 18 + 10
    for line in ("peak RSS %.1f MiB" % (max(r["rss_kib"] for r in rows) / 1024.0),
                 "given back %.1f MiB" % (last["given_back_kib"] / 1024.0),
                 "%d rows, %.1f s" % (len(rows), seconds)):
        out.append('<text x="%d" y="%d">%s</text>' % (lx, yy, line))
        yy += 16
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv):
    parser = argparse.ArgumentParser(description="Draws HAKMEM's memory timeline CSV as an SVG chart.")
    parser.add_argument("csv")
    parser.add_argument("svg")
    parser.add_argument("--title", default=None)
    options = parser.parse_args(argv)
    rows = read_rows(options.csv)
    with open(options.svg, "w") as f:
        f.write(draw(rows, options.title or "HAKMEM memory timeline: " + options.csv))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
