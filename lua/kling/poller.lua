-- Coalesces the polls of concurrent waits: polls that fall due within
-- poll_batch_window of each other go out as one retrieve_batch request, so a
-- client following hundreds of jobs sends a few requests per interval, not
-- hundreds (and stays clear of the API's rate limit).
--
-- The request is sent by an internal job, not by one of the waiting callers,
-- so cancelling any caller never strands the others.
local errors = require "kling.errors"
local task = require "kling.task"

local Poller = {}
Poller.__index = Poller

-- The API documents no limit on ids per batch; this keeps bodies small.
local MAX_BATCH = 50

local function str(v)
  if type(v) == "string" and v ~= "" then return v end
end

-- engine: retrieve(id, deadline), noted(task), transport, redact, closed
-- (see engine.lua); window: how close together polls must fall due to share
-- a request.
function Poller.new(engine, window)
  return setmetatable({ engine = engine, scheduler = engine.scheduler, window = window }, Poller)
end

-- ---- batch retrieval ----

-- One retrieve_batch request: { [id] = record }, or nil and an error.
function Poller:batch_records(ids, deadline)
  local engine = self.engine
  if engine.closed then return nil, errors.closed() end
  local body, err = engine.transport:call("/kling/tasks", { action = "retrieve_batch", ids = ids }, deadline)
  if not body then return nil, err end
  if type(body.items) ~= "table" then
    return nil, errors.new("bad_response", "the batch answer has no items list")
  end
  local by_id = {}
  for _, record in ipairs(body.items) do
    if type(record) == "table" and str(record.id) then by_id[record.id] = record end
  end
  return by_id
end

-- { [id] = task } with unknown ids absent, or nil and an error.
function Poller:retrieve_many(ids, deadline)
  local engine = self.engine
  if #ids == 1 then -- the plain retrieve answers an unknown id with {}
    local t, err = engine:retrieve(ids[1], deadline)
    if t then return { [ids[1]] = t } end
    if err.kind == "not_found" then return {} end
    return nil, err
  end
  local records, err = self:batch_records(ids, deadline)
  if not records then return nil, err end
  local found = {}
  for id, record in pairs(records) do found[id] = engine:noted(task.normalize(record, id, engine.redact)) end
  return found
end

-- ---- batched polls ----

-- The ids of the members still waiting, once each.
local function live_ids(batch)
  local ids, seen = {}, {}
  for _, member in ipairs(batch.members) do
    if not member.waiter.cancelled and not seen[member.id] then
      seen[member.id] = true
      ids[#ids + 1] = member.id
    end
  end
  return ids
end

function Poller:flush(batch)
  local scheduler = self.scheduler
  scheduler:sleep(self.window)
  if self.open == batch then self.open = nil end
  local ok, found, err = scheduler:pcall(self.retrieve_many, self, live_ids(batch), batch.deadline)
  batch.answered = true
  if not ok then
    err = errors.new("bad_response", "task retrieval failed: " .. tostring(found))
    found = nil
  end
  for _, member in ipairs(batch.members) do
    if member.waiter.cancelled then -- luacheck: ignore 542
    elseif found then
      local t = found[member.id]
      scheduler:wake_later(member.waiter, t and { t } or { nil, task.not_found(member.id) })
    else
      local e = setmetatable({}, getmetatable(err))
      for k, v in pairs(err) do e[k] = v end
      e.task_id = e.task_id or member.id
      scheduler:wake_later(member.waiter, { nil, e })
    end
  end
end

-- A member's wait was cancelled: once no member is left, the batch is not
-- sent (or, on the wire, dropped), so a client nobody waits on stays idle.
function Poller:leave(batch)
  batch.live = batch.live - 1
  if batch.live > 0 or batch.answered then return end
  if self.open == batch then self.open = nil end
  self.scheduler:cancel(batch.job, errors.new("cancelled", "no wait needs this poll any more"))
end

-- What a poll returns when the client closes meanwhile, made only then.
local function closed_poll() return { nil, errors.closed() } end

-- A member's wait was cancelled (Scheduler:drop passes its waiter). Shared by
-- every member: a waiting job holds no closure of its own.
local function left(waiter) waiter.poller:leave(waiter.batch) end

-- Returns the normalised task, or nil and an error, as a single retrieval would.
-- deadline (monotonic seconds, optional) bounds the retry sleeps: a batch keeps
-- its members' earliest, so no member's wait overruns; the others just poll again.
function Poller:poll(task_id, deadline)
  local batch = self.open
  if not batch or #batch.members >= MAX_BATCH then
    batch = { members = {}, live = 0 }
    self.open = batch
    batch.job = self.scheduler:spawn_internal(function() self:flush(batch) end)
  end
  if deadline and (batch.deadline == nil or deadline < batch.deadline) then
    batch.deadline = deadline
  end
  local waiter = { kind = "event", on_cancel = left, poller = self, batch = batch }
  batch.members[#batch.members + 1] = { id = task_id, waiter = waiter }
  batch.live = batch.live + 1
  local r = self.scheduler:await(waiter, closed_poll)
  return r[1], r[2]
end

return Poller
