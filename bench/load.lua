-- wrk script for the benchmark: one request shape, optional unique rows, figures as one JSON line.
-- Arguments after `--`: method, body file ("-" for none), key, counter base, item file ("-" for none).
-- Every "__N__" in the body becomes a number unique to this request and row, so rows miss the cache;
-- every "__I__" a catalogue item drawn at random from the item file (one id per line).
local method, body_file, key, base = "GET", "-", "", 0
local template, counter = nil, 0
local parts, suffixes = nil, {}
local items = {}

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
