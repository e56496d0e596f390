#!/usr/bin/env python3
"""Side-by-side allocator comparison for HAKMEM.

Runs every workload (the C benchmarks in this directory and real programs: sqlite3, python3, gcc,
redis-server, lua5.4, clang++, jq, xmllint, gawk, perl)
under every allocator found (glibc, mimalloc, jemalloc, tcmalloc, HAKMEM when built), with the
repetitions interleaved across allocators, and writes Markdown, CSV and SVG results.

Run it with `bazel run //benchmarks:compare -- [options]` or `tools/compare [options]`.
Standard library only.
"""
import argparse
import csv
import datetime
import glob
import hashlib
import math
import os
import random
import re
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time

# ---------------------------------------------------------------------------------------------
# Allocators

PEER_LIBRARIES = [
    # (name, file name patterns, most specific first)
    ("mimalloc", ["libmimalloc.so.2", "libmimalloc.so.2.*", "libmimalloc.so"]),
    ("jemalloc", ["libjemalloc.so.2", "libjemalloc.so"]),
    ("tcmalloc", ["libtcmalloc_minimal.so.4", "libtcmalloc_minimal.so", "libtcmalloc.so.4"]),
]
LIBRARY_DIRS = ["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib", "/lib/x86_64-linux-gnu"]
ALL_ALLOCATORS = ["glibc", "mimalloc", "jemalloc", "tcmalloc", "hakmem"]


class Allocator:
    def __init__(self, name, library):
        self.name = name
        self.library = library  # None: the C library's own malloc (no preload)
        self.settings = {}      # --env: variables set for this allocator's runs only

    def environment(self, base):
        env = dict(base)
        env.pop("LD_PRELOAD", None)
        if self.library:
            env["LD_PRELOAD"] = self.library
        env.update(self.settings)
        return env

    def describe(self):
        settings = "".join(" %s=%s" % item for item in sorted(self.settings.items()))
        return (self.library or "no preload") + settings


def find_peer(patterns):
    for directory in LIBRARY_DIRS:
        for pattern in patterns:
            for path in sorted(glob.glob(os.path.join(directory, pattern))):
                if os.path.isfile(path) and "debug" not in os.path.basename(path):
                    return path
    return None


def discover_allocators(requested, hakmem_path, log):
    """Returns the allocators to run, in ALL_ALLOCATORS order, and notes about the missing ones."""
    found, notes = [], []
    for name in requested:
        if name == "glibc":
            found.append(Allocator("glibc", None))
        elif name == "hakmem":
            if hakmem_path and os.path.isfile(hakmem_path):
                found.append(Allocator("hakmem", os.path.abspath(hakmem_path)))
            else:
                notes.append("hakmem: not built (no %s)" % (hakmem_path or "libhakmem.so"))
        else:
            patterns = dict(PEER_LIBRARIES)[name]
            path = find_peer(patterns)
            if path:
                found.append(Allocator(name, path))
            else:
                notes.append("%s: not installed (looked for %s in %s), skipped"
                             % (name, patterns[0], ", ".join(LIBRARY_DIRS)))
    if not gnu_time():
        notes.append("GNU time (/usr/bin/time) not found: peak RSS from wait4 includes this script's ~20 MiB")
    for note in notes:
        log(note)
    return found, notes


# ---------------------------------------------------------------------------------------------
# Workloads


class Workload:
    def __init__(self, name, kind, models, binary=None, args=(), quick_args=(), program=None):
        self.name = name
        self.kind = kind          # "bench": a C benchmark printing RESULT; "program": a timed real program;
                                  # "service": a server loaded by a client (programs/<program>_service.py)
        self.models = models
        self.binary = binary
        self.args = list(args)
        self.quick_args = list(quick_args)
        self.program = program    # for programs: key into PROGRAMS

    @property
    def metric(self):
        # A service's rate is requests per second, shown and compared like a benchmark's ops/s.
        return "ops_per_sec" if self.kind in ("bench", "service") else "seconds"


def bench(name, binary, models, *args):
    return Workload(name, "bench", models, binary=binary, args=args, quick_args=list(args) + ["--quick"])


# Programs run more threads than cores (issue 17), and this machine has 2: these rows run each
# multi-thread benchmark at 4, 8 and 16 threads, where an allocator's lock holder gets preempted.
OVERSUBSCRIBED_THREADS = (4, 8, 16)


def threads_option(threads):
    return ["--threads=%d" % threads]


def bench_oversubscribed(stem, binary, models, *args, thread_options=threads_option, per_thread=None,
                         thread_counts=OVERSUBSCRIBED_THREADS):
    """Rows STEM_t4, STEM_t8, STEM_t16. A benchmark whose count is a total over all its threads needs
    nothing more. One that counts per thread gets per_thread=(option, full total, quick total), the
    2-thread row's totals from its defaults: each row divides them evenly over its threads, so a
    16-thread row does the 2-thread row's work, not 8 times as much."""
    rows = []
    for threads in thread_counts:
        full = list(args) + thread_options(threads)
        quick = list(full)
        if per_thread:
            option, full_total, quick_total = per_thread
            full.append("--%s=%d" % (option, full_total // threads))
            quick.append("--%s=%d" % (option, quick_total // threads))
        rows.append(Workload("%s_t%d" % (stem, threads), "bench", "%s, %d threads" % (models, threads),
                             binary=binary, args=full, quick_args=quick + ["--quick"]))
    return rows


WORKLOADS = [
    bench("random_mixed", "random_mixed", "16-1040 B random malloc/free, 4,096 live slots"),
    bench("random_mixed_small", "random_mixed", "16-128 B random malloc/free",
          "--min=16", "--max=128", "--name=random_mixed_small"),
    bench("larson_t1", "larson", "server simulation, 1 chain, thread hand-over", "--threads=1"),
    bench("larson_t2", "larson", "server simulation, 2 chains", "--threads=2"),
    *bench_oversubscribed("larson", "larson", "server simulation, larson_t2's total rounds",
                          per_thread=("rounds", 2 * 500000, 2 * 20000)),
    bench("mid_large_mt_t1", "mid_large_mt", "8-32 KiB blocks, 1 thread", "--threads=1"),
    bench("mid_large_mt_t2", "mid_large_mt", "8-32 KiB blocks, 2 threads", "--threads=2"),
    *bench_oversubscribed("mid_large_mt", "mid_large_mt", "8-32 KiB blocks, mid_large_mt_t2's total ops",
                          per_thread=("ops", 2 * 8000000, 2 * 50000)),
    bench("xthread", "xthread", "producer allocates, consumer frees (remote free)"),
    *bench_oversubscribed("xthread", "xthread", "half the threads allocate, half free",
                          thread_options=lambda threads: ["--producers=%d" % (threads // 2),
                                                          "--consumers=%d" % (threads // 2)]),
    bench("cache_scratch", "cache_scratch", "allocator-induced false sharing, 2 threads"),
    *bench_oversubscribed("cache_scratch", "cache_scratch", "false sharing, cache_scratch's total iterations",
                          per_thread=("iterations", 2 * 5000000, 2 * 20000)),
    bench("thread_churn", "thread_churn", "40,000 short-lived threads"),
    # thread_churn itself runs 4 at a time.
    *bench_oversubscribed("thread_churn", "thread_churn", "40,000 short-lived threads",
                          thread_options=lambda threads: ["--concurrent=%d" % threads], thread_counts=(8, 16)),
    bench("realloc_grow", "realloc_grow", "realloc 16 B <-> 4 MiB"),
    bench("big_blocks", "big_blocks", "64 KiB-16 MiB blocks, every page touched"),
    bench("ring_batches_t1", "ring_batches", "1-1000 B sweep, rings of 5,000 freed in bursts", "--threads=1"),
    bench("ring_batches_t2", "ring_batches", "the same, 2 threads", "--threads=2"),
    *bench_oversubscribed("ring_batches", "ring_batches", "rings freed in bursts"),
    bench("long_tail_xthread_t2", "long_tail_xthread", "16 B-16 KiB long tail, 15 % freed by another thread",
          "--threads=2"),
    *bench_oversubscribed("long_tail_xthread", "long_tail_xthread", "long tail, 15 % remote frees"),
    bench("realloc_churn", "realloc_churn", "strings and packed lists grown by realloc, 1 thread", "--threads=1"),
    bench("realloc_churn_t2", "realloc_churn", "the same, 2 threads", "--threads=2"),
    *bench_oversubscribed("realloc_churn", "realloc_churn", "realloc growth"),
    bench("mid_large_touch_t1", "mid_large_mt", "mid_large_mt touching first and last byte only, 1 thread",
          "--touch=ends", "--name=mid_large_touch", "--threads=1"),
    bench("mid_large_touch_t2", "mid_large_mt", "the same, 2 threads",
          "--touch=ends", "--name=mid_large_touch", "--threads=2"),
    *bench_oversubscribed("mid_large_touch", "mid_large_mt", "8-32 KiB, ends touched, mid_large_touch_t2's total ops",
                          "--touch=ends", "--name=mid_large_touch", per_thread=("ops", 2 * 8000000, 2 * 50000)),
    bench("fragmentation", "fragmentation", "peak RSS vs live bytes after scattered frees"),
    bench("fragmentation_trim", "fragmentation", "the same, calling malloc_trim(0) after the frees",
          "--trim", "--name=fragmentation_trim"),
    bench("memory_return_sleep", "memory_return", "1 GiB of 16-512 B blocks freed, then 10 s with no allocator call",
          "--after=sleep", "--name=memory_return_sleep"),
    bench("memory_return_trickle", "memory_return", "the same, then 10 s of one small malloc/free per millisecond",
          "--after=trickle", "--name=memory_return_trickle"),
    Workload("sqlite", "program", "sqlite3 :memory: - 300K inserts, indexes, queries", program="sqlite"),
    Workload("python", "program", "python3 (PYTHONMALLOC=malloc) building and dropping dicts/lists", program="python"),
    Workload("gcc", "program", "gcc -O2 -c of a generated 290 KB C file", program="gcc"),
    Workload("redis", "service", "redis-server loaded by redis-benchmark: SET/GET/LPUSH/LRANGE/HSET, "
             "16 B-4 KiB values, 50 clients; requests/s", program="redis"),
    Workload("redis_pipelined", "service", "the same with pipelining (-P 16), 5x the requests",
             args=["--pipelined"], program="redis"),
    Workload("lua", "program", "lua5.4: tables and strings built, indexed, sorted and dropped", program="lua"),
    Workload("clang", "program", "clang++ -O1 -c of a generated template-heavy C++17 file", program="clang"),
    Workload("jq", "program", "jq grouping and rebuilding a generated 7 MB JSON document", program="jq"),
    Workload("xmllint", "program", "xmllint --c14n of a generated 24 MB XML document, 3 times", program="xmllint"),
    Workload("awk", "program", "gawk: associative arrays over a generated 150,000-line log", program="awk"),
    Workload("perl", "program", "perl: regexes, hashes of arrays, sorts over the same log", program="perl"),
]
WORKLOADS_BY_NAME = {w.name: w for w in WORKLOADS}


def system_python():
    # The distribution's interpreter, not a version-manager shim (which would add a shell to each run).
    for candidate in ("/usr/bin/python3", shutil.which("python3"), sys.executable):
        if candidate and os.path.isfile(candidate):
            return candidate
    return "python3"


class ProgramInputs:
    """Generates the real programs' inputs once per compare run, into a scratch directory."""

    def __init__(self, programs_dir, scratch, quick):
        self.programs_dir = programs_dir
        self.scratch = scratch
        self.quick = quick
        self.python = system_python()
        self.prepared = {}

    def _generate(self, script, args, output):
        import subprocess  # only here: the timed runs use posix_spawn and wait4
        with open(output, "w") as out:
            subprocess.run([self.python, os.path.join(self.programs_dir, script)] + args, stdout=out, check=True)
        return output

    def command(self, program, run_tag):
        """Returns (argv, stdin path or None, extra env, path of an output file to hash or None)."""
        if program == "sqlite":
            if "sqlite" not in self.prepared:
                rows = ["--rows=20000"] if self.quick else []
                self.prepared["sqlite"] = self._generate("sqlite_workload.py", rows,
                                                         os.path.join(self.scratch, "sqlite_workload.sql"))
            sqlite = shutil.which("sqlite3")
            if not sqlite:
                raise MissingTool("sqlite3 not installed")
            return [sqlite, ":memory:"], self.prepared["sqlite"], {}, None
        if program == "python":
            scale = ["--scale=10000", "--rounds=1"] if self.quick else []
            script = os.path.join(self.programs_dir, "python_workload.py")
            return ([self.python, script] + scale, None,
                    {"PYTHONMALLOC": "malloc", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}, None)
        if program == "gcc":
            if "gcc" not in self.prepared:
                functions = ["--functions=20"] if self.quick else []
                self.prepared["gcc"] = self._generate("gen_large_c.py", functions,
                                                      os.path.join(self.scratch, "large.c"))
            gcc = shutil.which("gcc")
            if not gcc:
                raise MissingTool("gcc not installed")
            obj = os.path.join(self.scratch, "large-%s.o" % run_tag)
            return [gcc, "-O2", "-c", self.prepared["gcc"], "-o", obj], None, {}, obj
        # The programs below were added for issue 17: each works the allocator hard (allocations per
        # second in docs/benchmarks.md) from an input generated here or a script shipped beside it.
        if program == "lua":
            scale = ["5000", "1"] if self.quick else []  # records per round, rounds
            return [self._tool("lua5.4"), os.path.join(self.programs_dir, "lua_workload.lua")] + scale, None, {}, None
        if program == "clang":
            source = self._input("gen_templates_cpp.py", ["--units=1"] if self.quick else [], "templates.cc")
            obj = os.path.join(self.scratch, "templates-%s.o" % run_tag)
            # clang's object files are byte-for-byte reproducible: hashed with stdout, like gcc's.
            return [self._tool("clang++", "clang++-14"), "-std=c++17", "-O1", "-c", source, "-o", obj], None, {}, obj
        if program == "jq":
            orders = self._input("gen_json.py", ["--orders=1000"] if self.quick else [], "orders.json")
            return ([self._tool("jq"), "-c", "-f", os.path.join(self.programs_dir, "jq_workload.jq"), orders],
                    None, {}, None)
        if program == "xmllint":
            catalog = self._input("gen_xml.py", ["--products=3000"] if self.quick else [], "catalog.xml")
            # Three passes, as a batch job over several documents would: parse, canonicalise, free.
            return [self._tool("xmllint"), "--c14n", catalog, catalog, catalog], None, {}, None
        if program in ("awk", "perl"):
            log = self._input("gen_log.py", ["--lines=8000"] if self.quick else [], "access.log")
            if program == "awk":
                return ([self._tool("gawk"), "-f", os.path.join(self.programs_dir, "awk_workload.awk"), log],
                        None, {}, None)
            return [self._tool("perl"), os.path.join(self.programs_dir, "perl_workload.pl"), log], None, {}, None
        raise ValueError(program)

    def _input(self, script, args, filename):
        """The output of a generator script in programs/, made once per compare run."""
        if filename not in self.prepared:
            self.prepared[filename] = self._generate(script, args, os.path.join(self.scratch, filename))
        return self.prepared[filename]

    @staticmethod
    def _tool(*names):
        for name in names:
            path = shutil.which(name)
            if path:
                return path
        raise MissingTool("%s not installed (tools/setup.sh installs it)" % names[0])


class MissingTool(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Running one process. Peak RSS comes from GNU time (%M, its wait4 rusage): a child spawned straight
# from this Python process would inherit Python's ~20 MiB high-water mark at exec (Linux records the
# old address space's peak in the process's maxrss), which would hide small workloads' differences.
# Without GNU time we fall back to posix_spawn + wait4 and say so.


class RunResult:
    def __init__(self):
        self.status = "ok"     # ok | FAILED | CRASH(SIGx) | ERROR(rc=N) | TIMEOUT | OOM | MISMATCH | MISSING
        self.value = None      # ops/s for benchmarks, seconds for programs
        self.wall = None
        self.rss_kib = None
        self.fields = {}       # the RESULT line's key=value pairs
        self.digest = None     # programs: sha256 of stdout (and output file)
        self.detail = ""


def gnu_time():
    path = "/usr/bin/time"
    return path if os.access(path, os.X_OK) else None


TIME_SIGNAL = re.compile(r"terminated by signal (\d+)")


def spawn_and_wait(argv, env, stdin_path, stdout_path, stderr_path, timeout, rusage_path):
    """Runs argv; returns (exit code or None, signal number or None, peak RSS KiB, wall seconds, timed out)."""
    timer_binary = gnu_time()
    if timer_binary:
        argv = [timer_binary, "-f", "%M %x", "-o", rusage_path] + argv
    file_actions = [
        (os.POSIX_SPAWN_OPEN, 0, stdin_path or os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, stdout_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
        (os.POSIX_SPAWN_OPEN, 2, stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
    ]
    started = time.monotonic()
    # Its own process group, so a timeout kills the workload and not only GNU time.
    pid = os.posix_spawn(argv[0], argv, env, file_actions=file_actions, setpgroup=0)
    timed_out = threading.Event()

    def kill():
        timed_out.set()
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        _, status, usage = os.wait4(pid, 0)
    finally:
        timer.cancel()
    wall = time.monotonic() - started
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status), usage.ru_maxrss, wall, timed_out.is_set()
    code, rss = os.WEXITSTATUS(status), usage.ru_maxrss
    if timer_binary:
        try:
            with open(rusage_path) as f:
                text = f.read()
            os.unlink(rusage_path)
            rss = int(text.strip().splitlines()[-1].split()[0])
            killed = TIME_SIGNAL.search(text)
            if killed:
                return None, int(killed.group(1)), rss, wall, timed_out.is_set()
        except (OSError, ValueError, IndexError):
            pass  # GNU time could not write its line: keep wait4's figures
    return code, None, rss, wall, timed_out.is_set()


RESULT_FIELD = re.compile(r'(\w+)=("[^"]*"|\S+)')


def parse_result_line(text):
    for line in text.splitlines():
        if line.startswith("RESULT "):
            return {k: v.strip('"') for k, v in RESULT_FIELD.findall(line[len("RESULT "):])}
    return None


def tail(path, lines=3):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(f.read().strip().splitlines()[-lines:])
    except OSError:
        return ""


# The service drivers (programs/<program>_service.py), loaded from --programs-dir when first used.
SERVICE_MODULES = {}


def run_service(workload, allocator, options, scratch, run_tag, strace_out=None):
    """A server runs under the allocator and its own client loads it: programs/<program>_service.py
    does the starting, waiting, loading, checking and stopping, and reports like run_once."""
    result = RunResult()
    name = workload.program + "_service"
    if name not in SERVICE_MODULES:
        import importlib.util
        spec = importlib.util.spec_from_file_location(name, os.path.join(options.programs_dir, name + ".py"))
        SERVICE_MODULES[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(SERVICE_MODULES[name])
    outcome = SERVICE_MODULES[name].run(allocator.environment(dict(os.environ)), scratch, run_tag,
                                        options.programs_dir, quick=options.quick,
                                        pipelined="--pipelined" in workload.args, timeout=options.timeout,
                                        strace_out=strace_out)
    for field in ("status", "detail", "value", "wall", "rss_kib", "digest"):
        setattr(result, field, getattr(outcome, field))
    return result


def run_once(workload, allocator, options, inputs, scratch, run_tag, strace_out=None):
    if workload.kind == "service":
        return run_service(workload, allocator, options, scratch, run_tag, strace_out)
    result = RunResult()
    base_env = dict(os.environ)
    extra_env, output_file, stdin_path = {}, None, None
    try:
        if workload.kind == "bench":
            binary = os.path.join(options.bin_dir, workload.binary)
            if not os.access(binary, os.X_OK):
                result.status, result.detail = "MISSING", "no benchmark binary %s" % binary
                return result
            argv = [binary] + (workload.quick_args if options.quick else workload.args)
        else:
            argv, stdin_path, extra_env, output_file = inputs.command(workload.program, run_tag)
    except MissingTool as missing:
        result.status, result.detail = "MISSING", str(missing)
        return result
    env = allocator.environment(base_env)
    env.update(extra_env)
    if strace_out:
        # strace itself must not run on the allocator under test: preload only the traced program.
        preload = env.pop("LD_PRELOAD", None)
        argv = [shutil.which("strace"), "-f", "-c", "-o", strace_out, "--seccomp-bpf",
                "-e", "trace=mmap,munmap,madvise,brk,mremap"] + \
               (["-E", "LD_PRELOAD=" + preload] if preload else []) + argv
    stdout_path = os.path.join(scratch, "stdout-%s.txt" % run_tag)
    stderr_path = os.path.join(scratch, "stderr-%s.txt" % run_tag)
    rusage_path = os.path.join(scratch, "rusage-%s.txt" % run_tag)
    code, sig, rss_kib, wall, timed_out = spawn_and_wait(argv, env, stdin_path, stdout_path, stderr_path,
                                                         options.timeout, rusage_path)
    result.wall, result.rss_kib = wall, rss_kib
    with open(stdout_path, "rb") as f:
        stdout = f.read()
    result.fields = parse_result_line(stdout.decode(errors="replace")) or {}
    if timed_out:
        result.status, result.detail = "TIMEOUT", "killed after %ss" % options.timeout
    elif sig is not None:
        result.status = "CRASH(%s)" % (signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else sig)
        result.detail = tail(stderr_path)
    elif code == 3 or result.fields.get("check") == "FAILED":
        result.status, result.detail = "FAILED", result.fields.get("detail", "") or tail(stderr_path)
    elif code == 4:
        result.status, result.detail = "OOM", tail(stderr_path)
    elif code != 0:
        result.status, result.detail = "ERROR(rc=%d)" % code, tail(stderr_path)
    elif workload.kind == "bench":
        if result.fields.get("check") != "ok" or "ops_per_sec" not in result.fields:
            result.status, result.detail = "ERROR(no RESULT)", tail(stdout_path)
        else:
            result.value = float(result.fields["ops_per_sec"])
    else:
        result.value = wall
        digest = hashlib.sha256(stdout)
        if output_file:
            with open(output_file, "rb") as f:
                digest.update(f.read())
            os.unlink(output_file)
        result.digest = digest.hexdigest()
    for path in (stdout_path, stderr_path):
        if result.status == "ok":
            os.unlink(path)
    return result


def parse_strace_summary(path):
    counts = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                # "% time seconds usecs/call calls [errors] syscall"
                if len(parts) >= 5 and parts[-1] in ("mmap", "munmap", "madvise", "brk", "mremap"):
                    counts[parts[-1]] = int(parts[3])
    except OSError:
        return None
    return counts


# ---------------------------------------------------------------------------------------------
# Summaries


def median(values):
    return statistics.median(values) if values else None


def geomean(values):
    values = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


class Cell:
    """All repetitions of one workload under one allocator."""

    def __init__(self):
        self.runs = []

    @property
    def failure(self):
        for run in self.runs:
            if run.status != "ok":
                return run
        return None

    @property
    def value(self):
        return None if self.failure else median([r.value for r in self.runs])

    @property
    def rss_kib(self):
        return None if self.failure else median([r.rss_kib for r in self.runs])

    def field_median(self, key):
        values = [float(r.fields[key]) for r in self.runs if r.status == "ok" and key in r.fields]
        return median(values)


def speed_ratio(workload, value, reference):
    """Speed relative to the reference: > 1 means faster, for throughput and for time alike."""
    if value is None or reference is None or value <= 0 or reference <= 0:
        return None
    return value / reference if workload.metric == "ops_per_sec" else reference / value


def format_value(workload, value):
    if workload.metric == "seconds":
        return "%.3f s" % value
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if value >= scale:
            return "%.3g %sops/s" % (value / scale, unit)
    return "%.3g ops/s" % value


def format_kib(kib):
    return "%.1f MiB" % (kib / 1024.0) if kib >= 1024 else "%d KiB" % kib


def format_ratio(ratio):
    return "–" if ratio is None else "%.2f×" % ratio


def paired_speed_ratio(workload, cell, reference_cell):
    """Speed relative to the reference, paired: the median over repetitions of the ratio within each
    repetition (both ran in it, back to back). On a VM whose speed swings from one run to the next
    (bimodal cells, whole-run drifts) this cancels most of the swing, which independent medians keep.
    Falls back to the ratio of the medians when the repetitions do not pair up."""
    if cell.failure or reference_cell.failure:
        return None
    if len(cell.runs) != len(reference_cell.runs) or not cell.runs:
        return speed_ratio(workload, cell.value, reference_cell.value)
    ratios = [speed_ratio(workload, r.value, ref.value) for r, ref in zip(cell.runs, reference_cell.runs)]
    if any(ratio is None for ratio in ratios):
        return speed_ratio(workload, cell.value, reference_cell.value)
    return median(ratios)


class Report:
    def __init__(self, workloads, allocators, cells, reference, reference_note):
        self.workloads = workloads
        self.allocators = allocators
        self.cells = cells
        self.reference = reference
        self.reference_note = reference_note

    def speed_ratio(self, workload, allocator_name):
        cells = self.cells[workload.name]
        return paired_speed_ratio(workload, cells[allocator_name], cells[self.reference])

    def throughput_rows(self):
        rows, ratios = [], {a.name: [] for a in self.allocators}
        for w in self.workloads:
            row = [w.name, "ops/s" if w.metric == "ops_per_sec" else "time"]
            for a in self.allocators:
                cell = self.cells[w.name][a.name]
                if cell.failure:
                    row.append(cell.failure.status)
                    continue
                ratio = self.speed_ratio(w, a.name)
                if ratio:
                    ratios[a.name].append(ratio)
                row.append("%s (%s)" % (format_value(w, cell.value), format_ratio(ratio)))
            rows.append(row)
        rows.append(["**geomean**", "speed"] + [format_ratio(geomean(ratios[a.name])) for a in self.allocators])
        return rows

    def rss_rows(self):
        rows, ratios = [], {a.name: [] for a in self.allocators}
        for w in self.workloads:
            ref_rss = self.cells[w.name][self.reference].rss_kib
            row = [w.name]
            for a in self.allocators:
                cell = self.cells[w.name][a.name]
                if cell.failure:
                    row.append(cell.failure.status)
                    continue
                ratio = cell.rss_kib / ref_rss if ref_rss else None
                if ratio:
                    ratios[a.name].append(ratio)
                row.append("%s (%s)" % (format_kib(cell.rss_kib), format_ratio(ratio)))
            rows.append(row)
        rows.append(["**geomean**"] + [format_ratio(geomean(ratios[a.name])) for a in self.allocators])
        return rows

    def fragmentation_rows(self):
        rows = []
        for name, label in (("fragmentation", ""), ("fragmentation_trim", ", malloc_trim after the frees")):
            if name not in self.cells:
                continue
            row_ratio, row_after = ["peak RSS / live bytes" + label], ["RSS after freeing all" + label]
            for a in self.allocators:
                cell = self.cells[name][a.name]
                ratio, after = cell.field_median("rss_ratio"), cell.field_median("rss_after_free_kib")
                row_ratio.append("%.2f" % ratio if ratio is not None and not cell.failure else "–")
                row_after.append(format_kib(after) if after is not None and not cell.failure else "–")
            rows += [row_ratio, row_after]
        return rows


    def memory_return_rows(self):
        """RSS above the start right after freeing the heap and at the end of the wait, and the
        seconds until it was within 64 MiB of the start (memory_return rows)."""
        rows = []
        for name in ("memory_return_sleep", "memory_return_trickle"):
            if name not in self.cells:
                continue
            label = name[len("memory_return_"):]
            row_heap, row_freed = ["heap above start (%s)" % label], ["right after the frees (%s)" % label]
            row_end, row_settle = ["10 s later (%s)" % label], ["seconds to within 64 MiB (%s)" % label]
            for a in self.allocators:
                cell = self.cells[name][a.name]
                values = [cell.field_median(k) for k in ("heap_rss_kib", "freed_rss_kib", "end_rss_kib")]
                settle = cell.field_median("settle_seconds")
                ok = not cell.failure
                for row, value in zip((row_heap, row_freed, row_end), values):
                    row.append(format_kib(value) if value is not None and ok else "–")
                row_settle.append(("never" if settle < 0 else "%.1f" % settle) if settle is not None and ok else "–")
            rows += [row_heap, row_freed, row_end, row_settle]
        return rows


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_outputs(out_dir, report, options, notes, syscalls, started, elapsed, failures):
    names = [a.name for a in report.allocators]
    ref = report.reference
    md = []
    md.append("# Allocator comparison, %s" % started.strftime("%Y-%m-%d %H:%M"))
    md.append("")
    md.append("Command: `%s`  " % options.command_line)
    md.append("Repetitions: %d (median shown)%s. Elapsed: %.0f s. Machine: %s, %d CPUs." % (
        options.reps, ", quick sizes" if options.quick else "", elapsed, os.uname().machine, os.cpu_count() or 0))
    md.append("")
    md.append("Allocators: " + ", ".join("%s (%s)" % (a.name, a.describe()) for a in report.allocators))
    for note in notes:
        md.append("- " + note)
    md.append("")
    md.append("Ratios are relative to **%s**%s." % (ref, report.reference_note))
    md.append("")
    md.append("## Throughput (ops/s; real programs: wall time)")
    md.append("")
    md.append("Value = median of the repetitions. Ratio = speed relative to %s, paired: the median over"
              " repetitions of the ratio between the two runs of the same repetition (this VM's speed swings"
              " from run to run; pairing cancels most of it). Above 1.00× is faster, for ops/s and wall time"
              " alike." % ref)
    md.append("")
    md.append(markdown_table(["workload", "metric"] + names, report.throughput_rows()))
    md.append("")
    md.append("## Peak RSS (whole process, wait4 ru_maxrss)")
    md.append("")
    md.append("Ratio = peak RSS relative to %s: above 1.00× uses more memory." % ref)
    md.append("")
    md.append(markdown_table(["workload"] + names, report.rss_rows()))
    frag = report.fragmentation_rows()
    if frag:
        md.append("")
        md.append("## Fragmentation workload")
        md.append("")
        md.append("Peak RSS above the process's baseline divided by the bytes live at the peak (1.00 = no overhead),"
                  " and the RSS left once everything is freed.")
        md.append("")
        md.append(markdown_table(["fragmentation"] + names, frag))
    returned = report.memory_return_rows()
    if returned:
        md.append("")
        md.append("## Memory returned while the program waits")
        md.append("")
        md.append("RSS above the process's start (median): the heap of small blocks, right after freeing all of it,"
                  " and at the end of the wait (no call, or a trickle of small calls), without malloc_trim;"
                  " then the seconds after the frees until RSS was within 64 MiB of the start.")
        md.append("")
        md.append(markdown_table(["memory_return"] + names, returned))
    if syscalls:
        md.append("")
        md.append("## Memory syscalls (one run under `strace -f -c`)")
        md.append("")
        md.append("Cells: mmap / munmap / madvise / brk / mremap calls.")
        md.append("")
        rows = []
        for w in report.workloads:
            row = [w.name]
            for name in names:
                counts = syscalls.get((w.name, name))
                row.append("–" if counts is None else " / ".join(
                    str(counts.get(k, 0)) for k in ("mmap", "munmap", "madvise", "brk", "mremap")))
            rows.append(row)
        md.append(markdown_table(["workload"] + names, rows))
    md.append("")
    md.append("## Workloads")
    md.append("")
    md += ["- `%s`: %s" % (w.name, w.models) for w in report.workloads]
    if failures:
        md.append("")
        md.append("## Failures")
        md.append("")
        md += ["- %s / %s: %s %s" % f for f in failures]
    md.append("")
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write("\n".join(md))

    with open(os.path.join(out_dir, "results.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["workload", "allocator", "status", "metric", "median", "speed_ratio_vs_" + ref,
                         "peak_rss_kib", "rss_ratio_vs_" + ref, "runs", "values", "rss_values_kib"])
        for w in report.workloads:
            ref_cell = report.cells[w.name][ref]
            for a in report.allocators:
                cell = report.cells[w.name][a.name]
                failure = cell.failure
                ratio = report.speed_ratio(w, a.name)
                rss_ratio = (cell.rss_kib / ref_cell.rss_kib
                             if cell.rss_kib and ref_cell.rss_kib else None)
                writer.writerow([
                    w.name, a.name, failure.status if failure else "ok", w.metric,
                    "" if cell.value is None else "%.6g" % cell.value,
                    "" if ratio is None else "%.4f" % ratio,
                    "" if cell.rss_kib is None else int(cell.rss_kib),
                    "" if rss_ratio is None else "%.4f" % rss_ratio,
                    len(cell.runs),
                    ";".join("" if r.value is None else "%.6g" % r.value for r in cell.runs),
                    ";".join("" if r.rss_kib is None else str(r.rss_kib) for r in cell.runs),
                ])
    if syscalls:
        with open(os.path.join(out_dir, "syscalls.csv"), "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["workload", "allocator", "mmap", "munmap", "madvise", "brk", "mremap"])
            for (wname, aname), counts in sorted(syscalls.items()):
                writer.writerow([wname, aname] + [counts.get(k, 0) if counts else ""
                                                  for k in ("mmap", "munmap", "madvise", "brk", "mremap")])
    with open(os.path.join(out_dir, "chart.svg"), "w") as f:
        f.write(svg_chart(report))


# ---------------------------------------------------------------------------------------------
# SVG: two panels of horizontal bars on a log scale around 1.0 (the reference allocator).

COLORS = {"glibc": "#7f7f7f", "mimalloc": "#1f77b4", "jemalloc": "#2ca02c", "tcmalloc": "#ff7f0e",
          "hakmem": "#d62728"}


def svg_escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg_chart(report):
    workloads, allocators = report.workloads, report.allocators
    bar, gap, label_width, panel_width, margin = 9, 8, 150, 360, 20
    group_height = bar * len(allocators) + gap
    plot_height = group_height * len(workloads)
    top = 70
    width = margin + 2 * (label_width + panel_width + margin)
    height = top + plot_height + 40
    low, high = math.log2(1 / 8), math.log2(8)  # ratios clipped to [1/8, 8]

    def x_of(ratio, x0):
        r = min(max(math.log2(ratio), low), high)
        return x0 + (r - low) / (high - low) * panel_width

    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" '
           'font-size="11">' % (width, height),
           '<rect width="100%" height="100%" fill="white"/>']
    legend_x = margin
    for a in allocators:
        out.append('<rect x="%d" y="8" width="12" height="12" fill="%s"/>' % (legend_x, COLORS.get(a.name, "#9467bd")))
        out.append('<text x="%d" y="18">%s</text>' % (legend_x + 16, svg_escape(a.name)))
        legend_x += 24 + 8 * len(a.name)
    panels = [("Speed relative to %s (log scale, right = faster)" % report.reference, "speed"),
              ("Peak RSS relative to %s (log scale, right = more memory)" % report.reference, "rss")]
    for p, (title, kind) in enumerate(panels):
        x0 = margin + p * (label_width + panel_width + margin) + label_width
        out.append('<text x="%d" y="45" font-weight="bold">%s</text>' % (x0 - label_width + 5, svg_escape(title)))
        for tick in (1 / 8, 1 / 4, 1 / 2, 1, 2, 4, 8):
            x = x_of(tick, x0)
            out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>'
                       % (x, top - 5, x, top + plot_height, "#000" if tick == 1 else "#ddd"))
            out.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>'
                       % (x, top + plot_height + 15, ("%g" % tick) if tick >= 1 else "1/%d" % round(1 / tick)))
        for i, w in enumerate(workloads):
            y = top + i * group_height
            out.append('<text x="%d" y="%d" text-anchor="end">%s</text>'
                       % (x0 - 6, y + group_height / 2, svg_escape(w.name)))
            ref_cell = report.cells[w.name][report.reference]
            for j, a in enumerate(allocators):
                cell = report.cells[w.name][a.name]
                by = y + j * bar
                if kind == "speed":
                    ratio = report.speed_ratio(w, a.name)
                else:
                    ratio = cell.rss_kib / ref_cell.rss_kib if cell.rss_kib and ref_cell.rss_kib else None
                if ratio is None:
                    label = cell.failure.status if cell.failure else "n/a"
                    out.append('<text x="%.1f" y="%d" font-size="9" fill="#d62728">%s</text>'
                               % (x_of(1, x0) + 3, by + bar - 1, svg_escape(label)))
                    continue
                x1, x2 = sorted((x_of(1, x0), x_of(ratio, x0)))
                out.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s %s: %.2f</title></rect>'
                           % (x1, by, max(x2 - x1, 1), bar - 1, COLORS.get(a.name, "#9467bd"),
                              svg_escape(w.name), a.name, ratio))
    out.append("</svg>")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# Main


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--allocators", default=",".join(ALL_ALLOCATORS),
                        help="comma-separated subset of %s (default: all found)" % ",".join(ALL_ALLOCATORS))
    parser.add_argument("--workloads", default="all",
                        help="comma-separated workload names, or 'all' (see --list)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per cell (default 3; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition: well under a minute")
    parser.add_argument("--syscalls", action="store_true", help="also count memory syscalls with strace -f -c")
    parser.add_argument("--out", help="output folder (default WORKSPACE/out/compare-YYYYmmdd-HHMMSS)")
    parser.add_argument("--hakmem", help="path of libhakmem.so (default WORKSPACE/bazel-bin/libhakmem.so)")
    parser.add_argument("--custom", action="append", default=[], metavar="NAME=PATH",
                        help="also run under another preload library (repeatable; e.g. a test shim)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME:VAR=VALUE",
                        help="set VAR=VALUE in the runs of allocator NAME only (repeatable); e.g. the same "
                             "library as a --custom with an option changed: --custom nothp=PATH "
                             "--env nothp:HAKMEM_OS_HUGEPAGES=0")
    parser.add_argument("--timeout", type=float, default=None, help="seconds before a run is killed (default 120)")
    parser.add_argument("--bin-dir", default=os.path.dirname(os.path.abspath(__file__)),
                        help="directory holding the benchmark binaries")
    parser.add_argument("--programs-dir", default=None, help="directory holding the real-program scripts")
    parser.add_argument("--workspace", default=None, help="workspace root (default BUILD_WORKSPACE_DIRECTORY or cwd)")
    parser.add_argument("--list", action="store_true", help="list workloads and allocators, then exit")
    options = parser.parse_args(argv)
    # The wrappers (tools/compare, compare.sh) name the command the user typed; the rest is plumbing.
    options.command_line = os.environ.get("HAKMEM_COMPARE_COMMAND") or " ".join(["compare.py"] + argv)
    if options.reps is None:
        options.reps = 1 if options.quick else 3
    if options.timeout is None:
        options.timeout = 60.0 if options.quick else 120.0
    options.workspace = options.workspace or os.environ.get("BUILD_WORKSPACE_DIRECTORY") or os.getcwd()
    options.programs_dir = options.programs_dir or os.path.join(os.path.dirname(os.path.abspath(__file__)), "programs")
    if options.hakmem is None:
        options.hakmem = os.path.join(options.workspace, "bazel-bin", "libhakmem.so")
    return options


def main(argv):
    options = parse_args(argv)

    def log(message):
        print("compare: " + message, file=sys.stderr, flush=True)

    requested = [a.strip() for a in options.allocators.split(",") if a.strip()]
    unknown = [a for a in requested if a not in ALL_ALLOCATORS]
    if unknown:
        log("unknown allocator(s) %s; known: %s" % (", ".join(unknown), ", ".join(ALL_ALLOCATORS)))
        return 2
    if options.workloads == "all":
        workloads = list(WORKLOADS)
    else:
        names = [n.strip() for n in options.workloads.split(",") if n.strip()]
        unknown = [n for n in names if n not in WORKLOADS_BY_NAME]
        if unknown:
            log("unknown workload(s) %s; known: %s" % (", ".join(unknown), ", ".join(WORKLOADS_BY_NAME)))
            return 2
        workloads = [WORKLOADS_BY_NAME[n] for n in names]
    # Keep the canonical order whatever order the options named them in.
    requested = [a for a in ALL_ALLOCATORS if a in requested]
    allocators, notes = discover_allocators(requested, options.hakmem, log)
    for custom in options.custom:
        name, _, path = custom.partition("=")
        if not name or not os.path.isfile(path):
            log("--custom %s: expected NAME=PATH of an existing library" % custom)
            return 2
        allocators.append(Allocator(name, os.path.abspath(path)))
    by_name = {a.name: a for a in allocators}
    for setting in options.env:
        name, _, assignment = setting.partition(":")
        variable, equals, value = assignment.partition("=")
        if name not in by_name or not variable or not equals:
            log("--env %s: expected NAME:VAR=VALUE with NAME one of %s" % (setting, ", ".join(by_name) or "(none)"))
            return 2
        by_name[name].settings[variable] = value
    if options.list:
        for w in WORKLOADS:
            print("%-22s %s" % (w.name, w.models))
        for a in allocators:
            print("allocator %-12s %s" % (a.name, a.describe()))
        return 0
    if not allocators:
        log("no allocator left to run")
        return 2
    names = [a.name for a in allocators]
    if "hakmem" in names:
        reference, reference_note = "hakmem", ""
    elif "glibc" in names:
        reference = "glibc"
        reference_note = " because HAKMEM is not in this run" + (" (not built)" if "hakmem" in requested else "")
    else:
        reference, reference_note = names[0], " (neither HAKMEM nor glibc is in this run)"
    if options.syscalls and not shutil.which("strace"):
        log("strace not installed: --syscalls ignored")
        options.syscalls = False

    started = datetime.datetime.now()
    out_dir = options.out or os.path.join(options.workspace, "out", "compare-" + started.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out_dir, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="hakmem-compare-")
    inputs = ProgramInputs(options.programs_dir, scratch, options.quick)
    cells = {w.name: {a.name: Cell() for a in allocators} for w in workloads}
    total = len(workloads) * len(allocators) * options.reps
    log("%d workloads x %d allocators (%s) x %d reps = %d runs; reference: %s"
        % (len(workloads), len(allocators), ", ".join(names), options.reps, total, reference))
    t0 = time.monotonic()
    done = 0
    failures = []
    try:
        # Repetitions interleaved across allocators: drift on a shared machine hits them all alike.
        # Each repetition runs them in its own order (shuffled, fixed seed): on a VM a run that follows
        # one which freed a lot of memory faults faster (measured: fragmentation under the hardened
        # build, always run right after hakmem's, 3.3-3.5 Mops/s against hakmem's 1.0-1.3), so a
        # fixed order would favour whoever comes after a big process.
        for w in workloads:
            for rep in range(options.reps):
                order = list(allocators)
                random.Random("%s-%d" % (w.name, rep)).shuffle(order)
                for a in order:
                    done += 1
                    run = run_once(w, a, options, inputs, scratch, "%s-%s-%d" % (w.name, a.name, rep))
                    cells[w.name][a.name].runs.append(run)
                    shown = (format_value(w, run.value) if run.status == "ok" else run.status)
                    rss = format_kib(run.rss_kib) if run.rss_kib else "-"
                    log("[%3d/%d %5.0fs] %-21s %-9s rep %d/%d: %s, peak RSS %s%s"
                        % (done, total, time.monotonic() - t0, w.name, a.name, rep + 1, options.reps, shown, rss,
                           ("  " + run.detail) if run.status != "ok" and run.detail else ""))
            if w.kind in ("program", "service"):
                digests = {(a.name, i): r.digest for a in allocators for i, r in enumerate(cells[w.name][a.name].runs)
                           if r.status == "ok"}
                distinct = set(digests.values())
                if len(distinct) > 1:
                    # Majority output is taken as right; the others are marked.
                    majority = max(distinct, key=lambda d: list(digests.values()).count(d))
                    for (aname, i), digest in digests.items():
                        if digest != majority:
                            run = cells[w.name][aname].runs[i]
                            run.status, run.detail = "MISMATCH", "output differs from the other allocators'"
                            log("%s / %s rep %d: output differs from the other allocators'" % (w.name, aname, i + 1))
        syscalls = {}
        if options.syscalls:
            for w in workloads:
                for a in allocators:
                    path = os.path.join(scratch, "strace-%s-%s.txt" % (w.name, a.name))
                    run = run_once(w, a, options, inputs, scratch, "strace-%s-%s" % (w.name, a.name), strace_out=path)
                    syscalls[(w.name, a.name)] = parse_strace_summary(path) if run.status == "ok" else None
                    log("strace %-21s %-9s: %s" % (w.name, a.name, syscalls[(w.name, a.name)] or run.status))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    elapsed = time.monotonic() - t0

    for w in workloads:
        for a in allocators:
            failure = cells[w.name][a.name].failure
            if failure and failure.status != "MISSING":
                failures.append((w.name, a.name, failure.status, failure.detail))
    report = Report(workloads, allocators, cells, reference, reference_note)
    write_outputs(out_dir, report, options, notes, syscalls, started, elapsed, failures)
    with open(os.path.join(out_dir, "results.md")) as f:
        print(f.read())
    log("results in %s (results.md, results.csv, chart.svg%s); %.0f s"
        % (out_dir, ", syscalls.csv" if syscalls else "", elapsed))
    if failures:
        log("%d cell(s) failed:" % len(failures))
        for failure in failures:
            log("  %s / %s: %s %s" % failure)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
