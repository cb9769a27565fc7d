-- The public client: argument checks, and delegation to the engine
-- (engine.lua) and the use cases: submission.lua (submit, and follow to the
-- end), uploads.lua, webhooks.lua, batch.lua. It holds no state of its own
-- but the engine, the settings and the journal it shows to the caller.
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local Batch = require "kling.batch"
local config = require "kling.config"
local endpoints = require "kling.endpoints"
local Engine = require "kling.engine"
local errors = require "kling.errors"
local submission = require "kling.submission"
local task = require "kling.task"
local uploads = require "kling.uploads"
local validate = require "kling.validate"
local webhooks = require "kling.webhooks"

local MOTION = endpoints.get("motion")
local VIDEOS = endpoints.get("videos")

local Client = {}
Client.__index = Client
Client.__name = "kling.client"

local function arg_error(n, fname, expected, got)
  local what = type(got) == "number" and tostring(got) or type(got) -- a number out of range: say which
  error(("bad argument #%d to '%s' (%s expected, got %s)"):format(n, fname, expected, what), 3)
end

function Client.new(options)
  local settings, token, platform_token = config.build(options)
  if not settings then return nil, token end
  local self -- made once the engine is: a client without one is never collected as one
  local engine, err = Engine.new(settings, token, platform_token,
    function(e) self.verbose_error = e end)
  if not engine then return nil, err end
  self = setmetatable({
    settings = settings,
    engine = engine,
    journal = engine.journal, -- nil without the journal option
    verbose_error = nil,      -- what a verbose function that raised said (it is switched off then)
    _valid_id = nil,          -- the last task id client:task found valid
  }, Client)
  return self
end

function Client:is_closed()
  return self.engine.closed
end

function Client:__tostring()
  local engine = self.engine
  return ("kling.client (%s, %d jobs%s)"):format(self.settings.base_url, engine.scheduler:pending(),
    engine.closed and ", closed" or "")
end

-- ---- submit and follow ----

local function endpoint_named(name, fname)
  local endpoint = type(name) == "string" and endpoints.get(name)
  if not endpoint then
    error(("bad argument #1 to '%s' (an endpoint name expected, got %s)"):format(fname, tostring(name)), 3)
  end
  return endpoint
end

local function submit(self, endpoint, params, fname)
  local body, opts = validate.request(endpoint, params, fname)
  if not body then return nil, opts end
  local task_id, err, _, _, unrecorded = submission.submit(self.engine, endpoint, body, opts, opts)
  if not task_id then return nil, err end
  -- billed, but not in the journal: the id goes with the error
  if unrecorded then return nil, unrecorded end
  return task_id
end

local function request(self, endpoint, params, fname)
  local body, opts = validate.request(endpoint, params, fname)
  if not body then return nil, opts end
  return submission.run(self.engine, endpoint, body, opts, opts)
end

-- client:submit(params): a motion job's submit (endpoints/motion.lua); its task id.
function Client:submit(params)
  return submit(self, MOTION, params, "submit")
end

-- client:motion(params): a motion job, submitted and followed to its end.
function Client:motion(params)
  return request(self, MOTION, params, "motion")
end

-- client:video(params): a /kling/videos job (text2video, image2video or
-- extend: endpoints/videos.lua), submitted and followed to its end;
-- client:submit_video(params), its submit alone.
function Client:video(params)
  return request(self, VIDEOS, params, "video")
end

function Client:submit_video(params)
  return submit(self, VIDEOS, params, "submit_video")
end

-- The same for any endpoint, by name (kling.endpoints): client:request(
-- "motion", params) is client:motion(params).
function Client:request(name, params)
  return request(self, endpoint_named(name, "request"), params, "request")
end

function Client:submit_request(name, params)
  return submit(self, endpoint_named(name, "submit_request"), params, "submit_request")
end

-- ---- retrieval and waiting ----

function Client:task(task_id)
  if task_id ~= self._valid_id then -- a task polled again was checked already
    local err = validate.task_id(task_id)
    if err then return nil, err end
    self._valid_id = task_id
  end
  return self.engine:retrieve(task_id)
end

function Client:tasks(ids)
  if type(ids) ~= "table" then arg_error(1, "tasks", "table", ids) end
  local checked, err = validate.task_ids(ids)
  if not checked then return nil, err end
  if #checked == 0 then return {} end
  local poller = self.engine.poller
  local records
  records, err = poller:batch_records(checked)
  if not records then return nil, err end
  local list = {}
  for i, id in ipairs(checked) do
    list[i] = poller:read(records, id) or { id = id, state = "not_found", done = false, error = task.not_found(id) }
  end
  poller.done_with(records)
  return list
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
  return self.engine:wait(task_id, timeout, opts.on_status, 0)
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
  return self.engine:download(url, path, opts.allow_downgrade, opts.on_progress)
end

-- A callback POST is unauthenticated: it must carry the token kling put in
-- the job's callback URL (pass the URL it was POSTed to as opts.url), it is
-- matched to a task this client (or, with a journal, any client of that
-- journal) submitted, or that opts.accept(task_id) vouches for, and the task
-- is then re-read from /kling/tasks; its own content is never trusted.
-- Returns the task, with first_delivery = true the first time a finished
-- task is reported (once per task across processes, with a journal).
-- opts.spawn = true: the checks (which send nothing) now, the re-read in a
-- job, returned at once: a server answers the POST without waiting on the
-- network, and the job's result is the task.
function Client:handle_callback(payload, opts)
  if opts ~= nil and type(opts) ~= "table" then arg_error(2, "handle_callback", "table or nil", opts) end
  if type(payload) ~= "string" and type(payload) ~= "table" then
    arg_error(1, "handle_callback", "string or table", payload)
  end
  return webhooks.handle(self.engine, payload, opts or {})
end

-- Uploads a local file (a path), or bytes with opts.filename, through the
-- platform API; returns its public URL. opts.on_progress(sent, total).
function Client:upload(source, opts)
  if type(source) ~= "string" or source == "" then arg_error(1, "upload", "file path or bytes", source) end
  if opts ~= nil and type(opts) ~= "table" then arg_error(2, "upload", "table or nil", opts) end
  return uploads.upload(self.engine, source, opts or {})
end

-- Runs many motion jobs, at most opts.concurrency at once; see batch.lua.
function Client:batch(items, opts)
  if type(items) ~= "table" then arg_error(1, "batch", "table", items) end
  if opts ~= nil and type(opts) ~= "table" then arg_error(2, "batch", "table or nil", opts) end
  return Batch.run(self.engine, items, opts or {})
end

-- ---- jobs and the loop ----

function Client:spawn(fn, ...)
  if type(fn) ~= "function" then arg_error(1, "spawn", "function", fn) end
  return self.engine:spawn(fn, ...)
end

-- Advances every job: blocks at most max_wait seconds (default 0) for
-- something to happen, and works at most budget seconds (default: from
-- 0.3 ms in a busy loop to 0.6 ms for a host that steps once per frame).
function Client:step(max_wait, budget)
  if max_wait ~= nil and (type(max_wait) ~= "number" or max_wait < 0 or max_wait ~= max_wait) then
    arg_error(1, "step", "non-negative number", max_wait)
  end
  if budget ~= nil and (type(budget) ~= "number" or not (budget > 0 and budget <= 1)) then
    arg_error(2, "step", "budget in seconds, more than 0 and at most 1", budget)
  end
  local engine = self.engine
  if engine.closed then return 0 end
  return engine.scheduler:step(max_wait or 0, budget)
end

-- ---- inside a host's event loop (cqueues' convention; kling.loop) ----

-- A descriptor that becomes readable whenever step() has work due now (a
-- transfer finished on libcurl's thread, a journal commit finished, a job
-- became runnable): wait for it, or for timeout() seconds, then call step(0).
-- nil and an error where the system offers none (Linux has epoll).
function Client:pollfd()
  local engine = self.engine
  if engine.closed then return nil, errors.closed() end
  local fd, err = engine.scheduler:pollfd()
  if not fd then return nil, errors.new("network", err) end
  return fd
end

-- What to wait for on pollfd(): readable.
function Client:events() -- luacheck: ignore 212 (cqueues calls it as a method)
  return "r"
end

-- Seconds until step() must run even if pollfd() stays quiet; 0 when work
-- is due now; nil when the client has nothing pending. blind = true: for a
-- host that cannot watch pollfd() (OpenResty), which must then look every
-- 2 ms while a transfer is under way.
function Client:timeout(blind)
  return self.engine.scheduler:timeout(blind == true)
end

-- fn() is called whenever work falls due outside a step (a job spawned
-- from elsewhere): how a host that cannot watch pollfd() learns of it. It
-- must only arrange a step soon (post a semaphore, start a timer).
function Client:on_ready(fn)
  if fn ~= nil and type(fn) ~= "function" then arg_error(1, "on_ready", "function or nil", fn) end
  self.engine.scheduler:set_on_ready(fn)
end

-- fn() runs when the client closes, before pollfd()'s descriptor does: a
-- host loop stops watching it there (kling.loop does).
function Client:on_close(fn)
  if type(fn) ~= "function" then arg_error(1, "on_close", "function", fn) end
  if self.engine.closed then pcall(fn) return end
  self.engine:add_on_close(fn)
end

-- From now on only the coroutine `thread` steps this client, and no call on
-- it blocks (each raises a clear error instead): for a host whose coroutines
-- belong to the request or timer that made them (kling.loop.ngx). name: the
-- loop, for those errors.
function Client:drive_from(thread, name)
  if type(thread) ~= "thread" then arg_error(1, "drive_from", "coroutine", thread) end
  self.engine.scheduler:set_owner(thread, tostring(name or "its host loop"))
end

-- Steps until every spawned job has ended.
function Client:run()
  local engine = self.engine
  while not engine.closed and engine.scheduler:pending() > 0 do
    engine.scheduler:step(3600)
  end
end

function Client:pending()
  return self.engine.scheduler:pending()
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
  self.engine:close(grace)
end

Client.__close = function(self) self:close() end
-- A finalizer must not wait on the network, nor call a host loop's
-- on_close hooks: at exit the loop's own objects may be finalized already.
Client.__gc = function(self) if self.engine then self.engine:close(0, "collected") end end

return Client
