-- kling.heap: the order the scheduler's timers and the poller's waits come
-- out in (earliest first; equal times first pushed, first out).
local heap = require "kling.heap"

describe("the heap", function()
  it("pops in due order, and equal dues in the order they were pushed", function()
    local h, items = {}, {}
    local r = 12345
    local function random(n) r = (r * 1103515245 + 12345) % 2147483648; return r % n end
    for i = 1, 2000 do
      local item = { due = random(50) / 10, n = i }
      items[i] = item
      heap.push(h, item)
    end
    table.sort(items, function(a, b)
      if a.due ~= b.due then return a.due < b.due end
      return a.n < b.n
    end)
    for i = 1, #items do assert.equal(items[i], heap.pop(h), "item " .. i) end
    assert.is_nil(heap.pop(h))
  end)

  it("keeps its order while pushes and pops interleave", function()
    local h, popped, pushed = {}, {}, 0
    local r = 777
    local function random(n) r = (r * 1103515245 + 12345) % 2147483648; return r % n end
    local clock = 0
    for _ = 1, 3000 do
      if random(3) > 0 or #h == 0 then
        pushed = pushed + 1
        heap.push(h, { due = clock + random(20), n = pushed })
      else
        local item = heap.pop(h)
        assert.is_true(item.due >= clock, "an item earlier than one popped before it")
        clock = item.due
        popped[#popped + 1] = item
      end
    end
    for i = 2, #popped do
      local a, b = popped[i - 1], popped[i]
      assert.is_true(a.due < b.due or (a.due == b.due and a.n < b.n), "popped out of order at " .. i)
    end
    local last
    while h[1] do
      local item = heap.pop(h)
      if last then
        assert.is_true(last.due < item.due or (last.due == item.due and last.n < item.n))
      end
      last = item
    end
  end)
end)
