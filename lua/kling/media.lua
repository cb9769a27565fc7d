-- kling.media: what a local image or video is (read from its headers by
-- kling.core), and whether it fits an endpoint's limits (the endpoint
-- description says which: endpoints/*.lua). A file that breaks them would
-- fail on the server after a paid round trip, so they are checked first.
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local core = require "kling.core"
local errors = require "kling.errors"

local media = {}

local MB = 1024 * 1024

-- { kind, format, width, height, bytes, duration?, coded_width?,
-- coded_height? } or nil and an invalid_argument error (field "path") that
-- says what is wrong with the file.
function media.probe(path)
  if type(path) ~= "string" or path == "" then
    error("bad argument #1 to 'probe' (file path expected, got " .. type(path) .. ")", 2)
  end
  local info, err = core.probe(path)
  if not info then return nil, errors.new("invalid_argument", err, { field = "path" }) end
  return info
end

local function mb(bytes) return ("%.1f MB"):format(bytes / MB) end

-- The problems of a probed file against limits (an endpoint's, for one kind
-- of file: kind, what, formats, max_bytes, min_side, max_side, max_aspect,
-- min_seconds, max_seconds, seconds_because), as messages. An empty list: it fits.
function media.problems(info, limits)
  local list = {}
  local function add(fmt, ...) list[#list + 1] = fmt:format(...) end
  if info.kind ~= limits.kind or not limits.formats[info.format] then
    add("must be %s, got %s %s", limits.what, info.format, info.kind)
    return list
  end
  if limits.max_bytes and info.bytes > limits.max_bytes then
    add("is %s; at most %s", mb(info.bytes), mb(limits.max_bytes))
  end
  local w, h = info.width, info.height
  if limits.min_side and math.min(w, h) < limits.min_side then
    add("is %dx%d px; both sides must be at least %d px", w, h, limits.min_side)
  end
  if limits.max_side and math.max(w, h) > limits.max_side then
    add("is %dx%d px; both sides must be at most %d px", w, h, limits.max_side)
  end
  if limits.max_aspect and math.min(w, h) > 0 and math.max(w, h) / math.min(w, h) > limits.max_aspect then
    add("is %dx%d px (aspect %.2f:1); at most %.1f:1 either way", w, h, math.max(w, h) / math.min(w, h),
      limits.max_aspect)
  end
  -- the size the pictures are coded in must fit too (an anamorphic video
  -- shows wider than it is coded)
  local cw, ch = info.coded_width, info.coded_height
  if cw and ch and (cw ~= w or ch ~= h) then
    if limits.min_side and math.min(cw, ch) < limits.min_side then
      add("is coded at %dx%d px; both sides must be at least %d px", cw, ch, limits.min_side)
    end
    if limits.max_side and math.max(cw, ch) > limits.max_side then
      add("is coded at %dx%d px; both sides must be at most %d px", cw, ch, limits.max_side)
    end
  end
  if limits.min_seconds or limits.max_seconds then
    local d = info.duration or 0
    if limits.min_seconds and d < limits.min_seconds then
      add("is %.2f s long; at least %d s", d, limits.min_seconds)
    end
    if limits.max_seconds and d > limits.max_seconds then
      add("is %.2f s long; at most %d s%s", d, limits.max_seconds,
        limits.seconds_because and (" " .. limits.seconds_because) or "")
    end
  end
  return list
end

-- Probes path for `field` and checks it against limits: the info, or nil
-- and an invalid_argument error naming the field and what was measured.
function media.check(path, field, limits)
  local info, err = core.probe(path)
  if not info then return nil, errors.invalid(field, ("cannot be used: %s"):format(err)) end
  local problems = media.problems(info, limits)
  if #problems > 0 then
    return nil, errors.invalid(field, ("%s %s"):format(path, table.concat(problems, "; ")))
  end
  return info
end

return media
