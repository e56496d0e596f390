#!/usr/bin/env bash
# sqlite3 under HAKMEM: 200,000 single-row INSERT statements from a generated script (in
# transactions), 300,000 more rows from a recursive query, indexes, joins, GROUP BY, ORDER BY,
# string functions, UPDATE and DELETE; every query's output is compared with a glibc run.
source "$(dirname "$0")/preload_lib.sh"
command -v sqlite3 >/dev/null || fail "sqlite3 not found (tools/setup.sh installs it)"

SQL=$WORK/workload.sql
{
  echo "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-20000;"
  echo "CREATE TABLE people(id INTEGER PRIMARY KEY, name TEXT, city TEXT, age INTEGER, note TEXT);"
  echo "CREATE TABLE orders(id INTEGER PRIMARY KEY, person INTEGER, amount REAL, item TEXT);"
  awk 'BEGIN {
    srand(42);
    for (i = 1; i <= 200000; i++) {
      if (i % 10000 == 1) print "BEGIN;";
      printf "INSERT INTO people VALUES(%d,%c%s%d%c,%ccity%d%c,%d,%c%s%c);\n", i, 39, "name", int(rand() * 50000), 39,
             39, int(rand() * 300), 39, int(rand() * 90), 39, substr("abcdefghijklmnopqrstuvwxyz0123456789", 1, 1 + i % 36), 39;
      if (i % 10000 == 0) print "COMMIT;";
    }
  }'
  cat <<'Q'
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000)
  INSERT INTO orders SELECT i, (i * 7919) % 200000 + 1, (i % 1000) / 7.0, 'item' || (i % 997) || printf('%.*c', i % 40, 'x') FROM n;
CREATE INDEX people_city ON people(city, age);
CREATE INDEX orders_person ON orders(person);
SELECT count(*), sum(age), min(name), max(name) FROM people;
SELECT city, count(*), avg(age) FROM people GROUP BY city ORDER BY count(*) DESC, city LIMIT 20;
SELECT p.city, round(sum(o.amount), 2), count(o.id) FROM people p JOIN orders o ON o.person = p.id
  GROUP BY p.city ORDER BY 2 DESC, 1 LIMIT 25;
SELECT name, length(group_concat(note, ',')) FROM people WHERE age BETWEEN 30 AND 32 GROUP BY name ORDER BY 2 DESC, 1 LIMIT 15;
SELECT upper(substr(item, 1, 8)), count(*) FROM orders GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10;
UPDATE people SET note = note || replace(note, 'a', 'AA') WHERE id % 3 = 0;
DELETE FROM orders WHERE amount > 100;
SELECT count(*), sum(length(note)) FROM people;
SELECT count(*), round(sum(amount), 3) FROM orders;
SELECT id, name, city FROM people WHERE name LIKE 'name123%' ORDER BY id LIMIT 30;
SELECT person, count(*) c FROM orders GROUP BY person HAVING c > 2 ORDER BY c DESC, person LIMIT 20;
VACUUM;
PRAGMA integrity_check;
Q
} >"$SQL"
echo "generated $(wc -l <"$SQL") lines of SQL"

run_sql() { sqlite3 test.db <"$SQL"; }
compare_program run_sql
echo PASS
