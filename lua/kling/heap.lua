-- A binary min-heap of timer waiters by due time (ties: first pushed, first
-- out), so that 10,000 sleeping jobs cost O(log n) per timer, not O(n).
-- The heap is a plain array: heap[1] is the earliest.
--
-- The sifts move a hole rather than swapping, and compare inline: every
-- poll of every wait passes here twice (the poller's heap), and a function
-- call per comparison made the heap a third of the Lua work of 2,000 jobs.
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local heap = {}

local seq = 0

function heap.push(h, item)
  seq = seq + 1
  item.seq = seq
  local due = item.due
  local i = #h + 1
  while i > 1 do
    local p = (i - i % 2) / 2
    local parent = h[p]
    -- item goes after an equal parent: it was pushed later
    if parent.due <= due then break end
    h[i] = parent
    i = p
  end
  h[i] = item
end

-- Removes and returns the earliest item (nil when empty).
function heap.pop(h)
  local n = #h
  if n == 0 then return nil end
  local top = h[1]
  local last = h[n]
  h[n] = nil
  n = n - 1
  if n == 0 then return top end
  local due, s = last.due, last.seq
  local i = 1
  while true do
    local c = 2 * i
    if c > n then break end
    local child = h[c]
    if c < n then
      local right = h[c + 1]
      local rd, cd = right.due, child.due
      if rd < cd or (rd == cd and right.seq < child.seq) then c, child = c + 1, right end
    end
    local cd = child.due
    if cd > due or (cd == due and child.seq > s) then break end
    h[i] = child
    i = c
  end
  h[i] = last
  return top
end

return heap
