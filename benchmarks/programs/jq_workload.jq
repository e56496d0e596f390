# jq program of the jq row of benchmarks/compare.py, run over the array written by gen_json.py.
# It groups, sorts, splits and rebuilds the orders, so jq allocates, copies and frees many small
# values (objects, arrays, strings); the printed summary must be the same under every allocator.
def revenue: [.items[] | .qty * .price] | add;
def cents: . * 100 | round / 100;

map(. + {total: revenue}) as $orders
| {
    orders: ($orders | length),
    by_city: ($orders | group_by(.customer.city)
              | map({city: .[0].customer.city, orders: length, revenue: (map(.total) | add | cents)})),
    top_skus: ([$orders[].items[] | {sku, qty}] | group_by(.sku)
               | map({sku: .[0].sku, qty: (map(.qty) | add)}) | sort_by(-.qty, .sku) | .[:25]),
    note_words: ([$orders[].note | split(" ")[] | select(length > 0)] | group_by(.)
                 | map({word: .[0], n: length}) | sort_by(-.n, .word)),
    tags: ($orders | map(.tags | join(",")) | map(select(length > 0)) | group_by(.) | length),
    vip_total: ([$orders[] | select(.customer.vip) | .total] | add | cents),
    rebuilt_bytes: ($orders | map({id, who: .customer.name, n: (.items | length), t: .tags}) | map(tojson)
                    | map(length) | add),
    upper_names: ([$orders[:5000][] | .customer.name | ascii_upcase | explode | implode] | unique | length)
  }
