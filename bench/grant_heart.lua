-- wrk script: the UMA grant under `heart-fhir` (POST /token, grant_type uma-ticket) with a PCT,
-- `private_key_jwt` client authentication and a DPoP proof per request. Each wrk thread reads
-- its own TICKET_DIR/requests.<n> (made by heart_setup.py: ticket, client assertion and proof,
-- tab-separated). Env: PCT, TICKET_DIR. Prints one line: BENCH_RESULT key=value ...
local dir = os.getenv("TICKET_DIR") or error("TICKET_DIR not set")
local pct = os.getenv("PCT") or error("PCT not set")

local function formenc(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

wrk.method = "POST"
local fixed = "&pct=" .. formenc(pct) ..
  "&client_assertion_type=" .. formenc("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") ..
  "&grant_type=" .. formenc("urn:ietf:params:oauth:grant-type:uma-ticket")

local threads, n = {}, 0
function setup(thread) n = n + 1; thread:set("id", n); table.insert(threads, thread) end
local reqs, i = {}, 0
function init(args)
  for line in io.lines(dir .. "/requests." .. id) do
    local t, a, p = line:match("^([^\t]+)\t([^\t]+)\t([^\t]+)$")
    if t then reqs[#reqs + 1] = { t, a, p } end
  end
end
function request()
  i = i + 1
  local r = reqs[i] or { "exhausted", "exhausted", "exhausted" }
  -- wrk.format takes these headers instead of wrk.headers (it adds Host and Content-Length)
  return wrk.format(nil, nil,
    { ["Content-Type"] = "application/x-www-form-urlencoded", ["DPoP"] = r[3] },
    "ticket=" .. r[1] .. "&client_assertion=" .. r[2] .. fixed)
end
non2xx, badbody = 0, 0
function response(status, headers, body)
  if status ~= 200 then non2xx = non2xx + 1
  elseif not string.find(body, '"token_type":"DPoP"', 1, true) then badbody = badbody + 1 end
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
