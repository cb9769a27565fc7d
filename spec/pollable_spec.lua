-- A pollable client (cqueues' convention): pollfd() is readable exactly when
-- step() has work due, timeout() says when it must run anyway, and nil when
-- nothing is pending, so that an idle client wakes its host never.
local socket = require "socket"
local core = require "kling.core"
local Simulator = require "helpers.simulator"

-- Is fd readable within t seconds? (luasocket's select takes any object
-- with getfd.)
local function readable(fd, t)
  local ready = socket.select({ { getfd = function() return fd end } }, nil, t)
  return #ready > 0
end

describe("a pollable client", function()
  local sim, client
  Simulator.for_each_spec({ generation_time = 0.2, client = true }, function(ctx) sim, client = ctx.sim, ctx.client end)

  -- The host's loop: wait on the descriptor or the timeout, then step(0).
  local function host_loop(until_done, limit)
    local fd = assert(client:pollfd())
    local started, wakes = core.now(), 0
    while not until_done() do
      local t = client:timeout()
      assert.is_true(t ~= nil, "a client with work pending said it has none")
      readable(fd, math.min(t, 1))
      wakes = wakes + 1
      client:step(0)
      assert.is_true(core.now() - started < (limit or 10), "the host loop never finished")
    end
    return wakes
  end

  it("says nothing is pending and stays quiet when idle", function()
    local fd = assert(client:pollfd())
    assert.equal("number", type(fd))
    assert.equal("r", client:events())
    assert.is_nil(client:timeout())
    assert.is_false(readable(fd, 0.1))
  end)

  it("becomes readable when a job is spawned, and timeout is 0 until it ran", function()
    local fd = assert(client:pollfd())
    local ran = false
    client:spawn(function() ran = true end)
    assert.is_true(readable(fd, 0))
    assert.equal(0, client:timeout())
    client:step(0)
    assert.is_true(ran)
    assert.is_false(readable(fd, 0.05))
    assert.is_nil(client:timeout())
  end)

  it("drives a job to its end from the descriptor and the timeout alone, quiet in between", function()
    local job = client:spawn(function() return client:motion(Simulator.params()) end)
    local wakes = host_loop(function() return job:status() ~= "running" end)
    assert.equal("succeed", assert(job:result()).state)
    -- a 0.2 s task polled every 0.05 s or so: some tens of wakes, not a busy loop
    assert.is_true(wakes < 200, wakes .. " wakes")
    assert.is_nil(client:timeout())
  end)

  it("a job's journal commit wakes the host (the writer's descriptor is in the set)", function()
    local path = Simulator.journal_path()
    local c = sim:client({ journal = path })
    local fd = assert(c:pollfd())
    local job = c:spawn(function() return c:submit(Simulator.params({ key = "pollable" })) end)
    local started = core.now()
    while job:status() == "running" do
      readable(fd, math.min(c:timeout() or 1, 1))
      c:step(0)
      assert.is_true(core.now() - started < 5)
    end
    assert(job:result())
    assert.equal("submitted", c.journal:get("pollable").state)
    c:close()
    Simulator.remove_journal(path)
  end)
  it("stays readable while a step left work over its budget for the next one", function()
    local fd = assert(client:pollfd())
    local ran = 0
    for _ = 1, 100 do
      client:spawn(function()
        local t = core.now()
        while core.now() - t < 0.0002 do end
        ran = ran + 1
      end)
    end
    client:step(0, 0.0005)
    assert.is_true(ran < 100, "one small step ran every job")
    assert.equal(0, client:timeout())
    assert.is_true(readable(fd, 0))
    while ran < 100 do
      assert.is_true(readable(fd, 0), "work left, yet the descriptor is quiet")
      client:step(0, 0.0005)
    end
    assert.is_nil(client:timeout())
    assert.is_false(readable(fd, 0.05))
  end)

  it("checks step's arguments: the budget is seconds, more than 0 and at most 1", function()
    assert.has_error(function() client:step(0, 0) end,
      "bad argument #2 to 'step' (budget in seconds, more than 0 and at most 1 expected, got 0)")
    assert.has_error(function() client:step(0, 5) end,
      "bad argument #2 to 'step' (budget in seconds, more than 0 and at most 1 expected, got 5)")
    assert.has_error(function() client:step(0, "1") end,
      "bad argument #2 to 'step' (budget in seconds, more than 0 and at most 1 expected, got string)")
    assert.has_error(function() client:step(-1) end, "bad argument #1 to 'step' (non-negative number expected, got -1)")
    assert.equal(0, client:step(0, 0.001))
  end)
end)
