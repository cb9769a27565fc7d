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

function Poller:flush(batch)
  local scheduler = self.scheduler
  scheduler:sleep(self.window)
  if self.open == batch then self.open = nil end
  local ok, found, err = scheduler:pcall(self.retrieve, batch.ids, batch.deadline)
  if not ok then
    err = errors.new("bad_response", "task retrieval failed: " .. tostring(found))
    found = nil
  end
  for _, member in ipairs(batch.members) do
    if found then
      local t = found[member.id]
      scheduler:wake(member.waiter, t and { t } or { nil, task.not_found(member.id) })
    else
      local e = setmetatable({}, getmetatable(err))
      for k, v in pairs(err) do e[k] = v end
      e.task_id = e.task_id or member.id
      scheduler:wake(member.waiter, { nil, e })
    end
  end
end

-- Returns the normalised task, or nil and an error, as a single retrieval would.
-- deadline (monotonic seconds, optional) bounds the retry sleeps: a batch keeps
-- its members' earliest, so no member's wait overruns; the others just poll again.
function Poller:poll(task_id, deadline)
  local batch = self.open
  if not batch or #batch.ids >= MAX_BATCH then
    batch = { ids = {}, seen = {}, members = {} }
    self.open = batch
    self.scheduler:spawn_internal(function() self:flush(batch) end)
  end
  if deadline and (batch.deadline == nil or deadline < batch.deadline) then
    batch.deadline = deadline
  end
  if not batch.seen[task_id] then
    batch.seen[task_id] = true
    batch.ids[#batch.ids + 1] = task_id
  end
  local waiter = { kind = "event" }
  batch.members[#batch.members + 1] = { id = task_id, waiter = waiter }
  local r = self.scheduler:await(waiter, { nil, errors.closed() })
  return r[1], r[2]
end

return Poller
