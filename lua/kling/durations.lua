-- How long tasks take, as this client has seen them finish. A wait whose
-- poll interval has grown to max_poll_interval learns of its task's end up
-- to that long after it: with hundreds of jobs submitted over a few
-- seconds, the last of them waits that much longer than the generation
-- took. Tasks of one kind take about the same time, so once some have
-- finished, a wait polls its own task once near the time it should be done
-- (Engine:wait), inside the batch the others' polls fill anyway.
--
-- The records say how long a task took in the server's clock: created_at
-- and finished_at (docs/api.md, "Polling").
-- Only tasks that succeeded teach it (a failure may end at any time). The
-- shortest duration seen is kept per record type ("motion", "videos", ...):
-- a task that ends later than that costs its wait one poll more, once.
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local Durations = {}
Durations.__index = Durations

-- A duration outside this is not a generation time (a clock jump, a bad answer).
local LONGEST = 86400
-- The API has a handful of record types; a server that sent a new one with
-- every record must not grow a long-lived client without bound.
local MAX_KINDS = 16

local function kind_of(t)
  local raw = t.raw
  local kind = type(raw) == "table" and raw.type
  if type(kind) == "string" then return kind end
  return ""
end

function Durations.new()
  return setmetatable({ shortest = {}, kinds = 0 }, Durations)
end

-- Learns from a normalised task (kling.task) that has ended.
function Durations:note(t)
  if not t.result then return end
  local created, finished = t.created_at, t.finished_at
  if type(created) ~= "number" or type(finished) ~= "number" then return end
  local took = finished - created
  if not (took > 0 and took < LONGEST) then return end -- also false for NaN
  local shortest, kind = self.shortest, kind_of(t)
  local known = shortest[kind]
  if known == nil then
    if self.kinds >= MAX_KINDS then return end
    self.kinds = self.kinds + 1
    shortest[kind] = took
  elseif took < known then
    shortest[kind] = took
  end
end

-- Seconds a task like t (a normalised task of the same type) takes at
-- least, as seen so far; nil before any has finished.
function Durations:expected(t)
  return self.shortest[kind_of(t)]
end

return Durations
