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

-- retrieve(ids, deadline) -> { [id] = task } | nil, err   (see Client:_retrieve_many)
function Poller.new(scheduler, retrieve, window)
  return setmetatable({ scheduler = scheduler, retrieve = retrieve, window = window }, Poller)
end

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
  local ok, found, err = scheduler:pcall(self.retrieve, live_ids(batch), batch.deadline)
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
