-- kling.journal: the job journal as a caller sees it (client.journal):
--   journal:get(key), journal:list{ state = }, journal:forget(key, { force = }),
--   journal:adopt(key, task_id), journal:close()
-- Every accepted submit is billed, so each job has an entry under its key in
-- a SQLite file that outlives the process (see the README's "The journal").
-- The store (journal/store.lua) holds the file and its SQL; the tracker
-- (journal/tracker.lua) carries the writes of jobs out on the writer thread;
-- the engine uses the store, the caller this facade.
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local endpoints = require "kling.endpoints"
local Store = require "kling.journal.store"

local Journal = {}
Journal.__index = Journal
Journal.__name = "kling.journal"

-- Opens (or creates) the journal at path; returns it, or nil and an error.
-- sync: "full" (a commit is on disk when it returns; the default) or
-- "normal" (it is in the OS's hands: safe from a process crash, not from
-- power loss); see docs/design.md.
function Journal.open(path, sync)
  local store, err = Store.open(path, sync, endpoints.legacy)
  if not store then return nil, err end
  return setmetatable({ store = store, path = path }, Journal)
end

function Journal:__tostring()
  return ("kling.journal (%s)"):format(self.path)
end

-- The entry for key, or nil when the journal does not know it.
function Journal:get(key)
  if type(key) ~= "string" then error("bad argument #1 to 'get' (string expected, got " .. type(key) .. ")", 2) end
  return self.store:get(key)
end

-- Every entry (or those in opts.state), oldest first.
function Journal:list(opts)
  if opts ~= nil and type(opts) ~= "table" then error("bad argument #1 to 'list' (table or nil expected)", 2) end
  return self.store:list(opts or {})
end

-- Forgets key, so that it may be submitted again: true, false (unknown), or
-- nil and an error. A key that may have been billed needs opts.force.
function Journal:forget(key, opts)
  if type(key) ~= "string" then error("bad argument #1 to 'forget' (string expected, got " .. type(key) .. ")", 2) end
  if opts ~= nil and type(opts) ~= "table" then error("bad argument #2 to 'forget' (table or nil expected)", 2) end
  return self.store:forget(key, opts)
end

-- Attaches task_id (found in the AceData task list) to an uncertain key.
function Journal:adopt(key, task_id)
  if type(key) ~= "string" then error("bad argument #1 to 'adopt' (string expected, got " .. type(key) .. ")", 2) end
  return self.store:adopt(key, task_id)
end

-- Idempotent. (A client closes its journal when it closes.)
function Journal:close()
  self.store:close()
end

return Journal
