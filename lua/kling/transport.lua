-- HTTP for the client: builds kling.core requests, turns their results into
-- bodies or structured errors, and retries what is safe to retry.
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local core = require "kling.core"
local errors = require "kling.errors"
local files = require "kling.files"
local retry = require "kling.retry"
local task = require "kling.task"

local Transport = {}
Transport.__index = Transport

local JSON_HEADERS = { "Content-Type: application/json", "Accept: application/json" }

local NETWORK_MESSAGES = {
  timeout = "the request timed out",
  resolve = "could not resolve the host",
  connect = "could not connect to the server",
  tls = "TLS failure",
  empty = "the server closed the connection without answering",
  too_large = "the answer is too large",
  url = "unusable URL",
  protocol = "the server did not answer in HTTP",
  redirect = "refused to follow a redirect",
  journal = "the journal could not record the hand-over, so the submit's body was not sent",
  write = "could not write the answer",
  setup = "could not start the request",
  network = "network failure",
}

-- How much of a body that is not JSON an error quotes.
local SNIPPET_BYTES = 60

-- redact(text) blanks the token out of text that came from the network: a
-- gateway may echo request headers into any field of its answer.
function Transport.new(settings, scheduler, redact)
  local self = setmetatable({ settings = settings, scheduler = scheduler, redact = redact, urls = {} }, Transport)
  -- What every API request shares is read into C once, as a profile
  -- (src/profile.h); each request's own table carries the rest.
  self.profile = scheduler.multi:profile(self:common_options({
    headers = JSON_HEADERS, auth = true, decode = true, max_body = settings.max_response_bytes,
  }))
  return self
end

function Transport:common_options(request)
  local s = self.settings
  request.connect_timeout = s.connect_timeout
  request.user_agent = s.user_agent or ("kling-lua/" .. core.version)
  request.cainfo, request.capath, request.proxy = s.cainfo, s.capath, s.proxy
  request.verbose = s.verbose and true or false
  return request
end

-- The HTTP timeout of a request made on behalf of a caller with a deadline
-- (monotonic seconds): never past the deadline. nil when none is left.
local function timeout_within(timeout, deadline)
  if not deadline then return timeout end
  local left = deadline - core.now()
  if left <= 0 then return nil end
  return math.min(timeout, left)
end

local function out_of_time()
  return { reason = "timeout", error = "no time left before the deadline", status = 0, sent = false, headers = {} }
end

local NO_OPTS = {}
-- a read's place in libcurl comes before new submits' (Scheduler:transfer)
local READ = { read = true }
local READ_OPTS = { read = true }

-- body: a table (sent as JSON) or JSON text. opts: fresh_connect, shield
-- and hold_key (submits), deadline (waits), apart ({ list, key }: the
-- answer's list stays decoded apart, a kling.records; src/records.h).
function Transport:post(path, body, opts)
  opts = opts or NO_OPTS
  local s = self.settings
  local timeout = timeout_within(s.timeout, opts.deadline)
  if not timeout then return out_of_time() end
  local url = self.urls[path] -- base_url .. path, made once per path
  if not url then
    url = s.base_url .. path
    self.urls[path] = url
  end
  -- one encoding path: JSON text is made here (or by the caller, once for
  -- every attempt: a submit, a wait's retrieve), never inside kling.core
  local request = {
    profile = self.profile, url = url, timeout = timeout,
    body = type(body) == "string" and body or core.encode(body),
    fresh_connect = opts.fresh_connect, handover = opts.shield, hold = opts.hold_key ~= nil,
    verbose = s.verbose and true or false, -- switched off if the sink raised
  }
  local apart = opts.apart
  if apart then request.apart, request.apart_key = apart.list, apart.key end
  local shielded = opts.shield or opts.hold_key
  return self.scheduler:transfer(request, shielded and { shield = opts.shield, hold_key = opts.hold_key }
    or (opts.read and READ) or nil)
end

local function str(v)
  if type(v) == "string" and v ~= "" then return v end
end

-- A string from the network, fit to quote in an error: redacted first, so a
-- cut can never leave part of the token behind.
function Transport:foreign(v)
  v = str(v)
  if v then return self.redact(v) end
end

local function describe_body(self, res)
  local body = res.body or ""
  if body == "" then return "an empty body" end
  local ctype = self:foreign(res.headers and res.headers["content-type"]) or "no content type"
  local snippet = self.redact(body):sub(1, SNIPPET_BYTES):gsub("%s+", " ")
  return ("%s, not JSON: %q"):format(ctype, snippet)
end

function Transport:transfer_error(res)
  if res.reason == "closed" then
    local err = errors.closed()
    err.in_flight = res.in_flight
    return err
  end
  local what = NETWORK_MESSAGES[res.reason] or NETWORK_MESSAGES.network
  local kind = "network"
  if res.reason == "timeout" then kind = "timeout" end
  if res.reason == "too_large" then kind = "bad_response" end
  if res.reason == "journal" then kind = "journal" end
  return errors.new(kind, what .. ": " .. (self:foreign(res.error) or "no detail"), {
    reason = res.reason, sent = res.sent, curl_code = res.curl_code,
    status = res.status ~= 0 and res.status or nil,
  })
end

-- Which credential a refusal is about, in the words a user acts on.
local CREDENTIALS = {
  api = "the API token (the token option, or ACEDATACLOUD_API_TOKEN)",
  platform = "the platform token (the platform_token option, or ACEDATACLOUD_PLATFORM_TOKEN)",
}

local function status_error(self, res, credential)
  local json = type(res.json) == "table" and res.json or {}
  local detail = type(json.error) == "table" and json.error or {}
  local data = type(json.data) == "table" and json.data or {}
  local status = res.status
  local kind = "api"
  if status == 401 or status == 403 then kind = "auth" end
  if status == 429 then kind = "rate_limited" end
  local message = self:foreign(detail.message)
    or ("HTTP %d with %s"):format(status, res.json and "no error message" or describe_body(self, res))
  if kind == "auth" then
    message = ("%s was refused: %s"):format(CREDENTIALS[credential or "api"], message)
  end
  return errors.new(kind, message, {
    status = status, code = self:foreign(detail.code), trace_id = self:foreign(json.trace_id),
    task_id = self:foreign(json.task_id) or self:foreign(data.task_id),
    retry_after = retry.parse_retry_after(res.headers and res.headers["retry-after"]),
  })
end

-- libcurl hands on whatever number a status line carried (2, -1, 222222222).
local function bad_status(res)
  return errors.new("bad_response", ("the server answered with a malformed status line (status %s)")
    :format(tostring(res.status)), { reason = "bad_status" })
end

-- The error of a finished transfer that is not a 2xx answer, or nil.
-- credential: "api" (the default) or "platform", which a 401 or 403 names.
function Transport:failure(res, credential)
  if res.reason then return self:transfer_error(res) end
  if res.status < 100 or res.status > 599 then return bad_status(res) end
  if res.status < 200 or res.status > 299 then return status_error(self, res, credential) end
end

-- A kling.core result -> the JSON object it carries, or nil and an error.
function Transport:interpret(res, credential)
  local status = res.status
  if res.reason or status < 200 or status > 299 then return nil, self:failure(res, credential) end
  local json = res.json
  if type(json) ~= "table" or json[1] ~= nil then
    return nil, errors.new("bad_response", ("HTTP %d answer is %s"):format(res.status,
      res.json_error and describe_body(self, res) or (json == nil and "an empty body" or "not a JSON object")),
      { status = res.status })
  end
  if json.success == false and type(json.error) == "table" then
    return nil, status_error(self, res, credential)
  end
  return task.unwrap(json)
end

-- After failed attempt n with err: sleeps before the next attempt and
-- returns true, or returns false when there is none (err is final).
function Transport:retry_after_failure(n, err, deadline, can_retry)
  local s = self.settings
  if n > s.max_retries or not can_retry(err) then return false end
  local delay = retry.delay(n, s, err.retry_after)
  if not delay or (deadline and core.now() + delay >= deadline) then return false end
  self.scheduler:sleep(delay)
  return true
end

-- The one retry loop of requests that are safe to repeat (retrievals,
-- uploads, downloads; a submit, which is not, has its own in
-- submission.lua): runs attempt(a, b, c, d) until it succeeds, fails for
-- good, or the retries run out. attempt returns a result (and one more
-- value), or nil and an error. deadline (monotonic seconds, or nil) bounds
-- the sleeps between attempts. The arguments are passed on, so that a
-- caller needs no closure: this is every poll's path.
function Transport:retrying(deadline, can_retry, attempt, a, b, c, d)
  local n = 0
  while true do
    local result, extra = attempt(a, b, c, d)
    if result then return result, extra end
    n = n + 1
    if not self:retry_after_failure(n, extra, deadline, can_retry) then return nil, extra end
  end
end

local function post_once(self, path, body, opts)
  return self:interpret(self:post(path, body, opts))
end

-- A request that is safe to repeat (task retrieval), with retries; every
-- attempt and every sleep ends by the deadline. apart: see post.
function Transport:call(path, body, deadline, apart)
  return self:retrying(deadline, retry.retryable, post_once, self, path, body,
    (deadline or apart) and { deadline = deadline, read = true, apart = apart } or READ_OPTS)
end

-- Is the API token accepted? Asked once per client, with a retrieval
-- (never billed) of an id no task has, before local files are uploaded for
-- a submit: a wrong token would otherwise be found only after the uploads.
-- nil when it is accepted (or the question could not be answered: the
-- submit will tell), or the auth error.
function Transport:check_api_token()
  if self.api_token_accepted then return nil end
  local _, err = self:interpret(self:post("/kling/tasks", { action = "retrieve", id = "kling-token-check" }))
  if err and err.kind == "auth" then return err end
  -- the API answered without refusing it: accepted (a network failure
  -- answered nothing, so the next upload asks again)
  if err == nil or (err.kind ~= "network" and err.kind ~= "timeout") then self.api_token_accepted = true end
  return nil
end

-- Fetches url into path and returns path, bytes. The bytes go to a file of
-- this download's own (files.part_path, created new), renamed onto path
-- when complete; whatever ends the download (a failure, a cancel, a close)
-- removes it. The token is never sent: the video is on a CDN.
-- allow_downgrade lets a redirect lead from https to plain http;
-- on_progress(received, total) follows the bytes.
function Transport:download(url, path, allow_downgrade, on_progress)
  local s = self.settings
  local ok, err = files.check_destination(path, "path")
  if not ok then return nil, err end
  local part
  self.scheduler:on_exit(function() if part then os.remove(part) end end)
  local progress = on_progress and function(_, _, received, to_receive) on_progress(received, to_receive) end
  return self:retrying(nil, retry.retryable, function()
    part = files.part_path(path)
    local res = self.scheduler:transfer(self:common_options({
      url = url, output = part, follow = true, timeout = s.download_timeout,
      max_body = s.max_download_bytes, allow_downgrade = allow_downgrade,
    }), { progress = progress })
    if res.reason == "setup" then
      part = nil -- never created
      return nil, errors.invalid("path", "cannot be written: " .. tostring(res.error))
    end
    local failure = self:failure(res)
    if failure then
      os.remove(part)
      part = nil
      failure.message = "downloading the video: " .. failure.message
      return nil, failure
    end
    local renamed, rename_err = os.rename(part, path)
    if not renamed then os.remove(part) end
    part = nil
    if not renamed then return nil, errors.invalid("path", "cannot be written: " .. tostring(rename_err)) end
    return path, res.bytes
  end)
end

return Transport
