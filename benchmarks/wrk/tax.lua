-- wrk script for benchmarks/tax.py: POST one tax quote (or one batch of them) per request.
--
--   wrk -t T -c C -d D --latency -s tax.lua URL -- API_KEY BODY_FILE TAG
--
-- BODY_FILE holds the request with `DOCUMENT_ID` where each documentId goes (a batch has
-- `DOCUMENT_ID-1`, `DOCUMENT_ID-2`, ...); each request replaces it with its own
-- (TAG-thread-n), so every quote is a document of its own and the stored quotes can be
-- counted afterwards.
-- done() prints one line `BENCH_RESULT {json}`, the same shape as handoff.lua's.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local headers, template, tag, path
local n = 0

function init(args)
  headers = {["X-API-Key"] = args[1], ["Content-Type"] = "application/json"}
  local file = assert(io.open(args[2], "r"))
  template = file:read("*a")
  file:close()
  tag = args[3]
  path = wrk.path
end

function request()
  n = n + 1
  local body = string.gsub(template, "DOCUMENT_ID", tag .. "-" .. tid .. "-" .. n)
  return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"min":%d,"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d},'
      .. '"exhausted_threads":0}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
