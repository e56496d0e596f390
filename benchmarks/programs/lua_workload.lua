-- Table- and string-heavy workload for the lua5.4 real-program row of benchmarks/compare.py.
--
-- Lua 5.4 takes all of its memory through one realloc/free hook (lauxlib's l_alloc), so every
-- table, array part, hash part, closure and string the collector frees is a free() and every
-- one it grows is a realloc(): the interpreter is allocator-bound when a script builds and drops
-- many small objects. This one builds records, indexes them by generated string keys, rehashes
-- tables by growing them, concatenates and splits strings, sorts, and drops everything in
-- rounds so the collector frees it. It prints digests of what it built, so a run under an
-- allocator that corrupts memory prints something else.
--
-- Usage: lua5.4 lua_workload.lua [SCALE [ROUNDS]]   (defaults 60000 and 4)

local scale = tonumber(arg and arg[1]) or 60000
local rounds = tonumber(arg and arg[2]) or 4

-- A small deterministic generator (a 32-bit LCG) so that the script does not depend on
-- math.random's algorithm or seeding.
local state = 12345
local function rand(n)
  state = (state * 1103515245 + 12345) % 2147483648
  return state % n
end

-- Digest of strings and numbers: FNV-1a over bytes, kept in 32 bits.
local function fnv(h, s)
  for i = 1, #s do
    h = ((h ~ s:byte(i)) * 16777619) & 0xffffffff
  end
  return h
end

local words = { "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
  "india", "juliet", "kilo", "lima", "mike", "november", "oscar", "papa" }

local function make_record(i)
  -- Hash part (named fields) and array part (tags) of different sizes per record.
  local tags = {}
  for t = 1, 1 + rand(6) do
    tags[t] = words[1 + rand(#words)]
  end
  return {
    id = i,
    name = words[1 + rand(#words)] .. "-" .. tostring(rand(100000)),
    score = rand(1000) / 7,
    tags = tags,
    payload = string.rep(string.char(97 + rand(26)), 1 + rand(200)),
  }
end

local total = 0
for round = 1, rounds do
  -- 1. Records indexed by string key and by id: many tables, strings and rehashes.
  local by_name, by_id, list = {}, {}, {}
  for i = 1, scale do
    local r = make_record(i)
    list[#list + 1] = r
    by_id[i] = r
    local bucket = by_name[r.name]
    if not bucket then
      bucket = {}
      by_name[r.name] = bucket
    end
    bucket[#bucket + 1] = r
  end

  -- 2. Group by tag, building string keys on the fly (short-lived strings).
  local tag_count = {}
  for _, r in ipairs(list) do
    for _, t in ipairs(r.tags) do
      local key = t .. ":" .. (r.id % 13)
      tag_count[key] = (tag_count[key] or 0) + 1
    end
  end
  local keys = {}
  for k in pairs(tag_count) do keys[#keys + 1] = k end
  table.sort(keys)
  local h = 2166136261
  for _, k in ipairs(keys) do h = fnv(h, k .. "=" .. tag_count[k]) end

  -- 3. String building: table.concat of pieces, then split it again with gmatch.
  local pieces = {}
  for i = 1, #list, 3 do
    local r = list[i]
    pieces[#pieces + 1] = string.format("%s|%d|%.2f", r.name, r.id, r.score)
  end
  local joined = table.concat(pieces, ";")
  local fields = 0
  for piece in joined:gmatch("[^;]+") do
    local name, id = piece:match("^([^|]+)|(%d+)|")
    if name and tonumber(id) % 97 == 0 then h = fnv(h, name:upper()) end
    fields = fields + 1
  end

  -- 4. Sort a copy by score then id, drop half the records, rebuild the index (frees and
  -- reallocations of the array and hash parts).
  local sorted = table.move(list, 1, #list, 1, {})
  table.sort(sorted, function(a, b)
    if a.score ~= b.score then return a.score < b.score end
    return a.id < b.id
  end)
  for i = 1, #sorted, 50 do h = fnv(h, sorted[i].name) end
  for i = 1, scale, 2 do by_id[i] = nil end
  local survivors = 0
  for _, r in pairs(by_id) do survivors = survivors + #r.payload end

  -- 5. Closures and small tables that die young.
  local acc = 0
  for i = 1, scale // 2 do
    local point = { x = i, y = i * 2, f = function(p) return p.x + p.y end }
    acc = (acc + point.f(point)) % 1000000007
  end

  print(string.format("round %d: records=%d names=%d tag_keys=%d fields=%d survivors=%d acc=%d digest=%08x",
    round, #list, (function() local n = 0 for _ in pairs(by_name) do n = n + 1 end return n end)(),
    #keys, fields, survivors, acc, h))
  total = (total + h) & 0xffffffff
  list, by_name, by_id, sorted, pieces, joined, tag_count = nil, nil, nil, nil, nil, nil, nil
  collectgarbage("collect")
end
print(string.format("total %08x", total))
