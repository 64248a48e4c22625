-- wrk script for `make bench`.
--
--   wrk ... -s bench/bench.lua URL -- MODE SPEC_FILE [ORGS]
--
-- SPEC_FILE holds one HTTP request: "METHOD /path", header lines, a blank
-- line, the body. MODE:
--   static  the same request every time (wrk's prebuilt request: no Lua per request)
--   count   static, and counts response statuses (for rate-limit accuracy)
--   rotate  every request for the next of ORGS organizations: "{i}" in header
--           values becomes the org index (%06d) and "{value}" the org's line of
--           VALUES_FILE (e.g. its API token); threads interleave so every org
--           gets the same share:  wrk ... -- rotate SPEC_FILE ORGS [VALUES_FILE]
-- done() prints one line "BENCH_RESULT {json}" that bench/wrkrun.py parses.

local threads = {}

-- Runs for every thread, before that thread's init().
function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_index", #threads - 1)
  thread:set("threads_total", tonumber(os.getenv("BENCH_WRK_THREADS") or "1"))
end

local function read_spec(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  local head, body = text:match("^(.-)\r?\n\r?\n(.*)$")
  if head == nil then head, body = text, "" end
  local method, target, headers = nil, nil, {}
  for line in head:gmatch("[^\r\n]+") do
    if method == nil then
      method, target = line:match("^(%S+)%s+(%S+)")
    else
      local name, value = line:match("^([^:]+):%s*(.*)$")
      headers[name] = value
    end
  end
  return method, target, headers, body
end

function init(args)
  mode = args[1]
  statuses = {}
  local method, target, headers, body = read_spec(args[2])
  wrk.method, wrk.path, wrk.body = method, target, body
  for name, value in pairs(headers) do wrk.headers[name] = value end

  if mode == "count" then
    response = function(status, _, _)
      statuses[status] = (statuses[status] or 0) + 1
    end
  elseif mode == "rotate" then
    local orgs = tonumber(args[3])
    local step = tonumber(wrk.thread:get("threads_total"))
    local i = tonumber(wrk.thread:get("thread_index"))
    local values = {}
    if args[4] then
      for line in io.lines(args[4]) do values[#values + 1] = line end
    end
    local templated = {}
    for name, value in pairs(headers) do
      if value:find("{i}", 1, true) or value:find("{value}", 1, true) then templated[name] = value end
    end
    request = function()
      local idx = string.format("%06d", i)
      local h = {}
      for name, value in pairs(headers) do h[name] = value end
      for name, value in pairs(templated) do
        value = value:gsub("{i}", idx, 1)
        h[name] = value:gsub("{value}", values[i + 1] or "", 1)
      end
      i = (i + step) % orgs
      return wrk.format(method, target, h, body)
    end
  elseif mode ~= "static" then
    error("unknown mode " .. tostring(mode))
  end
end

function done(summary, latency, requests)
  local counts = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses") or {}
    for status, n in pairs(s) do counts[status] = (counts[status] or 0) + n end
  end
  local parts = {}
  for status, n in pairs(counts) do
    table.insert(parts, string.format('"%d":%d', status, n))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f},"statuses":{%s}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, table.concat(parts, ",")))
end
