-- Runs every call of a client on one libcurl multi handle.
--
-- A call waits on a "waiter": a transfer, a timer or an event. Inside a job
-- (a coroutine started by client:spawn) the wait yields and step() resumes
-- the job once the waiter is done; anywhere else the wait drives step()
-- itself until its own waiter is done, so jobs spawned earlier keep
-- progressing meanwhile. This file is the loop and the jobs; transfers and
-- their admission into libcurl are scheduler/transfers.lua, closing and
-- draining scheduler/closing.lua.
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local core = require "kling.core"
local compat = require "kling.compat"
local fifo = require "kling.scheduler.queue"
local Job = require "kling.job"
local heap = require "kling.heap"

local now = core.now
local pack, unpack = compat.pack, compat.unpack

local Scheduler = {}
Scheduler.__index = Scheduler

-- What the scheduler's other files share with this one (they extend
-- Scheduler: scheduler/transfers.lua, scheduler/closing.lua).
local internal = {}

local queue, push, pop = fifo.new, fifo.push, fifo.pop

-- Work per step: results built from finished transfers stop at their share
-- of the budget (one at least) and jobs resumed at the budget (one at least,
-- unless the results took all of it: see step); the rest waits, in order,
-- for the next step, which then does not sleep. The budget bounds the
-- latency of one step, not the rate of work: a host that steps rarely (a
-- game, once per 16.7 ms frame) gets a larger share per step than one that
-- steps in a busy loop, so that a paced loop keeps up with the same work
-- (make bench MODE=paced). Without a budget from the caller (step(0, budget)), a step
-- may use PACED_SHARE of the time since the previous step ended, from
-- STEP_BUDGET up to MAX_AUTO_BUDGET: 0.3 ms in a busy loop, 0.67 ms at
-- 60 Hz, 4 ms on a 100 ms timer. libcurl's own work runs on its thread,
-- not in a step (docs/design.md, "libcurl's thread"); the collector's does
-- not: it is what still takes a 60 Hz step(0) over 1 ms now and then.
-- 4 %, not 3 %: on Lua 5.4, 3 % made the last of 1,000 submits come up to
-- 2.5 s later (docs/design.md, "What is left of a paced step").
local STEP_BUDGET = 0.0003
local MAX_AUTO_BUDGET = 0.004
local PACED_SHARE = 0.04
-- Of a step's budget, what building finished transfers' results may use
-- (at least one is built); the jobs have the rest.
local RESULTS_SHARE = 0.3

-- What a job yields to say "resume me when this waiter is done".
local WAIT = setmetatable({}, { __tostring = function() return "kling.wait" end })
-- What a job yields to say "my cancellation is due: end me here".
local CANCEL = setmetatable({}, { __tostring = function() return "kling.cancel" end })

-- log(text) receives verbose output; on_log_error(err) is told once if log
-- raises (it is switched off then: a diagnostic sink must not break calls).
-- max_in_flight: transfers in libcurl at once, at most (see Scheduler:transfer).
function Scheduler.new(multi, log, on_log_error, max_in_flight)
  return setmetatable({
    max_in_flight = max_in_flight or 256,
    slots = queue(),      -- waiters for a place in libcurl, in order
    read_slots = queue(), -- the same for reads (polls): they go first (Scheduler:transfer)
    granted = {},         -- slot waiters given a place, not yet resumed
    granted_count = 0,
    multi = multi,
    log = log,            -- function(text) or nil
    on_log_error = on_log_error,
    transfers = {},       -- transfer id -> waiter
    reporting = {},       -- transfer id -> waiter with a progress function
    flushers = {},        -- functions run at each flush point (the journal's group commit)
    wake_fds = {},        -- descriptors readable when a flusher has work (see add_flusher)
    busy = {},            -- functions: does a flusher have work a job waits for?
    timers = {},          -- timer waiters, a heap by due time (kling.heap)
    jobs = {},            -- coroutine -> job (bridges of yieldable pcall included)
    live = {},            -- job -> true until it ends
    live_count = 0,
    runnable = queue(),   -- jobs to resume on the next step
    fresh = queue(),      -- spawned jobs not yet run: they start after the woken ones (run_runnable)
    resuming = 0,         -- Scheduler:resume calls under way (a job is running)
    jobs_put_off = false, -- the last step's results took its whole budget: this one runs a job
    stepping = false,
    alone = 0,            -- blocking requests that waited in libcurl directly (scheduler/transfers.lua)
  }, Scheduler)
end

-- The job the caller runs in, or nil. Only Scheduler:resume runs jobs, so
-- outside one the answer is nil without asking coroutine.running (which
-- LuaJIT does not compile: every blocking call would leave its trace).
function Scheduler:current_job()
  if self.resuming == 0 then return nil end
  local co = coroutine.running()
  return co and self.jobs[co]
end

-- ---- waiting ----

-- A job whose cancellation was put off (its submit was on the wire) ends at
-- its next wait, unless it is inside a protected section (its on_submit hook).
local function checkpoint(job)
  if job and job.cancel_error and job.protected == 0 then coroutine.yield(CANCEL) end
end

-- The error a caller whose cancellation was put off should end with: the
-- job's own, or for a blocking caller the client's closing error. nil if
-- the caller was neither cancelled nor closed on.
function Scheduler:cancellation()
  local job = self:current_job()
  if job then return job.cancel_error end
  if self.closed then return self.close_error() end
end

local function unprotect(job, ...)
  if job then job.protected = job.protected - 1 end
  return ...
end

-- Runs fn(...) so that a cancellation arriving meanwhile waits until it returns.
function Scheduler:protect(fn, ...)
  local job = self:current_job()
  if job then job.protected = job.protected + 1 end
  return unprotect(job, self:pcall(fn, ...))
end

local step -- one step of the engine, below

local function step_until(self, waiter)
  while not waiter.done and not self.closed do step(self, 3600, STEP_BUDGET) end
end

-- Runs fn(self, arg) as the engine's stepping: a blocking call from inside
-- it is refused (wait_for), and an error leaves the engine able to step again.
local function stepping(self, fn, arg, arg2)
  self.stepping = true
  local ok, err = pcall(fn, self, arg, arg2)
  self.stepping = false
  if not ok then error(err, 0) end
end

-- Waits for waiter as job (nil: a blocking caller), without the checkpoint.
local function wait_for(self, job, waiter, closed_value)
  if job then
    job.waiter, waiter.job = waiter, job
    local value = coroutine.yield(WAIT, waiter)
    job.waiter = nil
    return value
  end
  if self.stepping then
    error("kling: a blocking call from inside client:step() (in a coroutine the client did not "
      .. "spawn?); make the call from the spawned job itself", 4)
  end
  if self.owner then
    error(("kling: a blocking call on a client stepped by %s; spawn a job that makes the call "
      .. "and wait for the job through %s"):format(self.owner_name, self.owner_name), 4)
  end
  -- the steps of one blocking wait run in one protected call (as step() does)
  stepping(self, step_until, waiter)
  if waiter.done then return waiter.value end
  if type(closed_value) == "function" then return closed_value() end
  return closed_value
end

-- closed_value is what a blocking caller gets if the client closes meanwhile
-- (a function: what it returns, made only then).
function Scheduler:await(waiter, closed_value)
  local job = self:current_job()
  checkpoint(job)
  return wait_for(self, job, waiter, closed_value)
end

function Scheduler:sleep(seconds)
  checkpoint(self:current_job())
  if self.closed then return end
  local waiter = { kind = "timer", due = now() + math.max(seconds, 0) }
  heap.push(self.timers, waiter)
  self:await(waiter)
end

-- For a job's long loop (one batched answer read out for fifty waits): past
-- the running step's budget, the job waits for the next step, so that no
-- loop holds a step past its budget.
function Scheduler:give_way()
  local deadline = self.deadline
  if deadline and now() >= deadline then self:sleep(0) end
end

function Scheduler:next_timer_in(limit)
  local first = self.timers[1]
  if first then return math.max(0, math.min(limit, first.due - now())) end
  return limit
end

-- ---- jobs ----

-- Work fell due outside a step (a job spawned or woken from elsewhere): a
-- host waiting on pollfd() sees the descriptor readable, and one that cannot
-- watch it is told through on_ready (see Scheduler:set_on_ready).
local function announce(self)
  if self.stepping then return end -- the step sees it
  if self.pollable then self.multi:wake() end
  local on_ready = self.on_ready
  if on_ready then pcall(on_ready) end -- a host's wake-up must not break a spawn
end

local function start(self, job)
  self.live[job] = true
  if not job.internal then self.live_count = self.live_count + 1 end
  -- the client's own jobs (a batched poll) work for jobs already under way:
  -- they go with the woken ones, not behind a burst of spawns
  push(job.internal and self.runnable or self.fresh, job)
  announce(self)
  return job
end

function Scheduler:spawn(fn, ...)
  return start(self, Job.new(self, fn, pack(...)))
end

-- A job of the client's own (a batched poll): stepped like any other, not
-- counted by pending(), since it only ever works for callers that are.
function Scheduler:spawn_internal(fn)
  local job = Job.new(self, fn, pack())
  job.internal = true
  return start(self, job)
end

-- fn() runs at each flush point of a step: after the jobs ran and before
-- libcurl is driven, and at the end of the step. fd (optional): a descriptor
-- that is readable when fn has work (a journal's writer finished some): a
-- step waiting on libcurl wakes for it. busy() (optional): true while a job
-- waits for fn's work, which closing the client then lets finish. Any
-- number of flushers (up to kling.core's 8 descriptors) may be added.
function Scheduler:add_flusher(fn, fd, busy)
  self.flushers[#self.flushers + 1] = fn
  if fd then
    self.wake_fds[#self.wake_fds + 1] = fd
    if self.pollable then self.multi:pollfd(self.wake_fds) end
  end
  if busy then self.busy[#self.busy + 1] = busy end
end

-- Does a flusher still have work a job waits for?
local function flushers_busy(self)
  for _, busy in ipairs(self.busy) do
    if busy() then return true end
  end
  return false
end

-- True when a flusher has work left for the next flush point.
function Scheduler:flush()
  local more = false
  for _, fn in ipairs(self.flushers) do
    if fn() then more = true end
  end
  return more
end

-- fn() runs when the current job ends, however it ends (a cancel included);
-- outside a job, nothing. For clean-ups that must not be skipped.
function Scheduler:on_exit(fn)
  local job = self:current_job()
  if not job then return end
  job.exits = job.exits or {}
  job.exits[#job.exits + 1] = fn
end

function Scheduler:finish(job)
  if self.live[job] then
    self.live[job] = nil
    if not job.internal then self.live_count = self.live_count - 1 end
  end
  if job.co then self.jobs[job.co] = nil end
  for _, fn in ipairs(job.exits or {}) do pcall(fn) end
  job.exits = nil
  for _, waiter in ipairs(job.watchers or {}) do
    if not waiter.done then self:wake(waiter) end
  end
end

-- From inside a job: yields until `job` ends or timeout seconds pass.
function Scheduler:await_job(job, timeout)
  local waiter = { kind = "event" }
  job.watchers = job.watchers or {}
  job.watchers[#job.watchers + 1] = waiter
  if timeout then
    heap.push(self.timers, { kind = "timer", due = now() + math.max(timeout, 0), fires = waiter })
  end
  self:await(waiter)
end

-- What a resume returned (coroutine.resume's values, as arguments: a job is
-- resumed at every wake, and a table for them each time was garbage that
-- the collector swept inside later steps; docs/design.md, "What is left of
-- a paced step").
local function resumed(self, job, ok, ...)
  self.resuming = self.resuming - 1
  if not ok then
    local err = ...
    job:fail(job.cancel_error or err, debug.traceback(job.co, tostring(err)))
    self:finish(job)
  elseif coroutine.status(job.co) == "dead" then
    -- a job cancelled meanwhile ends cancelled, whatever it returned
    if job.cancel_error then job:fail(job.cancel_error) else job:succeed(pack(...)) end
    self:finish(job)
  else
    local yielded = ...
    if yielded == CANCEL then
      job:fail(job.cancel_error)
      self:finish(job)
      compat.close_coroutine(job.co)
    elseif yielded ~= WAIT then
      -- the job yielded on its own: resume it on the next step
      push(self.runnable, job)
    end
  end
end

function Scheduler:resume(job, ...)
  if job.state ~= "running" then return end
  local co = job.co
  if not co then -- its first run: the coroutine is made here, in the step
    co = job:thread()
    self.jobs[co] = job
  end
  self.resuming = self.resuming + 1
  resumed(self, job, coroutine.resume(co, ...))
end

-- Forgets a waiter nobody will wait on any more; a transfer is dropped from libcurl.
function Scheduler:drop(waiter)
  if waiter.kind == "transfer" then
    if self.transfers[waiter.id] then
      self.transfers[waiter.id] = nil
      self.multi:cancel(waiter.id)
    end
  else
    waiter.cancelled = true
  end
  if waiter.on_cancel then waiter.on_cancel(waiter) end
end

-- Ends a job now, wherever it waits.
function Scheduler:stop(job, err)
  if job.waiter then self:drop(job.waiter) end
  job:fail(err)
  self:finish(job)
  if job.co and coroutine.running() ~= job.co then compat.close_coroutine(job.co) end
end

-- pcall that a job may yield through, even on PUC Lua 5.1.
function Scheduler:pcall(fn, ...)
  local job = self:current_job()
  if compat.pcall_yields or not job then return pcall(fn, ...) end
  local co = coroutine.create(fn)
  self.jobs[co] = job
  local r = pack(coroutine.resume(co, ...))
  while r[1] and coroutine.status(co) ~= "dead" do
    r = pack(coroutine.resume(co, coroutine.yield(unpack(r, 2, r.n))))
  end
  self.jobs[co] = nil
  return unpack(r, 1, r.n)
end

-- ---- stepping ----

function Scheduler:wake(waiter, value)
  waiter.done, waiter.value = true, value
  local job = waiter.job
  if job then self:resume(job, value) end
end

-- As wake, but the job resumes in a later run of the runnable queue, within
-- a step's budget: for fan-outs (one poll answering fifty waits), so that one
-- answer never resumes everyone in the same step.
function Scheduler:wake_later(waiter, value)
  waiter.done, waiter.value = true, value
  local job = waiter.job
  if job then
    job.woken_by = waiter
    push(self.runnable, job)
    announce(self)
  end
end

-- Due timers make their jobs runnable (they resume in run_runnable, within
-- a step's budget); thousands falling due at once move until deadline.
function Scheduler:fire_timers(deadline)
  local t = now()
  local timers = self.timers
  while timers[1] and timers[1].due <= t do
    local waiter = heap.pop(timers)
    local target = waiter.fires or waiter -- a timeout wakes the waiter it guards
    if not waiter.cancelled and not target.done then
      self:wake_later(target)
      if now() >= deadline then return end
    end
  end
end

-- Resumes the jobs that were runnable when it began (one that yields on its
-- own goes to the back: it runs again next step at the earliest): first the
-- jobs under way that were woken, then the new ones. Work in progress (a
-- poll's answer, a submit's task id) is never held up behind a burst of
-- 1,000 spawns, which would otherwise all start before it resumes.
-- (The jobs of queue q that were in it when it began; false once the
-- deadline passed.)
local function run_queue(self, q, deadline)
  local stop = q.last
  while q.first <= stop do
    local job = pop(q)
    local woken_by = job.woken_by
    if woken_by then
      job.woken_by = nil
      self:resume(job, woken_by.value)
    else
      self:resume(job)
    end
    if now() >= deadline then return false end
  end
  return true
end

function Scheduler:run_runnable(deadline)
  if run_queue(self, self.runnable, deadline) then run_queue(self, self.fresh, deadline) end
end

-- ---- a host's event loop (client:pollfd) ----
-- A host waits for pollfd() to be readable or for timeout() seconds, then
-- steps. See docs/design.md, "Inside an event loop".

-- The descriptor that is readable whenever step() has work due now (a
-- transfer finished, a journal commit finished, a job became runnable), or
-- nil and why there is none.
function Scheduler:pollfd()
  local fd, err = self.multi:pollfd(self.wake_fds)
  if fd then self.pollable = true end
  return fd, err
end

-- A host that cannot watch pollfd() (OpenResty) looks this often while a
-- transfer or a journal commit is under way.
local BLIND_INTERVAL = 0.002
-- What timeout() says while a transfer is under way and nothing else is due.
local IN_FLIGHT_INTERVAL = 1

-- fn() is called whenever work falls due outside a step (a job spawned or
-- woken from elsewhere): for a host loop that cannot watch pollfd().
function Scheduler:set_on_ready(fn)
  self.on_ready = fn
end

-- From now on only the coroutine `thread` may step, and no call may block:
-- for a host whose coroutines belong to the request or timer that made them
-- (OpenResty), the jobs must all run in its loop. name: the loop, for errors.
function Scheduler:set_owner(thread, name)
  self.owner, self.owner_name = thread, name
end

-- Seconds until step() must run even if pollfd() stays quiet (the next
-- timer of kling's); 0 when work is due now; nil when nothing
-- is pending at all, so that nothing wakes the host. blind: for a host that
-- cannot watch pollfd(), at most BLIND_INTERVAL while sockets are in use.
function Scheduler:timeout(blind)
  if self.closed then return nil end
  local runnable, slots, fresh = self.runnable, self.slots, self.fresh
  if runnable.first <= runnable.last or fresh.first <= fresh.last or self.flush_more then return 0 end
  local reads = self.read_slots
  if (slots.first <= slots.last or reads.first <= reads.last)
    and self.multi:count() + self.granted_count < self.max_in_flight then return 0 end
  local t = self.multi:timer()
  local first = self.timers[1]
  if first then
    local due = math.max(0, first.due - now())
    if t == nil or due < t then t = due end
  end
  if next(self.reporting) and (t == nil or t > 0.1) then t = 0.1 end -- progress reports, 10 a second
  -- a transfer under way ends on libcurl's thread, and its end makes
  -- pollfd() readable; nil is for a client with nothing pending, so the
  -- host is asked back now and then all the same
  if t == nil and self.multi:count() > 0 then t = IN_FLIGHT_INTERVAL end
  if blind and (t == nil or t > BLIND_INTERVAL) and (self.multi:count() > 0 or flushers_busy(self)) then
    t = BLIND_INTERVAL
  end
  return t
end

function Scheduler:pending()
  return self.live_count
end

-- A job may close the client at any point of a step: each phase checks.
-- (Every call passes here at least once: the phases with nothing to do are
-- skipped inline.) Jobs resume in one place, last: what finished, what a
-- timer woke and what a journal commit woke only join the runnable queue on
-- the way, which costs next to nothing, so the budget bounds the whole step,
-- past it only by one result, or by one job when the step before put its
-- jobs off (docs/design.md, "What is left of a paced step").
function step(self, max_wait, budget)
  local deadline = now() + budget
  self.deadline = deadline
  local slots, runnable, timers, fresh = self.slots, self.runnable, self.timers, self.fresh
  local reads = self.read_slots
  if slots.first <= slots.last or reads.first <= reads.last then self:grant_slots() end
  local flushing = self.flushers[1] ~= nil
  local more = flushing and self:flush()
  self.flush_more = more
  local wait
  if runnable.first <= runnable.last or fresh.first <= fresh.last or more then
    wait = 0
  elseif timers[1] then
    wait = self:next_timer_in(max_wait)
  elseif next(self.transfers) == nil and self.live_count == 0 then
    wait = 0
  else
    wait = max_wait
  end
  local reporting = next(self.reporting) ~= nil
  if reporting then wait = math.min(wait, 0.1) end -- progress reports, 10 a second
  -- building results (decoding their JSON) gets RESULTS_SHARE of the
  -- budget; those past it stay in kling.core for the next step
  local results, log = self.multi:perform(wait, self.wake_fds, budget * RESULTS_SHARE)
  if not results then internal.perform_failed(log) end
  if results[1] or reporting or log then
    self:dispatch(results, log)
    if self.closed then return end
  end
  if slots.first <= slots.last or reads.first <= reads.last then self:grant_slots() end
  if timers[1] then self:fire_timers(deadline) end
  if runnable.first <= runnable.last or fresh.first <= fresh.last then
    -- results that took the whole budget (a decode in which the collector
    -- swept: docs/design.md, "What is left of a paced step") leave the jobs
    -- to the next step, which runs one at least whatever its results took
    if now() < deadline or self.jobs_put_off then
      self.jobs_put_off = false
      self:run_runnable(deadline)
      if self.closed then return end
    else
      self.jobs_put_off = true
    end
  end
  if flushing then self.flush_more = self:flush() end
end

-- Advances every transfer, timer and job; blocks at most max_wait seconds.
-- budget: seconds of work at most (see STEP_BUDGET); nil: as the host's pace allows.
function Scheduler:step(max_wait, budget)
  if self.closed then return 0 end
  if self.stepping then
    error("kling: client:step() called from inside a job or a hook", 3)
  end
  if self.owner and coroutine.running() ~= self.owner then
    error(("kling: this client is stepped by %s only (its jobs must all run there)"):format(self.owner_name), 3)
  end
  local started = now()
  if not budget then
    local since = started - (self.step_ended or started)
    budget = math.min(math.max(since * PACED_SHARE, STEP_BUDGET), MAX_AUTO_BUDGET)
  end
  stepping(self, step, max_wait or 0, budget)
  self.step_ended = now()
  -- work left for the next step (over this one's budget) keeps a host that
  -- waits on pollfd() coming back
  if self.pollable and self:timeout() == 0 then self.multi:wake() end
  return self.live_count
end

internal.wait_for, internal.checkpoint, internal.flushers_busy = wait_for, checkpoint, flushers_busy
require("kling.scheduler.transfers").extend(Scheduler, internal)
require("kling.scheduler.closing").extend(Scheduler, internal)

return Scheduler
