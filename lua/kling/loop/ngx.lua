-- kling.loop.ngx(client): OpenResty (lua-nginx-module). nginx gives a Lua
-- module no way to watch a foreign descriptor, and ngx_lua's coroutines
-- belong to the request or timer that made them: a job resumed from another
-- context crashes the worker or wedges. So one long-lived timer owns the
-- client. It is the only coroutine that steps it (client:drive_from), the
-- jobs' coroutines are made there (a job's coroutine is made when it first
-- runs), and between steps it yields to nginx on a semaphore: posted when a
-- request spawns a job (client:on_ready), or timed from client:timeout(true)
-- (every 2 ms while a transfer is under way; nginx's timers count whole
-- milliseconds). Each wake runs one step, bounded by its budget, so the
-- worker never stalls on kling.
--
-- Call it once per worker, in init_worker_by_lua*. Returns a loop:
--   loop:wait(job [, timeout]) in a request handler: yields that request
--     (not the worker) until the job ends; then job:result()
--   loop:stop()  the timer ends at its next wake
-- Blocking calls on the client raise a clear error from then on: spawn a
-- job instead (client:spawn works from any handler).
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local semaphore = require "ngx.semaphore"

local ngx = ngx
local IDLE_WAKE = 1 -- seconds: an idle loop looks whether the worker is exiting

return function(client)
  local ready = semaphore.new()
  local loop = { steps = 0 }
  local waiting = {} -- job -> semaphores of the requests waiting for it
  local stopped = false

  local function post()
    if ready:count() < 1 then ready:post(1) end
  end

  -- Wakes the requests waiting for jobs that have ended.
  local function release()
    for job, list in pairs(waiting) do
      if job:status() ~= "running" then
        waiting[job] = nil
        for _, sema in ipairs(list) do sema:post(1) end
      end
    end
  end

  local function run(premature)
    if premature then return client:close(0) end
    client:drive_from(coroutine.running(), "kling.loop.ngx")
    while not stopped and not client:is_closed() do
      loop.steps = loop.steps + 1
      client:step(0)
      release()
      if ngx.worker.exiting() then break end
      -- nginx's timers count whole milliseconds: a shorter wait would
      -- come back at once, and spin until the work falls due
      local t = client:timeout(true)
      if t == 0 then
        -- more work now: nginx serves its requests first (ngx.sleep(0)
        -- needs OpenResty's own nginx; Debian's warns on each call)
        ngx.sleep(0.001)
      else
        ready:wait(t and math.min(math.ceil(t * 1000) / 1000, IDLE_WAKE) or IDLE_WAKE)
      end
    end
    client:close(0)
    release()
  end

  function loop.wait(_, job, timeout)
    if job:status() == "running" then
      local sema = semaphore.new()
      local list = waiting[job] or {}
      waiting[job] = list
      list[#list + 1] = sema
      sema:wait(timeout or 3600)
    end
    return job:result()
  end

  function loop.stop()
    stopped = true
    post()
  end

  client:on_ready(post)
  local ok, err = ngx.timer.at(0, run)
  if not ok then return nil, err end
  return loop
end
