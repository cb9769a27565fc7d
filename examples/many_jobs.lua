-- Many jobs at once on one client, without threads: spawn, then run.
--   ACEDATACLOUD_API_TOKEN=... lua examples/many_jobs.lua IMAGE_URL VIDEO_URL [COUNT]
local kling = require "kling"

local client, new_err = kling.new()
if not client then error(tostring(new_err)) end -- (assert would print a table on Lua 5.1/5.2)
local count = tonumber(arg[3]) or 5
local jobs = {}
for i = 1, count do
  jobs[i] = client:spawn(function()
    -- inside a spawned job every client call yields instead of blocking
    return client:motion({
      image_url = arg[1], video_url = arg[2], character_orientation = "image", mode = "std",
      on_submit = function(id) print(("job %d: task %s"):format(i, id)) end,
    })
  end)
end
client:run() -- steps until every job has ended
for i, job in ipairs(jobs) do
  local result, err = job:result()
  print(("job %d: %s"):format(i, result and result.video_url or tostring(err)))
end
client:close()
