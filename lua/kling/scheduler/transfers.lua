-- The scheduler's transfers: sending a request and waiting for its answer,
-- admission into libcurl (at most max_in_flight at once, the rest waiting
-- their turn in order), the bodies held for the journal's hand-over
-- (handover.lua), progress reports, and handing finished transfers to their
-- waiters, whose jobs then resume within a step's budget. Methods of
-- Scheduler (scheduler/init.lua).
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local fifo = require "kling.scheduler.queue"

local push, pop = fifo.push, fifo.pop

local transfers = {}

-- internal: wait_for, checkpoint (from scheduler/init.lua); this file adds
-- closed_result and perform_failed.
function transfers.extend(Scheduler, internal)
  local wait_for, checkpoint = internal.wait_for, internal.checkpoint

  -- What a transfer "returns" when kling.core could not start it.
  local function setup_failed(err)
    return { reason = "setup", error = err, status = 0, headers = {} }
  end

  -- kling.core's perform failed: libcurl's multi handle is unusable.
  local function multi_failed(message)
    error("kling: libcurl multi failure: " .. tostring(message), 0)
  end

  -- What a transfer "returns" once the client is closed. in_flight: it had
  -- been handed to libcurl, so a submit may have reached the server.
  local function closed_result(in_flight)
    return { reason = "closed", error = "the client is closed", status = 0, headers = {}, in_flight = in_flight }
  end

  local function closed_in_flight() return closed_result(true) end

  local function closed_not_in_flight() return closed_result(false) end

  local NO_OPTS = {}

  -- Nothing but the caller could move: no job, timer, queued work, journal,
  -- verbose sink or transfer.
  local function idle(self)
    local runnable, slots, reads = self.runnable, self.slots, self.read_slots
    return next(self.live) == nil and self.timers[1] == nil and next(self.transfers) == nil
      and runnable.first > runnable.last and slots.first > slots.last
      and reads.first > reads.last and self.fresh.first > self.fresh.last
      and self.flushers[1] == nil and self.log == nil and not self.stepping and not self.closed
  end

  -- A blocking request on an idle client (a script calling client:task in a
  -- loop): nothing else can progress meanwhile, so it waits in libcurl
  -- directly (multi:run, one C call) rather than through step().
  local function transfer_alone(self, request)
    self.alone = self.alone + 1 -- (a spec holds this path to its use: docs/design.md, "Forks kept for speed")
    local result, message, failed = self.multi:run(request)
    if result then return result end
    if failed == "setup" then return setup_failed(message) end
    multi_failed(message)
  end

  -- Sends a request and waits for its result table (see src/transfer.c).
  -- opts.shield: a submit (it may be billed once sent) is never dropped by a
  -- cancel once handed over: the job waits for its answer, so the task id is
  -- known. opts.hold_key: its body is held until the journal has recorded the
  -- hand-over of that key (see Scheduler:held). opts.progress(sent, to_send,
  -- received, to_receive) is called after each step while it runs.
  --
  -- At most max_in_flight transfers are in libcurl at once; the others wait
  -- here, in order, for a place (a burst of 10,000 submits then holds 10,000
  -- small Lua tables, not 10,000 easy handles). Nothing of theirs was sent.
  -- A blocking call on an idle client takes transfer_alone.
  --
  -- opts.read: a read (a poll, a task): it waits behind other reads only,
  -- never behind a burst of submits, so that polls keep their time while
  -- hundreds of submits wait for a place.
  function Scheduler:transfer(request, opts)
    local job = self:current_job()
    local read = opts ~= nil and opts.read
    if not job and (opts == nil or read) and idle(self) then return transfer_alone(self, request) end
    opts = opts or NO_OPTS
    checkpoint(job)
    if self.closed then return closed_result(false) end
    local slots, reads = self.slots, self.read_slots
    if reads.first <= reads.last or (not read and slots.first <= slots.last)
      or self.multi:count() + self.granted_count >= self.max_in_flight then
      local slot = { kind = "event" }
      push(read and reads or slots, slot)
      self:await(slot)
      if self.granted[slot] then self.granted[slot], self.granted_count = nil, self.granted_count - 1 end
      if self.closed then return closed_result(false) end
      checkpoint(job) -- a cancellation that fell due meanwhile ends the job before anything is sent
    end
    local id, err = self.multi:add(request)
    if not id then return setup_failed(err) end
    local waiter = { kind = "transfer", id = id, shield = opts.shield, progress = opts.progress,
                     hold_key = opts.hold_key }
    if opts.progress then self.reporting[id] = waiter end
    self.transfers[id] = waiter
    return wait_for(self, job, waiter, opts.shield and closed_in_flight or closed_not_in_flight)
  end

  -- The held bodies waiting for the journal: { { id =, key = }, ... }.
  function Scheduler:held()
    local list = {}
    if self.closed then return list end
    for _, id in ipairs(self.multi:held()) do
      local w = self.transfers[id]
      if w and w.hold_key then list[#list + 1] = { id = id, key = w.hold_key } end
    end
    return list
  end

  -- The journal is recording the hand-over of held body id: from now on the
  -- submit counts as on the wire (a cancel waits for its answer), since the
  -- journal will say "sending".
  function Scheduler:handing(id)
    local w = self.transfers[id]
    if w then w.handing = true end
  end

  -- Lets a held body go (ok), or ends its transfer with nothing of it sent.
  -- Also while the client closes: a hand-over committed meanwhile is sent.
  function Scheduler:release(id, ok)
    if self.transfers[id] then self.multi:release(id, ok) end
  end

  -- Is this waiter a shielded request that libcurl has begun to send? One
  -- still queued or connecting has sent nothing and may be dropped.
  function Scheduler:on_the_wire(w)
    return w ~= nil and w.kind == "transfer" and w.shield and self.transfers[w.id] ~= nil
      and (w.handing or self.multi:handed_over(w.id) ~= false)
  end

  -- Grants the free places in libcurl to the transfers waiting for one.
  function Scheduler:grant_slots()
    for slot in pairs(self.granted) do -- places given to callers that ended meanwhile
      if slot.cancelled then self.granted[slot], self.granted_count = nil, self.granted_count - 1 end
    end
    local free = self.max_in_flight - self.multi:count() - self.granted_count
    local reads, q = self.read_slots, self.slots
    while free > 0 do
      local slot = pop(reads) or pop(q) -- reads first
      if not slot then return end
      if not slot.cancelled then
        self.granted[slot], self.granted_count = true, self.granted_count + 1
        self:wake_later(slot)
        free = free - 1
      end
    end
  end

  -- Progress reports are the caller's code: one that raises is switched off.
  function Scheduler:report_progress()
    for id, w in pairs(self.reporting) do
      if self.transfers[id] ~= w then
        self.reporting[id] = nil
      else
        local sent, to_send, received, to_receive = self.multi:progress(id)
        if sent and not pcall(w.progress, sent, to_send, received, to_receive) then self.reporting[id] = nil end
      end
    end
  end

  -- Hands one finished transfer to its waiter, whose job joins the runnable
  -- queue (it resumes within the step's budget).
  local function give(self, res)
    local id = res.id
    local waiter = self.transfers[id]
    if not waiter then return end
    if self.reporting[id] then -- the last report: where it ended
      self.reporting[id] = nil
      pcall(waiter.progress, res.sent_bytes or 0, res.to_send or 0, res.bytes or 0, res.to_receive or 0)
    end
    self.transfers[id] = nil
    self:wake_later(waiter, res)
  end

  function Scheduler:dispatch(results, log)
    if next(self.reporting) then self:report_progress() end
    for i = 1, #results do give(self, results[i]) end
    -- last, and guarded: a verbose sink that raises is switched off, and
    -- neither strands a finished transfer nor raises from the caller's call
    if log and self.log then
      local ok, err = pcall(self.log, log)
      if not ok then
        self.log = nil
        if self.on_log_error then self.on_log_error(err) end
      end
    end
  end

  internal.closed_result, internal.perform_failed = closed_result, multi_failed
end

return transfers
