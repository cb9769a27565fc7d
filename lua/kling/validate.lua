-- Checks a motion request before any traffic, naming the field at fault.
-- Fields, limits and enums: docs/api.md, "Submitting".
local errors = require "kling.errors"

local validate = {}

local ENUMS = {
  character_orientation = { "image", "video" },
  mode = { "std", "pro" },
  keep_original_sound = { "yes", "no" },
  model_name = { "kling-v2-6", "kling-v3" },
}
local REQUIRED = { "character_orientation", "mode" }
-- Each reference is a URL or a local file (checked and uploaded by kling).
local SOURCES = { { "image_url", "image_file" }, { "video_url", "video_file" } }
local URLS = { image_url = true, video_url = true, callback_url = true }
-- Fields that are kling's, never sent: the hooks, the journal key, local files.
local LOCAL = { on_submit = true, on_status = true, on_upload = true, key = true,
                image_file = true, video_file = true, retry_failed = true }
local HOOKS = { on_submit = true, on_status = true, on_upload = true }

-- The API's limit on prompts (docs/api.md, "Submitting"), in characters.
local MAX_PROMPT_CHARS = 2500

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

local function check_field(name, value)
  if URLS[name] then return validate.url(name, value) end
  if ENUMS[name] then
    if not one_of(ENUMS[name], value) then
      return errors.invalid(name, "must be " .. quoted(ENUMS[name]) .. ", got " .. tostring(value))
    end
  elseif name == "prompt" then
    if type(value) ~= "string" then return errors.invalid(name, "must be a string") end
    local n = utf8_length(value)
    if n > MAX_PROMPT_CHARS then
      return errors.invalid(name, ("is %d characters; at most %d"):format(n, MAX_PROMPT_CHARS))
    end
  elseif name == "image_file" or name == "video_file" then
    if type(value) ~= "string" or value == "" or value:find("%z") then
      return errors.invalid(name, "must be a file path")
    end
  elseif name == "watermark_info" then
    if type(value) ~= "table" or type(rawget(value, "enabled")) ~= "boolean" then
      return errors.invalid(name, "must be a table { enabled = true|false }")
    end
    for k in next, value do
      if k ~= "enabled" then return errors.invalid(name .. "." .. tostring(k), "is not a watermark option") end
    end
  elseif name == "key" then
    return validate.key(value, name)
  elseif name == "retry_failed" then
    if type(value) ~= "boolean" then return errors.invalid(name, "must be a boolean") end
  elseif HOOKS[name] then
    if type(value) ~= "function" then return errors.invalid(name, "must be a function") end
  elseif name == "async" then
    return errors.invalid(name, "is set by the client: it always submits asynchronously")
  else
    return errors.invalid(tostring(name), "is not a Kling Motion field")
  end
end

-- Returns the JSON body to send and kling's own fields (on_submit, on_status,
-- key), or nil and an invalid_argument error.
-- params is read once, raw; metatables on it are ignored.
function validate.motion(params, fname)
  if type(params) ~= "table" then
    error(("bad argument #1 to '%s' (table expected, got %s)"):format(fname, type(params)), 3)
  end
  params = raw_copy(params)
  for _, pair in ipairs(SOURCES) do
    local url, file = pair[1], pair[2]
    if params[url] == nil and params[file] == nil then
      return nil, errors.invalid(url, ("is required (or %s, a local file to upload)"):format(file))
    end
    if params[url] ~= nil and params[file] ~= nil then
      return nil, errors.invalid(file, ("and %s are alternatives: give one"):format(url))
    end
  end
  for _, name in ipairs(REQUIRED) do
    if params[name] == nil then
      local hint = ENUMS[name] and (": " .. quoted(ENUMS[name])) or ""
      return nil, errors.invalid(name, "is required" .. hint)
    end
  end
  local body, hooks = {}, {}
  for name, value in pairs(params) do
    if name == "keep_original_sound" and type(value) == "boolean" then
      value = value and "yes" or "no"
    end
    local err = check_field(name, value)
    if err then return nil, err end
    if LOCAL[name] then hooks[name] = value else body[name] = value end
  end
  if body.watermark_info then body.watermark_info = { enabled = rawget(body.watermark_info, "enabled") } end
  body.async = true
  return body, hooks
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
