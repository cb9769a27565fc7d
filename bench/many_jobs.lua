-- Benchmark: N motion jobs on one client against the simulator, without and
-- with a journal (not a test: it prints).
--   make bench [JOBS=1000] [ROUNDS=3] [CONFIGS=all|plain] [GC_STEPMUL=n]
-- Prints, for each configuration and round: wall time (and against the
-- generation time), CPU, step(0) p50/p99/max (the frame budget of a game or
-- an editor) and the most CPU time one step(0) took (a step whose wall time
-- is far above it was kept off the CPU: the machine, not kling), task
-- requests and requests per poll round (ideal: ceil(jobs / 50)), and the
-- process's RSS growth per job at its peak; then
-- the median of the rounds. CONFIGS=plain runs without a journal only. The rounds
-- interleave the configurations, so that a busy moment of the machine (the
-- simulator shares it) does not land on one configuration only.
-- GC_STEPMUL (Lua 5.4 only) runs the collector as an application with
-- thousands of jobs would be advised to (see the README's performance
-- section): incremental, with this step multiplier instead of 100.
local kling = require "kling"
local core = require "kling.core"

local jobs_wanted = tonumber(arg[1]) or 1000
local rounds = tonumber(arg[2]) or 3
local only_plain = arg[3] == "plain"
local gc_stepmul = tonumber(arg[4])
local GENERATION = 3 -- seconds: the simulator's (see make bench)

-- Resident set size in KiB (Linux), 0 elsewhere.
local function rss_kib()
  local f = io.open("/proc/self/statm")
  if not f then return 0 end
  local _ = f:read("*n")
  local pages = f:read("*n")
  f:close()
  return (pages or 0) * 4
end

local common = dofile("bench/common.lua")
local percentile, task_requests = common.percentile, common.task_requests

-- RSS is only telling in the first run of the process: later runs reuse
-- the memory the allocator kept (they report nan).
local first_run = true

local function run(journal, sync)
  local client = assert(kling.new({ poll_interval = 0.5, max_poll_interval = 2, wait_timeout = 120,
                                    journal = journal, journal_sync = sync }))
  local polls, was_first = 0, first_run
  collectgarbage()
  local rss_before, rss_peak = rss_kib(), 0
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
  local steps, cpu_max = {}, 0
  while client:pending() > 0 do
    local t, c = core.now(), os.clock()
    client:step(0)
    steps[#steps + 1] = core.now() - t
    cpu_max = math.max(cpu_max, os.clock() - c)
    if #steps % 8 == 0 then rss_peak = math.max(rss_peak, rss_kib()) end
    client:step(0.016) -- a 60 fps frame
  end
  local wall, used = core.now() - started, os.clock() - cpu
  local ok = 0
  for _, job in ipairs(jobs) do
    if job:result() then ok = ok + 1 end
  end
  client:close()
  first_run = false
  table.sort(steps)
  local requests = task_requests() - requests_before
  local poll_rounds = polls / jobs_wanted -- polls each job made: the poll rounds
  return { wall = wall, cpu = used, p50 = percentile(steps, 0.5) * 1000, p99 = percentile(steps, 0.99) * 1000,
           max = steps[#steps] * 1000, cpu_max = cpu_max * 1000,
           requests = requests, per_round = requests / math.max(poll_rounds, 1),
           rss_per_job = was_first and math.max(rss_peak - rss_before, 0) / jobs_wanted or 0 / 0, ok = ok }
end

local function line(name, m)
  return ("%-14s %.2f s wall (%.2fx generation), %.2f s CPU; step(0) p50 %.2f ms, p99 %.2f ms, max %.2f ms "
    .. "(CPU %.2f ms); %d task requests, %.1f per poll round; RSS %s per job%s"):format(name, m.wall,
    m.wall / GENERATION, m.cpu, m.p50, m.p99, m.max, m.cpu_max, m.requests, m.per_round,
    m.rss_per_job == m.rss_per_job and ("%.1f KiB"):format(m.rss_per_job) or "n/a (not the first run)",
    m.ok < jobs_wanted and ("; only %d jobs succeeded"):format(m.ok) or "")
end

local configs = { { "no journal" }, { "journal/full", "full" }, { "journal/normal", "normal" } }
if only_plain then configs = { configs[1] } end
local results = {}
if gc_stepmul and _VERSION == "Lua 5.4" then
  collectgarbage("incremental", 200, gc_stepmul)
  print(("Lua 5.4's collector: incremental, pause 200, step multiplier %d (set by the bench)"):format(gc_stepmul))
end
print(("%d jobs on one client, generation %g s, %d rounds; ideal requests per poll round: %d"):format(jobs_wanted,
  GENERATION, rounds, math.ceil(jobs_wanted / 50)))
for round = 1, rounds do
  for _, c in ipairs(configs) do
    local path
    if c[2] then
      path = os.tmpname()
      os.remove(path)
      path = path .. ".db"
    end
    local m = run(path, c[2])
    if path then os.execute(("rm -rf '%s' '%s-wal' '%s-shm' '%s-owners'"):format(path, path, path, path)) end
    results[c[1]] = results[c[1]] or {}
    table.insert(results[c[1]], m)
    print(("round %d  %s"):format(round, line(c[1], m)))
  end
end
local function median(list, field)
  local v = {}
  for _, m in ipairs(list) do
    if m[field] == m[field] then v[#v + 1] = m[field] end -- not nan
  end
  if #v == 0 then return 0 / 0 end
  table.sort(v)
  return v[math.ceil(#v / 2)]
end
print("median of the rounds:")
local base
for _, c in ipairs(configs) do
  local med = {}
  for _, f in ipairs({ "wall", "cpu", "p50", "p99", "max", "cpu_max", "requests", "per_round", "rss_per_job", "ok" }) do
    med[f] = median(results[c[1]], f)
  end
  local extra = ""
  if base then
    extra = ("  (p99 %+.0f%%, max %+.0f%%, per poll round %+.0f%% against no journal)"):format(
      (med.p99 / base.p99 - 1) * 100, (med.max / base.max - 1) * 100, (med.per_round / base.per_round - 1) * 100)
  else
    base = med
  end
  print("  " .. line(c[1], med) .. extra)
end
