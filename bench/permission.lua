-- wrk script: permission-ticket creation at the UMA permission endpoint (Federated Authorization §4).
-- Env: PAT (the resource server's PAT), RESOURCE_ID (a resource registered with it).
-- Prints one line like the peer's bench.lua: BENCH_RESULT key=value ...
local pat = os.getenv("PAT") or error("PAT not set")
local rid = os.getenv("RESOURCE_ID") or error("RESOURCE_ID not set")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. pat
wrk.body = '{"resource_id":"' .. rid .. '","resource_scopes":["patient/Observation.read"]}'

local threads = {}
function setup(thread) table.insert(threads, thread) end
non2xx, badbody = 0, 0
function response(status, headers, body)
  if status ~= 201 then non2xx = non2xx + 1
  elseif not string.find(body, '"ticket"', 1, true) then badbody = badbody + 1 end
end
function done(summary, latency, requests)
  local n2, bb = 0, 0
  for _, t in ipairs(threads) do n2 = n2 + t:get("non2xx"); bb = bb + t:get("badbody") end
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_s=%.3f rps=%.1f p50_ms=%.2f p99_ms=%.2f non2xx=%d bad_body=%d sock_err=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, n2, bb,
    e.connect + e.read + e.write + e.timeout))
end
