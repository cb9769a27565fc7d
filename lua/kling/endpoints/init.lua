-- The request kinds kling knows: each an endpoint description, data in a
-- file of its own (endpoints/motion.lua is one). Adding one is a new file,
-- its line below, simulator routes and docs/api.md rows.
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
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

-- The endpoint whose subcommand is `kling <name>` (its command.name, else
-- its own name), or nil.
function endpoints.for_command(name)
  for _, endpoint in pairs(endpoints.by_name) do
    local command = endpoint.command
    if command and (command.name or endpoint.name) == name then return endpoint end
  end
end

-- Every option of an endpoint's subcommands (those of each action, if any).
function endpoints.options(endpoint)
  local spec, list, seen = endpoint.command, {}, {}
  for _, form in ipairs(spec.actions or { spec }) do
    for _, o in ipairs(form.options) do
      if not seen[o] then seen[o], list[#list + 1] = true, o end
    end
  end
  return list
end

return endpoints
