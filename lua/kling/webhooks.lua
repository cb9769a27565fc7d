-- Webhooks: a callback POST is unauthenticated input (AceData signs nothing),
-- so kling puts a secret of its own into each job's callback URL and checks
-- it when the callback comes back; the body is only a hint to re-read the
-- task from /kling/tasks. With a journal, which tasks are ours and which
-- were already reported live in the journal, shared by every process.
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local core = require "kling.core"
local errors = require "kling.errors"
local task = require "kling.task"

local webhooks = {}

-- The query parameter that carries the per-job secret (128 bits, hex).
webhooks.TOKEN_PARAM = "kling_token"

local TOKEN_BYTES = 16

function webhooks.new_token()
  return core.random_token(TOKEN_BYTES)
end

-- url with the token as a query parameter (before any #fragment).
function webhooks.with_token(url, token)
  local base, fragment = url:match("^([^#]*)(.*)$")
  local sep = base:find("?", 1, true) and "&" or "?"
  return base .. sep .. webhooks.TOKEN_PARAM .. "=" .. token .. fragment
end

-- The token in a URL (or in a path with its query), or nil.
function webhooks.token_of(url)
  local query = url:match("%?([^#]*)")
  if not query then return nil end
  for name, value in query:gmatch("([^&=]+)=([^&]*)") do
    if name == webhooks.TOKEN_PARAM then return value end
  end
end

-- The task id a callback body names, or nil and an error.
local function task_id_of(engine, payload)
  if type(payload) == "string" then
    local decoded, derr = core.decode(payload)
    if type(decoded) ~= "table" then
      return nil, errors.new("bad_response", "the callback body is not a JSON object"
        .. (derr and (": " .. derr) or ""))
    end
    payload = decoded
  end
  -- foreign text like any answer: redacted
  local body, foreign = task.unwrap(payload), engine.transport
  local task_id = foreign:foreign(body.task_id) or foreign:foreign(payload.task_id)
  if not task_id then return nil, errors.new("bad_response", "the callback carries no task_id") end
  return task_id
end

-- What this client knows of a task: its journal row (any process's), and the
-- token its callback URL carries.
local function lookup(engine, task_id)
  if engine.store then
    local row, err = engine.store:by_task(task_id)
    if err then return nil, nil, err end
    if row then return row, row.callback_token end
  end
  return nil, engine.callback_tokens:get(task_id)
end

-- The callback's checks, which send nothing: the task id it names and the
-- journal row of that task (or nil), or nil and an error.
local function check(engine, payload, opts)
  local task_id, err = task_id_of(engine, payload)
  if not task_id then return nil, nil, err end
  local row, expected, jerr = lookup(engine, task_id)
  if jerr then return nil, nil, jerr end
  local known = row ~= nil or engine.submitted:has(task_id)
  -- A task kling submitted is called back only with the token kling put in
  -- its callback URL; one submitted without a callback_url has no token, so
  -- no callback for it is genuine. Either way: an auth error, before any
  -- request. (A task kling does not know has no token to check: the
  -- caller's accept vouches for it, or it is refused below.)
  if known or expected then
    local got = type(opts.url) == "string" and webhooks.token_of(opts.url) or nil
    if not expected then
      return nil, nil, errors.new("auth", ("task %s was submitted without a callback_url, so no callback for it is "
        .. "genuine"):format(task_id), { task_id = task_id })
    end
    if not got or not core.secret_equal(got, expected) then
      return nil, nil, errors.new("auth", ("the callback for task %s does not carry its %s (pass the URL it was "
        .. "POSTed to as opts.url)"):format(task_id, webhooks.TOKEN_PARAM), { task_id = task_id })
    end
  end
  if not known and opts.accept then
    local ok, accepted = engine.scheduler:pcall(opts.accept, task_id)
    if not ok then
      return nil, nil, errors.hook("accept", accepted, task_id)
    end
    known = accepted
  end
  if not known then
    return nil, nil, errors.new("not_found", "a callback for a task this client did not submit", { task_id = task_id })
  end
  return task_id, row
end

-- The task re-read from the API, with first_delivery.
local function reread(engine, task_id, row)
  local t, err = engine:retrieve(task_id)
  if not t then return nil, err end
  t.first_delivery = false
  if t.done then
    if row then
      local first, ferr = engine.store:first_delivery(task_id)
      if first == nil then return nil, ferr end
      t.first_delivery = first
    else
      t.first_delivery = not engine.delivered:has(task_id)
      engine.delivered:add(task_id)
    end
  end
  return t
end

-- See Client:handle_callback. opts.spawn: the checks now, the re-read in a
-- job, which is returned (a server answers the POST at once).
function webhooks.handle(engine, payload, opts)
  local task_id, row, err = check(engine, payload, opts)
  if not task_id then return nil, err end
  if opts.spawn then return engine:spawn(reread, engine, task_id, row) end
  return reread(engine, task_id, row)
end

return webhooks
