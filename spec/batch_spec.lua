-- client:batch: many keyed jobs, bounded concurrency, files on disk, and a
-- second run after a crash that costs nothing for what is done.
local core = require "kling.core"
local Simulator = require "helpers.simulator"

local function items(n, extra)
  local list = {}
  for i = 1, n do
    list[i] = Simulator.params({ key = ("clip-%03d"):format(i),
                                 image_url = ("https://cdn.example.test/person-%d.jpg"):format(i) })
    for k, v in pairs(extra or {}) do list[i][k] = v end
  end
  return list
end

describe("batch", function()
  local sim, path, dir, client
  Simulator.for_each_spec({ generation_time = 0.2 }, function(ctx) sim = ctx.sim end)
  before_each(function()
    path = Simulator.journal_path()
    dir = path .. ".out"
    client = sim:client({ journal = path })
  end)
  after_each(function()
    client:close()
    Simulator.remove_journal(path)
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("checks every item before any traffic, naming items[i].field", function()
    local function rejects(field, list, opts)
      local r, err = client:batch(list, opts)
      assert.is_nil(r)
      assert.equal("invalid_argument", err.kind)
      assert.equal(field, err.field)
    end
    local list = items(3)
    list[2].key = nil
    rejects("items[2].key", list)
    list = items(3)
    list[3].key = list[1].key
    rejects("items[3].key", list)
    list = items(2)
    list[1].mode = "ultra"
    rejects("items[1].mode", list)
    list = items(2)
    list[2].key = "a/b"
    rejects("items[2].key", list, { download_dir = dir })
    rejects("concurrency", items(1), { concurrency = 0 })
    rejects("on_progress", items(1), { on_progress = 1 })
    rejects("items", { items(1)[1], x = 1 })
    assert.equal(0, sim:stats().submits)
  end)

  it("checks download_dir can be written, and every item's local files, before any upload or submit", function()
    local is_root = io.popen("id -u"):read("*l") == "0"
    if not is_root then -- root writes anywhere
      os.execute("mkdir -p '" .. dir .. "' && chmod 0500 '" .. dir .. "'")
      local r, err = client:batch(items(3), { download_dir = dir })
      os.execute("chmod 0700 '" .. dir .. "' && rmdir '" .. dir .. "'")
      assert.is_nil(r)
      assert.equal("download_dir", err.field)
    end
    -- a file where the directory should be; a key whose <key>.mp4 is a directory
    os.execute("touch '" .. dir .. "'")
    local r, err = client:batch(items(3), { download_dir = dir })
    os.remove(dir)
    assert.is_nil(r)
    assert.equal("download_dir", err.field)
    os.execute("mkdir -p '" .. dir .. "/clip-002.mp4'")
    r, err = client:batch(items(3), { download_dir = dir })
    assert.is_nil(r)
    assert.equal("items[2].key", err.field)
    -- a refused file in the last item stops the batch before the first is sent
    local samples = require "kling.simulator.media"
    local small = samples.write(path .. ".small.png", samples.png(100, 100))
    local list = items(3)
    list[3].image_url, list[3].image_file = nil, small
    r, err = client:batch(list)
    os.remove(small)
    assert.is_nil(r)
    assert.equal("items[3].image_file", err.field)
    assert.equal(0, sim:stats().submits)
  end)

  it("runs every item at most `concurrency` at a time and saves each video as <key>.mp4", function()
    local peak, last = 0, nil
    local results = assert(client:batch(items(8), {
      concurrency = 3, download_dir = dir,
      on_progress = function(c)
        peak = math.max(peak, c.submitted)
        assert.equal(c.total, c.queued + c.submitted + c.succeed + c.failed + c.uncertain)
        last = c
      end,
    }))
    assert.equal(8, #results)
    for i, r in ipairs(results) do
      assert.equal(("clip-%03d"):format(i), r.key)
      assert.is_nil(r.error)
      assert.equal("succeed", r.result.state)
      assert.equal(dir .. "/" .. r.key .. ".mp4", r.path)
      local f = assert(io.open(r.path, "rb"))
      assert.equal(1040, #f:read("*a"))
      f:close()
      assert.equal(r.path, client.journal:get(r.key).path)
    end
    assert.equal(8, last.succeed)
    assert.is_true(peak >= 2 and peak <= 3, "peak " .. peak)
    assert.equal(8, sim:stats().submits)
  end)

  it("run again, a finished batch costs no request and keeps its files", function()
    assert(client:batch(items(5), { download_dir = dir }))
    local before = sim:stats()
    local fresh = sim:client({ journal = path }) -- as after a restart
    local results = assert(fresh:batch(items(5), { download_dir = dir }))
    fresh:close()
    local after = sim:stats()
    for _, r in ipairs(results) do assert.equal("succeed", r.result.state) end
    assert.equal(before.submits, after.submits)
    assert.equal(before.requests["/kling/tasks"], after.requests["/kling/tasks"])
    assert.equal(before.downloads, after.downloads)
  end)

  it("resubmits a failed key only with retry_failed", function()
    sim:next_task({ outcome = "failed_state" })
    local list = items(1)
    local r = assert(client:batch(list, { concurrency = 1 }))
    assert.equal("task_failed", r[1].error.kind)
    r = assert(client:batch(list))
    assert.equal("task_failed", r[1].error.kind)
    assert.equal(1, sim:stats().submits)
    r = assert(client:batch(list, { retry_failed = true }))
    assert.equal("succeed", r[1].result.state)
    assert.equal(2, sim:stats().submits)
  end)

  it("inside a job it yields, so the caller's frame is never stalled", function()
    local job = client:spawn(function() return client:batch(items(4), { concurrency = 2 }) end)
    local slowest, frames = 0, 0
    while job:status() == "running" do
      local t = core.now()
      client:step(0)
      slowest = math.max(slowest, core.now() - t)
      frames = frames + 1
      client:step(0.01)
    end
    local results = assert(job:result())
    assert.equal(4, #results)
    assert.is_true(frames > 10, "the batch ran in " .. frames .. " frames")
    -- journal commits are fsynced inside steps; a loaded disk can slow one
    assert.is_true(slowest < 0.25, "step(0) took " .. slowest)
  end)

  it("works without a journal too (no memory across runs)", function()
    local c = sim:client()
    local results = assert(c:batch(items(3), { concurrency = 2 }))
    c:close()
    for _, r in ipairs(results) do assert.equal("succeed", r.result.state) end
  end)
end)

describe("two processes running one batch on one journal", function()
  local sim, path
  Simulator.for_each_spec({ generation_time = 0.3 }, function(ctx) sim = ctx.sim end)
  after_each(function() Simulator.remove_journal(path) end)

  it("submit each key exactly once, and both save every video into one download_dir", function()
    path = Simulator.journal_path()
    local out = path .. ".videos"
    sim:config({ submit_delay = 0.2 })
    local lua = os.getenv("KLING_LUA") or "lua5.4"
    local cmd = ("%s scripts/batch-worker.lua --journal %s --base-url %s --keys 30 --concurrency 4 "
      .. "--download-dir %s 2>&1"):format(lua, path, sim.url, out)
    local a, b = assert(io.popen(cmd)), assert(io.popen(cmd))
    local out_a, out_b = a:read("*a"), b:read("*a")
    a:close()
    b:close()
    -- two writers of one path: each writes a file of its own and renames it; a
    -- key the other saved is a success
    assert.truthy(out_a:find("30 keys: 30 succeed", 1, true), out_a)
    assert.truthy(out_b:find("30 keys: 30 succeed", 1, true), out_b)
    local listing = io.popen("ls -a '" .. out .. "'")
    local videos, parts = 0, 0
    for name in listing:lines() do
      if name:find("%.mp4$") then videos = videos + 1 end
      if name:find("%.part$") then parts = parts + 1 end
    end
    listing:close()
    os.execute("rm -rf '" .. out .. "'")
    assert.equal(30, videos)
    assert.equal(0, parts)
    local stats = sim:stats()
    assert.equal(30, stats.submits)
    local n = 0
    for _, count in pairs(stats.submits_by_image) do
      assert.equal(1, count)
      n = n + 1
    end
    assert.equal(30, n)
  end)
end)
