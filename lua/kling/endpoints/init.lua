-- The request kinds kling knows: each an endpoint description, data in a
-- file of its own (endpoints/motion.lua is one). Adding one is a new file,
-- its line below, simulator routes and docs/api.md rows.
local endpoints = {}

endpoints.by_name = {
  motion = require "kling.endpoints.motion",
  videos = require "kling.endpoints.videos",
}

-- The endpoint of a batch item or a command that names none.
endpoints.default = "motion"

-- The endpoint of journal entries recorded before journals named one
-- (schemas 1 to 3): the only one kling had then.
endpoints.legacy = "motion"

-- The endpoint named name, or nil.
function endpoints.get(name)
  return endpoints.by_name[name]
end

return endpoints
