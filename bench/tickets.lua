-- wrk script: make permission tickets for the grant benchmark and write them to files, one per
-- wrk thread (TICKET_DIR/tickets.<n>). Env: PAT, RESOURCE_ID, TICKET_DIR.
local pat = os.getenv("PAT") or error("PAT not set")
local rid = os.getenv("RESOURCE_ID") or error("RESOURCE_ID not set")
local dir = os.getenv("TICKET_DIR") or error("TICKET_DIR not set")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. pat
wrk.body = '{"resource_id":"' .. rid .. '","resource_scopes":["patient/Observation.read"]}'

local n = 0
function setup(thread) n = n + 1; thread:set("id", n) end
local out
function init(args) out = io.open(dir .. "/tickets." .. id, "w") end
function response(status, headers, body)
  local t = string.match(body, '"ticket":"([^"]+)"')
  if status == 201 and t then out:write(t, "\n") end
end
