-- OpenResty: examples/openresty/ (nginx.conf and kling_service.lua) run by
-- Debian's nginx with its Lua module, against the simulator. Jobs spawned
-- from request handlers and from timers, driven by kling.loop.ngx; requests
-- that wait for their job; callbacks checked and re-read without blocking
-- the worker; a trivial location's latency meanwhile.
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"
local Simulator = require "helpers.simulator"
local simhttp = require "kling.simulator.http"

local MODULE = "/usr/lib/nginx/modules/ngx_http_lua_module.so"
local CORE = "build/luajit/kling/core.so"

local read_file = Simulator.read_file

local function request(url, method, body)
  local chunks = {}
  local ok, status = http.request({
    url = url, method = method or "GET", sink = ltn12.sink.table(chunks),
    source = body and ltn12.source.string(body) or nil,
    headers = body and { ["content-type"] = "application/json", ["content-length"] = #body } or nil,
  })
  assert(ok, "request failed: " .. tostring(status))
  local text = table.concat(chunks)
  local decoded, answer = pcall(cjson.decode, text) -- /ping's is not JSON
  decoded = decoded and answer or nil
  return status, decoded, text
end

describe("OpenResty (examples/openresty, kling.loop.ngx)", function()
  local exists = Simulator.file_exists
  local missing = not Simulator.have_command("nginx") and "nginx is not installed (make example-openresty installs it)"
    or not exists(MODULE) and "nginx's Lua module is not installed (libnginx-mod-http-lua; make example-openresty)"
    or not exists(CORE) and CORE .. " is not built (make LUA_VERSION=luajit; make example-openresty does)"
  if missing then
    if os.getenv("KLING_HOST_SPECS") == "required" then error(missing) end
    pending(missing)
    return
  end

  local sim, dir, base, pid_pipe, pid
  setup(function()
    sim = Simulator.start({ generation_time = 2 })
    dir = Simulator.tempdir()
    local port = simhttp.free_port()
    base = "http://127.0.0.1:" .. port
    local root = (os.getenv("PWD") or io.popen("pwd"):read("*l"))
    local conf = read_file("examples/openresty/nginx.conf")
      :gsub("/path/to/kling", root):gsub("127%.0%.0%.1:8080", "127.0.0.1:" .. port)
    local f = assert(io.open(dir .. "/nginx.conf", "w"))
    f:write(conf)
    f:close()
    pid_pipe = assert(io.popen(("exec env -u LD_PRELOAD -u ASAN_OPTIONS ACEDATACLOUD_API_BASE_URL=%s "
      .. "ACEDATACLOUD_API_TOKEN=%s KLING_POLL_INTERVAL=0.2 nginx -p %s -c %s/nginx.conf -e %s/error.log "
      .. "-g 'daemon off;' >%s/stdout.log 2>&1 & echo $!"):format(sim.url, Simulator.TOKEN, dir, dir, dir, dir)))
    pid = pid_pipe:read("*l")
    assert(simhttp.wait_accepting(port, 5), "nginx did not start: " .. read_file(dir .. "/error.log"))
  end)

  teardown(function()
    os.execute("kill " .. pid .. " 2>/dev/null")
    pid_pipe:close()
    Simulator.remove_dir(dir)
    sim:stop()
  end)

  it("50 jobs from requests and timers, waits, callbacks: all end, /ping p99 under 10 ms, no worker lost", function()
    -- the API's task reads answer 0.3 s late: polls and callback re-reads
    -- are slow, and must not make the worker slow
    sim:fault({ path = "/kling/tasks", pass = true, delay = 0.3, times = 1000 })
    local params = Simulator.params({ callback_url = base .. "/kling/callback" })
    local body = cjson.encode(params)
    -- 5 requests that wait for their job (background processes)
    local lua = os.getenv("KLING_LUA") or "lua5.4"
    local waiters = {}
    for i = 1, 5 do
      local out = dir .. "/wait" .. i .. ".json"
      local script = ("local h = require 'socket.http'; h.TIMEOUT = 60; local b = h.request(%q, %q); "
        .. "local f = io.open(%q, 'w'); f:write(b or ''); f:close()"):format(base .. "/motion?wait=1", body, out)
      os.execute(("%s -e %q &"):format(lua, script))
      waiters[i] = out
    end
    -- 40 spawned from request handlers, 5 from timers
    for i = 1, 45 do
      local status, answer = request(base .. "/motion" .. (i > 40 and "?from=timer" or ""), "POST", body)
      assert.equal(202, status)
      assert.is_number(answer.job)
    end
    -- /ping while they run and their callbacks arrive
    local latencies, stats = {}, nil -- luacheck: ignore 311 (the loop sets it)
    local deadline = socket.gettime() + 40
    repeat
      for _ = 1, 20 do
        local started = socket.gettime()
        local status, _, text = request(base .. "/ping")
        latencies[#latencies + 1] = socket.gettime() - started
        assert.equal(200, status)
        assert.equal("pong\n", text)
      end
      stats = select(2, request(base .. "/stats"))
    until (stats.reserved == 50 and stats.running == 0 and stats.ended == 50 and stats.verified == 50)
      or socket.gettime() > deadline
    assert.same({ running = 0, ended = 50, callbacks = 50, verified = 50, refused = 0 },
      { running = stats.running, ended = stats.ended, callbacks = stats.callbacks, verified = stats.verified,
        refused = stats.refused })
    -- every job succeeded; each waiting request got its job's result
    for id = 1, 50 do
      local _, job = request(base .. "/jobs/" .. id)
      assert.equal("done", job.status, "job " .. id .. ": " .. cjson.encode(job))
      assert.equal("succeed", job.result.state)
    end
    for _, out in ipairs(waiters) do
      local answer = cjson.decode(read_file(out))
      assert.equal("succeed", answer.result.state)
    end
    table.sort(latencies)
    local p99 = latencies[math.ceil(#latencies * 0.99)]
    print(("/ping: %d requests, median %.2f ms, p99 %.2f ms, max %.2f ms; %d kling steps")
      :format(#latencies, latencies[math.ceil(#latencies / 2)] * 1000, p99 * 1000, latencies[#latencies] * 1000,
        stats.steps))
    assert.is_true(p99 < 0.010, ("/ping p99 %.1f ms"):format(p99 * 1000))
    -- no worker lost, no Lua error
    local log = read_file(dir .. "/error.log")
    assert.is_nil(log:match("exited on signal"), log)
    assert.is_nil(log:match("%[error%]"), log)
    assert.is_nil(log:match("%[alert%]"), log)
  end)

  it("a forged callback is refused at once, before any request", function()
    local _, done = request(base .. "/motion?wait=1", "POST", cjson.encode(Simulator.params()))
    local task_id = done.result.task_id
    local before = sim:count("/kling/tasks")
    -- a task of this client's, submitted without a callback_url: no callback for it is genuine
    local status, answer = request(base .. "/kling/callback?kling_token=0000", "POST",
      cjson.encode({ success = true, task_id = task_id, state = "succeed" }))
    assert.equal(403, status, cjson.encode(answer))
    -- a task that is not this client's
    status, answer = request(base .. "/kling/callback", "POST",
      cjson.encode({ success = true, task_id = "not-ours", state = "succeed" }))
    assert.equal(404, status, cjson.encode(answer))
    assert.equal(before, sim:count("/kling/tasks"))
  end)
end)
