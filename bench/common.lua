-- What the benchmarks share (they run from the repository's directory:
-- local common = dofile("bench/common.lua")).
local common = {}

-- The p-th percentile (0..1) of a sorted list; 0 for an empty one.
function common.percentile(sorted, p)
  if #sorted == 0 then return 0 end
  return sorted[math.max(1, math.ceil(#sorted * p))]
end

-- How many /kling/tasks requests the simulator has seen (its /_sim/stats).
function common.task_requests()
  local http = require "socket.http"
  local cjson = require "cjson"
  local stats = cjson.decode((http.request(os.getenv("ACEDATACLOUD_API_BASE_URL") .. "/_sim/stats")))
  return (stats.requests["/kling/tasks"] or 0)
end

return common
