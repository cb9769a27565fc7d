-- The scheduler's end: cancelling jobs (a submit on the wire is let finish,
-- so that its task id is known), draining what may not be dropped, and
-- closing libcurl. Methods of Scheduler (scheduler/init.lua).
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local core = require "kling.core"
local fifo = require "kling.scheduler.queue"

local now = core.now
local queue = fifo.new

local closing = {}

-- internal: closed_result (scheduler/transfers.lua), flushers_busy
-- (scheduler/init.lua).
function closing.extend(Scheduler, internal)
  local closed_result, flushers_busy = internal.closed_result, internal.flushers_busy

  -- Stops a job wherever it waits. A job whose submit is on the wire (or
  -- that is in its on_submit hook) ends only once that is over, so that the
  -- task id is known and reported: it may already be billed.
  function Scheduler:cancel(job, err)
    if job.state ~= "running" or job.cancel_error then return false end
    if self:on_the_wire(job.waiter) or job.protected > 0 then
      job.cancel_error = err
      return true
    end
    self:stop(job, err)
    return true
  end

  function Scheduler:cancel_all(err)
    local list = {}
    for job in pairs(self.live) do list[#list + 1] = job end
    for _, job in ipairs(list) do self:cancel(job, err) end
  end

  local function shielded_in_flight(self)
    for _, w in pairs(self.transfers) do
      if w.shield then return true end
    end
    return false
  end

  -- Drives the transfers that may not be dropped until they end or grace
  -- seconds pass (nil: until they end; each is bounded by its own timeout).
  function Scheduler:drain(grace)
    local deadline = grace and now() + grace
    while shielded_in_flight(self) or flushers_busy(self) do
      local wait = deadline and deadline - now() or 1
      if wait <= 0 then return end
      -- a second Ctrl-C in the kling command (kling.core.catch_interrupt) stops waiting
      if core.interrupted() then return end
      local results, log = self.multi:perform(math.min(wait, 1), self.wake_fds)
      if not results then return end
      self:dispatch(results, log)
      self:flush()
      self:run_runnable(math.huge) -- jobs the journal woke (their submit's record, on_submit)
    end
  end

  -- Ends what waits on transfer w as the client closes: its job, with
  -- make_error(job); or a blocking caller, with the closed result (in_flight:
  -- a submit that may have reached the server).
  local function abandon(self, id, w, in_flight, make_error)
    if w.job and w.job.state == "running" then return self:stop(w.job, make_error(w.job)) end
    self.transfers[id] = nil
    self.multi:cancel(id)
    w.done, w.value = true, closed_result(in_flight)
  end

  -- Ends every job and transfer, then libcurl. Submits on the wire are first
  -- given up to grace seconds (nil: their own timeout) to be answered; those
  -- still in flight end with maybe_submitted. err_factory() makes the error.
  function Scheduler:close(err_factory, grace)
    if self.closed then return end
    self.closed, self.close_error = true, err_factory
    self:cancel_all(err_factory())
    local function closed_error(job) return job.cancel_error or err_factory() end
    for id, w in pairs(self.transfers) do -- requests that are safe to drop: nothing billed went out
      if not self:on_the_wire(w) then abandon(self, id, w, false, closed_error) end
    end
    if grace ~= 0 then self:drain(grace) end
    for id, w in pairs(self.transfers) do -- submits still unanswered
      abandon(self, id, w, true, function(job)
        local err = closed_error(job)
        err.maybe_submitted, err.in_flight = true, true
        err.message = err.message .. "; a submit was on the wire, so the job may have been created"
        return err
      end)
    end
    local left = {} -- jobs held in a protected section
    for job in pairs(self.live) do left[#left + 1] = job end
    for _, job in ipairs(left) do self:stop(job, job.cancel_error or err_factory()) end
    self.transfers, self.timers, self.runnable, self.reporting = {}, {}, queue(), {}
    self.slots, self.granted, self.granted_count = queue(), {}, 0
    self.read_slots, self.fresh = queue(), queue()
    self.multi:close()
  end
end

return closing
