-- Bad input gets a clear error naming the field, before any traffic.
local kling = require "kling"
local Simulator = require "helpers.simulator"

describe("validation", function()
  local sim, client
  Simulator.for_each_spec({}, function(ctx) sim = ctx.sim end)
  before_each(function() client = sim:client() end)
  after_each(function()
    client:close()
    assert.same({}, sim:stats().requests, "validation let traffic through")
  end)

  local function rejects(field, params)
    for _, call in ipairs({ "motion", "submit" }) do
      local r, err = client[call](client, params)
      assert.is_nil(r)
      assert.equal("invalid_argument", err.kind)
      assert.equal(field, err.field)
      assert.truthy(tostring(err):find(field, 1, true))
    end
  end

  for _, field in ipairs({ "image_url", "video_url", "character_orientation", "mode" }) do
    it("requires " .. field, function()
      local p = Simulator.params()
      p[field] = nil
      rejects(field, p)
    end)
  end

  it("checks enum values", function()
    rejects("character_orientation", Simulator.params({ character_orientation = "left" }))
    rejects("mode", Simulator.params({ mode = "ultra" }))
    rejects("keep_original_sound", Simulator.params({ keep_original_sound = "maybe" }))
    rejects("model_name", Simulator.params({ model_name = "kling-v1" }))
  end)

  it("accepts only http and https URLs", function()
    rejects("image_url", Simulator.params({ image_url = "file:///etc/passwd" }))
    rejects("video_url", Simulator.params({ video_url = "https://x/a b.mp4" }))
    rejects("image_url", Simulator.params({ image_url = 42 }))
    rejects("callback_url", Simulator.params({ callback_url = "ftp://x/y" }))
    rejects("video_url", Simulator.params({ video_url = "https://x/a\r\nb.mp4" }))
  end)

  it("checks types of the optional fields and hooks", function()
    rejects("prompt", Simulator.params({ prompt = {} }))
    rejects("watermark_info", Simulator.params({ watermark_info = true }))
    rejects("watermark_info.color", Simulator.params({ watermark_info = { enabled = true, color = "red" } }))
    rejects("on_submit", Simulator.params({ on_submit = "print" }))
    rejects("on_status", Simulator.params({ on_status = 1 }))
  end)

  it("rejects unknown fields and async", function()
    rejects("image", Simulator.params({ image = "https://x/y.jpg" }))
    rejects("async", Simulator.params({ async = false }))
  end)

  -- Params are read once, raw, into a plain table: what is checked is what is sent.
  it("a field supplied by __index or __pairs is neither trusted nor sent", function()
    local p = Simulator.params()
    p.image_url = nil
    rejects("image_url", setmetatable(p, { __index = { image_url = Simulator.PARAMS.image_url } }))
    local q = Simulator.params({ mode = "ultra" })
    local shown = Simulator.params()
    rejects("mode", setmetatable(q, { __pairs = function() return next, shown, nil end }))
    local w = Simulator.params({ watermark_info = setmetatable({}, { __index = { enabled = true } }) })
    rejects("watermark_info", w)
  end)

  it("tasks() refuses holes and non-array keys, and sends only what it checked", function()
    local r, err = client:tasks({ "ok", nil, "bad\n" })
    assert.is_nil(r)
    assert.equal("ids[2]", err.field)
    r, err = client:tasks({ "a", extra = "b" })
    assert.is_nil(r)
    assert.equal("ids", err.field)
    assert.truthy(err.message:find("extra", 1, true))
    r, err = client:tasks({ [1] = "a", [3] = "c" })
    assert.is_nil(r)
    assert.equal("ids[2]", err.field)
    r = client:tasks(setmetatable({}, {
      __index = function(_, i) if i == 1 or i == 2 then return "x" end end, __len = function() return 2 end }))
    assert.same({}, r)
  end)

  it("checks task ids", function()
    for _, bad in ipairs({ "", 42, "a b", "a\nb" }) do
      local r, err = client:task(bad)
      assert.is_nil(r)
      assert.equal("task_id", err.field)
      r, err = client:wait(bad)
      assert.is_nil(r)
      assert.equal("task_id", err.field)
    end
    local r, err = client:tasks({ "ok", 7 })
    assert.is_nil(r)
    assert.equal("ids[2]", err.field)
  end)

  it("checks wait options", function()
    assert.equal("timeout", select(2, client:wait("x", { timeout = -1 })).field)
    assert.equal("on_status", select(2, client:wait("x", { on_status = true })).field)
  end)

  it("raises on misuse, like Lua's own argument errors", function()
    assert.has_error(function() client:motion("params") end)
    assert.has_error(function() client:submit(nil) end)
    assert.has_error(function() client:tasks("id") end)
    assert.has_error(function() client:wait("x", 5) end)
    assert.has_error(function() client:spawn(42) end)
    assert.has_error(function() client:step(-1) end)
    assert.has_error(function() kling.new("token") end)
  end)
end)

describe("client options", function()
  local function fails(field, options)
    options.token = options.token or "t"
    options.base_url = options.base_url or "http://127.0.0.1:1"
    local c, err = kling.new(options)
    assert.is_nil(c)
    assert.equal("invalid_argument", err.kind)
    assert.equal(field, err.field)
  end

  it("takes numeric options from KLING_<OPTION>; the code's own win; a bad value names the variable", function()
    local lua = os.getenv("KLING_LUA") or "lua5.4"
    local function run(vars, code)
      local p = io.popen(("%s %s -e %q 2>&1"):format(vars, lua, code))
      local out = p:read("*a")
      p:close()
      return (out:gsub("%s+$", ""))
    end
    local show = 'local c, e = require("kling").new(%s); print(c and c.settings.poll_interval or tostring(e))'
    assert.equal("0.25", run("KLING_POLL_INTERVAL=0.25", show:format('{ token = "t" }')))
    assert.equal("2", run("KLING_POLL_INTERVAL=0.25", show:format('{ token = "t", poll_interval = 2 }')))
    local bad = run("KLING_POLL_INTERVAL=soon", show:format('{ token = "t" }'))
    assert.truthy(bad:find("KLING_POLL_INTERVAL must be a number", 1, true), bad)
    bad = run("KLING_MAX_RETRIES=1000", show:format('{ token = "t" }'))
    assert.truthy(bad:find("KLING_MAX_RETRIES must be a whole number", 1, true), bad)
  end)

  it("a client that could not be made leaves nothing for the collector to trip on", function()
    local c, err = kling.new({ token = "t", base_url = "http://127.0.0.1:1", journal = "/nonexistent/dir/j.db" })
    assert.is_nil(c)
    assert.equal("journal", err.kind)
    assert.has_no.errors(function()
      collectgarbage()
      collectgarbage()
    end)
  end)

  it("names the bad option", function()
    fails("timeout", { timeout = 0 })
    fails("timeout", { timeout = "30" })
    fails("poll_interval", { poll_interval = -1 })
    fails("max_retries", { max_retries = 1.5 })
    fails("max_poll_interval", { poll_interval = 5, max_poll_interval = 1 })
    fails("verbose", { verbose = "yes" })
    fails("base_url", { base_url = "api.acedata.cloud" })
    fails("token", { token = "has space" })
    fails("wait_timout", { wait_timout = 1 })
  end)

  -- A control character in an option would reach a request line or a header.
  it("refuses control characters in every string option", function()
    for _, name in ipairs({ "user_agent", "proxy", "cainfo", "capath", "base_url" }) do
      for _, bad in ipairs({ "x\r\nX-Injected: yes", "a\0b", "tab\there" }) do
        local value = (name == "base_url" and "http://127.0.0.1:1/" or "") .. bad
        fails(name, { [name] = value })
      end
    end
  end)

  it("bounds every numeric option, returning an error instead of raising", function()
    for _, v in ipairs({ 2 ^ 63, 1e300, 1 / 0 }) do
      fails("max_connections", { max_connections = v })
      fails("max_retries", { max_retries = v })
      fails("max_response_bytes", { max_response_bytes = v })
      fails("max_download_bytes", { max_download_bytes = v })
      fails("timeout", { timeout = v })
      fails("connect_timeout", { connect_timeout = v })
      fails("poll_interval", { poll_interval = v })
      fails("wait_timeout", { wait_timeout = v })
      fails("download_timeout", { download_timeout = v })
      fails("retry_delay", { retry_delay = v })
      fails("poll_batch_window", { poll_batch_window = v })
    end
    fails("max_connections", { max_connections = 0 })
    fails("max_response_bytes", { max_response_bytes = 0 })
    local c = assert(kling.new({ token = "t", base_url = "http://127.0.0.1:1", max_connections = 1000,
                                 max_download_bytes = 2 ^ 40, max_retries = 10 }))
    c:close()
  end)

  it("accepts fractional seconds", function()
    local c = assert(kling.new({ token = "t", base_url = "http://127.0.0.1:1", poll_interval = 0.25,
                                 max_poll_interval = 0.5, wait_timeout = 1.5, timeout = 0.5 }))
    assert.equal(0.25, c.settings.poll_interval)
    c:close()
  end)
end)
