-- The token stays in the Authorization header; TLS is verified by default.
local kling = require "kling"
local socket = require "socket"
local Simulator = require "helpers.simulator"

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
  setup(function() sim = Simulator.start({ generation_time = 0.1 }) end)
  teardown(function() sim:stop() end)
  before_each(function() sim:reset() end)

  it("never shows in tostring, the client's fields, errors or verbose output", function()
    local log = {}
    local c = assert(kling.new({ token = SECRET, base_url = sim.url, verbose = function(t) log[#log + 1] = t end,
                                 retry_delay = 0.01 }))
    assert.is_false(tostring(c):find(SECRET, 1, true) ~= nil)
    assert.is_false(find_secret(c))
    assert.is_false(tostring(c._multi):find(SECRET, 1, true) ~= nil)
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
    local probe = assert(socket.bind("127.0.0.1", 0))
    port = select(2, probe:getsockname())
    probe:close()
    server = io.popen(("exec openssl s_server -quiet -accept 127.0.0.1:%s -cert %s/cert.pem -key %s/key.pem -www"
      .. " 2>&1 & echo $!"):format(port, dir, dir))
    server = { pid = server:read("*l"), pipe = server }
    -- wait until it accepts connections
    for _ = 1, 100 do
      local s = socket.tcp()
      s:settimeout(0.1)
      local ok = s:connect("127.0.0.1", port)
      s:close()
      if ok then break end
      socket.select(nil, nil, 0.05)
    end
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
