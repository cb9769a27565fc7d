-- Runs examples/love/main.lua unchanged, counts frames and how long each
-- love.update took, and quits once the example's status says the job ended.
local example_dir = assert(os.getenv("KLING_EXAMPLE_DIR"), "KLING_EXAMPLE_DIR is not set")
local load_example = assert(loadfile(example_dir .. "/main.lua"))
local get_status -- reads the example's `status` upvalue, for this harness only
load_example()

local function find_status()
  for _, fn in ipairs({ love.draw }) do
    for i = 1, 20 do
      local name = debug.getupvalue(fn, i)
      if name == "status" then return function() return select(2, debug.getupvalue(fn, i)) end end
    end
  end
end

local example_update = love.update
local frames, slowest = 0, 0
local started = love.timer.getTime()
love.update = function(dt)
  local t = love.timer.getTime()
  example_update(dt)
  slowest = math.max(slowest, love.timer.getTime() - t)
  frames = frames + 1
  get_status = get_status or find_status()
  local status = get_status()
  if status:match("^done") or status:match("^failed") or t - started > 60 then
    print(("%s after %d frames, slowest love.update %.1f ms"):format(status, frames, slowest * 1000))
    love.event.quit(status:match("^done") and 0 or 1)
  end
end
