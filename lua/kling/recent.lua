-- A map that remembers the most recent `capacity` keys set: enough to match
-- webhooks to the tasks a long-lived client submitted (and their callback
-- tokens), without growing for the life of the process. The oldest key is
-- forgotten first.
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local Recent = {}
Recent.__index = Recent

function Recent.new(capacity)
  return setmetatable({ capacity = capacity, values = {}, order = {}, first = 1, last = 0 }, Recent)
end

function Recent:get(key)
  return self.values[key]
end

function Recent:has(key)
  return self.values[key] ~= nil
end

-- Remembers key (with value, default true); a key already known keeps its place.
function Recent:add(key, value)
  if value == nil then value = true end
  if self.values[key] ~= nil then
    self.values[key] = value
    return
  end
  self.values[key] = value
  self.last = self.last + 1
  self.order[self.last] = key
  if self.last - self.first + 1 > self.capacity then
    self.values[self.order[self.first]] = nil
    self.order[self.first] = nil
    self.first = self.first + 1
  end
end

function Recent:count()
  return self.last - self.first + 1
end

return Recent
