#!/usr/bin/env python3
"""Writes a deterministic SQL script for the sqlite3 real-program workload to stdout.

Models an application database: many small inserts grouped in transactions, an index built over
the loaded table, aggregate queries, updates and deletes. sqlite3 allocates its page cache, parse
trees and row buffers through malloc, so an in-memory database makes it allocator-bound.
"""
import argparse
import random

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
         "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo"]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=300000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    out = []
    out.append("CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, category INTEGER, price REAL, note TEXT);")
    out.append("CREATE TABLE tags(item_id INTEGER, tag TEXT);")
    batch = 5000
    for start in range(0, args.rows, batch):
        out.append("BEGIN;")
        for row in range(start, min(start + batch, args.rows)):
            name = "%s-%s-%d" % (rng.choice(WORDS), rng.choice(WORDS), rng.randrange(100000))
            note = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 12)))
            out.append("INSERT INTO items VALUES(%d,'%s',%d,%d.%02d,'%s');"
                       % (row, name, rng.randrange(200), rng.randrange(1000), rng.randrange(100), note))
            if row % 3 == 0:
                out.append("INSERT INTO tags VALUES(%d,'%s');" % (row, rng.choice(WORDS)))
        out.append("COMMIT;")
    out.append("CREATE INDEX items_by_category ON items(category, price);")
    out.append("CREATE INDEX items_by_name ON items(name);")
    out.append("CREATE INDEX tags_by_item ON tags(item_id);")
    out.append("SELECT category, count(*), round(sum(price), 2) FROM items GROUP BY category ORDER BY category;")
    out.append("SELECT count(*), round(avg(length(note)), 3) FROM items WHERE name LIKE 'k%';")
    out.append("SELECT tag, count(*) FROM tags JOIN items ON items.id = tags.item_id "
               "WHERE items.price > 500 GROUP BY tag ORDER BY tag;")
    out.append("BEGIN; UPDATE items SET price = price * 1.1, note = note || ' updated' WHERE category % 7 = 0; COMMIT;")
    out.append("BEGIN; DELETE FROM items WHERE id % 5 = 0; DELETE FROM tags WHERE item_id % 5 = 0; COMMIT;")
    out.append("SELECT group_concat(name, ',') FROM (SELECT name FROM items ORDER BY price DESC, id LIMIT 50);")
    out.append("SELECT count(DISTINCT note), max(length(name)) FROM items;")
    out.append("SELECT category, count(*) FROM items WHERE price BETWEEN 100 AND 200 GROUP BY category "
               "ORDER BY 2 DESC, 1 LIMIT 10;")
    print("\n".join(out))


if __name__ == "__main__":
    main()
