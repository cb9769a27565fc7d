-- How the client uses the network: reused connections, no busy waiting,
-- polls that back off.
local core = require "kling.core"
local retry = require "kling.retry"
local Simulator = require "helpers.simulator"

describe("the engine", function()
  local sim, client
  Simulator.for_each_spec({ generation_time = 0.6, client = true }, function(ctx) sim, client = ctx.sim, ctx.client end)

  it("a blocking call on an idle client waits in libcurl directly (one C call); not while jobs run", function()
    local id = assert(client:submit(Simulator.params()))
    local scheduler = client.engine.scheduler
    local before = scheduler.alone
    for _ = 1, 3 do assert(client:task(id)) end
    assert.equal(before + 3, scheduler.alone) -- what make bench-engine's figures rest on
    local job = client:spawn(function() return client:wait(id) end)
    assert(client:task(id)) -- a job could move meanwhile: through step()
    assert.equal(before + 3, scheduler.alone)
    client:run()
    assert(job:result())
  end)

  it("reuses one connection for successive polls", function()
    local id = assert(client:submit(Simulator.params()))
    local before = sim:stats().connections
    for _ = 1, 5 do assert(client:task(id)) end
    assert.equal(5, sim:stats().retrieve)
    assert.is_true(sim:stats().connections - before <= 1)
  end)

  -- n polls of one task at once on client c, each answered after delay
  -- seconds; returns the most transfers libcurl held at once, once all of
  -- them have answered.
  local function burst(c, n, delay)
    local id = assert(c:submit(Simulator.params()))
    sim:fault({ path = "/kling/tasks", delay = delay, times = n, pass = true })
    local jobs = {}
    for i = 1, n do jobs[i] = c:spawn(function() return c:task(id) end) end
    local most = 0
    while c:pending() > 0 do
      c:step(0.01)
      most = math.max(most, c.engine.scheduler.multi:count())
    end
    for i = 1, n do assert.equal(id, assert(jobs[i]:result()).id) end
    return most
  end

  it("keeps at most max_in_flight transfers in libcurl; the others wait their turn and all finish", function()
    client.engine.scheduler.max_in_flight = 2
    local most = burst(client, 6, 0.1)
    assert.is_true(most <= 2, "in libcurl at once: " .. most)
  end)

  -- Each curl_multi_perform visits every transfer added to libcurl: a burst
  -- of 256 made steps of 1.5 ms (make bench). Twice the connections keeps
  -- every connection busy.
  it("keeps twice max_connections transfers in libcurl during a burst, and no more", function()
    local c = sim:client({ max_connections = 3 })
    assert.equal(6, burst(c, 20, 0.05))
    c:close()
  end)

  -- Reads (polls, task reads) wait for a place in libcurl behind other reads
  -- only: a poll keeps its time while a burst of submits waits for places.
  it("a task read gets the next place in libcurl before 30 queued submits", function()
    local c = sim:client({ max_connections = 1 }) -- two transfers in libcurl at most
    local id = assert(c:submit(Simulator.params()))
    local order = {}
    for i = 1, 30 do
      c:spawn(function() assert(c:submit(Simulator.params())); order[#order + 1] = i end)
    end
    c:spawn(function() assert(c:task(id)); order[#order + 1] = "read" end)
    c:run()
    local at
    for i, v in ipairs(order) do if v == "read" then at = i end end
    -- the read job starts after the 30 submit jobs did (some of their
    -- submits end meanwhile: 2 to 8 seen); behind their queue it would end last
    assert.is_true(at <= 16, "the read ended after " .. (at - 1) .. " submits")
    c:close()
  end)

  -- libcurl retries a request on a new connection when a reused one dies
  -- before any answer, without telling: for a submit, a second bill. Submits
  -- share connections all the same, because kling.core refuses to let libcurl
  -- rewind a submit's body once it began to go out (transfer.c, on_seek).
  it("submits share connections, and one whose reused connection dies unanswered is never sent again", function()
    local before = sim:stats().connections
    assert(client:submit(Simulator.params()))
    assert(client:submit(Simulator.params()))
    assert.equal(1, sim:stats().connections - before) -- kept alive, reused
    -- the server takes the next submit (its task exists), then closes the
    -- connection without a word
    sim:fault({ path = "/kling/motion", drop = true, create_task = true })
    local id, err = client:submit(Simulator.params())
    assert.is_nil(id)
    assert.is_true(err.maybe_submitted, tostring(err))
    assert.equal("rewind", err.reason)
    assert.equal(3, sim:stats().submits) -- not 4: libcurl's retry did not go out
    assert.equal(3, sim:stats().tasks_created)
  end)

  it("waits without burning CPU", function()
    local id = assert(client:submit(Simulator.params()))
    local cpu, wall = os.clock(), core.now()
    assert(client:wait(id))
    cpu, wall = os.clock() - cpu, core.now() - wall
    assert.is_true(wall >= 0.4)
    assert.is_true(cpu < wall * 0.25, ("%.3fs of CPU in %.3fs"):format(cpu, wall))
  end)

  -- Lua heap per job that waits for its task: mostly the job's coroutine,
  -- whose stack Lua sizes by the job's deepest moment, the submit, and keeps
  -- (docs/design.md, "Memory per job"). Each limit is what that runtime
  -- measures today plus about 15%; on Lua 5.4 a submit path a frame
  -- deeper doubles the stack, and this spec then measures 3.9 KiB per job.
  local HEAP_PER_WAITING_JOB = { ["Lua 5.1"] = 4.2, ["Lua 5.2"] = 3.6, ["Lua 5.3"] = 3.4,
                                 ["Lua 5.4"] = 3.5, LuaJIT = 2.9 } -- LuaJIT: 2.4 to 2.7 from run to run

  it("holds little memory for a job waiting for its task", function()
    local n = 300
    local c = sim:client({ poll_interval = 60, max_poll_interval = 60 }) -- asleep once submitted
    collectgarbage(); collectgarbage()
    local before = collectgarbage("count")
    local jobs = {}
    for i = 1, n do jobs[i] = c:spawn(c.motion, c, Simulator.params()) end
    local deadline = core.now() + 20
    while #c.engine.scheduler.timers < n and core.now() < deadline do c:step(0.05) end
    assert.equal(n, #c.engine.scheduler.timers) -- every job has its task id and sleeps
    collectgarbage(); collectgarbage()
    local per_job = (collectgarbage("count") - before) / n
    for _, job in ipairs(jobs) do job:cancel() end
    c:close()
    local limit = HEAP_PER_WAITING_JOB[jit and "LuaJIT" or _VERSION]
    assert.is_true(per_job <= limit, ("%.2f KiB per waiting job, limit %.1f"):format(per_job, limit))
  end)

  -- Bytes a waiting job allocates per poll: each poll's garbage is swept
  -- later, inside some step, and a paced host feels the sweep (docs/design.md,
  -- "What is left of a paced step"). Today (5.1, 5.2, 5.3, 5.4, LuaJIT):
  -- 3,350, 2,070, 1,860, 1,530 and 1,630 to 1,740 bytes, idle or loaded.
  -- Before a poll's answer lived on its member and a resume's values stayed
  -- off the heap: 4,407, 3,120, 2,759, 2,252 and 2,513. Each limit lies
  -- between the two.
  local GARBAGE_PER_POLL = { ["Lua 5.1"] = 3850, ["Lua 5.2"] = 2600, ["Lua 5.3"] = 2300, ["Lua 5.4"] = 1900,
                             LuaJIT = 2100 }

  it("makes little garbage per poll of a waiting job", function()
    sim:config({ generation_time = 60 })
    -- one batch per round: 50 ids (the most a batch takes), due within 10%
    -- of each other, so a loaded machine cannot split them
    local n = 50
    local c = sim:client({ poll_interval = 0.2, max_poll_interval = 0.2 })
    local submitted, polls = 0, 0
    local jobs = {}
    for i = 1, n do
      jobs[i] = c:spawn(c.motion, c, Simulator.params({
        on_submit = function() submitted = submitted + 1 end, on_status = function() polls = polls + 1 end }))
    end
    local deadline = core.now() + 20
    while (submitted < n or polls < n) and core.now() < deadline do c:step(0.05) end
    assert.equal(n, submitted)
    collectgarbage(); collectgarbage()
    collectgarbage("stop")
    local before, first = collectgarbage("count"), polls
    while polls < first + 4 * n and core.now() < deadline do c:step(0.05) end
    local per_poll = (collectgarbage("count") - before) * 1024 / (polls - first)
    collectgarbage("restart")
    for _, job in ipairs(jobs) do job:cancel() end
    c:close()
    local limit = GARBAGE_PER_POLL[jit and "LuaJIT" or _VERSION]
    assert.is_true(per_poll <= limit, ("%.0f bytes per poll, limit %d"):format(per_poll, limit))
  end)

  it("polls less often as the wait goes on", function()
    -- intervals long enough that a scheduling hiccup of a few tens of ms on a
    -- busy machine cannot hide the x1.5 growth behind the +/-10% jitter
    local c = sim:client({ poll_interval = 0.25, max_poll_interval = 10 })
    sim:next_task({ generation_time = 2 })
    local times = {}
    assert(c:motion(Simulator.params({ on_status = function() times[#times + 1] = core.now() end })))
    c:close()
    assert.is_true(#times >= 4 and #times <= 8, #times .. " polls")
    for i = 3, #times do
      local before, now_gap = times[i - 1] - times[i - 2], times[i] - times[i - 1]
      assert.is_true(now_gap > before * 1.1, ("gap %d: %.3fs after %.3fs"):format(i, now_gap, before))
    end
  end)
end)

describe("polls near the expected end", function()
  local sim
  Simulator.for_each_spec({ generation_time = 1 }, function(ctx) sim = ctx.sim end)

  -- polls at 0.15, 0.3, 0.525, 0.86 and 1.37 s after the submit (x1.5
  -- growth, +/-10%): a task of 1 s ends between the fourth and the fifth
  local function follow(c)
    local times, submitted = {}, nil
    assert(c:motion(Simulator.params({
      on_submit = function() submitted = core.now() end,
      on_status = function(t) times[#times + 1] = { core.now() - submitted, t.state } end,
    })))
    return times
  end

  it("once a task like it has finished, a wait polls near that time, not at its next interval", function()
    local c = sim:client({ poll_interval = 0.15, max_poll_interval = 60, poll_batch_window = 0.05 })
    local first = follow(c) -- learns 1 s from the record's created_at and finished_at
    assert.equal(5, #first)
    assert.is_true(first[5][1] > 1.2, ("the first task was seen done at %.3f s"):format(first[5][1]))
    local second = follow(c)
    c:close()
    assert.equal(5, #second) -- no poll more than the first task needed
    assert.equal("succeed", second[5][2])
    local gap = second[5][1] - second[4][1]
    -- at its interval the gap would be 0.51 s (+/-10%); near the end, ~0.2 s
    assert.is_true(gap < 0.4, ("the last poll came %.3f s after the one before"):format(gap))
    assert.is_true(second[5][1] < first[5][1], ("seen done at %.3f s, not sooner than %.3f s"):format(
      second[5][1], first[5][1]))
  end)
end)

describe("batched polls", function()
  local sim, client
  Simulator.for_each_spec({ generation_time = 0.5, client = true }, function(ctx) sim, client = ctx.sim, ctx.client end)

  local function spawn_many(n, c)
    local jobs = {}
    for i = 1, n do jobs[i] = (c or client):spawn(function() return (c or client):motion(Simulator.params()) end) end
    return jobs
  end

  it("concurrent waits share retrieve_batch requests", function()
    local jobs = spawn_many(20)
    client:run()
    for _, job in ipairs(jobs) do assert.equal("succeed", (assert(job:result())).state) end
    local stats = sim:stats()
    assert.is_true(stats.retrieve_batch >= 1)
    -- one request per poll round, not one per job and round
    assert.is_true(stats.requests["/kling/tasks"] <= 20, stats.requests["/kling/tasks"] .. " requests")
  end)

  it("a window of 0 still merges polls due at the same step", function()
    local c = sim:client({ poll_batch_window = 0 })
    spawn_many(10, c)
    c:run()
    c:close()
    assert.is_true(sim:stats().retrieve_batch >= 1)
  end)

  it("a batch that fails is retried and every member still finishes", function()
    local jobs = spawn_many(5)
    client:step(0.05)
    sim:fault({ path = "/kling/tasks", status = 503, times = 4 })
    client:run()
    for _, job in ipairs(jobs) do assert.equal("done", job:status()) end
  end)

  it("cancelling one member never strands the others", function()
    local jobs = spawn_many(4)
    local cancelled = false
    while client:pending() > 0 do
      client:step(0.01)
      if not cancelled and sim:stats().tasks_created == 4 then
        jobs[1]:cancel()
        cancelled = true
      end
    end
    assert.equal("cancelled", jobs[1]:status())
    for i = 2, 4 do assert.equal("done", jobs[i]:status()) end
  end)

  it("cancelling the only member of a batch stops its poll", function()
    local c = sim:client({ poll_batch_window = 0.3 })
    local id = assert(c:submit(Simulator.params()))
    local before = sim:count("/kling/tasks")
    local job = c:spawn(function() return c:wait(id) end)
    c:step(0) -- the job has joined a batch that waits out its window
    assert.equal("running", job:status())
    assert.is_true(job:cancel())
    -- step until the client's own jobs are gone (a batch would be sent meanwhile)
    while next(c.engine.scheduler.live) do c:step(0.05) end
    assert.equal(before, sim:count("/kling/tasks"), "an idle client sent a poll")
    -- and a batch already on the wire is dropped
    sim:fault({ path = "/kling/tasks", delay = 1 })
    job = c:spawn(function() return c:wait(id) end)
    while c.engine.scheduler.multi:count() == 0 do c:step(0.05) end
    assert.is_true(job:cancel())
    c:step(0)
    assert.equal(0, c.engine.scheduler.multi:count())
    c:close()
  end)

  it("an unknown id in a batch ends only that wait, with not_found", function()
    local id = assert(client:submit(Simulator.params()))
    local ok = client:spawn(function() return client:wait(id) end)
    local missing = client:spawn(function() return client:wait("no-such-task") end)
    client:run()
    assert.equal(1, sim:stats().retrieve_batch)
    assert.equal("succeed", (assert(ok:result())).state)
    local r, err = missing:result()
    assert.is_nil(r)
    assert.equal("not_found", err.kind)
    assert.equal("no-such-task", err.task_id)
  end)
end)

describe("retry arithmetic", function()
  local settings = { retry_delay = 0.5, max_retry_delay = 4, max_retry_after = 120,
                     poll_interval = 3, max_poll_interval = 15 }

  it("grows polls x1.5 up to the maximum", function()
    assert.equal(4.5, retry.next_poll_interval(3, settings))
    assert.equal(15, retry.next_poll_interval(12, settings))
  end)

  it("jitters within +/-10%", function()
    assert.equal(9, retry.jitter(10, function() return 0 end))
    assert.equal(11, retry.jitter(10, function() return 1 end))
  end)

  it("backs off exponentially with full jitter, capped", function()
    assert.equal(0.5, retry.delay(1, settings, nil, function() return 1 end))
    assert.equal(2, retry.delay(3, settings, nil, function() return 1 end))
    assert.equal(4, retry.delay(10, settings, nil, function() return 1 end))
    assert.equal(0, retry.delay(10, settings, nil, function() return 0 end))
  end)

  it("honours Retry-After up to max_retry_after", function()
    assert.equal(7, retry.delay(1, settings, 7))
    assert.is_nil(retry.delay(1, settings, 121))
  end)

  it("reads Retry-After as seconds or as an HTTP date", function()
    assert.equal(3, retry.parse_retry_after("3"))
    assert.equal(0, retry.parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", 0))
    assert.equal(90, retry.parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111687))
    assert.equal(90, retry.parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", 784111687))
    assert.equal(90, retry.parse_retry_after("Sun Nov  6 08:49:37 1994", 784111687))
    assert.equal(0, retry.parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 + 50))
    assert.is_nil(retry.parse_retry_after("soon"))
    assert.is_nil(retry.parse_retry_after(nil))
  end)
end)
