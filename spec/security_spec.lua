-- The token stays in the Authorization header; TLS is verified by default.
local kling = require "kling"
local http = require "kling.simulator.http"
local Simulator = require "helpers.simulator"
local TlsProxy = require "helpers.tls_proxy"

local SECRET = "secret-token-5f2c9a"

local function find_secret(value, seen)
  seen = seen or {}
  if type(value) == "string" then return value:find(SECRET, 1, true) ~= nil end
  if type(value) ~= "table" or seen[value] then return false end
  seen[value] = true
  for k, v in pairs(value) do
    if find_secret(k, seen) or find_secret(v, seen) then return true end
  end
  local mt = getmetatable(value)
  return mt ~= nil and type(mt) == "table" and find_secret(mt, seen)
end

describe("the token", function()
  local sim
  Simulator.for_each_spec({ generation_time = 0.1 }, function(ctx) sim = ctx.sim end)

  it("never shows in tostring, the client's fields, errors or verbose output", function()
    local log = {}
    local c = assert(kling.new({ token = SECRET, base_url = sim.url, verbose = function(t) log[#log + 1] = t end,
                                 retry_delay = 0.01 }))
    assert.is_false(tostring(c):find(SECRET, 1, true) ~= nil)
    assert.is_false(find_secret(c))
    assert.is_false(tostring(c.engine.scheduler.multi):find(SECRET, 1, true) ~= nil)
    local _, err = c:submit(Simulator.params())
    assert.equal("auth", err.kind)
    assert.is_false(find_secret(err))
    assert.is_false(tostring(err):find(SECRET, 1, true) ~= nil)
    local text = table.concat(log)
    assert.truthy(text:find("Authorization: [redacted]", 1, true))
    assert.is_nil(text:find(SECRET, 1, true))
    c:close()
  end)

  it("is blanked out of server text that echoes it", function()
    local c = assert(kling.new({ token = SECRET, base_url = sim.url, max_retries = 0 }))
    sim:fault({ path = "/kling/tasks", status = 500,
                json = { error = { code = "echo", message = "bad header Bearer " .. SECRET } } })
    local _, err = c:task("x")
    assert.equal("api", err.kind)
    assert.truthy(err.message:find("[redacted]", 1, true))
    assert.is_false(find_secret(err))
    c:close()
  end)

  it("is sent only in the Authorization header", function()
    local c = assert(kling.new({ token = SECRET, base_url = sim.url }))
    sim:config({ token = SECRET })
    assert(c:submit(Simulator.params()))
    local r = sim:requests()[1]
    assert.equal("Bearer " .. SECRET, r.headers.authorization)
    assert.is_nil(r.body:find(SECRET, 1, true))
    for name, value in pairs(r.headers) do
      if name ~= "authorization" then assert.is_nil(value:find(SECRET, 1, true)) end
    end
    c:close()
  end)

  -- A gateway that echoes the Authorization header back puts the token in
  -- whatever field it fills; every such string is redacted before it is cut.
  it("is redacted from every error field a server can fill", function()
    sim:config({ token = SECRET })
    local c = assert(kling.new({ token = SECRET, base_url = sim.url, max_retries = 0, retry_delay = 0.01,
                                 poll_interval = 0.05, max_poll_interval = 0.1 }))
    local function clean(err)
      assert.is_table(err)
      assert.is_false(find_secret(err), "the token is in a field of the error")
      -- not even a prefix survives a truncation
      assert.is_nil(tostring(err):find(SECRET:sub(1, 8), 1, true), tostring(err))
    end
    sim:fault({ path = "/kling/tasks", status = 500, json = {
      error = { code = SECRET, message = "echo: Bearer " .. SECRET }, trace_id = "t-" .. SECRET, task_id = SECRET } })
    clean(select(2, c:task("x")))
    sim:fault({ path = "/kling/tasks", status = 502, text = "<html>gateway</html>",
                headers = { ["Content-Type"] = "text/html; echo=" .. SECRET } })
    clean(select(2, c:task("x")))
    -- the token starts at byte 51 of a page cut to 60 bytes in the message
    sim:fault({ path = "/kling/tasks", status = 502, text = string.rep("x", 50) .. SECRET .. " and more" })
    clean(select(2, c:task("x")))
    sim:fault({ path = "/kling/tasks", status = 200, text = string.rep("y", 50) .. SECRET .. " not json",
                headers = { ["Content-Type"] = "application/json" } })
    clean(select(2, c:task("x")))
    -- a failed task whose error echoes it
    sim:next_task({ outcome = "failed_state", error_code = SECRET, error_message = "denied: Bearer " .. SECRET })
    local r, err = c:motion(Simulator.params())
    assert.is_nil(r)
    assert.equal("task_failed", err.kind)
    clean(err)
    local t = assert(c:task(err.task_id))
    clean(t.error)
    c:close()
  end)
end)

describe("the token over HTTP/2 (nginx with a private CA)", function()
  local sim, proxy
  setup(function()
    sim = Simulator.start({ generation_time = 0.1 })
    proxy = TlsProxy.start(sim.url)
  end)
  teardown(function()
    proxy:stop()
    sim:stop()
  end)
  before_each(function()
    sim:reset()
    sim:config({ token = SECRET })
  end)

  -- libcurl logs HTTP/2 request headers as informational text lines
  -- ("h2h3 [authorization: Bearer ...]" in 7.88, "[HTTP/2] [1] [authorization: ...]" in 8.x)
  it("never reaches verbose output, whatever line libcurl writes it in", function()
    local log = {}
    local c = assert(kling.new({ token = SECRET, base_url = proxy.url, cainfo = proxy.cainfo,
                                 poll_interval = 0.05, max_poll_interval = 0.1,
                                 verbose = function(t) log[#log + 1] = t end }))
    local result = assert(c:motion(Simulator.params()))
    c:close()
    assert.equal("succeed", result.state)
    local text = table.concat(log)
    assert.truthy(text:find("HTTP/2", 1, true), "HTTP/2 was not negotiated")
    assert.truthy(text:find("[redacted]", 1, true))
    assert.is_nil(text:find(SECRET, 1, true), "the token is in the verbose output")
  end)

  it("a download is not redirected from https to plain http unless asked", function()
    local c = assert(kling.new({ token = SECRET, base_url = sim.url, cainfo = proxy.cainfo, max_retries = 0,
                                 poll_interval = 0.05, max_poll_interval = 0.1 }))
    local result = assert(c:motion(Simulator.params()))
    local file = result.video_url:match("/files/.+$")
    local path = os.tmpname()
    local before = sim:stats().downloads
    local ok, err = c:download(proxy.url .. "/redirect-to-http" .. file, path)
    assert.is_nil(ok)
    assert.equal("network", err.kind)
    assert.equal("redirect", err.reason)
    assert.equal(before, sim:stats().downloads, "the video was fetched over plain http")
    -- https to https is followed
    assert.equal(1040, select(2, assert(c:download(proxy.url .. "/redirect-to-https" .. file, path))))
    assert.equal(1040, select(2, assert(c:download(proxy.url .. "/redirect-to-http" .. file, path,
                                                   { allow_downgrade = true }))))
    os.remove(path)
    c:close()
  end)
end)

describe("TLS", function()
  local dir, server, port

  local function sh(cmd)
    assert(os.execute(cmd .. " >/dev/null 2>&1"), cmd)
  end

  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    sh("mkdir -p " .. dir)
    sh(("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
      .. "-addext subjectAltName=IP:127.0.0.1 -keyout %s/key.pem -out %s/cert.pem"):format(dir, dir))
    port = http.free_port()
    server = io.popen(("exec openssl s_server -quiet -accept 127.0.0.1:%s -cert %s/cert.pem -key %s/key.pem -www"
      .. " 2>&1 & echo $!"):format(port, dir, dir))
    server = { pid = server:read("*l"), pipe = server }
    http.wait_accepting(port, 5)
  end)

  teardown(function()
    os.execute("kill " .. server.pid .. " 2>/dev/null")
    server.pipe:close()
    os.execute("rm -rf " .. dir)
  end)

  it("rejects a certificate it cannot verify", function()
    local c = assert(kling.new({ token = "t", base_url = "https://127.0.0.1:" .. port, max_retries = 0,
                                 timeout = 5 }))
    local _, err = c:task("x")
    assert.equal("network", err.kind)
    assert.equal("tls", err.reason)
    local path = dir .. "/page.html"
    _, err = c:download("https://127.0.0.1:" .. port .. "/", path)
    assert.equal("tls", err.reason)
    c:close()
  end)

  it("trusts a certificate authority given as cainfo", function()
    local c = assert(kling.new({ token = "t", base_url = "https://127.0.0.1:" .. port, max_retries = 0,
                                 timeout = 5, cainfo = dir .. "/cert.pem" }))
    -- openssl's -www status page stands in for a video host
    local path, bytes = c:download("https://127.0.0.1:" .. port .. "/", dir .. "/page.html")
    c:close()
    assert.equal(dir .. "/page.html", path)
    assert.is_true(bytes > 0)
  end)
end)
