-- kling: AceData Cloud's Kling Motion API for Lua.
--   local kling = require "kling"
--   local client = assert(kling.new{ token = os.getenv("ACEDATACLOUD_API_TOKEN") })
--   local result, err = client:motion{ image_url = ..., video_url = ...,
--                                       character_orientation = "image", mode = "std" }
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local core = require "kling.core"
local Client = require "kling.client"
local endpoints = require "kling.endpoints"
local errors = require "kling.errors"
local media = require "kling.media"

local kling = {
  _VERSION = "kling " .. core.version,
  version = core.version,
  curl_version = core.curl_version,
  errors = errors,
  is_error = errors.is,
}

-- kling.media.probe(path): what a local image or video is. kling.media.problems(
-- info, kind, orientation): what in it breaks the limits of a motion job's
-- file of kind "image" or "video" (orientation: the job's
-- character_orientation, which sets the longest video); {} when it fits.
local MOTION = endpoints.get("motion")
kling.media = {
  probe = media.probe,
  problems = function(info, kind, orientation)
    return media.problems(info, MOTION.limits(kind, { character_orientation = orientation }))
  end,
}

-- kling.new(options) -> client | nil, err. See README.md for the options.
function kling.new(options)
  return Client.new(options)
end

-- The client behind kling.motion/submit/video/submit_video/task/tasks/wait: built on first use
-- from ACEDATACLOUD_API_TOKEN and ACEDATACLOUD_API_BASE_URL.
local default_client

function kling.default()
  if default_client == nil or default_client:is_closed() then
    local client, err = Client.new()
    if not client then return nil, err end
    default_client = client
  end
  return default_client
end

for _, name in ipairs({ "motion", "submit", "video", "submit_video", "task", "tasks", "wait", "download", "upload" }) do
  kling[name] = function(...)
    local client, err = kling.default()
    if not client then return nil, err end
    return client[name](client, ...)
  end
end

return kling
