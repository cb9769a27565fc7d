-- Reads AceData task records: when a task is over, and how it ended.
-- The rules answer bugs AceData's own clients shipped (docs/api.md, "When a
-- task is over"): an error object without finished_at is a failure,
-- success=false beside a video URL is a failure, the success word is
-- "succeed", and a failed task is never polled on.
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local core = require "kling.core"
local errors = require "kling.errors"

local task = {}

local null = core.null

-- JSON null reads as absent, everywhere below.
local function value(v)
  if v == null then return nil end
  return v
end

local function table_or_nil(v)
  v = value(v)
  if type(v) == "table" then return v end
end

local function string_or_nil(v)
  v = value(v)
  if type(v) == "string" and v ~= "" then return v end
end

-- t without its JSON nulls (removed in place: the decoded answer is ours
-- alone), so callers can test fields with plain `if`. Every finished task
-- read passes here; the walk is kling.core's (strip_nulls), on every
-- runtime: one path (LuaJIT ran a Lua walk faster, 0.02 against 0.21 µs per
-- task, about 1% of a retrieval; not worth a second path).
task.clean = core.strip_nulls

-- AceData answers flat, but its schema also allows { data = {...} }.
function task.unwrap(body)
  local data = body.data
  if data ~= nil and body.id == nil and body.task_id == nil and body.items == nil and type(data) == "table" then
    return data
  end
  return body
end

local function identity(text) return text end

-- redact blanks the token out of the task's own words: they come from the
-- network like any answer, and a gateway may have echoed it into them.
local function failure(response, record, id, redact)
  local err = table_or_nil(response.error) or {}
  local message = string_or_nil(err.message)
  if message then
    message = redact(message)
  elseif response.success == false and string_or_nil(response.video_url) then
    message = "the API reported success = false although it returned a video"
  else
    message = "the task failed"
  end
  local code, trace_id = string_or_nil(err.code), string_or_nil(record.trace_id)
  return errors.new("task_failed", message, {
    task_id = id and redact(id), code = code and redact(code), trace_id = trace_id and redact(trace_id),
  })
end

-- (Asked only when it decides: see normalize.)
local function has_video(response)
  local url = response.video_url
  return type(url) == "string" and url ~= ""
end

-- Normalises a record: { id, state, done, result?, error?, raw }. redact
-- (optional) is applied to every string that goes into an error. (Every
-- retrieval passes here: the helpers above are spelt out inline.)
function task.normalize(record, fallback_id, redact)
  local id, response = record.id, record.response
  if type(id) ~= "string" or id == "" then id = fallback_id end
  local created_at, finished_at = record.created_at, record.finished_at
  if created_at == null then created_at = nil end
  if finished_at == null then finished_at = nil end
  local t = {
    id = id, raw = record, done = false, state = "processing",
    created_at = created_at, finished_at = finished_at,
  }
  if type(response) ~= "table" then return t end
  local state = response.state
  if state ~= "succeed" and state ~= "failed" and (type(state) ~= "string" or state == "") then state = nil end
  local flagged_failure = response.success == false
  t.state = state or "processing"
  if state == "failed"
      or (flagged_failure and (state == "succeed" or type(response.error) == "table" or has_video(response))) then
    t.done, t.state = true, "failed"
    t.error = failure(response, record, id, redact or identity)
  elseif state == "succeed" or (response.success == true and finished_at ~= nil and has_video(response)) then
    t.done, t.state = true, "succeed"
    local result = task.clean(response)
    result.task_id = result.task_id or id
    result.state = "succeed"
    t.result = result
  end
  return t
end

function task.not_found(id)
  return errors.new("not_found", "no task with id " .. id, { task_id = id })
end

return task
