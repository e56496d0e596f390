#!/usr/bin/env python3
"""The redis rows of benchmarks/compare.py: redis-server under the allocator under test, loaded by
redis-benchmark over loopback.

A server is a different kind of workload from a program that runs to completion: it is started,
waited for, loaded by a separate client, and stopped. Only the server runs under the allocator
(LD_PRELOAD in its environment alone); redis-benchmark and redis-cli run with whatever the system
gives them. One run:

1. start `redis-server` on a free loopback port with persistence off (`--save '' --appendonly no`)
   and wait until it answers PING;
2. write a deterministic data set with `redis-cli --pipe` (strings of 16 B to 4 KiB, lists,
   hashes), untimed;
3. the timed load: redis-benchmark runs SET, GET, LPUSH, HSET with values of 16 B, 256 B and
   4 KiB over 100,000 random keys, then LPUSH + LRANGE_100; 50 clients, with or without
   pipelining (-P 16). The result is requests per second over the whole load;
4. read back the deterministic data set and the length of redis-benchmark's list (exactly the
   number of its LPUSH requests) with redis-cli; that output is the run's digest, so an
   allocator that corrupts the server's memory shows up as MISMATCH (the benchmark's own keys
   are random, so they cannot be checked);
5. read the server's peak RSS (VmHWM), then SHUTDOWN NOSAVE; the server is killed if it does not
   exit, and always when the run fails or times out.

Debian links redis-server against jemalloc, so with no preload it would run jemalloc: the glibc
column preloads libc_malloc_shim.c (built here with cc), which hands every call to glibc's malloc.

Standard library only; used by compare.py (`run`) and runnable alone for a look:
    python3 redis_service.py [--quick] [--pipelined] [--preload LIB]
"""
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time

# One redis-benchmark invocation per entry: (value size in bytes, requests per test, tests).
# The lrange_100 test first LPUSHes its request count of values, then reads 100 of them per
# request (6.4 KB replies). The 4 KiB entry has fewer requests, which keeps the server's peak
# RSS near 90 MiB (about 350 MiB pipelined, with five times the requests).
LOAD = [
    (16, 12000, ["set", "get", "lpush", "hset"]),
    (256, 12000, ["set", "get", "lpush", "hset"]),
    (4096, 4000, ["set", "get", "lpush", "hset"]),
    (64, 6000, ["lrange_100"]),
]
PIPELINED_SCALE = 5    # -P 16 serves about ten times the requests per second: more of them
QUICK_DIVISOR = 20     # --quick: a few thousand requests in all
CLIENTS = 50
KEYSPACE = 100000      # -r: SET/GET/HSET keys and fields drawn from this many

# The deterministic data set: written before the load, read back after it.
SEED_STRINGS = 1500
SEED_LISTS = 150
SEED_LIST_LENGTH = 40
SEED_HASHES = 150
SEED_HASH_FIELDS = 25
SEED_SIZES = [16, 40, 100, 256, 700, 1500, 4096]  # value sizes, 16 B .. 4 KiB, used in turn


class Result:
    def __init__(self):
        self.status = "ok"    # ok | MISSING | ERROR(...) | CRASH(SIGx) | TIMEOUT, as compare.py uses them
        self.detail = ""
        self.value = None     # requests per second of the timed load
        self.wall = None      # seconds of the timed load
        self.rss_kib = None   # the server's VmHWM
        self.digest = None    # sha256 of the read-back output
        self.requests = 0


class RunFailed(Exception):
    def __init__(self, status, detail=""):
        super().__init__(status)
        self.status, self.detail = status, detail


def tool(name):
    for directory in ("/usr/bin", "/usr/local/bin"):
        path = os.path.join(directory, name)
        if os.access(path, os.X_OK):
            return path
    return None


def value_for(i, size):
    """A deterministic printable value of `size` bytes (no spaces: redis-cli splits lines on them)."""
    unit = "v%d-" % i
    return (unit * (size // len(unit) + 1))[:size]


def resp(*args):
    """One command in the Redis protocol, as `redis-cli --pipe` wants it."""
    out = ["*%d\r\n" % len(args)]
    for arg in args:
        data = str(arg)
        out.append("$%d\r\n%s\r\n" % (len(data.encode()), data))
    return "".join(out)


def seed_commands():
    sizes = SEED_SIZES
    out = []
    for i in range(SEED_STRINGS):
        out.append(resp("SET", "hk:str:%d" % i, value_for(i, sizes[i % len(sizes)])))
    for j in range(SEED_LISTS):
        for k in range(SEED_LIST_LENGTH):
            out.append(resp("RPUSH", "hk:list:%d" % j, value_for(j * 1000 + k, sizes[(j + k) % 4])))
    for j in range(SEED_HASHES):
        for k in range(SEED_HASH_FIELDS):
            out.append(resp("HSET", "hk:hash:%d" % j, "f%d" % k, value_for(j + k, sizes[(j * k) % 5])))
    return "".join(out)


def readback_commands():
    """Plain commands, one a line, for `redis-cli` reading stdin. Hash fields are named in HMGET
    (HGETALL's order depends on the server's per-process hash seed)."""
    # LLEN of redis-benchmark's list is its LPUSH count. DBSIZE is not asked: it counts the
    # benchmark's random keys.
    out = ["LLEN mylist"]
    # A few writes after the load too: appends grow strings in place or move them (realloc).
    for i in range(0, SEED_STRINGS, 7):
        out.append("APPEND hk:str:%d %s" % (i, value_for(i, 33)))
    for i in range(SEED_STRINGS):
        out.append("GET hk:str:%d" % i)
    for j in range(SEED_LISTS):
        out.append("LPOP hk:list:%d" % j)
        out.append("LRANGE hk:list:%d 0 -1" % j)
    fields = " ".join("f%d" % k for k in range(SEED_HASH_FIELDS))
    for j in range(SEED_HASHES):
        out.append("HDEL hk:hash:%d f%d" % (j, j % SEED_HASH_FIELDS))
        out.append("HMGET hk:hash:%d %s" % (j, fields))
    return "\n".join(out) + "\n"


def load_plan(quick, pipelined):
    """The redis-benchmark argument lists of the timed load, and how many requests they make."""
    plan, total = [], 0
    for size, requests, tests in LOAD:
        if pipelined:
            requests *= PIPELINED_SCALE
        if quick:
            requests = max(requests // QUICK_DIVISOR, 100)
        args = ["-c", str(CLIENTS), "-n", str(requests), "-r", str(KEYSPACE), "-d", str(size),
                "-t", ",".join(tests), "-q"]
        if pipelined:
            args += ["-P", "16"]
        plan.append(args)
        # lrange_100 runs its own LPUSH first: two requests per count.
        total += requests * sum(2 if t.startswith("lrange") else 1 for t in tests)
    return plan, total


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ping(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def build_shim(programs_dir, scratch):
    """Builds libc_malloc_shim.so once per scratch directory; returns its path."""
    target = os.path.join(scratch, "libc_malloc_shim.so")
    if not os.path.isfile(target):
        cc = tool("cc") or tool("gcc")
        if not cc:
            raise RunFailed("MISSING", "no C compiler for libc_malloc_shim.c (tools/setup.sh installs gcc)")
        subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", target,
                        os.path.join(programs_dir, "libc_malloc_shim.c"), "-ldl"], check=True)
    return target


def tail(path, lines=3):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(f.read().strip().splitlines()[-lines:])
    except OSError:
        return ""


def vm_hwm_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def traced_child(pid):
    """With strace in front, the server is strace's child."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            children = f.read().split()
        return int(children[0]) if children else pid
    except (OSError, ValueError):
        return pid


def exit_status(code):
    if code < 0:
        try:
            return "CRASH(%s)" % signal.Signals(-code).name
        except ValueError:
            return "CRASH(%d)" % -code
    return "ERROR(rc=%d)" % code


def run(env, scratch, tag, programs_dir, quick=False, pipelined=False, timeout=120.0, strace_out=None):
    """One run of the redis row. `env` is the server's environment (LD_PRELOAD of the allocator
    under test, none for glibc). Returns a Result; never leaves the server running."""
    result = Result()
    deadline = time.monotonic() + timeout
    server_bin, bench_bin, cli_bin = tool("redis-server"), tool("redis-benchmark"), tool("redis-cli")
    if not (server_bin and bench_bin and cli_bin):
        result.status = "MISSING"
        result.detail = "redis-server, redis-benchmark or redis-cli not installed (tools/setup.sh installs them)"
        return result
    # The clients and checks run on the system's allocator, not the one under test.
    client_env = dict(env)
    client_env.pop("LD_PRELOAD", None)
    server_env = dict(env)
    workdir = os.path.join(scratch, "redis-%s" % tag)
    os.makedirs(workdir, exist_ok=True)
    log_path = os.path.join(workdir, "server.log")
    server = None

    def remaining():
        left = deadline - time.monotonic()
        if left <= 0:
            raise RunFailed("TIMEOUT", "killed after %ss" % timeout)
        return left

    def client(argv, stdin_data=None):
        try:
            done = subprocess.run(argv, input=stdin_data, env=client_env, capture_output=True,
                                  timeout=remaining())
        except subprocess.TimeoutExpired:
            raise RunFailed("TIMEOUT", "killed after %ss (in %s)" % (timeout, os.path.basename(argv[0])))
        if server.poll() is not None:
            raise RunFailed(exit_status(server.returncode), tail(log_path))
        if done.returncode != 0:
            raise RunFailed("ERROR(%s rc=%d)" % (os.path.basename(argv[0]), done.returncode),
                            (done.stderr or done.stdout).decode(errors="replace").strip()[-300:])
        return done.stdout

    try:
        preload = server_env.pop("LD_PRELOAD", None) or build_shim(programs_dir, scratch)
        if not strace_out:
            server_env["LD_PRELOAD"] = preload
        # A port that was free a moment ago can be taken before the server binds it: try again.
        for _attempt in range(3):
            port = free_port()
            argv = [server_bin, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                    "--dir", workdir, "--logfile", "", "--daemonize", "no", "--protected-mode", "yes",
                    # A crash (a bad allocator) should fail the run at once, not after a memory test.
                    "--crash-memcheck-enabled", "no"]
            if strace_out:
                # strace must not run on the allocator under test: only the traced server gets it.
                argv = [tool("strace") or "strace", "-f", "-c", "-o", strace_out, "--seccomp-bpf",
                        "-e", "trace=mmap,munmap,madvise,brk,mremap", "-E", "LD_PRELOAD=" + preload] + argv
            with open(log_path, "w") as log:
                server = subprocess.Popen(argv, env=server_env, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)
            while server.poll() is None and not ping(port):
                remaining()
                time.sleep(0.02)
            if server.poll() is None:
                break
            if "Address already in use" not in tail(log_path, 20):
                raise RunFailed(exit_status(server.returncode), tail(log_path))
        else:
            raise RunFailed("ERROR(no port)", tail(log_path))
        server_pid = traced_child(server.pid) if strace_out else server.pid

        cli = [cli_bin, "-h", "127.0.0.1", "-p", str(port)]
        piped = client(cli + ["--pipe"], seed_commands().encode()).decode(errors="replace")
        if "errors: 0," not in piped:
            raise RunFailed("ERROR(seed)", piped.strip()[-300:])

        plan, result.requests = load_plan(quick, pipelined)
        started = time.monotonic()
        for args in plan:
            client([bench_bin, "-h", "127.0.0.1", "-p", str(port)] + args)
        result.wall = time.monotonic() - started
        result.value = result.requests / result.wall

        readback = client(cli, readback_commands().encode())
        result.digest = hashlib.sha256(readback).hexdigest()
        result.rss_kib = vm_hwm_kib(server_pid)  # before the shutdown, which the finally block does
    except RunFailed as failure:
        result.status, result.detail = failure.status, failure.detail
        result.value = result.digest = None
    except (OSError, subprocess.CalledProcessError) as error:
        result.status, result.detail = "ERROR(driver)", str(error)
        result.value = result.digest = None
    finally:
        if server is not None:
            stop(server, port)
            if result.status == "ok" and server.returncode not in (0, None):
                # It ran the load and answered, but died on the way out (e.g. a bad free at exit).
                result.status, result.detail = exit_status(server.returncode), tail(log_path)
                result.value = result.digest = None
    return result


def stop(server, port):
    """SHUTDOWN NOSAVE, then SIGKILL of the server's process group if it is still there."""
    if server.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
                s.sendall(b"SHUTDOWN NOSAVE\r\n")
                s.recv(64)  # the server closes the connection as it exits
        except OSError:
            pass
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    if server.poll() is None:
        try:
            os.killpg(server.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        server.wait()


def main(argv):
    import argparse
    import tempfile
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--pipelined", action="store_true")
    parser.add_argument("--preload", help="allocator library for the server (default: glibc's malloc)")
    options = parser.parse_args(argv)
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if options.preload:
        env["LD_PRELOAD"] = os.path.abspath(options.preload)
    with tempfile.TemporaryDirectory(prefix="hakmem-redis-") as scratch:
        r = run(env, scratch, "main", os.path.dirname(os.path.abspath(__file__)), options.quick, options.pipelined)
    print("status=%s requests=%d seconds=%s requests_per_sec=%s peak_rss_kib=%s digest=%s %s"
          % (r.status, r.requests, "%.3f" % r.wall if r.wall else "-", "%.0f" % r.value if r.value else "-",
             r.rss_kib, r.digest, r.detail))
    return 0 if r.status == "ok" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
