-- Coalesces the polls of concurrent waits into retrieve_batch requests, so a
-- client following hundreds of jobs sends a few requests per interval, not
-- hundreds (and stays clear of the API's rate limit).
--
-- A wait hands the poller its next poll with the time it falls due. A batch
-- goes out when the first member falls due; it takes every member due within
-- poll_batch_window, then fills its 50 ids with the members due soonest,
-- polling each at most half its delay early (or as early as its wait
-- allows: a poll near its task's expected end, see Engine:wait, only by a
-- small margin). So polls that started spread
-- over seconds (a game's submits, paced one frame at a time) fall into step
-- after a round or two, and a round of 1,000 waits costs 20 requests.
--
-- The request is sent by an internal job, not by one of the waiting callers,
-- so cancelling any caller never strands the others. Its answer is decoded
-- apart from the caller's heap (src/records.c) and read out a record at a
-- time, within the steps' budgets, where one decode of 50 records allocated
-- 50 KB at once (docs/design.md, "A batched answer is decoded apart").
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local core = require "kling.core"
local errors = require "kling.errors"
local heap = require "kling.heap"
local task = require "kling.task"

local now = core.now

local Poller = {}
Poller.__index = Poller

-- The API documents no limit on ids per batch; this keeps bodies small.
local MAX_BATCH = 50

-- How early a member may be polled to fill a batch: this share of its delay.
-- A poll taken early only moves that wait's next poll earlier; a request
-- that goes out anyway carries it, so it costs no request of its own.
local EARLY_SHARE = 0.5

local function str(v)
  if type(v) == "string" and v ~= "" then return v end
end

-- The batch answer's list, kept apart and found by id (kling.records).
local APART = { list = "items", key = "id" }

-- engine: retrieve(id, deadline), noted(task), transport, redact, closed
-- (see engine.lua); window: how close together polls must fall due to share
-- a request.
function Poller.new(engine, window)
  return setmetatable({
    engine = engine, scheduler = engine.scheduler, window = window,
    waiting = {}, -- members whose poll is not sent yet: a heap by due time (kling.heap)
    live = 0,     -- how many of them are not cancelled
    armed = nil,  -- the batch job that sleeps until the first member falls due
  }, Poller)
end

-- ---- batch retrieval ----

-- One retrieve_batch request: its records (a kling.records, or { [id] =
-- record } where no decoder could be made), or nil and an error.
function Poller:batch_records(ids, deadline)
  local engine = self.engine
  if engine.closed then return nil, errors.closed() end
  local body, err = engine.transport:call("/kling/tasks", { action = "retrieve_batch", ids = ids }, deadline, APART)
  if not body then return nil, err end
  local items = body.items
  if type(items) == "userdata" and items ~= core.null then return items end
  if type(items) ~= "table" then
    return nil, errors.new("bad_response", "the batch answer has no items list")
  end
  local by_id = {}
  for _, record in ipairs(items) do
    if type(record) == "table" and str(record.id) and by_id[record.id] == nil then by_id[record.id] = record end
  end
  return by_id
end

-- The tasks of ids: { [id] = task } (one id, asked alone), or nil and the
-- records of a batch (see batch_records); or nil, nil and an error.
function Poller:retrieve_many(ids, deadline)
  local engine = self.engine
  if #ids == 1 then -- the plain retrieve answers an unknown id with {}
    local t, err = engine:retrieve(ids[1], deadline)
    if t then return { [ids[1]] = t } end
    if err.kind == "not_found" then return {} end
    return nil, nil, err
  end
  local records, err = self:batch_records(ids, deadline)
  if not records then return nil, nil, err end
  return nil, records
end

-- The task of id in a batch's records, normalised and noted by the engine,
-- or nil when the answer has none.
function Poller:read(records, id)
  local record
  if type(records) == "userdata" then record = records:get(id) else record = records[id] end
  if record == nil then return nil end
  local engine = self.engine
  return engine:noted(task.normalize(record, id, engine.redact))
end

-- Records nobody reads any more: the decoder frees them now rather than
-- when the collector finds them.
function Poller.done_with(records)
  if type(records) == "userdata" then records:close() end
end

-- ---- batched polls ----
-- A member is the waiter of one poll: { id, due, early, deadline, batch }.

-- The ids of the members still waiting, once each.
local function live_ids(batch)
  local ids, seen = {}, {}
  for _, member in ipairs(batch.members) do
    if not member.cancelled and not seen[member.id] then
      seen[member.id] = true
      ids[#ids + 1] = member.id
    end
  end
  return ids
end

-- Takes the next batch out of the waiting members: those due by t, or soon
-- enough after it to be polled early, soonest first, at most MAX_BATCH.
function Poller:take(t)
  local waiting = self.waiting
  local batch = { members = {}, live = 0 }
  local members = batch.members
  while #members < MAX_BATCH do
    local member = waiting[1]
    if not member then break end
    if member.cancelled then
      heap.pop(waiting)
    elseif member.due - member.early > t then
      break
    else
      heap.pop(waiting)
      self.live = self.live - 1
      member.batch = batch
      members[#members + 1] = member
      batch.live = batch.live + 1
      local deadline = member.deadline
      if deadline and (batch.deadline == nil or deadline < batch.deadline) then batch.deadline = deadline end
    end
  end
  return batch
end

local NOT_NEEDED = errors.new("cancelled", "no wait needs this poll any more")

-- Keeps one batch job asleep until the first waiting member falls due
-- (none when no member waits, so that an idle client sleeps).
function Poller:arm()
  local waiting, armed = self.waiting, self.armed
  while waiting[1] and waiting[1].cancelled do heap.pop(waiting) end
  local first = waiting[1]
  if armed and first and armed.due <= first.due then return end
  if armed then
    self.armed = nil
    self.scheduler:cancel(armed.job, NOT_NEEDED)
  end
  if not first then return end
  local send = { due = first.due }
  self.armed = send
  send.job = self.scheduler:spawn_internal(function() self:send(send) end)
end

-- The batch job: sleeps until its time, takes a batch, arms the next one and
-- sends this one.
function Poller:send(send)
  local scheduler = self.scheduler
  local left = send.due - now()
  if left > 0 then scheduler:sleep(left) end
  if self.armed == send then self.armed = nil end
  local batch = self:take(now())
  self:arm()
  if batch.live == 0 then return end
  batch.job = send.job
  self:flush(batch)
end

function Poller:flush(batch)
  local scheduler = self.scheduler
  local ok, found, records, err = scheduler:pcall(self.retrieve_many, self, live_ids(batch), batch.deadline)
  batch.answered = true
  if not ok then
    err = errors.new("bad_response", "task retrieval failed: " .. tostring(found))
    found, records = nil, nil
  end
  -- a member carries its own answer (Poller:poll reads it): no table per
  -- wake for the collector to sweep later. Records are read while the
  -- answer is fresh in the CPU's caches (read later, by each member's job,
  -- they cost several times more), a step's budget at a time.
  for _, member in ipairs(batch.members) do
    if member.cancelled then
      -- a finished task is still noted (the journal keeps its outcome)
      if records then self:read(records, member.id) end
    elseif found or records then
      local t
      if found then t = found[member.id] else t = self:read(records, member.id) end
      if t then member.task = t else member.err = task.not_found(member.id) end
      scheduler:wake_later(member)
      if records then scheduler:give_way() end
    else
      local e = setmetatable({}, getmetatable(err))
      for k, v in pairs(err) do e[k] = v end
      e.task_id = e.task_id or member.id
      member.err = e
      scheduler:wake_later(member)
    end
  end
  if records then Poller.done_with(records) end
end

-- A member's wait was cancelled (Scheduler:drop passes it). Waiting: the
-- batch job sleeps no longer for it. In a batch: once no member is left, the
-- batch is not sent (or, on the wire, dropped), so a client nobody waits on
-- stays idle.
local function left(member)
  local self, batch = member.poller, member.batch
  if not batch then
    self.live = self.live - 1
    if self.live == 0 then self:arm() end
    return
  end
  batch.live = batch.live - 1
  if batch.live > 0 or batch.answered or not batch.job then return end
  self.scheduler:cancel(batch.job, NOT_NEEDED)
end

-- What a poll's wait returns when the client closes meanwhile.
local CLOSED = {}

-- Polls task_id once delay seconds (default 0) have passed, or up to half of
-- them (`early` seconds, when given) earlier when a batch going out has
-- room. Returns the normalised task, or nil and an error, as a single
-- retrieval would. deadline (monotonic seconds, optional) bounds the retry
-- sleeps: a batch keeps its members' earliest, so no member's wait
-- overruns; the others just poll again. member (optional): a table the
-- caller keeps for the polls of one wait, made the member of each in turn:
-- a wait polls many times, and a table per poll was garbage for the
-- collector (docs/design.md, "What is left of a paced step"). The batch
-- that answered a poll is done with it by the time the poll returns.
function Poller:poll(task_id, deadline, delay, early, member)
  delay = delay or 0
  local window = self.window
  member = member or {}
  member.kind, member.on_cancel, member.poller, member.id, member.deadline = "event", left, self, task_id, deadline
  -- polls asked for within the window gather before they go
  member.due = now() + math.max(delay, window)
  member.early = early or math.max(window, delay * EARLY_SHARE)
  -- what the previous poll left: its batch, its answer, its wake
  member.batch, member.task, member.err, member.cancelled = nil, nil, nil, nil
  member.done, member.value, member.job = nil, nil, nil
  heap.push(self.waiting, member)
  self.live = self.live + 1
  self:arm()
  if self.scheduler:await(member, CLOSED) == CLOSED then return nil, errors.closed() end
  return member.task, member.err
end

return Poller
