#!/usr/bin/env bash
# redis-server under HAKMEM, as a service: started on a free loopback port with persistence off,
# loaded with a deterministic command script through redis-cli (strings of 16 B to 4 KiB that are
# set, appended to, read and deleted; lists pushed, ranged, trimmed and popped; hashes set, read
# and partly deleted; counters) and with a short redis-benchmark run (random keys, so only its
# list's length is compared), then read back, and shut down. The same runs again with glibc's
# malloc... which, for redis, is Debian's jemalloc: redis-server links it. Both runs must print
# the same; the server is shut down (then killed) however the run ends. The clients run under the
# preload too in the HAKMEM run: more code on the allocator under test.
source "$(dirname "$0")/preload_lib.sh"
for tool in redis-server redis-cli redis-benchmark; do
  command -v "$tool" >/dev/null || fail "$tool not found (tools/setup.sh installs redis-server and redis-tools)"
done

SCRIPT=$WORK/commands.txt
# Values made of letters and digits only: redis-cli splits its input lines on blanks.
awk 'function value(i, n,   s) { s = ""; while (length(s) < n) s = s "v" i "-"; return substr(s, 1, n) }
BEGIN {
  split("16 40 100 256 700 1500 4096", sizes, " ")
  for (i = 0; i < 3000; i++) print "SET str:" i " " value(i, sizes[i % 7 + 1])
  for (i = 0; i < 3000; i += 3) print "APPEND str:" i " " value(i, 300)
  for (i = 0; i < 3000; i += 5) print "DEL str:" i
  for (j = 0; j < 200; j++) {
    for (k = 0; k < 60; k++) print "RPUSH list:" j " " value(j * 100 + k, sizes[(j + k) % 5 + 1])
    print "LTRIM list:" j " 5 -5"
    print "LPOP list:" j
  }
  for (j = 0; j < 200; j++) {
    for (k = 0; k < 40; k++) print "HSET hash:" j " f" k " " value(j + k, sizes[(j * k) % 6 + 1])
    print "HDEL hash:" j " f" (j % 40)
  }
  for (i = 0; i < 2000; i++) print "INCRBY counter:" (i % 50) " " i
  for (i = 0; i < 3000; i += 7) print "GET str:" i
  for (i = 0; i < 3000; i += 11) print "STRLEN str:" i
  for (j = 0; j < 200; j += 3) print "LRANGE list:" j " 0 -1"
  for (j = 0; j < 200; j += 3) { printf "HMGET hash:%d", j; for (k = 0; k < 40; k++) printf " f%d", k; print "" }
  for (i = 0; i < 50; i++) print "GET counter:" i
}' >"$SCRIPT"
echo "generated $(wc -l <"$SCRIPT") redis commands"

free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

redis_workload() {
  # port and pid are not local: the EXIT trap below needs them whenever the (sub)shell exits.
  local i
  port=$(free_port)
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$PWD" \
    --logfile "$PWD/server.log" --daemonize no --crash-memcheck-enabled no &
  pid=$!
  # Whatever happens from here on (set -e, a failed check), the server does not outlive the run.
  trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; sleep 0.2; kill -9 "$pid" 2>/dev/null || true' EXIT
  for ((i = 0; i < 200; i++)); do
    [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && break
    kill -0 "$pid" 2>/dev/null || { echo "redis-server exited at start:" >&2; tail -n 20 server.log >&2; return 1; }
    sleep 0.05
  done
  [ "$(redis-cli -p "$port" ping)" = PONG ]

  redis-cli -p "$port" <"$SCRIPT"
  echo "keys: $(redis-cli -p "$port" dbsize)"
  # Random keys under redis-benchmark: its output and DBSIZE vary from run to run; the length
  # of its list is exactly its LPUSH count (2,000 for lpush, 2,000 more for lrange_100).
  redis-benchmark -p "$port" -n 2000 -c 20 -r 5000 -d 512 -t set,get,lpush,lrange_100,hset -q >/dev/null
  redis-benchmark -p "$port" -n 5000 -c 20 -r 5000 -d 64 -P 16 -t set,get,hset -q >/dev/null
  echo "mylist length: $(redis-cli -p "$port" llen mylist)"
  # The deterministic data again, after the benchmark's churn around it.
  redis-cli -p "$port" <"$SCRIPT" | sha256sum
  echo "peak RSS of the server: $(awk '/^VmHWM/ { print $2, $3 }' "/proc/$pid/status")" >&2

  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  local status=0
  wait "$pid" || status=$?
  trap - EXIT
  echo "redis-server exit status: $status"
  [ "$status" -eq 0 ]
}

compare_program redis_workload
tail -n 3 "$WORK/hakmem.out"
echo PASS
