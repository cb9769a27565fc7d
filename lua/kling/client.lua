-- The public client: submit, retrieve, wait, spawn and step. The submit path
-- is submission.lua, webhooks are webhooks.lua, batches batch.lua, and the
-- durable memory journal.lua; this file wires them to one engine.
local core = require "kling.core"
local Batch = require "kling.batch"
local config = require "kling.config"
local errors = require "kling.errors"
local Journal = require "kling.journal"
local Poller = require "kling.poller"
local Recent = require "kling.recent"
local retry = require "kling.retry"
local Scheduler = require "kling.scheduler"
local submission = require "kling.submission"
local task = require "kling.task"
local Transport = require "kling.transport"
local uploads = require "kling.uploads"
local validate = require "kling.validate"
local webhooks = require "kling.webhooks"

local now = core.now

local Client = {}
Client.__index = Client
Client.__name = "kling.client"

local function str(v)
  if type(v) == "string" and v ~= "" then return v end
end

local function arg_error(n, fname, expected, got)
  error(("bad argument #%d to '%s' (%s expected, got %s)"):format(n, fname, expected, type(got)), 3)
end

local function log_sink(verbose)
  if type(verbose) == "function" then return verbose end
  if verbose then return function(text) io.stderr:write(text) end end
end

-- How many task ids a client remembers for matching webhooks (and how many
-- finished deliveries it remembers): bounded, so a long-lived client does not grow.
local REMEMBERED_TASKS = 10000

function Client.new(options)
  local settings, token, platform_token = config.build(options)
  if not settings then return nil, token end
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
  -- the token lives in C from here on; the Lua side keeps no reference to it
  multi:set_token(token)
  if platform_token then multi:set_token(platform_token, "platform") end
  settings.has_platform_token = platform_token ~= nil
  local self = setmetatable({
    settings = settings,
    journal = journal,  -- nil without the journal option
    _multi = multi,
    _submitted = Recent.new(REMEMBERED_TASKS), -- task ids this client submitted (callbacks are matched to them)
    _delivered = Recent.new(REMEMBERED_TASKS), -- task ids whose finished state a callback already reported
    _callback_tokens = Recent.new(REMEMBERED_TASKS), -- task id -> its callback URL's token (no journal)
    _active = {},       -- journal keys this client is submitting right now
    _last_retrieve = {}, -- the last task id retrieved alone, and its request body
    _valid_id = nil,    -- the last task id client:task found valid
    _closed = false,
  }, Client)
  local function on_log_error(e)
    settings.verbose = false
    self.verbose_error = errors.hook("verbose", tostring(e) .. "; verbose output is off for this client")
  end
  -- transfers in libcurl at once: every connection busy and one more queued
  -- behind each. More only costs: 256 of them made steps of 1.5 ms during a
  -- burst of submits (make bench).
  local scheduler = Scheduler.new(multi, log_sink(settings.verbose), on_log_error,
    2 * settings.max_connections)
  self._scheduler = scheduler
  if journal then journal:_attach(scheduler) end
  self._redact = function(text) return multi:redact(text) end
  self._transport = Transport.new(settings, scheduler, self._redact)
  self._poller = Poller.new(scheduler, function(ids, deadline) return self:_retrieve_many(ids, deadline) end,
    settings.poll_batch_window)
  return self
end

function Client:__tostring()
  return ("kling.client (%s, %d jobs%s)"):format(self.settings.base_url,
    self._scheduler:pending(), self._closed and ", closed" or "")
end

-- ---- hooks ----

-- Runs a hook of the caller's; an error it raises comes back as kind "hook".
-- A cancellation arriving meanwhile waits until the hook returns.
function Client:_call_hook(name, fn, arg, task_id)
  if not fn then return true end
  local ok, err = self._scheduler:protect(fn, arg)
  if ok then return true end
  return nil, errors.hook(name, err, task_id)
end

-- ---- submit ----

function Client:submit(params)
  local body, opts = validate.motion(params, "submit")
  if not body then return nil, opts end
  local task_id, err, _, _, unrecorded = submission.submit(self, body, opts, opts)
  if not task_id then return nil, err end
  -- billed, but not in the journal: the id goes with the error
  if unrecorded then return nil, unrecorded end
  return task_id
end

-- ---- retrieval ----

-- A wait polls one task again and again: its request body is made once.
function Client:_retrieve_body(task_id)
  local last = self._last_retrieve
  if last.id ~= task_id then
    last.id, last.body = task_id, core.encode({ action = "retrieve", id = task_id })
  end
  return last.body
end

function Client:_retrieve(task_id, deadline)
  if self._closed then return nil, errors.closed() end
  local body, err = self._transport:call("/kling/tasks", self:_retrieve_body(task_id), deadline)
  if not body then
    err.task_id = err.task_id or task_id
    return nil, err
  end
  if body.id == nil and body.response == nil and body.created_at == nil then
    return nil, task.not_found(task_id)
  end
  return self:_noted(task.normalize(body, task_id, self._redact))
end

-- Every task read from the API passes here: a finished one is recorded in
-- the journal (by its task id), whichever call read it.
function Client:_noted(t)
  if t.done and self.journal then self.journal:_finished(t.id, t.result, t.error) end
  return t
end

function Client:task(task_id)
  if task_id ~= self._valid_id then -- a task polled again was checked already
    local err = validate.task_id(task_id)
    if err then return nil, err end
    self._valid_id = task_id
  end
  return self:_retrieve(task_id)
end

-- One retrieve_batch request: { [id] = record }, or nil and an error.
function Client:_batch_records(ids, deadline)
  if self._closed then return nil, errors.closed() end
  local body, err = self._transport:call("/kling/tasks", { action = "retrieve_batch", ids = ids }, deadline)
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

-- For the poller: { [id] = task } with unknown ids absent, or nil and an error.
function Client:_retrieve_many(ids, deadline)
  if #ids == 1 then -- the plain retrieve answers an unknown id with {}
    local t, err = self:_retrieve(ids[1], deadline)
    if t then return { [ids[1]] = t } end
    if err.kind == "not_found" then return {} end
    return nil, err
  end
  local records, err = self:_batch_records(ids, deadline)
  if not records then return nil, err end
  local found = {}
  for id, record in pairs(records) do found[id] = self:_noted(task.normalize(record, id, self._redact)) end
  return found
end

function Client:tasks(ids)
  if type(ids) ~= "table" then arg_error(1, "tasks", "table", ids) end
  local checked, err = validate.task_ids(ids)
  if not checked then return nil, err end
  ids = checked
  if #ids == 0 then return {} end
  local records
  records, err = self:_batch_records(ids)
  if not records then return nil, err end
  local list = {}
  for i, id in ipairs(ids) do
    local record = records[id]
    list[i] = record and self:_noted(task.normalize(record, id, self._redact))
      or { id = id, state = "not_found", done = false, error = task.not_found(id) }
  end
  return list
end

-- ---- waiting ----

-- age: seconds since the task was submitted, when it was submitted by an
-- earlier call (a resumed job): its polls go on at the interval they had
-- grown to by now, rather than from poll_interval again.
function Client:_wait(task_id, timeout, on_status, first_delay, age)
  local s = self.settings
  local deadline = now() + timeout
  local interval, delay = s.poll_interval, first_delay
  if age and age > 0 then
    local t = 0
    while t + interval <= age and interval < s.max_poll_interval do
      t = t + interval
      interval = retry.next_poll_interval(interval, s)
    end
  end
  local state, last_err = "unknown", nil
  while true do
    if delay > 0 then
      local left = deadline - now()
      if left <= 0 then break end
      self._scheduler:sleep(math.min(delay, left))
      if now() >= deadline then break end
    end
    if self._closed then return nil, errors.closed() end
    local t, err = self._poller:poll(task_id, deadline)
    if t then
      state, last_err = t.state, nil
      local ok, herr = self:_call_hook("on_status", on_status, t, task_id)
      if not ok then return nil, herr end
      if t.done then
        if self.journal then self.journal:_settle() end -- its end is on disk before it is reported
        if t.result then return t.result end
        return nil, t.error
      end
    elseif retry.retryable(err) then -- polling again can still succeed
      last_err = err
    else
      return nil, err
    end
    if now() >= deadline then break end
    delay = retry.jitter(interval)
    interval = retry.next_poll_interval(interval, s)
  end
  return nil, errors.new("timeout", ("task %s is still %s after %g s of waiting; call "
    .. "wait(task_id) to go on"):format(task_id, state, timeout),
    { task_id = task_id, state = state, cause = last_err })
end

function Client:wait(task_id, opts)
  local err = validate.task_id(task_id)
  if err then return nil, err end
  if opts ~= nil and type(opts) ~= "table" then arg_error(2, "wait", "table or nil", opts) end
  opts = opts or {}
  local timeout = opts.timeout or self.settings.wait_timeout
  if type(timeout) ~= "number" or timeout ~= timeout or timeout <= 0 then
    return nil, errors.invalid("timeout", "must be a number greater than 0")
  end
  if opts.on_status ~= nil and type(opts.on_status) ~= "function" then
    return nil, errors.invalid("on_status", "must be a function")
  end
  return self:_wait(task_id, timeout, opts.on_status, 0)
end

function Client:motion(params)
  local body, opts = validate.motion(params, "motion")
  if not body then return nil, opts end
  return self:_motion(body, opts, opts)
end

-- Submits (or, with a journal, finds) the job and follows it to its end.
function Client:_motion(body, hooks, opts)
  local task_id, err, how, stored, unrecorded = submission.submit(self, body, hooks, opts)
  if not task_id then return nil, err end
  if how == "done" then return stored end
  -- a task submitted earlier may be long finished: look at once
  local first_delay = how == "sent" and self.settings.poll_interval or 0
  local age = how == "follow" and stored and core.time() - stored or nil
  local result
  result, err = self:_wait(task_id, self.settings.wait_timeout, hooks.on_status, first_delay, age)
  if unrecorded then
    -- the task is followed all the same; its id is recorded now, or the
    -- call fails with the id (and the result, if the task ended)
    local ok, jerr = self.journal:_record_unrecorded(task_id)
    if ok then
      if result or err and err.kind == "task_failed" then self.journal:_finished(task_id, result, err) end
      self.journal:_settle()
    else
      unrecorded.cause, unrecorded.result = jerr, result
      return nil, unrecorded
    end
  end
  if err then err.key = err.key or opts.key end
  return result, err
end

-- ---- results and callbacks ----

-- Saves the video of a result (or a URL) to path; returns path, bytes.
-- opts.allow_downgrade: follow a redirect from https to plain http;
-- opts.on_progress(received, total): the bytes as they arrive.
function Client:download(result, path, opts)
  if opts ~= nil and type(opts) ~= "table" then arg_error(3, "download", "table or nil", opts) end
  opts = opts or {}
  local url = type(result) == "table" and result.video_url or result
  local err = validate.url("video_url", url)
  if err then return nil, err end
  if opts.allow_downgrade ~= nil and type(opts.allow_downgrade) ~= "boolean" then
    return nil, errors.invalid("allow_downgrade", "must be a boolean")
  end
  if opts.on_progress ~= nil and type(opts.on_progress) ~= "function" then
    return nil, errors.invalid("on_progress", "must be a function")
  end
  if self._closed then return nil, errors.closed() end
  return self._transport:download(url, path, opts.allow_downgrade, opts.on_progress)
end

-- A callback POST is unauthenticated: it must carry the token kling put in
-- the job's callback URL (pass the URL it was POSTed to as opts.url), it is
-- matched to a task this client (or, with a journal, any client of that
-- journal) submitted, or that opts.accept(task_id) vouches for, and the task
-- is then re-read from /kling/tasks; its own content is never trusted.
-- Returns the task, with first_delivery = true the first time a finished
-- task is reported (once per task across processes, with a journal).
function Client:handle_callback(payload, opts)
  if opts ~= nil and type(opts) ~= "table" then arg_error(2, "handle_callback", "table or nil", opts) end
  if type(payload) ~= "string" and type(payload) ~= "table" then
    arg_error(1, "handle_callback", "string or table", payload)
  end
  return webhooks.handle(self, payload, opts or {})
end

-- Uploads a local file (a path), or bytes with opts.filename, through the
-- platform API; returns its public URL. opts.on_progress(sent, total).
function Client:upload(source, opts)
  if type(source) ~= "string" or source == "" then arg_error(1, "upload", "file path or bytes", source) end
  if opts ~= nil and type(opts) ~= "table" then arg_error(2, "upload", "table or nil", opts) end
  return uploads.upload(self, source, opts or {})
end

-- Runs many motion jobs, at most opts.concurrency at once; see batch.lua.
function Client:batch(items, opts)
  if type(items) ~= "table" then arg_error(1, "batch", "table", items) end
  if opts ~= nil and type(opts) ~= "table" then arg_error(2, "batch", "table or nil", opts) end
  return Batch.run(self, items, opts or {})
end

-- ---- jobs and the loop ----

function Client:spawn(fn, ...)
  if type(fn) ~= "function" then arg_error(1, "spawn", "function", fn) end
  local job = self._scheduler:spawn(fn, ...)
  if self._closed then self._scheduler:cancel(job, errors.closed()) end
  return job
end

function Client:step(max_wait)
  if max_wait ~= nil and (type(max_wait) ~= "number" or max_wait < 0) then
    arg_error(1, "step", "non-negative number", max_wait)
  end
  if self._closed then return 0 end
  return self._scheduler:step(max_wait or 0)
end

-- Steps until every spawned job has ended.
function Client:run()
  while not self._closed and self._scheduler:pending() > 0 do
    self._scheduler:step(3600)
  end
end

function Client:pending()
  return self._scheduler:pending()
end

-- Ends every job (they report kind "closed"), every transfer, and libcurl.
-- A submit already on the wire may be billed, so close first lets it finish
-- (up to grace seconds; by default its own HTTP timeout): its job then ends
-- "closed" with the task id, after on_submit ran. close(0) does not wait;
-- such a job's error says maybe_submitted. Idempotent.
function Client:close(grace)
  if grace ~= nil and (type(grace) ~= "number" or grace ~= grace or grace < 0) then
    arg_error(1, "close", "non-negative number or nil", grace)
  end
  if self._closed then return end
  self._closed = true
  self._scheduler:close(errors.closed, grace)
  -- after libcurl: a submit finishing in the grace period is still recorded
  if self.journal then
    self.journal:_record_unrecorded() -- a paid id the journal refused earlier: one last try
    self.journal:_finish_writes()
    self.journal:close()
  end
end

Client.__close = function(self) self:close() end
-- a finalizer must not wait on the network
Client.__gc = function(self) self:close(0) end

return Client
