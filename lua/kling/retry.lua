-- When to try again, and how long to wait first.
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local core = require "kling.core"

local retry = {}

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6,
                 Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12 }

-- Days since 1970-01-01 of a proleptic Gregorian date (no os.time: it is local time).
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

-- Seconds since the epoch of an HTTP date (IMF-fixdate, RFC 850 or asctime).
function retry.parse_http_date(s)
  local d, mon, y, hh, mm, ss = s:match("(%d%d?)[ %-](%a%a%a)[ %-](%d+) (%d%d):(%d%d):(%d%d)")
  if not d then
    mon, d, hh, mm, ss, y = s:match("%a%a%a (%a%a%a) +(%d%d?) (%d%d):(%d%d):(%d%d) (%d%d%d%d)")
  end
  if not d or not MONTHS[mon] then return nil end
  y = tonumber(y)
  if y < 100 then y = y + (y < 70 and 2000 or 1900) end
  return days_from_civil(y, MONTHS[mon], tonumber(d)) * 86400
    + tonumber(hh) * 3600 + tonumber(mm) * 60 + tonumber(ss)
end

-- Retry-After as seconds from now: delta-seconds or an HTTP date.
function retry.parse_retry_after(value, now)
  if type(value) ~= "string" then return nil end
  local secs = value:match("^%s*(%d+%.?%d*)%s*$") -- delta-seconds (a fraction is tolerated)
  if secs then return tonumber(secs) end
  local at = retry.parse_http_date(value)
  if at then return math.max(0, at - (now or os.time())) end
end

-- Exponential backoff with full jitter; a Retry-After longer than the cap
-- returns nil: the caller reports it instead of sleeping through it.
function retry.delay(attempt, settings, retry_after, random)
  random = random or core.random
  if retry_after then
    if retry_after > settings.max_retry_after then return nil end
    return retry_after
  end
  local ceiling = math.min(settings.max_retry_delay, settings.retry_delay * 2 ^ (attempt - 1))
  return random() * ceiling
end

-- Network failures that asking again cannot mend: a certificate that does
-- not verify, a URL libcurl cannot use, a redirect it refused to follow.
local FINAL_REASONS = { tls = true, url = true, redirect = true }

-- For idempotent requests: network trouble, a garbled status line, 408, 429 and 5xx.
function retry.retryable(err)
  if err.kind == "network" then return not FINAL_REASONS[err.reason] end
  if err.kind == "timeout" then return true end
  if err.kind == "bad_response" then return err.reason == "bad_status" end
  local s = err.status
  return s == 408 or s == 429 or (s ~= nil and s >= 500 and s <= 599)
end

-- The next poll interval: x1.5 up to the maximum.
function retry.next_poll_interval(current, settings)
  return math.min(current * 1.5, settings.max_poll_interval)
end

-- +/-10% so that many jobs started together do not poll in lockstep.
function retry.jitter(seconds, random)
  random = random or core.random
  return seconds * (0.9 + 0.2 * random())
end

return retry
