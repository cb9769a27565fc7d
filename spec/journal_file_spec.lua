-- The journal as a file: who owns its entries whatever path reached it, who
-- may read it, and what it refuses to touch.
local core = require "kling.core"
local Store = require "kling.journal.store" -- another "process": a journal handle of its own
local Simulator = require "helpers.simulator"

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("*a")
  p:close()
  return (out:gsub("%s+$", ""))
end

local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function mode_of(path)
  return sh("stat -c %a " .. quote(path))
end

describe("the journal's owners", function()
  local sim, dir, path
  Simulator.for_each_spec({ generation_time = 0.2 }, function(ctx) sim = ctx.sim end)
  before_each(function()
    dir = Simulator.tempdir()
    path = dir .. "/jobs.db"
  end)
  after_each(function() Simulator.remove_dir(dir) end)

  -- A live handle (another "process") holds key in state; a client that
  -- reached the journal through `through` must wait for it (a short
  -- wait_timeout), never submit it and never call it uncertain.
  local function waits_for_live_owner(through, state)
    local live = assert(Store.open(path))
    assert(live:claim("K", function() return "submit" end, { endpoint = "motion", request = "{}" }))
    if state == "sending" then assert(live.db:run("UPDATE jobs SET state = 'sending' WHERE key = 'K'")) end
    local c = sim:client({ journal = through, wait_timeout = 0.3 })
    local _, err = c:submit(Simulator.params({ key = "K" }))
    c:close()
    assert.equal("timeout", err.kind, tostring(err))
    assert.equal(state, live:get("K").state)
    assert.equal(0, sim:stats().submits)
    live:close()
  end

  for _, state in ipairs({ "queued", "sending" }) do
    it(("a client that opened it through a symlink waits for a live owner's %s key"):format(state), function()
      local link = dir .. "/link.db"
      sh("ln -s " .. quote(path) .. " " .. quote(link))
      waits_for_live_owner(link, state)
    end)

    it(("a journal with a second name (a hard link) is refused before any traffic (%s key)"):format(state),
      function()
      local live = assert(Store.open(path))
      assert(live:claim("K", function() return "submit" end, { endpoint = "motion", request = "{}" }))
      if state == "sending" then assert(live.db:run("UPDATE jobs SET state = 'sending' WHERE key = 'K'")) end
      local sub = dir .. "/elsewhere"
      assert(core.mkdir(sub))
      sh("ln " .. quote(path) .. " " .. quote(sub .. "/hard.db"))
      for _, through in ipairs({ sub .. "/hard.db", path }) do
        local c, err = require("kling").new({ token = "t", base_url = sim.url, journal = through })
        assert.is_nil(c)
        assert.equal("journal", err.kind)
        assert.truthy(err.message:find("hard link", 1, true), err.message)
      end
      assert.equal(state, live:get("K").state)
      assert.equal(0, sim:stats().submits)
      live:close()
    end)

    it(("a live owner whose -owners directory was deleted still holds its %s key"):format(state), function()
      local live = assert(Store.open(path))
      assert(live:claim("K", function() return "submit" end, { endpoint = "motion", request = "{}" }))
      if state == "sending" then assert(live.db:run("UPDATE jobs SET state = 'sending' WHERE key = 'K'")) end
      Simulator.remove_dir(path .. "-owners")
      local c = sim:client({ journal = path, wait_timeout = 0.3 })
      local _, err = c:submit(Simulator.params({ key = "K" }))
      c:close()
      assert.equal("timeout", err.kind, tostring(err))
      assert.equal(0, sim:stats().submits)
      live:close()
    end)
  end

  it("an owner that opened it by a relative path and then changed directory still tells owners apart", function()
    if not jit then
      pending("needs LuaJIT's FFI to change directory in-process")
      return
    end
    local ffi = require "ffi"
    pcall(ffi.cdef, "int chdir(const char *path); char *getcwd(char *buf, size_t size);")
    local buf = ffi.new("char[4096]")
    local cwd = ffi.string(ffi.C.getcwd(buf, 4096))
    assert.equal(0, ffi.C.chdir(dir))
    local ok, err = pcall(function()
      local c = sim:client({ journal = "jobs.db", wait_timeout = 0.3 }) -- relative
      assert.equal(0, ffi.C.chdir("/"))
      local live = assert(Store.open(path))
      assert(live:claim("K", function() return "submit" end, { endpoint = "motion", request = "{}" }))
      assert(live.db:run("UPDATE jobs SET state = 'sending' WHERE key = 'K'"))
      local _, serr = c:submit(Simulator.params({ key = "K" }))
      c:close()
      live:close()
      assert.equal("timeout", serr.kind, tostring(serr))
    end)
    ffi.C.chdir(cwd)
    assert(ok, err)
  end)

  it("a dead owner is found dead through any path, and its record goes", function()
    local dead = assert(Store.open(path))
    assert(dead:claim("K", function() return "submit" end, { endpoint = "motion", request = "{}" }))
    dead.db:close() -- as a process killed: no clean close, the flock drops
    local link = dir .. "/link.db"
    sh("ln -s " .. quote(path) .. " " .. quote(link))
    local c = sim:client({ journal = link })
    assert(c:submit(Simulator.params({ key = "K" })))
    assert.equal(0, #c.journal.store.db:query("SELECT * FROM owners WHERE id <> ?", c.journal.store:owner()))
    c:close()
    assert.equal(1, sim:stats().submits)
  end)

  it("no child process inherits an owner's lock (a child outliving its parent keeps no key alive)", function()
    local lua = os.getenv("KLING_LUA") or "lua5.4"
    local pidfile = dir .. "/sleeper.pid"
    local child = ([[
      local Store = require "kling.journal.store" -- another "process": a journal handle of its own
      local j = assert(Store.open(%q))
      assert(j:claim("K", function() return "submit" end, { endpoint = "motion", request = "{}" }))
      os.execute("sleep 30 </dev/null >/dev/null 2>&1 & echo $! > %s")
      os.exit(0, false) -- dies without closing the journal
    ]]):format(path, pidfile)
    sh(lua .. " -e " .. quote(child))
    local sleeper = sh("cat " .. quote(pidfile))
    assert.truthy(sleeper:match("^%d+$"), sleeper)
    local c = sim:client({ journal = path, wait_timeout = 0.5 })
    local id, err = c:submit(Simulator.params({ key = "K" }))
    c:close()
    sh("kill " .. sleeper)
    assert(id, tostring(err))
    assert.equal(1, sim:stats().submits)
  end)
end)

describe("the journal file", function()
  local sim, dir
  Simulator.for_each_spec({ generation_time = 0.1 }, function(ctx) sim = ctx.sim end)
  before_each(function()
    dir = Simulator.tempdir()
  end)
  after_each(function() Simulator.remove_dir(dir) end)

  it("is created readable by its user alone, with its -wal, -shm and owners", function()
    assert.equal("022", sh("umask"):sub(-3))
    local path = dir .. "/jobs.db"
    local j = assert(Store.open(path))
    j:claim("K", function() return "submit" end, { endpoint = "motion", request = "{}" })
    assert.equal("600", mode_of(path))
    assert.equal("600", mode_of(path .. "-wal"))
    assert.equal("600", mode_of(path .. "-shm"))
    assert.equal("700", mode_of(path .. "-owners"))
    j:close()
  end)

  it("a SQLite database of another application is refused and left untouched", function()
    local path = dir .. "/app.db"
    local db = assert(core.journal(path))
    assert(db:exec("PRAGMA user_version = 7; CREATE TABLE users (name TEXT); INSERT INTO users VALUES ('ann');"))
    db:close()
    local before = sh("md5sum < " .. quote(path))
    local j, err = Store.open(path)
    assert.is_nil(j)
    assert.equal("journal", err.kind)
    assert.truthy(err.message:find("another application", 1, true), err.message)
    assert.truthy(err.message:find("users", 1, true), err.message)
    assert.equal(before, sh("md5sum < " .. quote(path)))
    assert.equal("none", sh("test -e " .. quote(path) .. "-wal || test -e " .. quote(path) .. "-owners || echo none"))
    -- a file that is not SQLite at all
    local text = dir .. "/notes.txt"
    local f = assert(io.open(text, "w"))
    f:write(("some notes of the user's\n"):rep(200))
    f:close()
    before = sh("md5sum < " .. quote(text))
    j, err = Store.open(text)
    assert.is_nil(j)
    assert.equal("journal", err.kind)
    assert.equal(before, sh("md5sum < " .. quote(text)))
  end)

  it("a journal written by kling 0.1.0 (schema 2; spec/fixtures) opens, migrates and keeps every entry and state",
    function()
    local path = dir .. "/v2.db"
    sh(("cp spec/fixtures/journal-v2.db %s"):format(quote(path)))
    local j = assert(Store.open(path))
    local states = {}
    for _, e in ipairs(assert(j:list({}))) do states[e.key] = e end
    for _, state in ipairs({ "succeed", "failed", "submitted", "uncertain", "queued", "sending" }) do
      local e = states["v2-" .. state]
      assert.is_table(e, state)
      assert.equal(state, e.state)
      assert.equal("motion", e.endpoint) -- what every entry of that release was
    end
    assert.is_string(states["v2-succeed"].result.video_url)
    assert.equal("bad_image", states["v2-failed"].error.code)
    assert.equal(4, j.db:query("PRAGMA user_version")[1].user_version)
    j:close()
    -- and a client resumes from it: the submitted task is followed, nothing is sent again
    local c = sim:client({ journal = path })
    local _, err = c:motion(Simulator.params({ key = "v2-uncertain",
                                               image_url = "https://cdn.example.test/v2-uncertain.jpg" }))
    assert.equal("uncertain", err.kind)
    local r
    r, err = c:motion(Simulator.params({ key = "v2-succeed", image_url = "https://cdn.example.test/v2-succeed.jpg" }))
    assert(r, tostring(err))
    c:close()
    assert.equal(0, sim:stats().submits)
  end)

  it("a journal written before the owners table opens, keeps its entries, and takes its owners' old lock files",
    function()
    local path = dir .. "/old.db"
    local db = assert(core.journal(path))
    -- the schema as kling wrote it before: version 2, no owners table, no application_id
    assert(db:exec([[
      CREATE TABLE jobs (key TEXT PRIMARY KEY, state TEXT NOT NULL, task_id TEXT, owner TEXT, request TEXT,
        result TEXT, error TEXT, path TEXT, callback_token TEXT, uploads TEXT,
        delivered INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL, updated_at REAL NOT NULL);
      INSERT INTO jobs (key, state, task_id, created_at, updated_at) VALUES ('done', 'succeed', 't1', 1, 1);
      INSERT INTO jobs (key, state, owner, created_at, updated_at)
        VALUES ('left', 'sending', '0123456789abcdef0123456789abcdef', 2, 2);
      PRAGMA user_version = 2;]]))
    db:close()
    local j = assert(Store.open(path))
    assert.equal("succeed", j:get("done").state)
    -- its owner has no record and no lock file: dead, so "sending" is uncertain
    assert.is_false(j:owner_alive("0123456789abcdef0123456789abcdef"))
    assert.equal(2, #j:list())
    j:close()
  end)
end)
