-- Client options: defaults, the environment, and checks that name the field.
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local errors = require "kling.errors"

local config = {}

config.DEFAULT_BASE_URL = "https://api.acedata.cloud"
config.DEFAULT_PLATFORM_URL = "https://platform.acedata.cloud" -- uploads (docs/api.md)

local DEFAULTS = {
  timeout = 30,            -- seconds per HTTP request
  connect_timeout = 10,
  max_retries = 2,         -- retries after the first attempt
  retry_delay = 0.5,       -- base of the exponential backoff
  max_retry_delay = 30,    -- cap of one backoff sleep
  max_retry_after = 120,   -- a longer Retry-After is reported, not slept through
  poll_interval = 3,
  max_poll_interval = 15,
  poll_batch_window = 0.1, -- polls due this close together share one request
  wait_timeout = 600,
  download_timeout = 600,  -- seconds for a whole video download
  upload_timeout = 600,    -- seconds for a whole upload
  max_upload_bytes = 100 * 1024 * 1024, -- the platform's default limit per file
  max_connections = 32,    -- per host, shared by every job of the client
  max_response_bytes = 4 * 1024 * 1024,
  max_download_bytes = 2 * 1024 * 1024 * 1024,
  verbose = false,
}

-- Every numeric option has a range: a value outside it is an error that
-- names the option, never a raise deep inside libcurl or a cast in C.
local DAY, YEAR = 86400, 86400 * 365
local MAX_BYTES = 2 ^ 53 -- the largest size a Lua number carries exactly
local NUMBERS = {
  --                   kind       min   max
  timeout           = { "seconds", 0,    DAY },
  connect_timeout   = { "seconds", 0,    DAY },
  download_timeout  = { "seconds", 0,    DAY },
  upload_timeout    = { "seconds", 0,    DAY },
  poll_interval     = { "seconds", 0,    DAY },
  max_poll_interval = { "seconds", 0,    DAY },
  wait_timeout      = { "seconds", 0,    YEAR },
  poll_batch_window = { "seconds_or_0", 0, 60 },
  retry_delay       = { "seconds_or_0", 0, DAY },
  max_retry_delay   = { "seconds_or_0", 0, DAY },
  max_retry_after   = { "seconds_or_0", 0, DAY },
  max_retries       = { "count", 0, 100 },
  max_connections   = { "count", 1, 100000 }, -- kling.core's bound too
  max_response_bytes = { "count", 1, MAX_BYTES },
  max_download_bytes = { "count", 1, MAX_BYTES },
  max_upload_bytes  = { "count", 1, MAX_BYTES },
}
local STRINGS = { user_agent = true, cainfo = true, capath = true, proxy = true, journal = true }

local function check_number(name, value, rule)
  local kind, min, max = rule[1], rule[2], rule[3]
  if type(value) ~= "number" or value ~= value then
    return errors.invalid(name, "must be a number")
  end
  if kind == "seconds" and not (value > min and value <= max) then
    return errors.invalid(name, ("must be more than 0 and at most %d seconds, got %s"):format(max, tostring(value)))
  elseif kind == "seconds_or_0" and not (value >= min and value <= max) then
    return errors.invalid(name, ("must be from 0 to %d seconds, got %s"):format(max, tostring(value)))
  elseif kind == "count" and not (value >= min and value <= max and value % 1 == 0) then
    return errors.invalid(name, ("must be a whole number from %d to %.0f, got %s"):format(min, max, tostring(value)))
  end
end

-- Strings that libcurl puts into a request line, a header or a file name:
-- a control character could inject a header or cut the value short in C.
local function check_line(name, value)
  if type(value) ~= "string" then return errors.invalid(name, "must be a string") end
  if value:find("%c") then return errors.invalid(name, "must not contain control characters") end
end

local function check_token(token, field, env)
  if type(token) ~= "string" or token == "" then
    return errors.invalid(field, ("is missing: pass %s = ... or set %s"):format(field, env))
  end
  if token:find("[%c%s]") then
    return errors.invalid(field, "must not contain spaces or control characters")
  end
end

local function check_url(url, field)
  local err = check_line(field, url)
  if err then return err end
  if not url:match("^https?://[^%s/?#]+[^%s]*$") then
    return errors.invalid(field, "must be an http:// or https:// URL")
  end
end

local function getenv(name)
  local v = os.getenv(name)
  if v ~= nil and v ~= "" then return v end
end

-- The URL options: name, environment variable, default.
local URLS = {
  { "base_url", "ACEDATACLOUD_API_BASE_URL", config.DEFAULT_BASE_URL },
  { "platform_url", "ACEDATACLOUD_PLATFORM_BASE_URL", config.DEFAULT_PLATFORM_URL },
}

-- The environment's value of a numeric option: KLING_<NAME> (for example
-- KLING_POLL_INTERVAL=1), for a program or a command whose code does not
-- set it. nil when not set; an error naming the variable when it is not a
-- number in the option's range.
local function from_environment(name)
  local var = "KLING_" .. name:upper()
  local text = getenv(var)
  if text == nil then return nil end
  local value = tonumber(text)
  local err = value == nil and errors.invalid(var, "must be a number, got " .. text)
    or check_number(name, value, NUMBERS[name])
  if err then
    err.field, err.message = var, err.message:gsub("^" .. name, var)
    return nil, err
  end
  return value
end

-- Returns the settings, the token and the platform token apart (the tokens go
-- to C and nowhere else).
function config.build(options)
  options = options or {}
  if type(options) ~= "table" then
    error("bad argument #1 to 'kling.new' (table expected, got " .. type(options) .. ")", 3)
  end
  local settings = {}
  for k, v in pairs(DEFAULTS) do settings[k] = v end
  for name in pairs(NUMBERS) do -- an option given in the code wins over the environment
    local value, err = from_environment(name)
    if err then return nil, err end
    if value ~= nil then settings[name] = value end
  end
  for name, value in pairs(options) do
    local err
    if NUMBERS[name] then
      err = check_number(name, value, NUMBERS[name])
    elseif STRINGS[name] then
      err = check_line(name, value)
    elseif name == "journal_sync" then
      if value ~= "full" and value ~= "normal" then err = errors.invalid(name, 'must be "full" or "normal"') end
    elseif name == "verbose" then
      if type(value) ~= "boolean" and type(value) ~= "function" then
        err = errors.invalid(name, "must be a boolean or a function(text)")
      end
    elseif not (name == "token" or name == "base_url" or name == "platform_token" or name == "platform_url") then
      -- those are checked below, with the environment
      err = errors.invalid(tostring(name), "is not a kling option")
    end
    if err then return nil, err end
    if name ~= "token" and name ~= "platform_token" then settings[name] = value end
  end
  if settings.journal == "" then return nil, errors.invalid("journal", "must be a file path") end
  if settings.max_poll_interval < settings.poll_interval then
    return nil, errors.invalid("max_poll_interval", "must not be less than poll_interval")
  end
  local token = options.token or getenv("ACEDATACLOUD_API_TOKEN")
  local err = check_token(token, "token", "ACEDATACLOUD_API_TOKEN")
  if err then return nil, err end
  -- the platform token is optional until the first upload (which then says so)
  local platform_token = options.platform_token or getenv("ACEDATACLOUD_PLATFORM_TOKEN")
  if platform_token ~= nil then
    err = check_token(platform_token, "platform_token", "ACEDATACLOUD_PLATFORM_TOKEN")
    if err then return nil, err end
  end
  for _, u in ipairs(URLS) do
    local field = u[1]
    local url = options[field] or getenv(u[2]) or u[3]
    err = check_url(url, field)
    if err then return nil, err end
    settings[field] = url:gsub("/+$", "")
  end
  return settings, token, platform_token
end

return config
