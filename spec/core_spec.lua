-- kling.core on its own: the C engine's contract with the Lua layer.
local core = require "kling.core"
local Simulator = require "helpers.simulator"

describe("kling.core", function()
  local sim
  Simulator.for_each_spec({}, function(ctx) sim = ctx.sim end)

  -- The result of transfer id, and the verbose output of the performs that
  -- waited for it (nil: none).
  local function until_done(m, id)
    local logs = {}
    for _ = 1, 200 do
      local results, log = assert(m:perform(0.05))
      logs[#logs + 1] = log
      for _, r in ipairs(results) do
        if r.id == id then return r, logs[1] and table.concat(logs) end
      end
    end
    error("transfer never finished")
  end

  it("names its metatable and never shows the token", function()
    local m = core.multi()
    m:set_token("tok-123")
    assert.truthy(tostring(m):match("^kling%.multi"))
    assert.equal("kling.multi", getmetatable(m).__name)
    assert.is_nil(tostring(m):find("tok-123", 1, true))
    -- a method called on anything else raises lauxlib's own message
    for _, other in ipairs({ {}, io.stdout, 1 }) do
      local ok, err = pcall(m.count, other)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("kling.multi expected", 1, true), tostring(err))
    end
    m:close()
  end)

  it("close is idempotent and also __gc; a closed handle refuses work", function()
    local m = core.multi()
    local id = m:add({ url = sim.url .. "/_sim/stats" })
    assert.is_number(id)
    m:close()
    m:close()
    assert.has_error(function() m:add({ url = sim.url }) end)
    for _ = 1, 50 do core.multi():add({ url = sim.url .. "/_sim/stats" }) end
    collectgarbage()
    collectgarbage()
  end)

  it("perform sleeps up to the wait when idle, and not longer", function()
    local m = core.multi()
    local t = core.now()
    local results = m:perform(0.1)
    local took = core.now() - t
    assert.same({}, results)
    assert.is_true(took >= 0.09 and took < 0.2, "took " .. took)
    m:close()
  end)

  it("returns status, headers, body and decoded JSON when asked for headers", function()
    local m = core.multi()
    local r = until_done(m, m:add({ url = sim.url .. "/_sim/stats", decode = true, want_headers = true }))
    assert.equal(200, r.status)
    assert.equal("application/json", r.headers["content-type"])
    assert.is_table(r.json)
    assert.is_string(r.body)
    assert.is_nil(r.reason)
    m:close()
  end)

  it("perform with a spent budget hands over one result per call, the rest at the next calls", function()
    local m = core.multi()
    local ids = {}
    for i = 1, 3 do ids[m:add({ url = sim.url .. "/_sim/stats", decode = true })] = i end
    local deadline, seen = core.now() + 5, 0
    while seen < 3 and core.now() < deadline do
      local batch = assert(m:perform(0.05, nil, 0))
      assert.is_true(#batch <= 1)
      for _, r in ipairs(batch) do
        assert.is_table(r.json)
        assert.is_number(ids[r.id])
        seen = seen + 1
      end
    end
    assert.equal(3, seen)
    m:close()
  end)

  it("run waits for its own request and returns its result alone; others that finish wait for perform", function()
    local m = core.multi()
    local other = m:add({ url = sim.url .. "/_sim/stats", decode = true })
    sim:fault({ path = "/kling/tasks", delay = 0.2, times = 1, pass = true })
    local r, log = m:run({ url = sim.url .. "/kling/tasks", body = "{}", decode = true })
    assert.is_table(r)
    assert.is_nil(log)
    assert.is_number(r.id)
    assert.not_equal(other, r.id)
    assert.is_number(r.status)
    assert.is_table(r.json)
    local rest = assert(m:perform(0))
    assert.equal(1, #rest) -- the other request finished during run, and waited
    assert.equal(other, rest[1].id)
    assert.is_table(rest[1].json)
    local none, err, failed = m:run({ url = sim.url, output = "/nonexistent-dir/kling/x" })
    assert.is_nil(none)
    assert.truthy(err:find("cannot create", 1, true), err)
    assert.equal("setup", failed)
    -- a held body would wait for a release that cannot come: refused, not a hang
    none, err, failed = m:run({ url = sim.url .. "/kling/tasks", body = "{}", hold = true })
    assert.is_nil(none)
    assert.truthy(err:find("held body", 1, true))
    assert.equal("setup", failed)
    assert.equal(0, m:count())
    m:close()
  end)

  it("hands headers and text over only when asked, or when the answer is not a decoded 2xx", function()
    local m = core.multi()
    local ok = until_done(m, m:add({ url = sim.url .. "/_sim/stats", decode = true }))
    assert.is_table(ok.json)
    assert.is_nil(ok.headers) -- the common path builds no header table
    assert.is_nil(ok.body) -- nor a second copy of the answer
    local missing = until_done(m, m:add({ url = sim.url .. "/no/such/path", decode = true }))
    assert.equal(404, missing.status)
    assert.is_string(missing.headers["content-type"])
    assert.is_string(missing.body) -- errors quote it
    m:close()
  end)

  it("reports malformed JSON with cjson's position", function()
    local m = core.multi()
    sim:fault({ path = "/kling/tasks", status = 200, body = "malformed" })
    local r = until_done(m, m:add({ url = sim.url .. "/kling/tasks", body = "{}", decode = true }))
    assert.is_nil(r.json)
    assert.truthy(r.json_error:find("character", 1, true))
    m:close()
  end)

  it("refuses deeply nested JSON instead of recursing on it", function()
    local deep = string.rep("[", 10000) .. string.rep("]", 10000)
    local v, err = core.decode(deep)
    assert.is_nil(v)
    assert.truthy(err:find("too many nested", 1, true) or err:find("depth", 1, true))
  end)

  it("stops reading at max_body", function()
    local m = core.multi()
    local r = until_done(m, m:add({ url = sim.url .. "/_sim/stats", max_body = 10 }))
    assert.equal("too_large", r.reason)
    m:close()
  end)

  it("cancel drops a transfer in flight", function()
    local m = core.multi()
    sim:fault({ path = "/kling/tasks", delay = 2 })
    local id = m:add({ url = sim.url .. "/kling/tasks", body = "{}" })
    m:perform(0.05)
    assert.equal(1, m:count())
    assert.is_true(m:cancel(id))
    assert.is_false(m:cancel(id))
    assert.equal(0, m:count())
    m:close()
  end)

  -- The journal's hand-over: the body waits until the owner releases it.
  it("holds a body until released, and a refused one never reaches the server", function()
    local m = core.multi()
    m:set_token(Simulator.TOKEN)
    local function held_submit()
      local id = m:add({ url = sim.url .. "/kling/motion", body = core.encode(Simulator.params({ async = true })),
                         auth = true, headers = { "Content-Type: application/json" }, hold = true, handover = true,
                         decode = true })
      local held
      for _ = 1, 100 do
        assert.same({}, m:perform(0.05))
        held = m:held()
        if #held > 0 then break end
      end
      assert.same({ id }, held)
      assert.is_false(m:handed_over(id)) -- not on the wire: a cancel may drop it
      return id
    end
    local before = sim:stats().tasks_created
    local id = held_submit()
    assert.is_true(m:release(id, false))
    local r = until_done(m, id)
    assert.equal("journal", r.reason)
    assert.is_false(r.sent)
    assert.equal(before, sim:stats().tasks_created)
    id = held_submit()
    assert.is_true(m:release(id, true))
    r = until_done(m, id)
    assert.equal(200, r.status)
    assert.is_string(r.json.task_id)
    assert.equal(before + 1, sim:stats().tasks_created)
    m:close()
  end)

  -- Profiles and pooled transfers (bench/engine.lua): what a request
  -- shares is read once, and a reused easy handle must not carry one
  -- request's options into the next.
  describe("profiles", function()
    local function api_profile(m, extra)
      local p = { headers = { "Content-Type: application/json", "X-Profile: yes" }, auth = true, decode = true,
                  user_agent = "kling-profile-test" }
      for k, v in pairs(extra or {}) do p[k] = v end
      return m:profile(p)
    end
    local function last_request()
      local log = sim:requests()
      return log[#log]
    end

    it("sends a profile's headers and token with each call's own URL and body", function()
      sim:reset()
      local m = core.multi()
      m:set_token(Simulator.TOKEN)
      local p = api_profile(m)
      for i = 1, 3 do
        local r = until_done(m, m:add({ profile = p, url = sim.url .. "/kling/tasks", timeout = 5,
                                        body = core.encode({ action = "retrieve", id = "missing-" .. i }) }))
        assert.equal(200, r.status)
        local seen = last_request()
        assert.equal("Bearer " .. Simulator.TOKEN, seen.headers.authorization)
        assert.equal("yes", seen.headers["x-profile"])
        assert.equal("kling-profile-test", seen.headers["user-agent"])
        assert.truthy(seen.body:find("missing-" .. i, 1, true))
      end
      m:close()
    end)

    it("refuses a token set after a profile exists, and a profile it did not make", function()
      local m = core.multi()
      m:set_token("first")
      api_profile(m)
      assert.has_error(function() m:set_token("second") end, "set the tokens before making profiles")
      assert.has_error(function() m:add({ profile = 2, url = sim.url, body = "{}" }) end)
      m:close()
    end)

    it("a reused handle keeps nothing of an earlier call's verbose, fresh connection or file", function()
      local m = core.multi()
      m:set_token(Simulator.TOKEN)
      local p = api_profile(m)
      local function call(extra)
        local req = { profile = p, url = sim.url .. "/kling/tasks",
                      body = core.encode({ action = "retrieve", id = "x" }) }
        for k, v in pairs(extra or {}) do req[k] = v end
        return until_done(m, m:add(req))
      end
      call()
      local _, log = call({ verbose = true })
      assert.truthy(log and log:find("POST /kling/tasks", 1, true))
      assert.is_nil(log:find(Simulator.TOKEN, 1, true))
      for _ = 1, 3 do
        local r, quiet = call()
        assert.equal(200, r.status)
        assert.is_nil(quiet)
      end
      local connections = sim:stats().connections
      call({ fresh_connect = true })
      call()
      call()
      assert.equal(connections + 1, sim:stats().connections) -- the fresh one only
      local dir = Simulator.tempdir()
      local file = dir .. "/stats.json"
      local saved = until_done(m, m:add({ url = sim.url .. "/_sim/stats", output = file }))
      assert.equal(200, saved.status)
      local r = call()
      assert.is_table(r.json) -- in memory again, not appended to the file
      local f = assert(io.open(file, "rb"))
      assert.equal(saved.bytes, #f:read("*a"))
      f:close()
      Simulator.remove_dir(dir)
      m:close()
    end)
  end)

  it("reports a refused connection as not sent", function()
    local m = core.multi()
    local r = until_done(m, m:add({ url = "http://127.0.0.1:1/", connect_timeout = 1 }))
    assert.equal("connect", r.reason)
    assert.is_false(r.sent)
    m:close()
  end)

  -- A size limit is a size_t in C: a double past its range must not be cast.
  it("refuses a size limit or a timeout it cannot represent", function()
    local m = core.multi()
    for _, v in ipairs({ 2 ^ 64, 1e300, 1 / 0 }) do
      assert.has_error(function() m:add({ url = sim.url .. "/_sim/stats", max_body = v }) end)
    end
    assert.has_error(function() m:add({ url = sim.url .. "/_sim/stats", timeout = 0 / 0 }) end)
    assert.equal(0, m:count())
    m:close()
  end)

  -- No header byte arrives on a refused connection: the header buffer was
  -- never allocated (UBSan flagged the pointer arithmetic on it under make asan).
  it("a refused connection reports an empty header table", function()
    local m = core.multi()
    local r = until_done(m, m:add({ url = "http://127.0.0.1:1/", connect_timeout = 1 }))
    assert.same({}, r.headers)
    assert.equal(0, r.status)
    m:close()
  end)

  it("max_connections out of range is an error, not a raise", function()
    for _, v in ipairs({ 2 ^ 63, 1e300, -1, 0.5 }) do
      local m, err = core.multi(v)
      assert.is_nil(m)
      assert.is_string(err)
    end
  end)

  it("rejects header injection in the token and in headers", function()
    local m = core.multi()
    assert.has_error(function() m:set_token("a\r\nX-Evil: 1") end)
    assert.has_error(function() m:add({ url = sim.url, headers = { "A: b\r\nC: d" } }) end)
    assert.has_error(function() m:add({ url = sim.url, user_agent = "x\r\nX-Injected: yes" }) end)
    m:close()
  end)

  it("drives the simulator's synchronous motion answer (no async, no callback)", function()
    local m = core.multi()
    m:set_token(Simulator.TOKEN)
    local started = core.now()
    local r = until_done(m, m:add({ url = sim.url .. "/kling/motion", body = core.encode(Simulator.params()),
                                    headers = { "Content-Type: application/json" }, auth = true, decode = true }))
    assert.equal(200, r.status)
    assert.equal("succeed", r.json.state)
    assert.is_true(r.json.success)
    assert.is_string(r.json.video_url)
    assert.is_true(core.now() - started >= 0.25, "the answer did not wait for the generation")
    m:close()
  end)

  it("perform wakes for any of several extra descriptors (two journals' writers)", function()
    local dir = Simulator.tempdir()
    local a, b = assert(core.journal(dir .. "/a.db")), assert(core.journal(dir .. "/b.db"))
    assert(a:start())
    assert(b:start())
    local m = core.multi()
    -- nothing to report: the whole wait
    local t = core.now()
    m:perform(0.2, { a:fd(), b:fd() })
    assert.is_true(core.now() - t >= 0.19)
    -- the second journal's writer finishes a write: the wait ends at once
    b:stage("CREATE TABLE t (x)")
    b:publish()
    t = core.now()
    m:perform(5, { a:fd(), b:fd() })
    assert.is_true(core.now() - t < 1, "perform did not wake for the second descriptor")
    assert.equal(2, #b:completed())
    m:close()
    a:close()
    b:close()
    Simulator.remove_dir(dir)
  end)

  -- Linux: /proc/self/task/<tid>/stat, field 41 is the scheduling policy
  -- (proc(5)); SCHED_BATCH is 3 (sched(7)).
  local function thread_policies()
    local self_stat = assert(io.open("/proc/self/stat")):read("*a")
    local pid = self_stat:match("^(%d+)")
    local listing = assert(io.popen("ls /proc/" .. pid .. "/task"))
    local policies = {}
    for tid in listing:lines() do
      local f = io.open(("/proc/%s/task/%s/stat"):format(pid, tid))
      local stat = f and f:read("*a")
      if f then f:close() end
      -- fields after the command name, which is in parentheses and may hold spaces
      local rest = stat and stat:match("^%d+ %b() (.*)$")
      if rest then
        local fields = {}
        for field in rest:gmatch("%S+") do fields[#fields + 1] = field end
        policies[tid] = tonumber(fields[41 - 2])
      end
    end
    listing:close()
    return policies, pid
  end

  it("runs its own threads (libcurl's, a journal's writer) as SCHED_BATCH: waking one never preempts", function()
    if not io.open("/proc/self/task") then return pending("Linux only: reads /proc") end
    local before = thread_policies()
    local dir = Simulator.tempdir()
    local journal = assert(core.journal(dir .. "/j.db"))
    assert(journal:start())
    local m = core.multi()
    local id = m:add({ url = sim.url .. "/_sim/stats" })
    until_done(m, id)
    local after, pid = thread_policies()
    local ours = 0
    for tid, policy in pairs(after) do
      if before[tid] == nil and tid ~= pid then
        ours = ours + 1
        assert.equal(3, policy, "thread " .. tid .. " has scheduling policy " .. tostring(policy))
      end
    end
    assert.equal(2, ours, "expected libcurl's thread and the journal's writer")
    m:close()
    journal:close()
    Simulator.remove_dir(dir)
  end)

  it("has its own random numbers in [0, 1), leaving math.random alone", function()
    math.randomseed(42)
    local expected = math.random()
    math.randomseed(42)
    local seen = {}
    for _ = 1, 1000 do
      local x = core.random()
      assert.is_true(x >= 0 and x < 1)
      seen[x] = true
    end
    assert.equal(expected, math.random())
    local distinct = 0
    for _ in pairs(seen) do distinct = distinct + 1 end
    assert.equal(1000, distinct)
  end)

  it("seeds differently in each process", function()
    local lua = os.getenv("KLING_LUA") or "lua5.4"
    local function first()
      local p = io.popen(lua .. [[ -e 'io.write(string.format("%.17g", require("kling.core").random()))']])
      local v = p:read("*a")
      p:close()
      return v
    end
    assert.is_not_equal(first(), first())
  end)

  it("strips JSON nulls in place, in nested tables too, and stops at a cycle", function()
    local t = core.decode('{"a":null,"b":{"c":null,"d":"x"},"e":[{"f":null,"g":1}],"h":false}')
    assert.equal(t, core.strip_nulls(t))
    assert.same({ b = { d = "x" }, e = { { g = 1 } }, h = false }, t)
    local cycle = { x = core.null }
    cycle.self = cycle
    core.strip_nulls(cycle)
    assert.is_nil(cycle.x)
    assert.equal(cycle, cycle.self)
  end)

  it("uses a private cjson: the caller's settings are untouched", function()
    local cjson = require "cjson"
    assert.is_nil(core.decode("NaN"))
    assert.is_true(cjson.decode("NaN") ~= cjson.decode("NaN"))
  end)
end)
