-- Shared by the load scripts. Each wrk thread (one connection) learns its number, as
-- the global ``index`` of its own Lua state; done() prints wrk's own figures as one JSON
-- line on stdout, marked so that bench.support.load finds it. Latencies are in µs.
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("index", threads)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH-JSON {"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
