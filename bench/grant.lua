-- wrk script: the UMA grant (POST /token, grant_type uma-ticket) with a pushed ID token, one
-- fresh ticket per request, read from TICKET_DIR/tickets.<n> (made by tickets.lua; each wrk
-- thread reads its own file). Env: CLIENT_ID, CLIENT_SECRET, ID_TOKEN, TICKET_DIR.
-- Prints one line: BENCH_RESULT key=value ...
local dir = os.getenv("TICKET_DIR") or error("TICKET_DIR not set")
local id_token = os.getenv("ID_TOKEN") or error("ID_TOKEN not set")
local cid, secret = os.getenv("CLIENT_ID"), os.getenv("CLIENT_SECRET")

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function b64(data)
  return ((data:gsub(".", function(x)
    local r, byte = "", x:byte()
    for i = 8, 1, -1 do r = r .. (byte % 2 ^ i - byte % 2 ^ (i - 1) > 0 and "1" or "0") end
    return r
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
    return b64chars:sub(c + 1, c + 1)
  end) .. ({ "", "==", "=" })[#data % 3 + 1])
end
local function formenc(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. b64(formenc(cid) .. ":" .. formenc(secret))
local fixed = "&claim_token=" .. formenc(id_token) ..
  "&claim_token_format=" .. formenc("http://openid.net/specs/openid-connect-core-1_0.html#IDToken") ..
  "&grant_type=" .. formenc("urn:ietf:params:oauth:grant-type:uma-ticket")

local threads, n = {}, 0
function setup(thread) n = n + 1; thread:set("id", n); table.insert(threads, thread) end
local tickets, i = {}, 0
function init(args)
  for line in io.lines(dir .. "/tickets." .. id) do tickets[#tickets + 1] = line end
end
function request()
  i = i + 1
  local t = tickets[i] or "exhausted"
  return wrk.format(nil, nil, nil, "ticket=" .. t .. fixed)
end
non2xx, badbody, used = 0, 0, 0
function response(status, headers, body)
  used = used + 1
  if status ~= 200 then non2xx = non2xx + 1
  elseif not string.find(body, '"access_token"', 1, true) then badbody = badbody + 1 end
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
