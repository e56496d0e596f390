# gawk program of the awk row of benchmarks/compare.py, over the log written by gen_log.py.
# Associative arrays keyed by built strings, field splitting, concatenation that grows strings,
# substitutions and case conversion: gawk allocates a string (and often an array element) for
# each. The report is sorted, so it is the same under every allocator.
{
  split($5, parts, "/")
  path = parts[2] "/" parts[3]
  hits[path]++
  bytes[$3] += substr($7, 7)
  status[$4 SUBSEP $6]++
  # One growing string per URL: appends reallocate it again and again.
  visits[$5] = visits[$5] $2 ";"
  n = split($0, fields, / +/)
  for (i = 1; i <= n; i++) seen[fields[i]]++
  agent = toupper($8)
  gsub(/[-=]/, "_", agent)
  agents[agent]++
  hour = substr($2, 1, 2)
  per_hour[hour] = per_hour[hour] " " $3
}
END {
  PROCINFO["sorted_in"] = "@ind_str_asc"
  for (p in hits) if (hits[p] > 450) print "hits", p, hits[p]
  for (h in bytes) print "bytes", h, bytes[h]
  for (k in status) { split(k, kk, SUBSEP); print "status", kk[1], kk[2], status[k] }
  total = 0
  for (u in visits) total += length(visits[u])
  print "urls", length(visits), total
  print "distinct fields", length(seen)
  for (a in agents) if (agents[a] > 450) print "agent", a, agents[a]
  for (h in per_hour) { m = split(per_hour[h], hosts, " "); print "hour", h, m, length(per_hour[h]) }
}
