-- The handle client:spawn returns. A job's outcome stays in its handle: an
-- error raised inside the job is kept there for the caller, never printed.
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local core = require "kling.core"
local compat = require "kling.compat"
local errors = require "kling.errors"

local Job = {}
Job.__index = Job
Job.__name = "kling.job"

-- The coroutine is made when the job first runs, inside a step, not where
-- spawn was called: a host whose coroutines belong to the request or timer
-- that made them (OpenResty) may spawn from anywhere, and the job's
-- coroutine is still the stepping loop's own.
function Job.new(scheduler, fn, args)
  -- protected > 0: inside a section a cancellation waits for (see Scheduler:protect)
  return setmetatable({ scheduler = scheduler, state = "running", protected = 0, fn = fn, args = args }, Job)
end

-- The job's coroutine, made on first use.
function Job:thread()
  local co = self.co
  if not co then
    local fn, args = self.fn, self.args
    co = coroutine.create(function() return fn(compat.unpack(args, 1, args.n)) end)
    self.co, self.fn, self.args = co, nil, nil
  end
  return co
end

function Job:succeed(results)
  self.state, self.results = "done", results
end

function Job:fail(err, traceback)
  if errors.is(err) and err.kind == "cancelled" then
    self.state = "cancelled"
  else
    self.state = "failed"
  end
  self.error, self.traceback = err, traceback
end

-- "running", "done", "failed" or "cancelled".
function Job:status()
  return self.state
end

-- What the function returned; or nil and the error it raised (or the
-- cancellation); or nil and a "pending" error while it runs.
function Job:result()
  if self.state == "done" then
    return compat.unpack(self.results, 1, self.results.n)
  elseif self.state == "running" then
    return nil, errors.new("pending", "the job has not finished")
  end
  return nil, self.error
end

-- Stops the job where it waits; returns true if it was running. The API
-- cannot cancel a submitted task: this only stops following it. A submit
-- already on the wire is first allowed to finish (bounded by its HTTP
-- timeout), so the job then ends "cancelled" with the task id it got.
function Job:cancel()
  return self.scheduler:cancel(self, errors.new("cancelled", "the job was cancelled"))
end

-- Until the job ends or timeout seconds pass: inside another job it yields,
-- elsewhere it blocks, stepping the client. Then returns what result() does.
function Job:wait(timeout)
  local scheduler = self.scheduler
  if self.state == "running" and scheduler:current_job() then
    if scheduler:current_job() == self then error("a job cannot wait for itself", 2) end
    scheduler:await_job(self, timeout)
    return self:result()
  end
  local deadline = timeout and core.now() + timeout
  while self.state == "running" do
    local left = deadline and deadline - core.now() or 3600
    if left <= 0 then break end
    scheduler:step(left)
  end
  return self:result()
end

function Job:__tostring()
  return ("kling.job (%s)"):format(self.state)
end

return Job
