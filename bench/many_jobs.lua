-- Benchmark: N motion jobs on one client against the simulator (not a test).
--   make bench [JOBS=300]
-- Prints wall time, the slowest step(0), requests sent and CPU used.
local kling = require "kling"
local core = require "kling.core"

local jobs_wanted = tonumber(arg[1]) or 300
local client = assert(kling.new({ poll_interval = 0.5, max_poll_interval = 2, wait_timeout = 120 }))
local params = { image_url = "https://cdn.example.test/p.jpg", video_url = "https://cdn.example.test/d.mp4",
                 character_orientation = "image", mode = "std" }

local started, cpu = core.now(), os.clock()
local jobs = {}
for i = 1, jobs_wanted do jobs[i] = client:spawn(client.motion, client, params) end
local slowest, steps = 0, 0
while client:pending() > 0 do
  local t = core.now()
  client:step(0)
  slowest = math.max(slowest, core.now() - t)
  steps = steps + 1
  client:step(0.016) -- a 60 fps frame
end
local ok = 0
for _, job in ipairs(jobs) do
  if job:result() then ok = ok + 1 end
end
print(("%d jobs, %d succeeded, %.2f s wall, %.2f s CPU, %d frames, slowest step(0) %.1f ms")
  :format(jobs_wanted, ok, core.now() - started, os.clock() - cpu, steps, slowest * 1000))
client:close()
