#!/usr/bin/env bash
# Installs everything HAKMEM's build, tests and benchmarks need, from Debian's archive only.
# Idempotent: when every package is present it does nothing (no apt-get update, no network).
set -euo pipefail

# One package per line, with why it is here. Later layers add theirs.
PACKAGES=(
  bazel-bootstrap        # Bazel 4.2.3 (WORKSPACE mode); pulls in a JDK
  googletest             # GoogleTest/GoogleMock sources, built by //third_party:googletest.BUILD
  libabsl-dev            # abseil for test tooling (random numbers, strings)
  clang                  # --config=strict (layering_check) and the fuzzer
  libclang-rt-14-dev     # clang's sanitizer and libFuzzer runtimes
  libmimalloc2.0         # peer allocator for benchmarks/compare
  libjemalloc2           # peer allocator
  libtcmalloc-minimal4   # peer allocator
  time                   # GNU time: peak RSS of whole processes
  strace                 # compare --syscalls
  python3                # benchmarks/compare and the real-program workloads
  sqlite3                # real-program workload
  gcc                    # real-program workload (and the default toolchain)
  g++                    # C++ tests
  binutils               # readelf: tests/tls_budget_test.sh (gcc depends on it; named for the test)
  git                    # tests/git_test.sh: a real program under the preload
  perl                   # tests/perl_test.sh: a real program under the preload
  libpython3.11-testsuite # CPython's own unit tests, run under the preload (tests/python_test.sh)
  redis-server           # compare's redis rows: a real server loaded over loopback (tests/redis_test.sh)
  redis-tools            # redis-benchmark and redis-cli, the redis rows' load generator and checker
  lua5.4                 # compare's lua row: table and string churn in a garbage-collected VM
  jq                     # compare's jq row: parses and rebuilds generated JSON (many small objects)
  libxml2-utils          # xmllint, compare's xmllint row: DOM of a generated XML document
  gawk                   # compare's awk row: associative arrays and string building on generated text
  google-perftools       # google-pprof: reads HAKMEM_PROFILE's heap profiles (tests, tools/hakmem flame)
)

missing=()
for entry in "${PACKAGES[@]}"; do
  package=${entry%% *}
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup: error: apt-get not found; HAKMEM's setup needs Debian 12 (bookworm) or a derivative." >&2
  echo "setup: install these packages by hand: ${missing[*]}" >&2
  exit 1
fi
SUDO=
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=sudo
  else
    echo "setup: error: installing packages needs root (run as root, or with password-less sudo)." >&2
    echo "setup: missing: ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
# A fresh machine's package lists are empty: update once before installing.
if ! $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${missing[@]}"
fi
echo "setup: done"
