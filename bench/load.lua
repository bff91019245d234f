-- wrk script for the benchmark: one request shape, optional unique rows, figures as one JSON line.
-- Arguments after `--`: method, body file ("-" for none), key, counter base, item file ("-" for none).
-- Every "__N__" in the body becomes a number unique to this request, so rows miss the cache; every
-- "__I__" a catalogue item drawn at random from the item file (one id per line).
local method, body_file, key, base = "GET", "-", "", 0
local template, varying, counter = nil, false, 0
local items = {}

function init(args)
  method = args[1] or method
  body_file = args[2] or body_file
  key = args[3] or key
  base = tonumber(args[4] or "0")
  if body_file ~= "-" then
    local fh = assert(io.open(body_file, "r"))
    template = fh:read("*a")
    fh:close()
    varying = template:find("__N__", 1, true) ~= nil
  end
  if args[5] and args[5] ~= "-" then
    for line in io.lines(args[5]) do
      if line ~= "" then items[#items + 1] = line end
    end
    math.randomseed(base)
  end
  wrk.headers["X-API-Key"] = key
  if template then wrk.headers["Content-Type"] = "application/json" end
end

local function unique()
  counter = counter + 1
  return string.format("%.5f", 1000 + ((base + counter) % 1000000000) / 100000)
end

local function item()
  return '"' .. items[math.random(#items)] .. '"'
end

function request()
  local body = template
  if varying then body = body:gsub('"__N__"', unique) end
  if #items > 0 then body = body:gsub('"__I__"', item) end
  return wrk.format(method, nil, nil, body)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "status_errors": %d, "timeouts": %d, "p50_us": %d, "p95_us": %d, ' ..
    '"p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
