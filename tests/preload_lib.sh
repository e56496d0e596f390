#!/usr/bin/env bash
# Shared harness of the whole-program tests: runs one command twice, once with glibc's malloc and
# once under LD_PRELOAD of libhakmem.so, each in its own fresh directory, and fails unless both
# exit 0 and their (normalised) outputs are identical.
#
# A test script sources this file with its own arguments:
#   --skip REASON     print the reason and pass (set by a select() under asan/tsan)
#   --preload PATH    the preload library (rootpath of //:hakmem_preload)
# Remaining arguments are left in EXTRA_ARGS for the script.
set -euo pipefail

PRELOAD=
EXTRA_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --skip)
      echo "SKIPPED: $2"
      exit 0
      ;;
    --preload) PRELOAD=$2; shift 2 ;;
    *) EXTRA_ARGS+=("$1"); shift ;;
  esac
done
if [ -z "$PRELOAD" ]; then
  echo "error: --preload PATH is required" >&2
  exit 2
fi
case "$PRELOAD" in /*) ;; *) PRELOAD=$PWD/$PRELOAD ;; esac
if [ ! -f "$PRELOAD" ]; then
  echo "error: preload library $PRELOAD not found" >&2
  exit 2
fi

WORK=${TEST_TMPDIR:-$(mktemp -d)}
mkdir -p "$WORK"
# The system programs, not whatever a developer's PATH puts first (pyenv and the like).
export PATH=/usr/bin:/bin
export LC_ALL=C.UTF-8 TZ=UTC PYTHONHASHSEED=0

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# run_variant NAME DIR FUNCTION [ARGS...]: runs FUNCTION in DIR, stdout to DIR.out, stderr to
# DIR.err; prints its wall time. With NAME=hakmem the function runs under LD_PRELOAD.
run_variant() {
  local name=$1 dir=$2
  shift 2
  rm -rf "$dir"
  mkdir -p "$dir"
  local start end status=0
  start=$(date +%s.%N)
  if [ "$name" = hakmem ]; then
    # In the background so that `set -e` holds inside (it is ignored left of `||`).
    (cd "$dir" && export LD_PRELOAD="$PRELOAD" && "$@") >"$dir.out" 2>"$dir.err" &
  else
    (cd "$dir" && unset LD_PRELOAD && "$@") >"$dir.out" 2>"$dir.err" &
  fi
  wait $! || status=$?
  end=$(date +%s.%N)
  printf '%-7s exit %d, %.2fs, stdout %d lines\n' "$name" "$status" \
    "$(awk -v s="$start" -v e="$end" 'BEGIN { print e - s }')" "$(wc -l <"$dir.out")"
  if [ "$status" -ne 0 ]; then
    echo "--- $name stderr (tail):" >&2
    tail -n 40 "$dir.err" >&2
    fail "$name run exited with status $status"
  fi
}

# compare_outputs FILE_A FILE_B WHAT: fails with a diff excerpt when the files differ.
compare_outputs() {
  if ! cmp -s "$1" "$2"; then
    echo "--- diff of $3 (glibc vs hakmem):" >&2
    diff "$1" "$2" | head -n 40 >&2 || true
    fail "$3 differs between the glibc and the HAKMEM run"
  fi
  echo "ok: $3 identical ($(wc -c <"$1") bytes)"
}

# compare_program FUNCTION [ARGS...]: the usual case, both runs and their stdout compared.
compare_program() {
  run_variant glibc "$WORK/glibc" "$@"
  run_variant hakmem "$WORK/hakmem" "$@"
  compare_outputs "$WORK/glibc.out" "$WORK/hakmem.out" stdout
}
