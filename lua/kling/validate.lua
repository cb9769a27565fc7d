-- Checks a request before any traffic, naming the field at fault: generic
-- over an endpoint's description (endpoints/*.lua says what each field
-- takes), plus kling's own fields, which are never sent.
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local errors = require "kling.errors"

local validate = {}

-- Fields that are kling's for every endpoint, never sent: the hooks, the
-- journal key and what to do with a failed one. (Local files are the
-- endpoint's sources.)
local OWN = { on_submit = true, on_status = true, on_upload = true, key = true, retry_failed = true }
local HOOKS = { on_submit = true, on_status = true, on_upload = true }

-- Characters of a UTF-8 string (5.1 has no utf8 library): bytes that do not
-- continue a sequence.
local function utf8_length(s)
  local _, continuations = s:gsub("[\128-\191]", "")
  return #s - continuations
end

-- The longest key kling accepts (it names files in a batch's download_dir too).
local MAX_KEY_BYTES = 200

local function one_of(list, value)
  for _, v in ipairs(list) do
    if v == value then return true end
  end
  return false
end

local function quoted(list)
  return '"' .. table.concat(list, '" or "') .. '"'
end

-- A plain copy made with next, which honours neither __index nor __pairs:
-- what is checked is exactly what is sent.
local function raw_copy(t)
  local copy = {}
  local k, v = next(t)
  while k ~= nil do
    copy[k] = v
    k, v = next(t, k)
  end
  return copy
end

function validate.url(field, value)
  if type(value) ~= "string" then
    return errors.invalid(field, "must be a string URL")
  end
  if not value:match("^[hH][tT][tT][pP][sS]?://[^/?#%s]+") or value:find("[%c%s]") then
    return errors.invalid(field, "must be an http:// or https:// URL without spaces")
  end
end

-- A field of the endpoint's (rule: its description), or an error.
local function check_endpoint_field(name, value, rule)
  if rule.url then return validate.url(name, value) end
  if rule.enum then
    if not one_of(rule.enum, value) then
      return errors.invalid(name, "must be " .. quoted(rule.enum) .. ", got " .. tostring(value))
    end
  elseif rule.text then
    if type(value) ~= "string" then return errors.invalid(name, "must be a string") end
    local n = utf8_length(value)
    if n > rule.text then return errors.invalid(name, ("is %d characters; at most %d"):format(n, rule.text)) end
  elseif rule.shape then
    local wanted = {}
    for k, t in pairs(rule.shape) do wanted[#wanted + 1] = ("%s = %s"):format(k, t) end
    table.sort(wanted)
    if type(value) ~= "table" then
      return errors.invalid(name, ("must be a table { %s }"):format(table.concat(wanted, ", ")))
    end
    for k, t in pairs(rule.shape) do
      if type(rawget(value, k)) ~= t then
        return errors.invalid(name, ("must be a table { %s }"):format(table.concat(wanted, ", ")))
      end
    end
    for k in next, value do
      if not rule.shape[k] then return errors.invalid(name .. "." .. tostring(k), "is not a field of " .. name) end
    end
  elseif rule.type then
    if type(value) ~= rule.type then return errors.invalid(name, "must be a " .. rule.type) end
  elseif rule.number then
    local n = rule.number
    if type(value) ~= "number" or value ~= value then return errors.invalid(name, "must be a number") end
    if (n.integer and value % 1 ~= 0) or value < n.min or value > n.max then
      return errors.invalid(name, ("must be %s from %s to %s, got %s"):format(n.integer and "an integer" or "a number",
        tostring(n.min), tostring(n.max), tostring(value)))
    end
  end
  -- a rule of the endpoint's own for a structured value: (field, message) or nil
  if rule.check then
    local field, message = rule.check(value, name)
    if field then return errors.invalid(field, message) end
  end
end

-- A field of kling's own, or an error.
local function check_own(name, value)
  if name == "key" then return validate.key(value, name) end
  if name == "retry_failed" then
    if type(value) ~= "boolean" then return errors.invalid(name, "must be a boolean") end
  elseif HOOKS[name] then
    if type(value) ~= "function" then return errors.invalid(name, "must be a function") end
  end
end

local function check_file(name, value)
  if type(value) ~= "string" or value == "" or value:find("%z") then
    return errors.invalid(name, "must be a file path")
  end
end

-- Returns the JSON body to send and kling's own fields (hooks, key,
-- retry_failed, local files), or nil and an invalid_argument error. params
-- is read once, raw; metatables on it are ignored. fname names the call
-- (for misuse: a non-table raises, like Lua's own argument errors).
function validate.request(endpoint, params, fname)
  if type(params) ~= "table" then
    error(("bad argument #1 to '%s' (table expected, got %s)"):format(fname, type(params)), 3)
  end
  params = raw_copy(params)
  local files = {}
  for _, src in ipairs(endpoint.sources) do
    files[src.file] = true
    local url, file = params[src.url], params[src.file]
    if url == nil and file == nil and src.required then
      return nil, errors.invalid(src.url, ("is required (or %s, a local file to upload)"):format(src.file))
    end
    if url ~= nil and file ~= nil then
      return nil, errors.invalid(src.file, ("and %s are alternatives: give one"):format(src.url))
    end
  end
  for name, rule in pairs(endpoint.fields) do
    if rule.required and params[name] == nil then
      return nil, errors.invalid(name, "is required" .. (rule.enum and (": " .. quoted(rule.enum)) or ""))
    end
  end
  local body, own = {}, {}
  for name, value in pairs(params) do
    local rule, err = endpoint.fields[name]
    if rule then
      if rule.boolean and type(value) == "boolean" then value = rule.boolean[value] end
      err = check_endpoint_field(name, value, rule)
      body[name] = value
    elseif files[name] then
      err = check_file(name, value)
      own[name] = value
    elseif OWN[name] then
      err = check_own(name, value)
      own[name] = value
    elseif name == "async" then
      err = errors.invalid(name, "is set by the client: it always submits asynchronously")
    else
      local is_source = false
      for _, src in ipairs(endpoint.sources) do is_source = is_source or src.url == name end
      if is_source then
        err = validate.url(name, value)
        body[name] = value
      else
        err = errors.invalid(tostring(name), ("is not a field of %s"):format(endpoint.path))
      end
    end
    if err then return nil, err end
  end
  -- the rules between fields (endpoint.check: a field at fault and why)
  if endpoint.check then
    local field, message = endpoint.check(body, own)
    if field then return nil, errors.invalid(field, message) end
  end
  -- a table the caller may change later is copied as it was checked
  for name, rule in pairs(endpoint.fields) do
    if rule.shape and body[name] then
      local copy = {}
      for k in pairs(rule.shape) do copy[k] = rawget(body[name], k) end
      body[name] = copy
    elseif rule.copy and body[name] ~= nil then
      body[name] = rule.copy(body[name])
    end
  end
  body.async = true
  return body, own
end

-- A list of task ids, read raw: returns a plain array of exactly the ids
-- checked (the one to send), or nil and an error naming the entry at fault.
function validate.task_ids(ids)
  local n = 0
  for k in next, ids do
    if type(k) ~= "number" or k < 1 or k % 1 ~= 0 then
      return nil, errors.invalid("ids", ("must be a list of task ids; it has the key %s"):format(
        type(k) == "string" and ("%q"):format(k) or tostring(k)))
    end
    n = n + 1
  end
  local list = {}
  for i = 1, n do
    local id = rawget(ids, i)
    local field = ("ids[%d]"):format(i)
    if id == nil then return nil, errors.invalid(field, "is missing: ids must be a list without holes") end
    local err = validate.task_id(id, field)
    if err then return nil, err end
    list[i] = id
  end
  return list
end

-- A journal key: a name of the caller's for a job, never sent to the API.
function validate.key(value, field)
  field = field or "key"
  if type(value) ~= "string" or value == "" then return errors.invalid(field, "must be a non-empty string") end
  if #value > MAX_KEY_BYTES then return errors.invalid(field, ("must be at most %d bytes"):format(MAX_KEY_BYTES)) end
  if value:find("%c") then return errors.invalid(field, "must not contain control characters") end
  if value:sub(1, 1) == "~" then return errors.invalid(field, "must not start with ~ (kling's own placeholders)") end
end

function validate.task_id(value, field)
  field = field or "task_id"
  if type(value) ~= "string" or value == "" then
    return errors.invalid(field, "must be a non-empty string")
  end
  -- every byte but the printable ASCII ones and those of UTF-8 sequences:
  -- [%c%s] spelt as one range, which Lua's matcher tests much faster
  if value:find("[^\33-\126\128-\255]") then
    return errors.invalid(field, "must not contain spaces or control characters")
  end
end

return validate
