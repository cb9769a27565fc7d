-- kling.loop.uv(client [, uv]): steps the client from a libuv loop. A poll
-- handle watches client:pollfd(), which is readable exactly when a step has
-- work; one timer, re-armed from client:timeout() after every step, covers
-- the work that falls due by the clock. An idle client arms nothing, so it
-- never wakes the loop. (libuv's uv_poll_t exists to watch the descriptor of
-- a library that does its own I/O: docs/design.md, "Inside an event loop".)
--
-- uv: luv's module; by default Neovim's vim.uv (or vim.loop, before 0.10),
-- else require "luv". Inside Neovim the steps run through vim.schedule, so a
-- job's hooks may call the editor's API (luv's own callbacks may not).
-- Returns a handle: handle:stop() (idempotent; also done when the client
-- closes), handle:close() (stops, then closes the client), handle.steps
-- (how many times the loop stepped the client), or nil and an error.
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local new_handle = require "kling.loop.handle"

return function(client, uv)
  local schedule
  if uv == nil then
    local vim = rawget(_G, "vim")
    if vim and (vim.uv or vim.loop) then
      uv, schedule = vim.uv or vim.loop, vim.schedule
    else
      uv = require "luv"
    end
  end
  local fd, err = client:pollfd()
  if not fd then return nil, err end
  local poll, timer = uv.new_poll(fd), uv.new_timer()
  local handle = new_handle(client, function()
    poll:stop()
    timer:stop()
    poll:close()
    timer:close()
  end)
  local queued = false
  local on_readable, on_timer

  -- After every step: the clock's next work, if any (libuv counts in ms).
  local function arm()
    timer:stop()
    local t = client:timeout()
    if t then timer:start(math.ceil(t * 1000), 0, on_timer) end
  end

  local function step()
    queued = false
    if handle.stopped then return end
    handle.steps = handle.steps + 1
    client:step(0)
    if handle.stopped then return end -- the client closed in a job
    if schedule then poll:start("r", on_readable) end
    arm()
  end

  local function wake()
    if not schedule then return step() end
    -- Neovim: once per scheduled step; the descriptor stays readable until then
    poll:stop()
    if not queued then
      queued = true
      schedule(step)
    end
  end
  on_readable, on_timer = wake, wake

  poll:start("r", on_readable)
  arm()
  return handle
end
