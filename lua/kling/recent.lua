-- A set that remembers the most recent `capacity` keys added: enough to
-- match webhooks to the tasks a long-lived client submitted, without growing
-- for the life of the process. The oldest key is forgotten first.
local Recent = {}
Recent.__index = Recent

function Recent.new(capacity)
  return setmetatable({ capacity = capacity, keys = {}, order = {}, first = 1, last = 0 }, Recent)
end

function Recent:has(key)
  return self.keys[key] == true
end

function Recent:add(key)
  if self.keys[key] then return end
  self.keys[key] = true
  self.last = self.last + 1
  self.order[self.last] = key
  if self.last - self.first + 1 > self.capacity then
    self.keys[self.order[self.first]] = nil
    self.order[self.first] = nil
    self.first = self.first + 1
  end
end

function Recent:count()
  return self.last - self.first + 1
end

return Recent
