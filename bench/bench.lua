-- wrk script of the benchmarks (the same as peer-bench's bench.lua): POST the body of $PB_BODY_FILE (a plain
-- GET when unset), the same request every time, and print one machine-readable PB_RESULT line at the end.
-- distinct.lua is its twin that asks for another subject in every request.
local f = os.getenv("PB_BODY_FILE")
if f and f ~= "" then
  local h = assert(io.open(f, "rb"))
  wrk.method = "POST"
  wrk.body = h:read("*a")
  h:close()
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Accept"] = "application/json"
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "PB_RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
