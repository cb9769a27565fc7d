-- run-specs: long (a 10 s measurement of an idle loop)
-- kling.loop: the client driven by a real event loop library (luv, cqueues),
-- waking only when it has work, and answering as soon as an answer arrives.
local core = require "kling.core"
local Simulator = require "helpers.simulator"
local kling_loop = require "kling.loop"

local has_luv, uv = pcall(require, "luv")
local has_cqueues, cqueues = pcall(require, "cqueues")

describe("kling.loop.uv (luv)", function()
  local sim, client
  Simulator.for_each_spec({ generation_time = 0.3, client = true }, function(ctx) sim, client = ctx.sim, ctx.client end)

  if not has_luv then
    pending("lua-luv is not installed for " .. _VERSION)
    return
  end
  after_each(function() uv.run("nowait") end) -- closed handles finish closing

  -- Runs the loop until done() or `limit` seconds; counts its iterations.
  -- done() is asked after the timers (prepare) and after the I/O (check)
  -- of each iteration: a step run by either may end the wait.
  local function run_until(done, limit)
    local iterations, deadline = 0, uv.new_timer()
    local prepare, check = uv.new_prepare(), uv.new_check()
    prepare:start(function()
      iterations = iterations + 1
      if done() then uv.stop() end
    end)
    check:start(function() if done() then uv.stop() end end)
    deadline:start(math.floor(limit * 1000), 0, function() uv.stop() end)
    uv.run()
    prepare:stop(); prepare:close(); check:stop(); check:close(); deadline:stop(); deadline:close()
    return iterations
  end

  -- 10 s on one loop: an idle client steps 0 times, and a client with a
  -- pending job (3 s poll interval) wakes the loop only around its submit
  -- and its polls, never on a tick.
  it("an idle client never wakes the loop; a pending one only around its polls", function()
    local idle = assert(kling_loop.uv(client, uv))
    local busy = sim:client({ poll_interval = 3, max_poll_interval = 3 })
    sim:config({ generation_time = 7.5 })
    local handle = assert(kling_loop.uv(busy, uv))
    local started = core.now()
    local steps_at = {}
    local step = busy.step
    busy.step = function(...) steps_at[#steps_at + 1] = core.now() - started return step(...) end
    local job = busy:spawn(function() return busy:motion(Simulator.params()) end)
    local iterations = run_until(function() return false end, 10)
    assert.equal(0, idle.steps)
    assert.equal("succeed", assert(job:result()).state)
    -- the submit at 0 s, polls about 3, 6 and 9 s: the steps come in at
    -- most 4 bursts (a gap of a second starts one), each under 0.3 s long
    local bursts, first = 0, nil
    for i, t in ipairs(steps_at) do
      if i == 1 or t - steps_at[i - 1] > 1 then bursts, first = bursts + 1, t end
      assert.is_true(t - first < 0.3, ("a step at %.2f s, %.2f s into its burst"):format(t, t - first))
    end
    assert.is_true(bursts <= 4, bursts .. " bursts of steps")
    assert.is_true(#steps_at < 40, #steps_at .. " steps")
    assert.is_true(iterations <= #steps_at + 2, iterations .. " loop iterations for " .. #steps_at .. " steps")
    idle:stop()
    handle:close()
  end)

  it("drives a job to its end, steps when an answer arrives, not on a tick", function()
    local handle = assert(kling_loop.uv(client, uv))
    local job = client:spawn(function() return client:motion(Simulator.params()) end)
    run_until(function() return job:status() ~= "running" end, 10)
    assert.equal("succeed", assert(job:result()).state)
    -- one task read: from spawn to its answer in a few milliseconds (a
    -- 100 ms timer would take up to 100)
    local id = job:result().task_id
    local started, answered = core.now(), nil
    local read = client:spawn(function() local t = client:task(id); answered = core.now(); return t end)
    run_until(function() return read:status() ~= "running" end, 5)
    assert(read:result())
    assert.is_true(answered - started < 0.05, ("answered after %.1f ms"):format((answered - started) * 1000))
    handle:stop()
  end)

  it("stops watching when the client closes, and a spawn from outside wakes it", function()
    local handle = assert(kling_loop.uv(client, uv))
    local ran = false
    local timer = uv.new_timer()
    timer:start(20, 0, function() client:spawn(function() ran = true end) end)
    run_until(function() return ran end, 2)
    assert.is_true(ran)
    timer:close()
    client:close()
    uv.run("nowait") -- the handles' closing completes in the loop
    assert.is_false(uv.loop_alive(), "a handle outlived the client")
    handle:stop() -- idempotent
  end)
end)

describe("kling.loop.cqueues", function()
  local client
  Simulator.for_each_spec({ generation_time = 0.3, client = true }, function(ctx) client = ctx.client end)

  if not has_cqueues then
    pending("lua-cqueues is not installed for " .. _VERSION)
    return
  end

  it("cqueues.poll takes the client as it is", function()
    local job = client:spawn(function() return client:motion(Simulator.params()) end)
    local started = core.now()
    while job:status() == "running" do
      cqueues.poll(client)
      client:step(0)
      assert.is_true(core.now() - started < 10)
    end
    assert.equal("succeed", assert(job:result()).state)
  end)

  it("drives jobs from a controller and stays asleep while idle", function()
    local handle = assert(kling_loop.cqueues(client))
    local cq = handle.controller
    assert(cq:step(0.3)) -- idle: nothing to step
    assert.equal(0, handle.steps)
    local job = client:spawn(function() return client:motion(Simulator.params()) end)
    local started = core.now()
    while job:status() == "running" do
      assert(cq:step(1))
      assert.is_true(core.now() - started < 10)
    end
    assert.equal("succeed", assert(job:result()).state)
    handle:close()
    assert(cq:step(0))
    assert.is_true(cq:empty(), "the stepping coroutine outlived the client")
  end)
end)
