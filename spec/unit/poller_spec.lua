-- The poller on a real scheduler and kling.core multi handle, with an engine
-- whose transport answers from a table instead of a server: which polls
-- share a request, and what each waiter gets.
local core = require "kling.core"
local Poller = require "kling.poller"
local Scheduler = require "kling.scheduler"
local task = require "kling.task"

local function record(id, state)
  return { id = id, created_at = 1, response = { task_id = id, state = state } }
end

describe("the poller", function()
  local multi, scheduler, engine, requests
  before_each(function()
    multi = core.multi()
    scheduler = Scheduler.new(multi)
    requests = {}
    engine = {
      scheduler = scheduler, closed = false, redact = function(s) return s end,
      noted = function(_, t) return t end,
      transport = { call = function(_, _, body)
        requests[#requests + 1] = body
        local items = {}
        for _, id in ipairs(body.ids or {}) do
          if id ~= "unknown" then items[#items + 1] = record(id, "processing") end
        end
        return { items = items }
      end },
      retrieve = function(_, id) return task.normalize(record(id, "processing"), id) end,
    }
  end)
  after_each(function() scheduler:close(function() return { kind = "closed" } end, 0) end)

  local function poll_all(poller, ids)
    local got = {}
    for i, id in ipairs(ids) do
      scheduler:spawn(function() got[i] = { poller:poll(id) } end)
    end
    while scheduler:pending() > 0 do scheduler:step(1) end
    return got
  end

  it("sends the polls of concurrent waits that fall due together as one retrieve_batch", function()
    local poller = Poller.new(engine, 0.01)
    local got = poll_all(poller, { "a", "b", "c" })
    assert.equal(1, #requests)
    assert.equal("retrieve_batch", requests[1].action)
    assert.same({ "a", "b", "c" }, requests[1].ids)
    for i, id in ipairs({ "a", "b", "c" }) do assert.equal(id, got[i][1].id) end
  end)

  it("splits a batch at 50 ids, and answers an unknown id with not_found for that wait alone", function()
    local poller = Poller.new(engine, 0.01)
    local ids = {}
    for i = 1, 60 do ids[i] = "t" .. i end
    ids[60] = "unknown"
    local got = poll_all(poller, ids)
    assert.equal(2, #requests)
    assert.equal(50, #requests[1].ids)
    assert.equal("t1", got[1][1].id)
    assert.is_nil(got[60][1])
    assert.equal("not_found", got[60][2].kind)
  end)

  it("sends nothing once every member of a batch was cancelled", function()
    local poller = Poller.new(engine, 0.05)
    local job = scheduler:spawn(function() return poller:poll("a") end)
    scheduler:step(0)
    scheduler:cancel(job, { kind = "cancelled" })
    local t = core.now()
    while core.now() - t < 0.1 do scheduler:step(0.02) end
    assert.equal(0, #requests)
  end)
end)
