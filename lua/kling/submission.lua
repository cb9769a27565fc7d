-- The submit path: a small state machine around the journal.
--
--   claim the key (billing.on_claim decides)  ->  result | failure | follow | uncertain
--        | submit
--   queued --(the body held until the journal's commit)--> sending --answer--> submitted
--        ^                                            | provably not taken: retry
--        +--------------------------------------------+
--   sending --may have been taken--> uncertain; --refused--> queued (may be sent again)
--
-- "submitted" is durable before on_submit runs and before anything else
-- happens with the id. Without a journal only the middle part runs.
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local core = require "kling.core"
local billing = require "kling.billing"
local errors = require "kling.errors"
local retry = require "kling.retry"
local uploads = require "kling.uploads"
local webhooks = require "kling.webhooks"

local submission = {}

-- ---- one request ----

-- The task id (from the answer, or from an error body that names the job),
-- or nil and an error. The request is shielded: once libcurl hands it over,
-- a cancel or close lets it finish rather than lose the id of a billed job.
local function send_once(engine, path, json, journal_key)
  local transport = engine.transport
  -- with a journal, the body is held until "sending" is on disk (handover.lua);
  -- on a reused connection too: kling.core never lets libcurl send a submit's
  -- body twice (its retry on a connection that died fails instead)
  local result, err = transport:interpret(transport:post(path, json, { shield = true, hold_key = journal_key }))
  if not result then
    if err.task_id then return err.task_id end
    return nil, err
  end
  local task_id = transport:foreign(result.task_id)
  if task_id then return task_id end
  return nil, errors.new("bad_response", "the submit answer has no task_id; the job may "
    .. "exist: check your AceData task list before submitting again", { maybe_submitted = true })
end

-- The journal entry of key was forgotten and claimed by another client
-- while this submit waited to leave: nothing of it was sent, and the key is
-- that client's job now (its writes are never changed on our behalf).
local function lost_key(key)
  return errors.new("journal", ("key %s was forgotten and claimed again while this submit waited to be sent; "
    .. "nothing was sent, and the key is now another submit's"):format(key), { key = key, lost_key = true })
end

-- A paid task id that the journal cannot record (a lock held by another
-- process past the busy timeout, a full disk) is tried again this many
-- times, with the retry back-off (retry_delay doubling up to
-- max_retry_delay: about 90 s with the defaults), before the call goes on
-- without it; the id is then kept in memory and tried again at the task's
-- end and at close (Store:record_unrecorded), and every error carries it.
local RECORD_TRIES = 8

-- Records that key's submit has task_id. Returns true, or nil and the
-- journal's error (with task_id set) once the tries are spent.
local function record_submitted(engine, key, task_id, new_key, record)
  local journal, s, err = engine.store, engine.settings, nil
  for i = 1, RECORD_TRIES do
    if i > 1 then
      if engine.closed then break end
      engine.scheduler:sleep(retry.delay(i - 1, s))
    end
    local n
    n, err = record(function() return journal:submitted(key, task_id, new_key) end)
    if n == 1 then return true end
    if n == 0 then -- the entry is not ours: it was forgotten while this submit was on the wire
      err = errors.new("journal", ("the entry of key %s was forgotten while its submit was on the wire"):format(
        new_key), { key = new_key })
      break
    end
  end
  err.task_id, err.key = task_id, err.key or new_key
  err.message = ("task %s was submitted (and is billed) but the journal could not record it: %s"):format(task_id,
    err.message)
  return nil, err
end

-- Sends body (retrying only what provably never reached the server) and
-- records the outcome; returns the task id or nil and an error, and, when
-- the task id could not be recorded in the journal, that error as a second
-- value beside the id.
local function send(engine, endpoint, body, hooks, key, journal_key)
  local scheduler, journal = engine.scheduler, engine.store
  -- Recording what the server said is never cut short by a cancel or a
  -- close (Scheduler:protect): the journal must match what was billed.
  local function record(fn, ...)
    local r = { scheduler:protect(fn, ...) }
    if r[1] then return r[2], r[3] end
    return nil, errors.new("journal", tostring(r[2]))
  end
  -- The submit is a job's deepest path, and Lua sizes a job's stack by its
  -- deepest moment and keeps it while the job waits for hours (docs/design.md,
  -- "Memory per job"). So the retries are a loop here, not
  -- Transport:retrying and a closure, and the body is made JSON once,
  -- here, not by kling.core at the bottom of the path on every attempt.
  local json = core.encode(body)
  local task_id, err
  local attempts = 0
  while true do
    task_id, err = send_once(engine, endpoint.path, json, journal_key)
    if task_id then break end
    -- provably not taken: the entry goes back to queued for another try,
    -- unless it is no longer ours (then nothing more is sent)
    if journal_key and billing.provably_not_taken(err)
      and record(function() return journal:requeue(journal_key) end) == 0 then
      return nil, lost_key(key or journal_key)
    end
    attempts = attempts + 1
    if not engine.transport:retry_after_failure(attempts, err, nil, billing.provably_not_taken) then break end
  end
  if not task_id then
    if not err.maybe_submitted and billing.may_have_been_taken(err) then
      err.maybe_submitted = true
      err.message = err.message .. "; the job may have been created, so it was not "
        .. "submitted again (that would bill twice)"
    end
    err.key = key
    if journal_key then
      record(function() return journal:failed_submit(journal_key, billing.after_failure(err), err) end)
    end
    return nil, err
  end
  local unrecorded
  if journal_key then
    local recorded, jerr = record_submitted(engine, journal_key, task_id, key or task_id, record)
    if not recorded then
      unrecorded = jerr
      journal:keep_unrecorded(journal_key, task_id, key or task_id)
    end
  end
  engine.submitted:add(task_id)
  -- cancelled or closed while the submit was on the wire: the id goes with
  -- the error, even if the hook below is cut short by a close
  local stopped = scheduler:cancellation()
  if stopped then stopped.task_id = task_id end
  local ok, herr = engine:call_hook("on_submit", hooks.on_submit, task_id, task_id)
  stopped = scheduler:cancellation()
  if stopped then
    stopped.task_id = task_id
    return nil, stopped
  end
  if not ok then return nil, herr end
  return task_id, unrecorded
end

local prepare_files -- below

-- ---- the journal's side ----

local function stored_error(row)
  local e = row.error and core.decode(row.error) or {}
  local kind = type(e) == "table" and errors.KINDS[e.kind] and e.kind or "task_failed"
  return errors.new(kind, type(e) == "table" and e.message or "the task failed", {
    key = row.key, task_id = row.task_id, code = type(e) == "table" and e.code or nil,
  })
end

local function uncertain_error(row)
  local why = row.error and stored_error(row).message or "its process stopped while the request was leaving"
  return errors.new("uncertain", ("the submit of key %s may have been billed, but its task id is not known (%s). "
    .. "Look for it in your AceData task list: if it is there, attach it with `kling jobs --adopt %s TASK_ID` "
    .. "(client.journal:adopt(key, task_id)) and run again to follow it; if it is not, `kling jobs --forget %s "
    .. "--force` (client.journal:forget(key, { force = true })) and submit again"):format(row.key, why, row.key,
    row.key), { key = row.key, maybe_submitted = true })
end

local function wait_error(key, row)
  return errors.new("timeout", ("key %s is still %s by another client after waiting for it; run again "
    .. "once that client is done"):format(key, row and row.state or "claimed"), { key = key })
end

-- What a key's entry says it was asked, against what is asked now: nil when
-- they are the same job, else an invalid_argument error naming key and what
-- differs. An entry of which nothing was billed (queued) may be asked
-- otherwise: its next submit records the new parameters.
local function conflict(row, job, key)
  if row == nil then return nil end
  if row.endpoint ~= job.endpoint then
    return errors.invalid("key", ("%s names a %s job in the journal, not a %s one; use another key"):format(key,
      tostring(row.endpoint), job.endpoint))
  end
  if row.state == "queued" or row.params == nil or row.params == job.params then return nil end
  local before, now_asked = core.decode(row.params), core.decode(job.params)
  local differ = {}
  if type(before) == "table" and type(now_asked) == "table" then
    local seen = {}
    for k, v in pairs(before) do
      seen[k] = true
      if core.encode(v) ~= core.encode(now_asked[k]) then differ[#differ + 1] = k end
    end
    for k in pairs(now_asked) do
      if not seen[k] then differ[#differ + 1] = k end
    end
    table.sort(differ)
  end
  return errors.invalid("key", ("%s was submitted with other parameters (%s differ); a key names one job: use "
    .. "another key for this one"):format(key, #differ > 0 and table.concat(differ, ", ") or "they"))
end

-- Claims key, waiting while another client's submit of it is under way.
-- job: { endpoint, params, request, callback_token }. Returns the action
-- (see billing.on_claim, and "conflict": the key names another job) and
-- the journal row (or, for a conflict, the error).
local function claim(engine, key, job, retry_failed, hold)
  local journal = engine.store
  local owner = journal:owner()
  local taken -- this call took the key: claims of one step share a transaction
  local clash
  local function decide(row)
    clash = conflict(row, job, key)
    if clash then return "conflict" end
    local ctx = { mine = row ~= nil and row.owner == owner, active = engine.active[key] ~= nil,
                  retry_failed = retry_failed }
    if row and row.owner and not ctx.mine then ctx.owner_alive = journal:owner_alive(row.owner) end
    local action = billing.on_claim(row, ctx)
    if action == "submit" then -- so the next claim of the key in this transaction waits
      engine.active[key], taken, hold.held = true, true, true
    end
    return action
  end
  local delay, deadline = 0.05, core.now() + engine.settings.wait_timeout
  while true do
    taken = false
    hold.claiming = true -- a job ended inside the claim may own a committed entry
    local action, row = journal:claim(key, decide, job)
    hold.claiming = false
    if taken and action ~= "submit" then -- the commit failed
      engine.active[key], hold.held = nil, false
    end
    if action == "conflict" then return action, clash end
    if action ~= "wait" then return action, row end
    if core.now() + delay > deadline then return nil, wait_error(key, row) end
    engine.scheduler:sleep(delay)
    if engine.closed then return nil, errors.closed() end
    delay = math.min(delay * 2, 1)
  end
end

-- Checks and uploads a journaled job's local files; files uploaded by an
-- earlier run (same path, same size) are not uploaded again. Returns nil, or
-- an error.
prepare_files = function(engine, endpoint, own, body, journal_key, row)
  local any = false
  for _, src in ipairs(endpoint.sources) do any = any or own[src.file] ~= nil end
  if not any then return nil end
  local infos, err = uploads.check(endpoint, own, body)
  if not infos then return err end
  err = engine.transport:check_api_token() -- before minutes of uploading for a refused submit
  if err then return err end
  local stored = row.uploads and core.decode(row.uploads) or {}
  local known = {}
  for field, up in pairs(type(stored) == "table" and stored or {}) do
    if infos[field] and type(up) == "table" and up.path == own[field] and up.bytes == infos[field].bytes then
      known[field] = up.url
    end
  end
  local urls
  urls, err = uploads.resolve(engine, endpoint, own, body, known)
  if not urls then return err end
  local record = {}
  for field, url in pairs(urls) do record[field] = { path = own[field], bytes = infos[field].bytes, url = url } end
  local n, jerr = engine.store:set_uploads(journal_key, record, core.encode(body))
  if n == 0 then return lost_key(own.key or journal_key) end
  if not n then return jerr end
end

-- ---- the path ----

-- JSON with its object keys in order: the same parameters give the same text.
local function canonical(value)
  if type(value) ~= "table" then return core.encode(value) end
  local keys = {}
  for k in pairs(value) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for i, k in ipairs(keys) do parts[i] = core.encode(tostring(k)) .. ":" .. canonical(value[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- What a job asks, as canonical JSON: the fields sent (not async, which
-- kling sets) and each local file by its path and size (its URL is known
-- only once uploaded). The journal keeps it with the key.
local function fingerprint(endpoint, body, own)
  local asked = {}
  for k, v in pairs(body) do
    if k ~= "async" then asked[k] = v end
  end
  for _, src in ipairs(endpoint.sources) do
    local path = own[src.file]
    if path then
      local info = core.stat(path)
      asked[src.file] = { path = path, bytes = info and info.size or -1 }
    end
  end
  return canonical(asked)
end

-- Submits body (a request of endpoint's) at most once per key. Returns
--   task_id, nil, how      how: "sent" (new), "follow" (submitted before), "done" (finished before)
--   nil, err               (stored failure, uncertain, the key names another job, or the submit's own error)
-- and, for "done", the stored result as a 4th value; for "follow", when the
-- task was submitted; and for "sent", the journal's error when it could not
-- record the task id, as a 5th.
-- opts: key, retry_failed, local files, on_upload; hooks: on_submit.
function submission.submit(engine, endpoint, body, hooks, opts)
  local journal, key = engine.store, opts.key
  local token, err
  if body.callback_url then
    token = webhooks.new_token()
  end
  if not journal then
    local urls
    urls, err = uploads.check(endpoint, opts, body)
    if not urls then return nil, err end
    if next(urls) then
      err = engine.transport:check_api_token() -- before minutes of uploading for a refused submit
      if err then return nil, err end
    end
    urls, err = uploads.resolve(engine, endpoint, opts, body)
    if not urls then return nil, err end
    if token then body.callback_url = webhooks.with_token(body.callback_url, token) end
    local task_id
    task_id, err = send(engine, endpoint, body, hooks, key, nil)
    if task_id and token then engine.callback_tokens:add(task_id, token) end
    if not task_id then return nil, err end
    return task_id, nil, "sent"
  end

  -- keyless jobs are journaled too, under a placeholder until the task id is known
  local journal_key = key or ("~" .. core.random_token(8))
  local hold = { held = false }
  local function done() -- however this ends (a cancel included), the key is not held
    if hold.held then
      hold.held, engine.active[journal_key] = false, nil
      journal:release(journal_key, key == nil)
    elseif hold.claiming and not engine.active[journal_key] then
      -- ended while its claim's INSERT was being committed (no other job of
      -- this client holds the key): what it may have queued is let go
      hold.claiming = false
      journal:release(journal_key, key == nil)
    end
  end
  engine.scheduler:on_exit(done)
  local job = { endpoint = endpoint.name, params = fingerprint(endpoint, body, opts), request = core.encode(body),
                callback_token = token }
  local action, row = claim(engine, journal_key, job, opts.retry_failed, hold)
  if not action then return nil, row end
  if action == "conflict" then return nil, row end
  if action == "result" then
    local result = row.result and core.decode(row.result) or {}
    return row.task_id, nil, "done", result
  elseif action == "failure" then
    return nil, stored_error(row)
  elseif action == "follow" then -- and when it was submitted (wall-clock seconds), as 4th value
    return row.task_id, nil, "follow", row.updated_at
  elseif action == "uncertain" then
    return nil, uncertain_error(row)
  end
  -- "submit": the entry is queued and ours (hold.held). A job that ends
  -- before anything left the machine (a file refused by the checks below)
  -- leaves no entry behind (Store:release).
  err = prepare_files(engine, endpoint, opts, body, journal_key, row)
  if err then
    done()
    return nil, err
  end
  -- the entry keeps the token of its first callback URL (a retry must match
  -- the URL the server may already hold); a submit without callback_url has none
  token = body.callback_url and row.callback_token or nil
  if token then body.callback_url = webhooks.with_token(body.callback_url, token) end
  local task_id, unrecorded
  task_id, err = send(engine, endpoint, body, hooks, key, journal_key)
  done()
  if not task_id then return nil, err end
  unrecorded = err
  if token then engine.callback_tokens:add(task_id, token) end
  return task_id, nil, "sent", nil, unrecorded
end

-- Submits (or, with a journal, finds) the job and follows it to its end:
-- the final answer, or nil and an error. hooks: on_submit, on_status;
-- opts: key, retry_failed, local files, on_upload.
function submission.run(engine, endpoint, body, hooks, opts)
  local task_id, err, how, stored, unrecorded = submission.submit(engine, endpoint, body, hooks, opts)
  if not task_id then return nil, err end
  if how == "done" then return stored end
  local s = engine.settings
  -- a task submitted earlier may be long finished: look at once
  local first_delay = how == "sent" and s.poll_interval or 0
  -- how long ago the task was submitted: 0 for one sent just now, unknown
  -- (nil) for a task found in the journal without its time
  local age = how == "sent" and 0 or (how == "follow" and stored and core.time() - stored or nil)
  local result
  result, err = engine:wait(task_id, s.wait_timeout, hooks.on_status, first_delay, age)
  if unrecorded then
    -- the task is followed all the same; its id is recorded now, or the
    -- call fails with the id (and the result, if the task ended)
    local journal = engine.store
    local ok, jerr = journal:record_unrecorded(task_id)
    if ok then
      if result or err and err.kind == "task_failed" then journal:finished(task_id, result, err) end
      journal:settle()
    else
      unrecorded.cause, unrecorded.result = jerr, result
      return nil, unrecorded
    end
  end
  if err then err.key = err.key or opts.key end
  return result, err
end

return submission
