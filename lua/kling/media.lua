-- kling.media: what a local image or video is (read from its headers by
-- kling.core), and whether Kling's motion control accepts it. The limits are
-- Kling's own (docs/api.md, "Media limits"): a file that breaks them would
-- fail on the server after a paid round trip, so they are checked first.
local core = require "kling.core"
local errors = require "kling.errors"

local media = {}

local MB = 1024 * 1024

media.LIMITS = {
  image = { formats = { png = true, jpeg = true }, max_bytes = 10 * MB, min_side = 300, max_aspect = 2.5 },
  video = { formats = { mp4 = true, mov = true }, max_bytes = 100 * MB, min_side = 340, max_side = 3850,
            min_seconds = 3, max_seconds = { image = 10, video = 30 } },
}

-- The field names for a probe of each kind.
local FIELD = { image = "image_file", video = "video_file" }

-- { kind, format, width, height, bytes, duration? } or nil and an
-- invalid_argument error (field "path") that says what is wrong with the file.
function media.probe(path)
  if type(path) ~= "string" or path == "" then
    error("bad argument #1 to 'probe' (file path expected, got " .. type(path) .. ")", 2)
  end
  local info, err = core.probe(path)
  if not info then return nil, errors.new("invalid_argument", err, { field = "path" }) end
  return info
end

local function mb(bytes) return ("%.1f MB"):format(bytes / MB) end

-- The problems of a probed file for use as `kind` ("image" or "video"), as
-- messages; for a video, orientation ("image" or "video") sets the longest
-- allowed duration. An empty list: it fits.
function media.problems(info, kind, orientation)
  local limits, list = media.LIMITS[kind], {}
  local function add(fmt, ...) list[#list + 1] = fmt:format(...) end
  if info.kind ~= kind or not limits.formats[info.format] then
    local want = kind == "image" and "a PNG or JPEG image" or "an MP4 or MOV video"
    add("must be %s, got %s %s", want, info.format, info.kind)
    return list
  end
  if info.bytes > limits.max_bytes then add("is %s; at most %s", mb(info.bytes), mb(limits.max_bytes)) end
  local w, h = info.width, info.height
  if math.min(w, h) < limits.min_side then
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
    if math.min(cw, ch) < limits.min_side then
      add("is coded at %dx%d px; both sides must be at least %d px", cw, ch, limits.min_side)
    end
    if limits.max_side and math.max(cw, ch) > limits.max_side then
      add("is coded at %dx%d px; both sides must be at most %d px", cw, ch, limits.max_side)
    end
  end
  if kind == "video" then
    local d = info.duration or 0
    if d < limits.min_seconds then add("is %.2f s long; at least %d s", d, limits.min_seconds) end
    local max = limits.max_seconds[orientation or "video"]
    if d > max then
      add("is %.2f s long; at most %d s with character_orientation = %q", d, max, orientation or "video")
    end
  end
  return list
end

-- Probes path for `field` ("image_file" or "video_file") and checks it:
-- the info, or nil and an invalid_argument error naming the field and what
-- was measured.
function media.check(path, field, orientation)
  local kind = field == FIELD.image and "image" or "video"
  local info, err = core.probe(path)
  if not info then return nil, errors.invalid(field, ("cannot be used: %s"):format(err)) end
  local problems = media.problems(info, kind, orientation)
  if #problems > 0 then
    return nil, errors.invalid(field, ("%s %s"):format(path, table.concat(problems, "; ")))
  end
  return info
end

return media
