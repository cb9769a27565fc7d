-- FIFO queues for the scheduler (an array with a head index: no
-- table.remove(q, 1), which moves every element).
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local queue = {}

function queue.new() return { first = 1, last = 0 } end

function queue.push(q, v)
  q.last = q.last + 1
  q[q.last] = v
end

function queue.pop(q)
  local i = q.first
  if i > q.last then return nil end
  local v = q[i]
  q[i], q.first = nil, i + 1
  return v
end

function queue.empty(q)
  return q.first > q.last
end

return queue
