-- wrk script: like bench/bench.lua (POST the body of $PB_BODY_FILE, or GET; one PB_RESULT line at
-- the end), but every request asks for another subject: the first "K1" of the body or path becomes K1001, K1002, ...
-- With one subject for every request, a server that shares concurrent identical reads (oneScreen's single-flight)
-- makes fewer ledger calls than one that does not; with distinct subjects every screen costs its 6 ledger calls.
local f = os.getenv("PB_BODY_FILE")
local body = nil
if f and f ~= "" then
  local h = assert(io.open(f, "rb"))
  body = h:read("*a")
  h:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Accept"] = "application/json"
end
local n = 1000

request = function()
  n = n + 1
  local key = "K" .. n
  if body then
    return wrk.format(nil, nil, nil, (body:gsub("K1%f[%D]", key, 1)))
  end
  return wrk.format(nil, (wrk.path:gsub("K1%f[%D]", key, 1)))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "PB_RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
