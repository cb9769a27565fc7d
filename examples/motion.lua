-- Make a character in a picture perform the motion of a video, and save the result.
--   ACEDATACLOUD_API_TOKEN=... lua examples/motion.lua IMAGE VIDEO [OUT.mp4]
-- IMAGE and VIDEO are URLs or local files (uploaded: ACEDATACLOUD_PLATFORM_TOKEN).
-- Every run is billed: it asks for its inputs rather than guessing any.
local kling = require "kling"

if not arg[1] or not arg[2] then
  io.stderr:write("usage: lua examples/motion.lua IMAGE VIDEO [OUT.mp4]   (URLs or local files)\n")
  os.exit(2)
end
local function source(kind, value)
  if value:match("^https?://") then return kind .. "_url", value end
  return kind .. "_file", value
end
local out = arg[3] or "kling-motion.mp4"

local client, err = kling.new({ poll_interval = 1, max_poll_interval = 5 })
if not client then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end

local started = os.time()
local result
local image_field, image = source("image", arg[1])
local video_field, video = source("video", arg[2])
result, err = client:motion({
  [image_field] = image,
  [video_field] = video,
  character_orientation = "image",
  mode = "std",
  on_submit = function(task_id)
    -- the moment to persist task_id: a crash from here on loses nothing
    print("submitted: task " .. task_id)
  end,
  on_status = function(task)
    print(("  %3ds  %s"):format(os.time() - started, task.state))
  end,
})
if not result then
  io.stderr:write(tostring(err), "\n")
  if err.task_id then io.stderr:write("resume later with client:wait('", err.task_id, "')\n") end
  os.exit(1)
end

print("video ready:")
for _, key in ipairs({ "task_id", "video_id", "video_url", "duration", "state" }) do
  print(("  %-9s %s"):format(key, tostring(result[key])))
end
local path, bytes = client:download(result, out)
if not path then
  io.stderr:write(tostring(bytes), "\n")
  os.exit(1)
end
print(("saved %s (%d bytes)"):format(path, bytes))
client:close()
