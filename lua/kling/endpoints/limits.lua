-- Kling's limits for the files its endpoints take (docs/api.md, "Media
-- limits"), shared by the endpoint descriptions that take them: a file that
-- breaks one would fail on the server after a paid round trip.
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local MB = 1024 * 1024

local limits = {}

-- A reference image: motion's character, image2video's first and last frames.
function limits.image()
  return { kind = "image", what = "a PNG or JPEG image", formats = { png = true, jpeg = true },
           max_bytes = 10 * MB, min_side = 300, max_aspect = 2.5 }
end

-- A reference video; max_seconds and seconds_because depend on the request.
function limits.video(max_seconds, because)
  return { kind = "video", what = "an MP4 or MOV video", formats = { mp4 = true, mov = true },
           max_bytes = 100 * MB, min_side = 340, max_side = 3850, min_seconds = 3,
           max_seconds = max_seconds, seconds_because = because }
end

return limits
