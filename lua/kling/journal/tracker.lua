-- The tracker: how the journal's writes are carried out, and who waits for
-- them. A job's writes are staged and committed on the journal's writer
-- thread (src/journal_writer.c): everything staged between two flush points
-- goes in one transaction (one fsync), and the step never waits for SQLite
-- or the disk. A job that acts on its write waits for the commit that holds
-- it; the writer's descriptor wakes a blocked step when commits are done. A
-- caller outside any job writes at once, on this thread's connection, which
-- first lets the writer finish (read-your-writes). See docs/design.md, "The
-- journal's writer". The statements themselves are the store's
-- (journal/store.lua); the hand-over of submits is handover.lua's, which
-- the tracker calls at each flush point.
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local compat = require "kling.compat"
local errors = require "kling.errors"

local Tracker = {}
Tracker.__index = Tracker

-- Outcomes acted on per flush point, at most (256: what one completed()
-- hands over).
local FLUSH_BUDGET = 64

local function journal_error(message)
  return errors.new("journal", message)
end

-- db: the kling.core journal handle (stage, publish, completed, barrier, fd, run).
function Tracker.new(db)
  return setmetatable({ db = db, waiters = {}, settlers = {}, staged_seq = 0, taken_seq = 0 }, Tracker)
end

-- From now on jobs of scheduler stage their writes; handover (optional) is
-- asked at each flush point to stage the hand-overs of newly held bodies,
-- and told each outcome of a write it staged (handover.lua).
function Tracker:attach(scheduler, handover)
  self.scheduler, self.handover = scheduler, handover
  scheduler:add_flusher(function() return self:flush() end, self.db:fd(), function()
    for _, waiter in pairs(self.waiters) do
      if not waiter.cancelled then return true end
    end
    return #self.settlers > 0
  end)
end

function Tracker:in_job()
  local scheduler = self.scheduler
  return scheduler ~= nil and scheduler:current_job() ~= nil
end

-- Stages one statement for the writer (a hand-over, which nothing waits
-- for but handover.lua); its sequence number.
function Tracker:stage(sql, ...)
  local seq = self.db:stage(sql, ...)
  self.staged_seq = seq
  return seq
end

-- What a write waiting for its commit returns once the client is closed.
local function closed_write() return { n = 2, nil, errors.closed() } end

-- One statement: the rows it changed, or nil and an error. wait = false: a
-- job does not wait for the commit (nothing it does next depends on it) and
-- gets true at once.
function Tracker:write(wait, sql, ...)
  if not self:in_job() then
    local n, err = self.db:run(sql, ...)
    if not n then return nil, journal_error(err) end
    return n
  end
  local seq = self:stage(sql, ...)
  if wait == false then return true end
  local waiter = { kind = "event" }
  self.waiters[seq] = waiter
  local r = self.scheduler:await(waiter, closed_write)
  return compat.unpack(r, 1, r.n)
end

-- Hands the writer the hand-overs of the bodies libcurl newly holds and what
-- jobs staged; takes up to `budget` outcomes and acts on them: a hand-over's
-- goes to handover.lua, a waiting job is made runnable (it resumes within a
-- step's budget). Returns true when outcomes are left for the next flush
-- point (the writer's descriptor stays readable meanwhile too).
function Tracker:flush(budget)
  local scheduler, db, handover = self.scheduler, self.db, self.handover
  budget = budget or FLUSH_BUDGET
  if handover then handover:stage_held(self) end
  db:publish()
  budget = math.min(budget, 256)
  local done = db:completed(budget)
  for i = 1, #done, 2 do
    local seq, outcome = done[i], done[i + 1]
    self.taken_seq = seq
    if not (handover and handover:completed(seq, outcome)) then
      local waiter = self.waiters[seq]
      if waiter then
        self.waiters[seq] = nil
        if type(outcome) == "number" then
          scheduler:wake_later(waiter, { n = 1, outcome })
        else
          scheduler:wake_later(waiter, { n = 2, nil, journal_error(outcome) })
        end
      end
    end
  end
  if #self.settlers > 0 and self.settlers[1].seq <= self.taken_seq then
    local waiting = self.settlers
    self.settlers = {}
    for _, s in ipairs(waiting) do
      if s.seq <= self.taken_seq then
        scheduler:wake_later(s.waiter, true)
      else
        self.settlers[#self.settlers + 1] = s
      end
    end
  end
  db:publish() -- what the woken jobs staged
  return #done >= 2 * budget
end

-- Inside a job: waits until every write staged so far (by any job) is
-- committed or failed. Settlers are kept in the order of their seq.
function Tracker:settle()
  if not self:in_job() or self.taken_seq >= self.staged_seq then return end
  local waiter = { kind = "event" }
  self.settlers[#self.settlers + 1] = { seq = self.staged_seq, waiter = waiter }
  self.scheduler:await(waiter, true)
end

-- Waits until the writer has committed everything staged, then acts on it
-- all (the client's close).
function Tracker:finish()
  if not self.scheduler then return end
  self.db:barrier()
  while self:flush(math.huge) do end
end

return Tracker
