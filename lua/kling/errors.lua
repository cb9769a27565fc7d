-- Structured errors: every run-time failure is `nil, err` where err is one of
-- these. Fields: kind, message, and where known status, code, trace_id,
-- task_id, retry_after, field.
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local errors = {}

local Error = {}
Error.__index = Error
Error.__name = "kling.error"

errors.KINDS = {
  invalid_argument = true, auth = true, rate_limited = true, api = true,
  network = true, timeout = true, bad_response = true, task_failed = true,
  not_found = true, cancelled = true, closed = true, hook = true, pending = true,
  uncertain = true, journal = true,
}

function Error.__tostring(e)
  local extra = {}
  if e.status then extra[#extra + 1] = "HTTP " .. e.status end
  if e.code then extra[#extra + 1] = "code " .. e.code end
  if e.field then extra[#extra + 1] = "field " .. e.field end
  if e.key then extra[#extra + 1] = "key " .. e.key end
  if e.task_id then extra[#extra + 1] = "task " .. e.task_id end
  if e.trace_id then extra[#extra + 1] = "trace " .. e.trace_id end
  local s = "kling " .. e.kind .. " error: " .. e.message
  if #extra > 0 then s = s .. " (" .. table.concat(extra, ", ") .. ")" end
  return s
end

function errors.new(kind, message, fields)
  assert(errors.KINDS[kind], "unknown error kind")
  local e = { kind = kind, message = message }
  for k, v in pairs(fields or {}) do e[k] = v end
  return setmetatable(e, Error)
end

function errors.is(value)
  return getmetatable(value) == Error
end

function errors.closed()
  return errors.new("closed", "the client is closed")
end

-- A caller's function (a hook, accept, on_progress, verbose) raised err.
function errors.hook(name, err, task_id)
  return errors.new("hook", ("%s raised an error: %s"):format(name, tostring(err)), { task_id = task_id, cause = err })
end

function errors.invalid(field, message)
  return errors.new("invalid_argument", field .. " " .. message, { field = field })
end

return errors
