-- A small cooperative event loop over luasocket: every connection, delayed
-- answer and outgoing callback is a coroutine that yields while it waits for a
-- socket or a timer, so one slow client never holds up the others.
local socket = require "socket"

local unpack = table.unpack or unpack

local Loop = {}
Loop.__index = Loop

function Loop.new()
  return setmetatable({
    ready = {},      -- coroutines to resume on the next turn
    readers = {},    -- socket -> coroutine
    writers = {},    -- socket -> coroutine
    sleepers = {},   -- { due = t, co = co }
    stopping = false,
  }, Loop)
end

function Loop.now()
  return socket.gettime()
end

local function resume(co, ...)
  local ok, err = coroutine.resume(co, ...)
  if not ok then
    io.stderr:write("kling-simulator: handler failed: ", tostring(err), "\n")
  end
end

function Loop:spawn(fn, ...)
  local co = coroutine.create(fn)
  local args = { n = select("#", ...), ... }
  self.ready[#self.ready + 1] = function() resume(co, unpack(args, 1, args.n)) end
  return co
end

function Loop:wait_readable(sock)
  self.readers[sock] = coroutine.running()
  coroutine.yield()
end

function Loop:wait_writable(sock)
  self.writers[sock] = coroutine.running()
  coroutine.yield()
end

function Loop:sleep(seconds)
  local list = self.sleepers
  list[#list + 1] = { due = Loop.now() + math.max(seconds, 0), co = coroutine.running() }
  coroutine.yield()
end

-- Forget a socket that is being closed, so select() never sees a dead one.
function Loop:forget(sock)
  self.readers[sock] = nil
  self.writers[sock] = nil
end

local function keys(t)
  local list = {}
  for k in pairs(t) do list[#list + 1] = k end
  return list
end

function Loop:wake_sleepers()
  local now, still, due = Loop.now(), {}, {}
  for _, s in ipairs(self.sleepers) do
    if s.due <= now then due[#due + 1] = s else still[#still + 1] = s end
  end
  self.sleepers = still
  table.sort(due, function(a, b) return a.due < b.due end)
  for _, s in ipairs(due) do resume(s.co) end
end

function Loop:next_timeout(max_wait)
  if #self.ready > 0 then return 0 end
  local wait, now = max_wait, Loop.now()
  for _, s in ipairs(self.sleepers) do
    wait = math.min(wait, math.max(s.due - now, 0))
  end
  return wait
end

-- One turn: run what is ready, wait for sockets or the next timer, wake them.
function Loop:turn(max_wait)
  local ready = self.ready
  self.ready = {}
  for _, fn in ipairs(ready) do fn() end
  self:wake_sleepers()
  local r, w = keys(self.readers), keys(self.writers)
  local timeout = self:next_timeout(max_wait)
  if #r == 0 and #w == 0 then
    if timeout > 0 then socket.sleep(timeout) end
  else
    local readable, writable = socket.select(r, w, timeout)
    for _, sock in ipairs(readable or {}) do
      local co = self.readers[sock]
      self.readers[sock] = nil
      if co then resume(co) end
    end
    for _, sock in ipairs(writable or {}) do
      local co = self.writers[sock]
      self.writers[sock] = nil
      if co then resume(co) end
    end
  end
  self:wake_sleepers()
end

function Loop:run(idle_exit, last_activity)
  while not self.stopping do
    self:turn(0.5)
    if idle_exit and Loop.now() - last_activity() > idle_exit then
      io.stderr:write("kling-simulator: idle for ", idle_exit, " s, exiting\n")
      return
    end
  end
end

function Loop:stop()
  self.stopping = true
end

return Loop
