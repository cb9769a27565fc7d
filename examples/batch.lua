-- A crash-safe batch: kill it, run it again; finished clips cost nothing,
-- submitted ones are followed, and no clip is ever billed twice.
--   lua examples/batch.lua clips.txt [out_dir] [journal]   (a line: KEY IMAGE_URL VIDEO_URL)
local kling = require "kling"
local client, err = kling.new({ journal = arg[3] or "clips.db" }) -- token: $ACEDATACLOUD_API_TOKEN
assert(client, tostring(err))
local items = {}
for line in io.lines(arg[1]) do
  local key, image, video = line:match("^(%S+)%s+(%S+)%s+(%S+)")
  if key then items[#items + 1] = { key = key, image_url = image, video_url = video,
                                    character_orientation = "image", mode = "std" } end
end
local function progress(c) io.stderr:write(("\r%d of %d done, %d failed "):format(c.succeed, c.total, c.failed)) end
local results, berr = client:batch(items, { concurrency = 4, download_dir = arg[2] or "out", on_progress = progress })
if not results then error(tostring(berr)) end
io.stderr:write("\n")
for _, r in ipairs(results) do print(r.key, r.path or tostring(r.error)) end
client:close()
