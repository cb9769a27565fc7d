-- A binary min-heap of timer waiters by due time (ties: first pushed, first
-- out), so that 10,000 sleeping jobs cost O(log n) per timer, not O(n).
-- The heap is a plain array: heap[1] is the earliest.
local heap = {}

local function before(a, b)
  if a.due ~= b.due then return a.due < b.due end
  return a.seq < b.seq
end

local seq = 0

function heap.push(h, item)
  seq = seq + 1
  item.seq = seq
  local i = #h + 1
  h[i] = item
  while i > 1 do
    local parent = math.floor(i / 2)
    if not before(h[i], h[parent]) then break end
    h[i], h[parent] = h[parent], h[i]
    i = parent
  end
end

-- Removes and returns the earliest item (nil when empty).
function heap.pop(h)
  local n = #h
  if n == 0 then return nil end
  local top = h[1]
  h[1] = h[n]
  h[n] = nil
  n = n - 1
  local i = 1
  while true do
    local left, smallest = 2 * i, i
    if left <= n and before(h[left], h[smallest]) then smallest = left end
    if left + 1 <= n and before(h[left + 1], h[smallest]) then smallest = left + 1 end
    if smallest == i then break end
    h[i], h[smallest] = h[smallest], h[i]
    i = smallest
  end
  return top
end

return heap
