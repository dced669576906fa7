-- wrk script for benchmarks/run.py.
--
--   wrk -t T -c C -d D --latency -s handoff.lua URL -- MODE [ARGS...]
--
--   MODE get  API_KEY                         GET URL with the partner key
--   MODE post API_KEY ICCID_FILE THREADS TAG  POST one activation order per request:
--        fresh externalId (TAG-thread-n) and a fresh ICCID; thread t takes lines
--        t, t+THREADS, t+2*THREADS, ... of ICCID_FILE, so no two requests share a SIM.
--        A thread that runs out of ICCIDs stops (reported as "exhausted").
--   MODE bare                                 plain GET
--
-- done() prints one line `BENCH_RESULT {json}` that run.py parses.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local mode, key, path, headers
local iccids = {}
local next_index, stride, tag, n = 1, 1, "bench", 0
local ORDER = '{"externalId":"%s","productOrderItem":[{"id":"1","action":"add",'
  .. '"productOffering":{"id":"po-gb-payg"},'
  .. '"product":{"productCharacteristic":[{"name":"ICCID","value":"%s"}],'
  .. '"place":[{"id":"GB","role":"market"}]}}]}'

function init(args)
  mode = args[1] or "bare"
  key = args[2]
  path = wrk.path
  headers = {}
  if key then headers["X-API-Key"] = key end
  if mode == "post" then
    headers["Content-Type"] = "application/json"
    stride = tonumber(args[4])
    tag = args[5]
    local all = {}
    for line in io.lines(args[3]) do
      if #line > 0 then table.insert(all, line) end
    end
    -- this thread's share: lines tid+1, tid+1+stride, ...
    local i = tid + 1
    while i <= #all do
      table.insert(iccids, all[i])
      i = i + stride
    end
  end
end

function request()
  if mode == "post" then
    local iccid = iccids[next_index]
    if iccid == nil then
      wrk.thread:set("exhausted", 1)
      wrk.thread:stop()
      iccid = iccids[#iccids] or "8944010000000000000"
    end
    next_index = next_index + 1
    n = n + 1
    local body = string.format(ORDER, tag .. "-" .. tid .. "-" .. n, iccid)
    return wrk.format("POST", path, headers, body)
  end
  return wrk.format("GET", path, headers)
end

function done(summary, latency, requests)
  local exhausted = 0
  for _, thread in ipairs(threads) do
    if thread:get("exhausted") then exhausted = exhausted + 1 end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"min":%d,"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d},'
      .. '"exhausted_threads":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    exhausted))
end
