#!/usr/bin/env bash
# lua5.4 under HAKMEM: the compare suite's table- and string-heavy script
# (benchmarks/programs/lua_workload.lua) at a small size, run with glibc and with the preload;
# its digests of what it built must be identical.
source "$(dirname "$0")/preload_lib.sh"
command -v lua5.4 >/dev/null || fail "lua5.4 not found (tools/setup.sh installs it)"
SCRIPT=$PWD/benchmarks/programs/lua_workload.lua
run_lua() { lua5.4 "$SCRIPT" 20000 2; }
compare_program run_lua
cat "$WORK/hakmem.out"
echo PASS
