-- The poller on a real scheduler and kling.core multi handle, with an engine
-- whose transport answers from a table instead of a server (decoded apart
-- as kling.core would, unless whole is set): which polls share a request,
-- and what each waiter gets.
local core = require "kling.core"
local Poller = require "kling.poller"
local Scheduler = require "kling.scheduler"
local task = require "kling.task"

local function record(id, state)
  return { id = id, created_at = 1, response = { task_id = id, state = state } }
end

describe("the poller", function()
  local multi, scheduler, engine, requests, whole
  before_each(function()
    whole = false
    multi = core.multi()
    scheduler = Scheduler.new(multi)
    requests = {}
    engine = {
      scheduler = scheduler, closed = false, redact = function(s) return s end,
      noted = function(_, t) return t end,
      transport = { call = function(_, _, body, _, apart)
        requests[#requests + 1] = body
        local items = {}
        for _, id in ipairs(body.ids or {}) do
          if id ~= "unknown" then items[#items + 1] = record(id, "processing") end
        end
        if whole or not apart then return { items = items } end
        return core.records(core.encode({ items = items }), apart.list, apart.key)
      end },
      retrieve = function(_, id) -- one id goes as a plain retrieve
        requests[#requests + 1] = { action = "retrieve", ids = { id } }
        return task.normalize(record(id, "processing"), id)
      end,
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

  it("reads an answer decoded whole (no decoder in this process) the same way", function()
    whole = true
    local poller = Poller.new(engine, 0.01)
    local got = poll_all(poller, { "a", "unknown", "c" })
    assert.equal(1, #requests)
    assert.equal("a", got[1][1].id)
    assert.equal("not_found", got[2][2].kind)
    assert.equal("processing", got[3][1].state)
  end)

  -- The answer is decoded apart (src/records.c): reading its 50 records is
  -- the batch job's loop, which gives way at the step's budget, so that a
  -- step never takes in a whole answer at once (the collector made that
  -- allocation cost over 1 ms: docs/design.md, "A batched answer is decoded
  -- apart").
  it("reads a batch's answer out a step's budget at a time", function()
    local poller = Poller.new(engine, 0.05)
    local reads, most = 0, 0
    engine.noted = function(_, t)
      reads = reads + 1
      return t
    end
    local ids, got = {}, {}
    for i = 1, 50 do
      ids[i] = "t" .. i
      scheduler:spawn(function() got[i] = { poller:poll(ids[i]) } end)
    end
    -- every wait asks for its poll in one step (with a budget spent, they
    -- would start a step apart, and a loaded machine split them in two batches)
    scheduler:step(0, 1)
    assert.equal(0, reads)
    local steps = 0
    while scheduler:pending() > 0 and steps < 10000 do
      local before = reads
      scheduler:step(0.1, 0) -- a budget spent before it begins
      steps = steps + 1
      most = math.max(most, reads - before)
    end
    assert.equal(1, #requests)
    assert.equal(1, most)
    assert.equal(50, reads)
    for i = 1, 50 do assert.equal(ids[i], got[i][1].id) end
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
  -- Spawns a job per { id, delay } that polls once after its delay.
  local function poll_later(poller, list)
    local got = {}
    for i, p in ipairs(list) do
      scheduler:spawn(function() got[i] = { poller:poll(p[1], nil, p[2]) } end)
    end
    while scheduler:pending() > 0 do scheduler:step(1) end
    return got
  end

  it("fills a batch going out with polls due later (at most half their delay early), soonest first", function()
    local poller = Poller.new(engine, 0.01)
    -- b and c fall due after a, but within half their delay of a's time:
    -- they go with a; d is due too late to be polled that early
    local got = poll_later(poller, { { "a", 0.1 }, { "b", 0.16 }, { "c", 0.19 }, { "d", 0.6 } })
    assert.equal(2, #requests)
    assert.same({ "a", "b", "c" }, requests[1].ids)
    assert.same({ "d" }, requests[2].ids) -- d alone: nothing else waits
    for i, id in ipairs({ "a", "b", "c", "d" }) do assert.equal(id, got[i][1].id) end
  end)

  it("takes a poll near its task's expected end no earlier than its own bound", function()
    local poller = Poller.new(engine, 0.01)
    local got = {}
    scheduler:spawn(function() got[1] = { poller:poll("a", nil, 0.1) } end)
    -- due at 0.19 s like c above, but it may go at most 0.02 s early: not with a
    scheduler:spawn(function() got[2] = { poller:poll("near", nil, 0.19, 0.02) } end)
    while scheduler:pending() > 0 do scheduler:step(1) end
    assert.equal(2, #requests)
    assert.same({ "a" }, requests[1].ids)
    assert.same({ "near" }, requests[2].ids)
    assert.equal("near", got[2][1].id)
  end)

  it("takes the 50 polls due soonest when more are eligible, and the rest go in the next batch", function()
    local poller = Poller.new(engine, 0.01)
    local list = {}
    -- the first falls due at 0.2 s: long after all 70 jobs have run once and
    -- asked (a loaded machine took over 50 ms to run them in one CI run)
    for i = 1, 70 do list[i] = { ("t%02d"):format(i), 0.2 + i * 0.001 } end
    poll_later(poller, list)
    assert.equal(2, #requests)
    assert.equal(50, #requests[1].ids)
    assert.equal("t01", requests[1].ids[1])
    assert.equal("t50", requests[1].ids[50])
    assert.equal(20, #requests[2].ids)
  end)

  it("sleeps until the first poll falls due, however the polls were asked for", function()
    local poller = Poller.new(engine, 0.01)
    local t = core.now()
    poll_later(poller, { { "late", 0.3 }, { "early", 0.05 } })
    -- the early poll re-armed the batch job: it did not wait for the late one
    assert.same({ "early" }, requests[1].ids)
    assert.same({ "late" }, requests[2].ids)
    assert.is_true(core.now() - t >= 0.25)
  end)
end)
