-- Benchmark: a paced host, as a game steps kling once per frame. N motion
-- jobs are spawned at once, then client:step(0) runs once per 60 Hz frame
-- and the rest of each frame is slept (not a test: it prints).
--   make bench MODE=paced [JOBS=1000] [ROUNDS=3] [FPS=60] [BUDGET=seconds] [FRAME=busy] [GC=stop]
--     [GC_STEPMUL=n]
-- The simulator takes 5 s per video (make bench starts it). Prints, per
-- round: wall time against the generation time (goal: at most 1.6x), when
-- the last submit was answered, task requests per poll round (goal: at most
-- ceil(jobs / 50) + 1), step(0) p50/p99/max (goal: p99 under 1 ms); then the
-- median of the rounds; and the time spent in step(0) in all. BUDGET passes step(0, budget) instead of step(0).
-- GC=stop stops the collector during each round (the heap grows to about
-- 20 MB), to show which of the slow steps are the collector's. GC_STEPMUL
-- (Lua 5.4 only) sets the collector as a game would: incremental, pause
-- 200, this step multiplier (the README's line uses 5).
local kling = require "kling"
local core = require "kling.core"
local socket = require "socket"

local jobs_wanted = tonumber(arg[1]) or 1000
local rounds = tonumber(arg[2]) or 3
local fps = tonumber(arg[3]) or 60
local budget = tonumber(arg[4])
-- "busy": the rest of each frame is spent working (a game rendering), not
-- slept; on a VM a slept CPU wakes slowly and the next step pays for it
local busy_frame = arg[5] == "busy"
local gc_stopped = arg[6] == "stop"
local gc_stepmul = tonumber(arg[7])
local GENERATION = 5 -- seconds: the simulator's (see make bench)
local FRAME = 1 / fps

local common = dofile("bench/common.lua")
local percentile, task_requests = common.percentile, common.task_requests

local function run()
  if gc_stopped then collectgarbage("stop") end
  local client = assert(kling.new({ poll_interval = 0.5, max_poll_interval = 2, wait_timeout = 120 }))
  local polls, last_submit = 0, 0
  local started, requests_before = core.now(), task_requests()
  local jobs = {}
  for i = 1, jobs_wanted do
    jobs[i] = client:spawn(client.motion, client, {
      image_url = "https://cdn.example.test/p.jpg", video_url = "https://cdn.example.test/d.mp4",
      character_orientation = "image", mode = "std",
      on_submit = function() last_submit = core.now() - started end,
      on_status = function() polls = polls + 1 end,
    })
  end
  local steps, frames = {}, 0
  while client:pending() > 0 do
    local frame_start = core.now()
    if budget then client:step(0, budget) else client:step(0) end
    local took = core.now() - frame_start
    steps[#steps + 1] = took
    frames = frames + 1
    local rest = FRAME - took
    if rest > 0 and busy_frame then
      local until_t = core.now() + rest
      while core.now() < until_t do end -- the game's own work
    elseif rest > 0 then
      socket.sleep(rest) -- vsync
    end
  end
  local wall = core.now() - started
  local ok = 0
  for _, job in ipairs(jobs) do
    if job:result() then ok = ok + 1 end
  end
  client:close()
  if gc_stopped then
    collectgarbage("restart")
    collectgarbage("collect")
  end
  table.sort(steps)
  local total = 0
  for _, d in ipairs(steps) do total = total + d end
  local over = 0
  for i = #steps, 1, -1 do
    if steps[i] <= 0.001 then break end
    over = over + 1
  end
  local requests = task_requests() - requests_before
  return { wall = wall, last_submit = last_submit, p50 = percentile(steps, 0.5) * 1000,
           p99 = percentile(steps, 0.99) * 1000, max = steps[#steps] * 1000, over = over, requests = requests,
           per_round = requests / math.max(polls / jobs_wanted, 1), frames = frames, ok = ok,
           total = total * 1000 }
end

local function line(m)
  return ("%.2f s wall (%.2fx generation), last submit answered at %.2f s; %d task requests, %.1f per poll "
    .. "round; step%s p50 %.3f ms, p99 %.3f ms, max %.2f ms, %d over 1 ms of %d frames, %.0f ms in all%s"):format(
    m.wall, m.wall / GENERATION, m.last_submit, m.requests, m.per_round, budget and ("(0, %g)"):format(budget) or "(0)",
    m.p50, m.p99, m.max, m.over, m.frames, m.total,
    m.ok < jobs_wanted and ("; only %d jobs succeeded"):format(m.ok) or "")
end

print(("%d jobs spawned at once, step once per %g Hz frame, generation %g s, poll_interval 0.5 s (max 2 s); "
  .. "goals: wall <= %.1f s, <= %d requests per poll round, p99 < 1 ms%s"):format(jobs_wanted, fps, GENERATION,
  1.6 * GENERATION, math.ceil(jobs_wanted / 50) + 1, gc_stopped and "; the collector is stopped (GC=stop)" or ""))
if gc_stepmul and _VERSION == "Lua 5.4" then
  collectgarbage("incremental", 200, gc_stepmul)
  print(("Lua 5.4's collector: incremental, pause 200, step multiplier %d (set by the bench)"):format(gc_stepmul))
end
local results = {}
for round = 1, rounds do
  results[round] = run()
  print(("round %d  %s"):format(round, line(results[round])))
end
local med = {}
for _, f in ipairs({ "wall", "last_submit", "p50", "p99", "max", "over", "requests", "per_round", "frames", "ok",
  "total" }) do
  local v = {}
  for i, m in ipairs(results) do v[i] = m[f] end
  table.sort(v)
  med[f] = v[math.ceil(#v / 2)]
end
print("median of the rounds: " .. line(med))
