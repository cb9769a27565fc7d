-- Non-blocking use: spawned jobs, step(), run(), cancel, errors in jobs, close.
local core = require "kling.core"
local Simulator = require "helpers.simulator"

describe("jobs", function()
  local sim, client
  Simulator.for_each_spec({ generation_time = 0.5, client = true }, function(ctx) sim, client = ctx.sim, ctx.client end)

  it("20 jobs on one client finish in about the time of one, and step(0) returns at once", function()
    local started = core.now()
    local single = assert(client:motion(Simulator.params()))
    local one = core.now() - started
    assert.equal("succeed", single.state)

    local jobs = {}
    for i = 1, 20 do
      jobs[i] = client:spawn(function() return client:motion(Simulator.params()) end)
    end
    started = core.now()
    local slowest_step, steps = 0, 0
    while client:pending() > 0 do
      local t = core.now()
      client:step(0)
      slowest_step = math.max(slowest_step, core.now() - t)
      steps = steps + 1
      client:step(0.01) -- the frame's own work would go here
      assert.is_true(core.now() - started < 10, "jobs did not finish")
    end
    local all = core.now() - started
    for i = 1, 20 do
      local result, err = jobs[i]:result()
      assert.is_nil(err)
      assert.equal("succeed", result.state)
      assert.equal("done", jobs[i]:status())
    end
    assert.is_true(all < one * 2, ("20 jobs took %.2fs, one took %.2fs"):format(all, one))
    assert.is_true(slowest_step < 0.05, ("step(0) took %.3fs"):format(slowest_step))
    assert.is_true(steps > 10)
    assert.equal(21, sim:stats().submits)
  end)

  it("step(max_wait) never blocks longer than max_wait", function()
    client:spawn(function() return client:motion(Simulator.params()) end)
    for _, wait in ipairs({ 0, 0.05, 0.1 }) do
      local t = core.now()
      client:step(wait)
      assert.is_true(core.now() - t < wait + 0.04, "step(" .. wait .. ") overran")
    end
    client:run()
  end)

  it("step() with nothing pending returns 0 at once", function()
    local t = core.now()
    assert.equal(0, client:step(1))
    assert.is_true(core.now() - t < 0.05)
  end)

  it("a blocking call lets earlier jobs progress meanwhile", function()
    local job = client:spawn(function() return client:motion(Simulator.params()) end)
    assert(client:motion(Simulator.params()))
    -- both started together, both take the same time: the job is done too
    if job:status() == "running" then job:wait(1) end
    assert.equal("done", job:status())
  end)

  it("an error raised inside a job reaches the caller through the handle, unprinted", function()
    local job = client:spawn(function()
      assert(client:submit(Simulator.params()))
      error({ reason = "boom" })
    end)
    local bad = client:spawn(function() error("plain failure") end)
    client:run()
    assert.equal("failed", job:status())
    local r, err = job:result()
    assert.is_nil(r)
    assert.same({ reason = "boom" }, err)
    assert.equal("failed", bad:status())
    local _, msg = bad:result()
    assert.truthy(tostring(msg):find("plain failure", 1, true))
    assert.truthy(bad.traceback:find("stack traceback", 1, true))
  end)

  it("returns every value of the job function", function()
    local job = client:spawn(function(a, b) return a, nil, b end, 1, 2)
    client:run()
    local x, y, z = job:result()
    assert.equal(1, x)
    assert.is_nil(y)
    assert.equal(2, z)
  end)

  it("a job may yield on its own and is resumed on the next step", function()
    local ticks = 0
    local job = client:spawn(function()
      for _ = 1, 3 do ticks = ticks + 1; coroutine.yield() end
      return "ok"
    end)
    client:step(0)
    assert.equal(1, ticks)
    client:step(0)
    assert.equal(2, ticks)
    client:run()
    assert.equal("ok", job:result())
  end)

  it("cancel stops a job mid-wait and frees its transfer", function()
    local id = assert(client:submit(Simulator.params()))
    sim:fault({ path = "/kling/tasks", delay = 1 }) -- the job is surely in its poll
    local job = client:spawn(function() return client:wait(id) end)
    while client.engine.scheduler.multi:count() == 0 do client:step(0.01) end
    assert.equal("running", job:status())
    assert.is_true(job:cancel())
    assert.is_false(job:cancel())
    assert.equal("cancelled", job:status())
    local r, err = job:result()
    assert.is_nil(r)
    assert.equal("cancelled", err.kind)
    assert.equal(0, client:pending())
    assert.equal(0, client.engine.scheduler.multi:count())
  end)

  it("a job can wait for the jobs it spawned (fan-out, fan-in)", function()
    local parent = client:spawn(function()
      local children = {}
      for i = 1, 3 do
        children[i] = client:spawn(function() return client:motion(Simulator.params()) end)
      end
      local urls = {}
      for i, child in ipairs(children) do urls[i] = assert(child:wait()).video_url end
      return urls
    end)
    client:run()
    local urls = assert(parent:result())
    assert.equal(3, #urls)
    assert.equal(3, sim:stats().submits)
  end)

  it("a job's wait for another job honours its timeout", function()
    local slow = client:spawn(function() return client:motion(Simulator.params()) end)
    local waiter = client:spawn(function()
      local started = core.now()
      local r, err = slow:wait(0.1)
      return r, err, core.now() - started
    end)
    while waiter:status() == "running" do client:step(0.05) end
    local r, err, took = waiter:result()
    assert.is_nil(r)
    assert.equal("pending", err.kind)
    assert.is_true(took >= 0.09 and took < 0.4, "took " .. took)
    client:run()
    assert.equal("done", slow:status())
  end)

  it("a pending job's result says so", function()
    local job = client:spawn(function() return client:motion(Simulator.params()) end)
    local r, err = job:result()
    assert.is_nil(r)
    assert.equal("pending", err.kind)
    job:cancel()
  end)

  it("hook errors inside a job come back as kind hook with the task id", function()
    local job = client:spawn(function()
      return client:motion(Simulator.params({ on_submit = function() error("db down") end }))
    end)
    client:run()
    local r, err = job:result()
    assert.is_nil(r)
    assert.equal("hook", err.kind)
    assert.is_string(err.task_id)
    assert.truthy(err.message:find("db down", 1, true))
  end)

  it("hooks may call the client from inside a job (yield through the hook)", function()
    local seen
    local job = client:spawn(function()
      return client:motion(Simulator.params({
        on_submit = function(id) seen = assert(client:task(id)).id end,
      }))
    end)
    client:run()
    local result = assert(job:result())
    assert.equal(result.task_id, seen)
  end)

  it("step() from inside a job is refused", function()
    local job = client:spawn(function() client:step(0) end)
    client:run()
    local _, err = job:result()
    assert.truthy(tostring(err):find("inside a job", 1, true))
  end)

  it("a call from a coroutine of the job's own is refused, not taken for the job's", function()
    local id = assert(client:submit(Simulator.params()))
    local job = client:spawn(function()
      local inner = coroutine.create(function() return client:task(id) end)
      return coroutine.resume(inner)
    end)
    client:run()
    assert.equal("done", job:status()) -- the job itself went on
    local ok, err = job:result()
    assert.is_false(ok)
    assert.truthy(tostring(err):find("did not spawn", 1, true), tostring(err))
  end)

  it("close ends running jobs with kind closed; later calls return closed", function()
    local job = client:spawn(function() return client:motion(Simulator.params()) end)
    client:step(0.05)
    client:close()
    client:close()
    local _, err = job:result()
    assert.equal("closed", err.kind)
    local r, err2 = client:task("x")
    assert.is_nil(r)
    assert.equal("closed", err2.kind)
    assert.equal(0, client:step(0))
    local late = client:spawn(function() return 1 end)
    assert.equal("closed", select(2, late:result()).kind)
  end)

  it("a job that closes the client ends a blocking wait with kind closed", function()
    local id = assert(client:submit(Simulator.params()))
    -- the blocking wait's poll is in flight (slow answer) when the job closes the client
    sim:fault({ path = "/kling/tasks", delay = 0.5 })
    client:spawn(function()
      client.engine.scheduler:sleep(0.1)
      client:close()
    end)
    local r, err = client:wait(id)
    assert.is_nil(r)
    assert.equal("closed", err.kind)
  end)

  it("a verbose sink that raises neither raises from the call nor strands its transfer", function()
    local c = sim:client({ verbose = function() error("sink broke") end })
    local id = assert(client:submit(Simulator.params()))
    local job = c:spawn(function() return c:task(id) end)
    while c:pending() > 0 do c:step(0.05) end
    local t = assert(job:result())
    assert.equal(id, t.id)
    assert(c:task(id))
    assert.equal("hook", c.verbose_error.kind)
    assert.truthy(c.verbose_error.message:find("sink broke", 1, true))
    c:close()
  end)

  it("close is also __close on Lua 5.4", function()
    if _VERSION ~= "Lua 5.4" then return end
    local chunk = assert(load([[
      local sim = ...
      local c <close> = sim:client()
      return c
    ]]))
    local c = chunk(sim)
    assert.equal("closed", select(2, c:task("x")).kind)
  end)
end)

-- A submit on the wire may already be billed: cancel and close let it finish
-- (bounded by its HTTP timeout) so that its task id is known.
describe("cancel and close during a submit", function()
  local sim, client, seen
  Simulator.for_each_spec({ generation_time = 0.2 }, function(ctx) sim = ctx.sim end)
  before_each(function()
    client = sim:client()
    seen = {}
    -- the server takes the submit at once and answers 0.3 s later
    sim:fault({ path = "/kling/motion", delay = 0.3, pass = true })
  end)
  after_each(function() client:close() end)

  local function params()
    return Simulator.params({ on_submit = function(id) seen[#seen + 1] = id end })
  end

  local function spawn_on_the_wire()
    local job = client:spawn(function() return client:motion(params()) end)
    while sim:stats().submits == 0 do client:step(0.01) end
    return job
  end

  it("job:cancel() lets it finish: on_submit runs and the error carries the task id", function()
    local job = spawn_on_the_wire()
    assert.is_true(job:cancel())
    assert.is_false(job:cancel())
    while job:status() == "running" do client:step(0.05) end
    assert.equal("cancelled", job:status())
    local r, err = job:result()
    assert.is_nil(r)
    assert.equal("cancelled", err.kind)
    assert.equal(1, #seen)
    assert.equal(seen[1], err.task_id)
    assert.equal(1, sim:stats().tasks_created)
    assert.equal(0, client:pending())
    assert.equal(0, sim:count("/kling/tasks"), "a cancelled job went on polling")
  end)

  it("close() waits for it: on_submit runs and the error is closed with the task id", function()
    local job = spawn_on_the_wire()
    client:close()
    local r, err = job:result()
    assert.is_nil(r)
    assert.equal("closed", err.kind)
    assert.equal(1, #seen)
    assert.equal(seen[1], err.task_id)
    assert.is_nil(err.maybe_submitted)
  end)

  it("close(0) cannot wait: the error says maybe_submitted", function()
    local job = spawn_on_the_wire()
    client:close(0)
    local r, err = job:result()
    assert.is_nil(r)
    assert.equal("closed", err.kind)
    assert.is_true(err.maybe_submitted)
    assert.equal(0, #seen)
  end)

  it("a blocking submit whose client a job closes still learns its task id", function()
    client:spawn(function()
      while sim:stats().submits == 0 do coroutine.yield() end
      client:close()
    end)
    local id, err = client:submit(params())
    assert.is_nil(id)
    assert.equal("closed", err.kind)
    assert.equal(1, #seen)
    assert.equal(seen[1], err.task_id)
  end)

  it("a submit queued in libcurl behind max_connections was not sent: cancel drops it at once", function()
    sim:reset()
    local c = sim:client({ max_connections = 1 })
    local id = assert(c:submit(Simulator.params()))
    sim:fault({ path = "/kling/tasks", delay = 1 })
    local poll = c:spawn(function() return c:wait(id) end) -- holds the only connection
    while sim:count("/kling/tasks") == 0 do c:step(0.01) end
    local job = c:spawn(function() return c:motion(params()) end)
    c:step(0.05)
    assert.equal(2, c.engine.scheduler.multi:count()) -- the submit waits for a connection
    assert.is_true(job:cancel())
    assert.equal("cancelled", job:status())
    assert.equal(1, c.engine.scheduler.multi:count())
    poll:cancel()
    c:close()
    assert.equal(1, sim:stats().submits)
    assert.equal(0, #seen)
  end)

  it("a job cancelled before its submit was sent is dropped at once", function()
    sim:reset()
    local job = client:spawn(function() return client:motion(params()) end)
    assert.is_true(job:cancel())
    assert.equal("cancelled", job:status())
    client:run()
    assert.equal(0, sim:stats().submits)
  end)
end)
