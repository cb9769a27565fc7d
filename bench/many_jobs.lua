-- Benchmark: N motion jobs on one client against the simulator, without and
-- with a journal (not a test: it prints).
--   make bench [JOBS=1000]
-- Prints, for each: wall time, CPU, step(0) p50/p99/max (the frame budget of
-- a game or an editor), task requests and requests per poll round.
local kling = require "kling"
local core = require "kling.core"

local jobs_wanted = tonumber(arg[1]) or 1000

local function percentile(sorted, p)
  if #sorted == 0 then return 0 end
  return sorted[math.max(1, math.ceil(#sorted * p))]
end

local function task_requests()
  local http = require "socket.http"
  local cjson = require "cjson"
  local stats = cjson.decode((http.request(os.getenv("ACEDATACLOUD_API_BASE_URL") .. "/_sim/stats")))
  return (stats.requests["/kling/tasks"] or 0)
end

local function run(journal, sync)
  local client = assert(kling.new({ poll_interval = 0.5, max_poll_interval = 2, wait_timeout = 120,
                                    journal = journal, journal_sync = sync }))
  local polls = 0
  local started, cpu, requests_before = core.now(), os.clock(), task_requests()
  local jobs = {}
  for i = 1, jobs_wanted do
    jobs[i] = client:spawn(client.motion, client, {
      key = journal and ("bench-%05d"):format(i) or nil,
      image_url = "https://cdn.example.test/p.jpg", video_url = "https://cdn.example.test/d.mp4",
      character_orientation = "image", mode = "std",
      on_status = function() polls = polls + 1 end,
    })
  end
  local steps = {}
  while client:pending() > 0 do
    local t = core.now()
    client:step(0)
    steps[#steps + 1] = core.now() - t
    client:step(0.016) -- a 60 fps frame
  end
  local wall, used = core.now() - started, os.clock() - cpu
  local ok = 0
  for _, job in ipairs(jobs) do
    if job:result() then ok = ok + 1 end
  end
  client:close()
  table.sort(steps)
  local requests = task_requests() - requests_before
  local rounds = polls / jobs_wanted -- polls each job made: the poll rounds
  print(("%-10s %d jobs, %d succeeded, %.2f s wall, %.2f s CPU, %d frames; step(0) p50 %.2f ms, p99 %.2f ms, "
    .. "max %.2f ms; %d task requests, %.1f per poll round"):format(journal and ("journal/" .. (sync or "full"))
    or "no journal",
    jobs_wanted, ok, wall, used, #steps, percentile(steps, 0.5) * 1000, percentile(steps, 0.99) * 1000,
    steps[#steps] * 1000, requests, requests / math.max(rounds, 1)))
end

run(nil)
for _, sync in ipairs({ "full", "normal" }) do
  local path = os.tmpname()
  os.remove(path)
  path = path .. ".db"
  run(path, sync)
  os.execute(("rm -rf '%s' '%s-wal' '%s-shm' '%s-owners'"):format(path, path, path, path))
end
