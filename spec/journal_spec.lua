-- The journal: a job has an identity (its key) that outlives the process.
-- Each rule of the submit state machine against the simulator; "another
-- process" is played by a second journal handle, which is a separate owner
-- exactly as a separate process is (its liveness is a flock of its own).
local core = require "kling.core"
local Store = require "kling.journal.store" -- another "process": a journal handle of its own
local Simulator = require "helpers.simulator"

local MOTION, TASKS = "/kling/motion", "/kling/tasks"

describe("the journal", function()
  local sim, path, client
  Simulator.for_each_spec({ generation_time = 0.2, journal = true, client = true },
    function(ctx) sim, client, path = ctx.sim, ctx.client, ctx.journal end)

  -- a handle of another "process" on the same file
  local function other()
    return assert(Store.open(path))
  end

  it("records a job from queued to succeed under its key, durably at each step", function()
    local seen = {}
    local reader = other()
    sim:fault({ path = MOTION, delay = 0.3, pass = true })
    local job = client:spawn(function()
      return client:motion(Simulator.params({ key = "clip-1", on_submit = function(id)
        seen.at_submit = reader:get("clip-1") -- what another process sees as on_submit runs
        seen.id = id
      end }))
    end)
    client:step(0) -- the job has claimed the key
    while sim:stats().submits == 0 do client:step(0.01) end
    assert.equal("sending", reader:get("clip-1").state) -- written as the request left
    local result = assert(job:wait(5))
    assert.equal("submitted", seen.at_submit.state)
    assert.equal(seen.id, seen.at_submit.task_id)
    local entry = reader:get("clip-1")
    assert.equal("succeed", entry.state)
    assert.equal(seen.id, entry.task_id)
    assert.equal(result.video_url, entry.result.video_url)
    assert.equal("image", entry.request.character_orientation)
    assert.is_number(entry.created_at)
    assert.is_true(entry.updated_at >= entry.created_at)
    assert.is_true(math.abs(entry.created_at - os.time()) < 60)
    reader:close()
  end)

  it("a job's journal writes never make step() wait for SQLite, even on another process's lock", function()
    local locker = other()
    assert(locker.db:run("BEGIN IMMEDIATE")) -- holds the write lock (the writer waits up to 10 s)
    local job = client:spawn(function() return client:submit(Simulator.params({ key = "locked" })) end)
    local started = core.now()
    for _ = 1, 5 do client:step(0) end
    assert.is_true(core.now() - started < 0.5)
    assert.equal("running", job.state) -- its claim is not committed yet
    assert.equal(0, sim:stats().submits)
    assert(locker.db:run("COMMIT"))
    local id = assert(job:wait(5))
    assert.equal(1, sim:stats().submits)
    assert.equal(id, locker:get("locked").task_id)
    locker:close()
  end)

  it("close during a submit on the wire still records it as submitted and runs on_submit", function()
    sim:fault({ path = MOTION, delay = 0.3, pass = true })
    local seen
    local job = client:spawn(function()
      return client:motion(Simulator.params({ key = "closing", on_submit = function(id) seen = id end }))
    end)
    while sim:stats().submits == 0 do client:step(0.01) end
    client:close()
    local _, err = job:result()
    assert.equal("closed", err.kind)
    assert.is_string(seen)
    assert.equal(seen, err.task_id)
    local reader = other()
    local entry = reader:get("closing")
    reader:close()
    assert.equal("submitted", entry.state)
    assert.equal(seen, entry.task_id)
  end)

  it("stays queued while the request waits for a connection inside libcurl", function()
    local c = sim:client({ journal = path, max_connections = 1 })
    local id = assert(c:submit(Simulator.params({ key = "first" })))
    sim:fault({ path = TASKS, delay = 1 })
    local poll = c:spawn(function() return c:wait(id) end) -- holds the only connection
    while sim:count(TASKS) == 0 do c:step(0.01) end
    local job = c:spawn(function() return c:submit(Simulator.params({ key = "behind" })) end)
    local deadline = core.now() + 5
    local multi = c.engine.scheduler.multi
    while multi:count() < 2 and core.now() < deadline do c:step(0.01) end -- its submit is with libcurl
    assert.equal(2, c.engine.scheduler.multi:count())
    assert.equal("queued", c.journal:get("behind").state)
    job:cancel()
    poll:cancel()
    c:close()
    assert.equal(1, sim:stats().submits)
  end)

  it("a finished key returns its stored result with no request at all", function()
    local first = assert(client:motion(Simulator.params({ key = "done" })))
    local before = sim:stats()
    local again = assert(client:motion(Simulator.params({ key = "done" })))
    assert.equal(first.video_url, again.video_url)
    assert.equal(first.task_id, assert(client:submit(Simulator.params({ key = "done" }))))
    local after = sim:stats()
    assert.equal(before.submits, after.submits)
    assert.equal(before.requests[TASKS], after.requests[TASKS])
  end)

  it("a failed key returns its stored task_failed error with no request", function()
    sim:next_task({ outcome = "failed_state", error_code = "bad_image", error_message = "no person" })
    local _, err = client:motion(Simulator.params({ key = "bad" }))
    assert.equal("task_failed", err.kind)
    local before = sim:stats()
    local r, again = client:motion(Simulator.params({ key = "bad" }))
    assert.is_nil(r)
    assert.equal("task_failed", again.kind)
    assert.equal("bad_image", again.code)
    assert.equal("bad", again.key)
    assert.equal(err.task_id, again.task_id)
    assert.equal(before.submits, sim:stats().submits)
    assert.equal(before.requests[TASKS], sim:stats().requests[TASKS])
  end)

  it("a submitted key is followed, never submitted again", function()
    local id = assert(client:submit(Simulator.params({ key = "follow-me" })))
    assert.equal(id, assert(client:submit(Simulator.params({ key = "follow-me" }))))
    local fresh = sim:client({ journal = path }) -- as after a restart
    local result = assert(fresh:motion(Simulator.params({ key = "follow-me" })))
    fresh:close()
    assert.equal(id, result.task_id)
    assert.equal(1, sim:stats().submits)
  end)

  it("a resumed wait polls at the interval its task's age has grown to, not from the start", function()
    local c = sim:client({ journal = path, poll_interval = 0.05, max_poll_interval = 0.4 })
    sim:next_task({ generation_time = 30 })
    assert(c:submit(Simulator.params({ key = "old" })))
    -- as if it had been submitted a minute ago, by an earlier run
    assert(c.journal.store.db:run("UPDATE jobs SET updated_at = updated_at - 60 WHERE key = 'old'"))
    local seen = {}
    local job = c:spawn(function()
      return c:motion(Simulator.params({ key = "old", on_status = function() seen[#seen + 1] = core.now() end }))
    end)
    while #seen < 3 do c:step(0.05) end
    job:cancel()
    c:close()
    -- the first look is at once; the next ones are max_poll_interval apart (+/-10% jitter)
    assert.is_true(seen[3] - seen[2] >= 0.35, ("polls %.3f s apart"):format(seen[3] - seen[2]))
    assert.equal(1, sim:stats().submits)
  end)

  it("a key reused with other parameters, or for another endpoint, is refused naming key, before any traffic",
    function()
    assert(client:motion(Simulator.params({ key = "one-job" })))
    local before = sim:stats().requests
    for _, changed in ipairs({ { mode = "pro" }, { image_url = "https://cdn.example.test/other.jpg" },
                               { prompt = "wave" } }) do
      for _, call in ipairs({ "motion", "submit" }) do
        local r, err = client[call](client, Simulator.params({ key = "one-job", mode = changed.mode,
          image_url = changed.image_url, prompt = changed.prompt }))
        assert.is_nil(r)
        assert.equal("invalid_argument", err.kind)
        assert.equal("key", err.field)
        local what = next(changed)
        assert.truthy(err.message:find(what, 1, true), err.message)
      end
    end
    -- the same parameters again: the stored result, as before
    assert(client:motion(Simulator.params({ key = "one-job" })))
    -- a key the journal knows for another endpoint
    local store = Store.open(path)
    assert(store:claim("elsewhere", function() return "submit" end, { endpoint = "videos", request = "{}" }))
    store:close()
    local _, err = client:submit(Simulator.params({ key = "elsewhere" }))
    assert.equal("key", err.field)
    assert.truthy(err.message:find("videos", 1, true), err.message)
    assert.same(before, sim:stats().requests)
    -- a key of which nothing was billed (queued) may be asked otherwise
    sim:fault({ path = MOTION, status = 400 })
    assert.equal("api", select(2, client:submit(Simulator.params({ key = "refused", prompt = "first" }))).kind)
    assert(client:submit(Simulator.params({ key = "refused", prompt = "second" })))
  end)

  it("a key left queued by a dead process is submitted", function()
    local dead = other()
    assert(dead:claim("orphan", function() return "submit" end, { endpoint = "motion", request = "{}" }))
    dead:close() -- its owner is gone; "queued" means nothing left the machine
    assert.equal("queued", client.journal:get("orphan").state)
    assert(client:motion(Simulator.params({ key = "orphan" })))
    assert.equal(1, sim:stats().submits)
    assert.equal("succeed", client.journal:get("orphan").state)
  end)

  it("a key left sending by a dead process is uncertain: never submitted on a guess", function()
    local dead = other()
    assert(dead:claim("lost", function() return "submit" end, { endpoint = "motion", request = "{}" }))
    assert(dead.db:run("UPDATE jobs SET state = 'sending' WHERE key = 'lost'"))
    dead:close()
    local r, err = client:motion(Simulator.params({ key = "lost" }))
    assert.is_nil(r)
    assert.equal("uncertain", err.kind)
    assert.equal("lost", err.key)
    assert.is_true(err.maybe_submitted)
    assert.truthy(err.message:find("kling jobs --adopt lost TASK_ID", 1, true), err.message)
    assert.truthy(err.message:find("kling jobs --forget lost --force", 1, true), err.message)
    assert.equal("uncertain", client.journal:get("lost").state)
    assert.equal("uncertain", select(2, client:submit(Simulator.params({ key = "lost" }))).kind)
    assert.equal(0, sim:stats().submits)
    -- the way out the message names: forgetting what may be billed takes force
    local ok, ferr = client.journal:forget("lost")
    assert.is_nil(ok)
    assert.equal("force", ferr.field)
    assert.truthy(ferr.message:find("billed again", 1, true), ferr.message)
    assert.is_true(client.journal:forget("lost", { force = true }))
    assert.is_nil(client.journal:get("lost"))
    assert(client:submit(Simulator.params({ key = "lost" })))
    assert.equal(1, sim:stats().submits)
  end)

  it("a submit that may have been billed leaves the key uncertain", function()
    sim:fault({ path = MOTION, status = 500 })
    local _, err = client:submit(Simulator.params({ key = "maybe" }))
    assert.is_true(err.maybe_submitted)
    assert.equal("maybe", err.key)
    local entry = client.journal:get("maybe")
    assert.equal("uncertain", entry.state)
    assert.equal(500, entry.error.status)
    assert.equal("uncertain", select(2, client:submit(Simulator.params({ key = "maybe" }))).kind)
    assert.equal(1, sim:stats().submits)
  end)

  it("a submit the server refused leaves the key queued, to be submitted again", function()
    sim:config({ credits = 0 })
    local _, err = client:submit(Simulator.params({ key = "no-credit" }))
    assert.equal("auth", err.kind)
    assert.equal("queued", client.journal:get("no-credit").state)
    assert.equal("used_up", client.journal:get("no-credit").error.code)
    sim:config({ credits = false })
    assert(client:submit(Simulator.params({ key = "no-credit" })))
    assert.equal("submitted", client.journal:get("no-credit").state)
    assert.equal(2, sim:stats().submits)
  end)

  it("a 429 is retried with the key back in queued between attempts", function()
    sim:fault({ path = MOTION, status = 429, retry_after = 0 })
    assert(client:submit(Simulator.params({ key = "busy" })))
    assert.equal(2, sim:stats().submits)
    assert.equal(1, sim:stats().tasks_created)
  end)

  it("a job without a key is journaled under its task id", function()
    local id = assert(client:submit(Simulator.params()))
    local entry = client.journal:get(id)
    assert.equal("submitted", entry.state)
    assert.equal(id, entry.task_id)
    -- and a keyless submit that may have been billed is listed as uncertain
    sim:fault({ path = MOTION, drop = true, create_task = true })
    assert.is_true(select(2, client:submit(Simulator.params())).maybe_submitted)
    local uncertain = client.journal:list({ state = "uncertain" })
    assert.equal(1, #uncertain)
    assert.equal("~", uncertain[1].key:sub(1, 1))
  end)

  it("lists entries, filtered by state, oldest first", function()
    assert(client:submit(Simulator.params({ key = "a" })))
    assert(client:motion(Simulator.params({ key = "b" })))
    local all = client.journal:list()
    assert.equal(2, #all)
    assert.equal("a", all[1].key)
    local done = client.journal:list({ state = "succeed" })
    assert.equal(1, #done)
    assert.equal("b", done[1].key)
    assert.is_false(client.journal:forget("unknown"))
  end)

  it("two clients given the same key at once submit it once and follow the same task", function()
    local c2 = sim:client({ journal = path })
    sim:fault({ path = MOTION, delay = 0.3, pass = true })
    local j1 = client:spawn(function() return client:motion(Simulator.params({ key = "shared" })) end)
    local j2 = c2:spawn(function() return c2:motion(Simulator.params({ key = "shared" })) end)
    while j1:status() == "running" or j2:status() == "running" do
      client:step(0.01)
      c2:step(0.01)
    end
    local r1, r2 = assert(j1:result()), assert(j2:result())
    c2:close()
    assert.equal(r1.task_id, r2.task_id)
    assert.equal(1, sim:stats().submits)
  end)

  it("one client running the same key twice at once submits it once", function()
    local jobs = {}
    for i = 1, 3 do jobs[i] = client:spawn(function() return client:motion(Simulator.params({ key = "twice" })) end) end
    client:run()
    for i = 1, 3 do assert.equal(assert(jobs[1]:result()).task_id, assert(jobs[i]:result()).task_id) end
    assert.equal(1, sim:stats().submits)
  end)

  it("a job cancelled before its submit left frees the key for others at once", function()
    local c = sim:client({ journal = path, max_connections = 1 })
    local id = assert(c:submit(Simulator.params({ key = "occupy" })))
    sim:fault({ path = TASKS, delay = 1 })
    local poll = c:spawn(function() return c:wait(id) end)
    while sim:count(TASKS) == 0 do c:step(0.01) end
    local job = c:spawn(function() return c:submit(Simulator.params({ key = "freed" })) end)
    c:step(0.05)
    job:cancel()
    -- c stays open: without the release, its live owner would hold the key
    local started = core.now()
    assert(client:submit(Simulator.params({ key = "freed" })))
    assert.is_true(core.now() - started < 1)
    poll:cancel()
    c:close()
  end)

  it("a dead owner's key is taken over; a live owner's is waited for", function()
    local live = other()
    assert(live:claim("held", function() return "submit" end, { endpoint = "motion", request = "{}" }))
    local c = sim:client({ journal = path, wait_timeout = 0.3 })
    local _, err = c:submit(Simulator.params({ key = "held" }))
    c:close()
    assert.equal("timeout", err.kind)
    assert.equal("held", err.key)
    assert.equal(0, sim:stats().submits)
    live:close()
    assert(client:submit(Simulator.params({ key = "held" })))
    assert.equal(1, sim:stats().submits)
  end)

  -- Steps client c until done() is true (at most 5 s).
  local function step_until(c, done)
    local started = core.now()
    while not done() do
      c:step(0.01)
      assert.is_true(core.now() - started < 5, "never happened")
    end
  end

  it("a failed submit never resets an entry that was forgotten and claimed again meanwhile", function()
    -- A cannot connect: its entry stays queued (ours) while it retries
    local a = sim:client({ journal = path, base_url = "http://127.0.0.1:1", retry_delay = 0.2,
                           max_retry_delay = 0.2, max_retries = 2 })
    local ja = a:spawn(function() return a:submit(Simulator.params({ key = "K" })) end)
    step_until(a, function() local e = client.journal:get("K"); return e and e.state == "queued" end)
    assert.is_true(client.journal:forget("K")) -- allowed: nothing of it left the machine
    -- B claims K again and sends it; its answer is slow
    sim:fault({ path = MOTION, delay = 0.5, pass = true })
    local jb = client:spawn(function() return client:submit(Simulator.params({ key = "K" })) end)
    step_until(client, function() local e = client.journal:get("K"); return e and e.state == "sending" end)
    -- A gives up: B's entry is not A's to reset
    step_until(a, function() return ja:status() ~= "running" end)
    local _, aerr = ja:result()
    assert.equal("journal", aerr.kind) -- it stopped trying at once: the key is another submit's
    assert.truthy(aerr.message:find("nothing was sent", 1, true), aerr.message)
    assert.equal("sending", client.journal:get("K").state)
    -- C arrives meanwhile: it waits for B and follows B's task
    local c = sim:client({ journal = path })
    local jc = c:spawn(function() return c:submit(Simulator.params({ key = "K" })) end)
    while jb:status() == "running" or jc:status() == "running" do
      client:step(0.01)
      c:step(0.01)
    end
    assert.equal(assert(jb:result()), assert(jc:result()))
    assert.equal(1, sim:stats().submits)
    a:close()
    c:close()
  end)

  it("a submit waiting for a connection whose key is forgotten and claimed again sends nothing", function()
    local a = sim:client({ journal = path, max_connections = 1 })
    local id = assert(a:submit(Simulator.params({ key = "occupy" })))
    sim:fault({ path = TASKS, delay = 1 })
    local poll = a:spawn(function() return a:wait(id) end)
    step_until(a, function() return sim:count(TASKS) > 0 end)
    local ja = a:spawn(function() return a:submit(Simulator.params({ key = "K2" })) end)
    step_until(a, function() local e = client.journal:get("K2"); return e and e.state == "queued" end)
    assert.is_true(client.journal:forget("K2"))
    local id2 = assert(client:submit(Simulator.params({ key = "K2" })))
    step_until(a, function() return ja:status() ~= "running" end)
    local _, err = ja:result()
    assert.equal("journal", err.kind)
    assert.truthy(err.message:find("nothing was sent", 1, true), err.message)
    local entry = client.journal:get("K2")
    assert.equal("submitted", entry.state)
    assert.equal(id2, entry.task_id)
    assert.equal(2, sim:stats().submits) -- "occupy" and B's K2
    poll:cancel()
    a:close()
  end)

  -- Every attempt to record "submitted" fails, as it does on a full disk or
  -- behind another process's lock: a trigger of the test's own.
  local BLOCK_SUBMITTED = [[CREATE TRIGGER block_submitted BEFORE UPDATE OF state ON jobs
    WHEN NEW.state = 'submitted' BEGIN SELECT RAISE(ABORT, 'disk full (simulated)'); END;]]

  it("a paid task id the journal cannot record yet is tried again and recorded once it can be", function()
    local blocker = other()
    assert(blocker.db:exec(BLOCK_SUBMITTED))
    local job = client:spawn(function() return client:motion(Simulator.params({ key = "paid" })) end)
    step_until(client, function() return sim:stats().tasks_created == 1 end)
    local t = core.now()
    while core.now() - t < 0.1 do client:step(0.01) end -- a few failed tries
    assert.equal("sending", client.journal:get("paid").state)
    assert(blocker.db:exec("DROP TRIGGER block_submitted"))
    blocker:close()
    step_until(client, function() return job:status() ~= "running" end)
    local result = assert(job:result())
    local entry = client.journal:get("paid")
    assert.equal("succeed", entry.state)
    assert.equal(result.task_id, entry.task_id)
    assert.equal(1, sim:stats().submits)
  end)

  it("a paid task id the journal never records is followed all the same and comes back in the error", function()
    local blocker = other()
    assert(blocker.db:exec(BLOCK_SUBMITTED))
    local result, err = client:motion(Simulator.params({ key = "unrecorded" }))
    assert.is_nil(result)
    assert.equal("journal", err.kind)
    assert.equal("unrecorded", err.key)
    local task = sim:tasks()[1]
    assert.equal(task.id, err.task_id)
    assert.truthy(err.message:find(task.id, 1, true))
    assert.equal("succeed", err.result.state) -- the task was followed to its end
    local _, serr = client:submit(Simulator.params({ key = "unrecorded-too" }))
    assert.equal("journal", serr.kind)
    assert.is_string(serr.task_id)
    -- still unrecorded at close: one last try, which now succeeds
    assert(blocker.db:exec("DROP TRIGGER block_submitted"))
    blocker:close()
    client:close()
    local reopened = other()
    assert.equal(serr.task_id, reopened:get("unrecorded-too").task_id)
    assert.equal("submitted", reopened:get("unrecorded-too").state)
    reopened:close()
    assert.equal(2, sim:stats().submits)
  end)

  it("forget refuses a key whose request is leaving from an open client", function()
    local live = other()
    assert(live:claim("busy-key", function() return "submit" end, { endpoint = "motion", request = "{}" }))
    assert(live.db:run("UPDATE jobs SET state = 'sending' WHERE key = 'busy-key'"))
    local ok, err = client.journal:forget("busy-key")
    assert.is_nil(ok)
    assert.equal("invalid_argument", err.kind)
    live:close()
    assert.is_nil((client.journal:forget("busy-key"))) -- its client is gone: it may be billed
    assert.is_true(client.journal:forget("busy-key", { force = true }))
  end)

  it("checks keys and the journal option before any traffic", function()
    for _, bad in ipairs({ "", 42, "a\nb", string.rep("k", 201), "~mine" }) do
      local r, err = client:submit(Simulator.params({ key = bad }))
      assert.is_nil(r)
      assert.equal("key", err.field)
    end
    local c, err = require("kling").new({ token = "t", base_url = sim.url, journal = "" })
    assert.is_nil(c)
    assert.equal("journal", err.field)
    c, err = require("kling").new({ token = "t", base_url = sim.url, journal = "/nonexistent/dir/j.db" })
    assert.is_nil(c)
    assert.equal("journal", err.kind)
    assert.equal(0, sim:stats().submits)
  end)

  it("without a journal a key changes nothing", function()
    local c = sim:client()
    assert(c:submit(Simulator.params({ key = "k" })))
    assert(c:submit(Simulator.params({ key = "k" })))
    c:close()
    assert.equal(2, sim:stats().submits)
  end)
end)
