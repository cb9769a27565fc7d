-- One contender of bench/engine.lua: client:task(id) N times in a row on one
-- client (one kept-alive connection), as an application polling one task
-- would. Prints one line:
--   kling <requests> <client CPU seconds> <wall seconds> <RSS KiB after 10%> <RSS KiB at the end>
-- Not a test: it prints.
local kling = require "kling"
local core = require "kling.core"

local base_url, n, task_id = arg[1], tonumber(arg[2]) or 10000, arg[3] or "bench-task"

local function rss_kib()
  local f = io.open("/proc/self/statm")
  if not f then return 0 end
  local pages = f:read("*n") and f:read("*n")
  f:close()
  return (pages or 0) * 4
end

local client = assert(kling.new({ base_url = base_url, token = "bench-token" }))
assert(client:task(task_id)) -- the connection, and a sanity check of the answer
local warm = math.max(1, math.floor(n / 10))
local rss_warm
local cpu, started = os.clock(), core.now()
for i = 1, n do
  local t = client:task(task_id)
  if not (t and t.done) then error("unexpected answer at request " .. i) end
  if i == warm then
    collectgarbage() -- what stays, not what waits for the collector
    rss_warm = rss_kib()
  end
end
cpu, started = os.clock() - cpu, core.now() - started
collectgarbage()
print(("kling %d %.6f %.6f %d %d"):format(n, cpu, started, rss_warm, rss_kib()))
client:close()
