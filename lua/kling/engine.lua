-- The engine: what every use case of a client shares (submitting, waiting,
-- uploads, webhooks, batches). It owns libcurl (through the scheduler and
-- the transport), the poller, the journal, the settings, the task ids this
-- client submitted and their callback tokens, the keys it is submitting,
-- the caller's hooks, and the retrieval of tasks. The use-case modules take
-- an engine and use only the methods and fields below; kling.client is the
-- public facade over it (argument checks and delegation).
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local core = require "kling.core"
local Durations = require "kling.durations"
local errors = require "kling.errors"
local Journal = require "kling.journal"
local Poller = require "kling.poller"
local Recent = require "kling.recent"
local retry = require "kling.retry"
local Scheduler = require "kling.scheduler"
local task = require "kling.task"
local Transport = require "kling.transport"

local now = core.now

local Engine = {}
Engine.__index = Engine

-- How many task ids an engine remembers for matching webhooks (and how many
-- finished deliveries it remembers): bounded, so a long-lived client does not grow.
local REMEMBERED_TASKS = 10000

local function log_sink(verbose)
  if type(verbose) == "function" then return verbose end
  if verbose then return function(text) io.stderr:write(text) end end
end

-- settings: from config.build; the tokens go into C at once and nowhere else.
-- on_verbose_error(err): a verbose function raised (it is switched off).
-- Returns the engine, or nil and an error.
function Engine.new(settings, token, platform_token, on_verbose_error)
  local journal, jerr
  if settings.journal then
    journal, jerr = Journal.open(settings.journal, settings.journal_sync)
    if not journal then return nil, jerr end
  end
  local multi, err = core.multi(settings.max_connections)
  if not multi then
    if journal then journal:close() end
    return nil, errors.new("network", "cannot start libcurl: " .. tostring(err))
  end
  -- the tokens live in C from here on; the Lua side keeps no reference to them
  multi:set_token(token)
  if platform_token then multi:set_token(platform_token, "platform") end
  settings.has_platform_token = platform_token ~= nil
  local self = setmetatable({
    settings = settings,
    journal = journal,                            -- the caller's view of it (nil without the journal option)
    store = journal and journal.store,            -- what the use cases read and write
    submitted = Recent.new(REMEMBERED_TASKS),      -- task ids submitted here (callbacks are matched to them)
    delivered = Recent.new(REMEMBERED_TASKS),      -- task ids whose finished state a callback reported
    callback_tokens = Recent.new(REMEMBERED_TASKS), -- task id -> its callback URL's token (no journal)
    active = {},                                  -- journal keys this client is submitting right now
    closed = false,
    last_retrieve = {},                           -- the last task id retrieved alone, and its request body
    durations = Durations.new(),                  -- how long finished tasks took (Engine:wait)
  }, Engine)
  local function on_log_error(e)
    settings.verbose = false
    if on_verbose_error then
      on_verbose_error(errors.hook("verbose", tostring(e) .. "; verbose output is off for this client"))
    end
  end
  -- transfers in libcurl at once: every connection busy and one more queued
  -- behind each. More only costs: 256 of them made steps of 1.5 ms during a
  -- burst of submits (make bench).
  self.scheduler = Scheduler.new(multi, log_sink(settings.verbose), on_log_error, 2 * settings.max_connections)
  if journal then journal.store:attach(self.scheduler) end
  local function redact(text) return multi:redact(text) end
  self.redact = redact
  self.transport = Transport.new(settings, self.scheduler, redact)
  self.poller = Poller.new(self, settings.poll_batch_window)
  return self
end

function Engine:is_closed()
  return self.closed
end

-- ---- hooks ----

-- Runs a hook of the caller's; an error it raises comes back as kind "hook".
-- A cancellation arriving meanwhile waits until the hook returns.
function Engine:call_hook(name, fn, arg, task_id)
  if not fn then return true end
  local ok, err = self.scheduler:protect(fn, arg)
  if ok then return true end
  return nil, errors.hook(name, err, task_id)
end

-- ---- retrieval ----

-- Every task read from the API passes here: a finished one is recorded in
-- the journal (by its task id), whichever call read it, and its duration
-- is learnt.
function Engine:noted(t)
  if t.done then
    if self.store then self.store:finished(t.id, t.result, t.error) end
    self.durations:note(t)
  end
  return t
end

-- A wait polls one task again and again: its request body is made once.
local function retrieve_body(self, task_id)
  local last = self.last_retrieve
  if last.id ~= task_id then
    last.id, last.body = task_id, core.encode({ action = "retrieve", id = task_id })
  end
  return last.body
end

-- One task, or nil and an error (not_found for an id the API does not know).
function Engine:retrieve(task_id, deadline)
  if self.closed then return nil, errors.closed() end
  local body, err = self.transport:call("/kling/tasks", retrieve_body(self, task_id), deadline)
  if not body then
    err.task_id = err.task_id or task_id
    return nil, err
  end
  if body.id == nil and body.response == nil and body.created_at == nil then
    return nil, task.not_found(task_id)
  end
  return self:noted(task.normalize(body, task_id, self.redact))
end

-- ---- waiting ----

-- When a wait polls near the time its task should be done (see
-- kling.durations): this share of the expected duration after it, from
-- poll_batch_window up to poll_interval. The poll may go out that much
-- earlier to fill a batch, never before the expected time.
local EXPECTED_MARGIN = 0.05

-- The delay before the next poll of a task still running, and how early a
-- batch may take that poll: near the time the task should be done, when
-- that comes before the poll interval would (once per wait: `predicted`).
local function next_delay(self, t, created, interval, predicted)
  local delay = retry.jitter(interval)
  if predicted or not (t and created) then return delay end
  local expected = self.durations:expected(t)
  if not expected then return delay end
  local s = self.settings
  local margin = math.min(math.max(expected * EXPECTED_MARGIN, s.poll_batch_window), s.poll_interval)
  local until_done = created + expected + margin - now()
  if until_done > 0 and until_done < delay then return until_done, margin end
  return delay
end

-- Polls task_id until it ends or `timeout` seconds pass. on_status(task)
-- after each poll; first_delay before the first; age: seconds since the task
-- was submitted, when known (0 for a task submitted just now): a resumed
-- job's polls go on at the interval they had grown to by now, and the
-- task is polled near the time tasks like it have taken (kling.durations).
function Engine:wait(task_id, timeout, on_status, first_delay, age)
  local s = self.settings
  local deadline = now() + timeout
  local interval, delay, early = s.poll_interval, first_delay, nil
  local created = age and now() - age -- on the monotonic clock
  local predicted = false
  if age and age > 0 then
    local t = 0
    while t + interval <= age and interval < s.max_poll_interval do
      t = t + interval
      interval = retry.next_poll_interval(interval, s)
    end
  end
  local state, last_err = "unknown", nil
  local member -- this wait's place among the poller's members, one for all its polls
  while true do
    local left = deadline - now()
    if delay > 0 and delay >= left then -- no poll falls due before the deadline
      if left > 0 then self.scheduler:sleep(left) end
      break
    end
    if self.closed then return nil, errors.closed() end
    -- the poller sleeps the delay (and may poll a little early, to fill a batch)
    member = member or {}
    local t, err = self.poller:poll(task_id, deadline, delay, early, member)
    if t then
      state, last_err = t.state, nil
      local ok, herr = self:call_hook("on_status", on_status, t, task_id)
      if not ok then return nil, herr end
      if t.done then
        if self.store then self.store:settle() end -- its end is on disk before it is reported
        if t.result then return t.result end
        return nil, t.error
      end
    elseif retry.retryable(err) then -- polling again can still succeed
      last_err = err
    else
      return nil, err
    end
    if now() >= deadline then break end
    delay, early = next_delay(self, t, created, interval, predicted)
    predicted = predicted or early ~= nil
    interval = retry.next_poll_interval(interval, s)
  end
  return nil, errors.new("timeout", ("task %s is still %s after %g s of waiting; call "
    .. "wait(task_id) to go on"):format(task_id, state, timeout),
    { task_id = task_id, state = state, cause = last_err })
end

-- ---- files ----

-- Saves url to path (see Transport:download); the arguments are checked.
function Engine:download(url, path, allow_downgrade, on_progress)
  if self.closed then return nil, errors.closed() end
  return self.transport:download(url, path, allow_downgrade, on_progress)
end

-- ---- jobs and the loop ----

function Engine:spawn(fn, ...)
  local job = self.scheduler:spawn(fn, ...)
  if self.closed then self.scheduler:cancel(job, errors.closed()) end
  return job
end

-- fn() runs when the client closes, before its descriptors do (a host
-- loop's handle stops watching pollfd()).
function Engine:add_on_close(fn)
  self.on_close = self.on_close or {}
  self.on_close[#self.on_close + 1] = fn
end

-- Ends every job (they report kind "closed"), every transfer, and libcurl.
-- A submit already on the wire may be billed, so close first lets it finish
-- (up to grace seconds; by default its own HTTP timeout). Idempotent.
-- collected: by the client's finalizer, which runs no on_close hook.
function Engine:close(grace, collected)
  if self.closed then return end
  self.closed = true
  -- a host loop stops watching pollfd() before the descriptor goes
  if not collected then
    for _, fn in ipairs(self.on_close or {}) do pcall(fn) end
  end
  self.on_close = nil
  self.scheduler:close(errors.closed, grace)
  -- after libcurl: a submit finishing in the grace period is still recorded
  local store = self.store
  if store then
    store:record_unrecorded() -- a paid id the journal refused earlier: one last try
    store:finish_writes()
    store:close()
  end
end

return Engine
