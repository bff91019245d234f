-- wrk script for the benchmark: one request shape, optional unique rows, figures as one JSON line.
-- Arguments after `--`: method, body file ("-" for none), key, counter base, item file ("-" for none),
-- and "statuses" to count answers by status (a Lua call per response: only where the answers differ).
-- Every "__N__" in the body becomes a number unique to this request and row, so rows miss the cache;
-- every "__I__" a catalogue item drawn at random from the item file (one id per line).
local method, body_file, key, base = "GET", "-", "", 0
local template, counter = nil, 0
local parts, suffixes = nil, {}
local items = {}
local threads = {}
local counting, sent_count = false, 0
statuses = {}          -- per thread, read by done(): answers by status code
unannounced = 0        -- 503 answers without a Retry-After header
answered_us = {}       -- latency of every 2xx answer
shed_us = {}           -- latency of every 503 answer

-- wrk's own histogram mixes every answer; when counting, each request carries its send time in its
-- X-Request-ID (the gateway echoes a sane one), so each answer's latency is known by its status.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local clock = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(1, clock)  -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000000 + math.floor(tonumber(clock.tv_nsec) / 1000)
end

local function counted(status, headers, _)
  statuses[status] = (statuses[status] or 0) + 1
  local id = headers["X-Request-ID"] or headers["x-request-id"] or ""
  local sent = tonumber(id:match("^w(%d+)%."))
  if sent then
    local took = now_us() - sent
    if status < 300 then answered_us[#answered_us + 1] = took end
    if status == 503 then shed_us[#shed_us + 1] = took end
  end
  if status == 503 and not (headers["Retry-After"] or headers["retry-after"]) then
    unannounced = unannounced + 1
  end
end

function setup(thread)
  threads[#threads + 1] = thread
end

-- The template cut around each quoted "__N__": a request's body is the pieces joined with its numbers.
local function split(text, separator)
  local out, start = {}, 1
  while true do
    local i, j = text:find(separator, start, true)
    if not i then
      out[#out + 1] = text:sub(start)
      return out
    end
    out[#out + 1] = text:sub(start, i - 1)
    start = j + 1
  end
end

function init(args)
  method = args[1] or method
  body_file = args[2] or body_file
  key = args[3] or key
  base = tonumber(args[4] or "0")
  if body_file ~= "-" then
    local fh = assert(io.open(body_file, "r"))
    template = fh:read("*a")
    fh:close()
    if template:find('"__N__"', 1, true) then
      parts = split(template, '"__N__"')
      local width = #tostring(#parts - 1)
      for i = 1, #parts - 1 do suffixes[i] = string.format("%0" .. width .. "d", i) end
    end
  end
  if args[5] and args[5] ~= "-" then
    for line in io.lines(args[5]) do
      if line ~= "" then items[#items + 1] = line end
    end
    math.randomseed(base)
  end
  if args[6] == "statuses" then
    counting = true
    response = counted
  end
  wrk.headers["X-API-Key"] = key
  if template then wrk.headers["Content-Type"] = "application/json" end
end

-- The request's counter followed by the row's fixed-width index: one number formatted per request, not
-- per row (formatting 100 numbers per request in Lua cost wrk an eighth of the two cores).
local function varied()
  counter = counter + 1
  local number = tostring(1 + (base + counter) % 1000000000)
  local pieces = {}
  for i = 1, #parts - 1 do
    pieces[#pieces + 1] = parts[i]
    pieces[#pieces + 1] = number
    pieces[#pieces + 1] = suffixes[i]
  end
  pieces[#pieces + 1] = parts[#parts]
  return table.concat(pieces)
end

local function item()
  return '"' .. items[math.random(#items)] .. '"'
end

function request()
  local body = template
  if parts then body = varied() end
  if #items > 0 then body = body:gsub('"__I__"', item) end
  if counting then
    sent_count = sent_count + 1
    wrk.headers["X-Request-ID"] = string.format("w%d.%d", now_us(), sent_count)
  end
  return wrk.format(method, nil, nil, body)
end
local function percentile(sorted, p)
  if #sorted == 0 then return -1 end
  return sorted[math.max(1, math.ceil(#sorted * p / 100))]
end

local function gathered(name)
  local all = {}
  for _, thread in ipairs(threads) do
    for _, v in ipairs(thread:get(name) or {}) do all[#all + 1] = v end
  end
  table.sort(all)
  return all
end

function done(summary, latency, requests)
  local e = summary.errors
  local all, unannounced_all = {}, 0
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses") or {}) do all[status] = (all[status] or 0) + n end
    unannounced_all = unannounced_all + (thread:get("unannounced") or 0)
  end
  local by_status = {}
  for status, n in pairs(all) do by_status[#by_status + 1] = string.format('"%d": %d', status, n) end
  local answered, shed = gathered("answered_us"), gathered("shed_us")
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "status_errors": %d, "timeouts": %d, "p50_us": %d, "p95_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "statuses": {%s}, "unannounced_503": %d, ' ..
    '"answered_p50_us": %d, "answered_p99_us": %d, "shed_p50_us": %d, "shed_max_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max,
    table.concat(by_status, ", "), unannounced_all,
    percentile(answered, 50), percentile(answered, 99), percentile(shed, 50), percentile(shed, 100)))
end
