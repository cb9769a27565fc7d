-- Benchmark: one 20 MB upload from a host that steps kling on a fixed
-- period (a Neovim timer, a game frame), and from one that waits on
-- client:pollfd() (kling.loop.uv). Not a test: it prints.
--   make bench MODE=upload [PERIOD=0.1] [ROUNDS=3] [MB=20]
-- Prints per round the seconds each host took and the bytes moved per step
-- (goal: under 2 s at a 100 ms period; at least 1 MB per step while the
-- transfer streams).
local kling = require "kling"
local core = require "kling.core"
local socket = require "socket"

local period = tonumber(arg[1]) or 0.1
local rounds = tonumber(arg[2]) or 3
local megabytes = tonumber(arg[3]) or 20

local path = os.tmpname()
do
  local f = assert(io.open(path, "wb"))
  local block = string.rep("k", 1024 * 1024)
  for _ = 1, megabytes do f:write(block) end
  f:close()
end

local function upload_with(drive)
  local client = assert(kling.new({}))
  local steps, sent = 0, 0
  local job = client:spawn(function()
    return client:upload(path, { on_progress = function(n) sent = n end })
  end)
  local started = core.now()
  drive(client, job, function() steps = steps + 1 end)
  local took = core.now() - started
  local url, err = job:result()
  client:close()
  if not url then error(tostring(err)) end
  return took, steps, sent
end

-- step(0) every `period` seconds, the rest of the period slept
local function fixed_period(client, job, count)
  while job:status() == "running" do
    local t0 = core.now()
    client:step(0)
    count()
    local rest = period - (core.now() - t0)
    if rest > 0 then socket.sleep(rest) end
  end
end

-- wait on pollfd() or timeout(), then step(0): a host loop's way
local function on_pollfd(client, job, count)
  local fd = assert(client:pollfd())
  while job:status() == "running" do
    local t = client:timeout()
    if t ~= 0 then socket.select({ { getfd = function() return fd end } }, nil, t or 1) end
    client:step(0)
    count()
  end
end

print(("%d MB upload to the simulator's platform endpoint, %d rounds"):format(megabytes, rounds))
for round = 1, rounds do
  local took, steps, sent = upload_with(fixed_period)
  print(("round %d  step every %.0f ms: %.2f s, %d steps, %.1f MB per step"):format(
    round, period * 1000, took, steps, sent / steps / 1e6))
  took, steps = upload_with(on_pollfd)
  print(("round %d  on pollfd():       %.2f s, %d steps"):format(round, took, steps))
end
os.remove(path)
