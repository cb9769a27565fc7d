-- Client options: defaults, the environment, and checks that name the field.
local errors = require "kling.errors"

local config = {}

config.DEFAULT_BASE_URL = "https://api.acedata.cloud"

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
  max_connections = 32,    -- per host, shared by every job of the client
  max_response_bytes = 4 * 1024 * 1024,
  max_download_bytes = 2 * 1024 * 1024 * 1024,
  verbose = false,
}

local NUMBERS = {
  timeout = "positive", connect_timeout = "positive", poll_interval = "positive",
  max_poll_interval = "positive", wait_timeout = "positive", poll_batch_window = "non_negative",
  download_timeout = "positive", retry_delay = "non_negative",
  max_retry_delay = "non_negative", max_retry_after = "non_negative",
  max_retries = "count", max_connections = "count",
  max_response_bytes = "count", max_download_bytes = "count",
}
local STRINGS = { user_agent = true, cainfo = true, capath = true, proxy = true }

local function check_number(name, value, rule)
  if type(value) ~= "number" or value ~= value then
    return errors.invalid(name, "must be a number")
  end
  if rule == "positive" and value <= 0 then
    return errors.invalid(name, "must be greater than 0")
  elseif rule == "non_negative" and value < 0 then
    return errors.invalid(name, "must not be negative")
  elseif rule == "count" and (value < 0 or value % 1 ~= 0) then
    return errors.invalid(name, "must be a whole number, 0 or more")
  end
end

local function check_token(token)
  if type(token) ~= "string" or token == "" then
    return errors.invalid("token", "is missing: pass token = ... or set ACEDATACLOUD_API_TOKEN")
  end
  if token:find("[%c%s]") then
    return errors.invalid("token", "must not contain spaces or control characters")
  end
end

local function check_base_url(url)
  if type(url) ~= "string" or not url:match("^https?://[^%s/?#]+[^%s]*$") then
    return errors.invalid("base_url", "must be an http:// or https:// URL")
  end
end

local function getenv(name)
  local v = os.getenv(name)
  if v ~= nil and v ~= "" then return v end
end

-- Returns the settings and the token apart (the token goes to C and nowhere else).
function config.build(options)
  options = options or {}
  if type(options) ~= "table" then
    error("bad argument #1 to 'kling.new' (table expected, got " .. type(options) .. ")", 3)
  end
  local settings = {}
  for k, v in pairs(DEFAULTS) do settings[k] = v end
  for name, value in pairs(options) do
    local err
    if NUMBERS[name] then
      err = check_number(name, value, NUMBERS[name])
    elseif STRINGS[name] then
      if type(value) ~= "string" then err = errors.invalid(name, "must be a string") end
    elseif name == "verbose" then
      if type(value) ~= "boolean" and type(value) ~= "function" then
        err = errors.invalid(name, "must be a boolean or a function(text)")
      end
    elseif name ~= "token" and name ~= "base_url" then -- those two are checked below
      err = errors.invalid(tostring(name), "is not a kling option")
    end
    if err then return nil, err end
    if name ~= "token" then settings[name] = value end
  end
  if settings.max_poll_interval < settings.poll_interval then
    return nil, errors.invalid("max_poll_interval", "must not be less than poll_interval")
  end
  local token = options.token or getenv("ACEDATACLOUD_API_TOKEN")
  local err = check_token(token)
  if err then return nil, err end
  settings.base_url = options.base_url or getenv("ACEDATACLOUD_API_BASE_URL") or config.DEFAULT_BASE_URL
  err = check_base_url(settings.base_url)
  if err then return nil, err end
  settings.base_url = settings.base_url:gsub("/+$", "")
  return settings, token
end

return config
