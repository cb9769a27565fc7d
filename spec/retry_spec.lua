-- Retry rules: polls retry what is safe; the billed submit only what provably
-- did not reach the server.
local core = require "kling.core"
local http = require "kling.simulator.http"
local Simulator = require "helpers.simulator"

local MOTION, TASKS = "/kling/motion", "/kling/tasks"

describe("submit retries", function()
  local sim, client
  Simulator.for_each_spec({ generation_time = 0.2, client = true }, function(ctx) sim, client = ctx.sim, ctx.client end)

  it("a 500 is never retried: one submit, and the error says the job may exist", function()
    sim:fault({ path = MOTION, status = 500 })
    local id, err = client:submit(Simulator.params())
    assert.is_nil(id)
    assert.equal("api", err.kind)
    assert.equal(500, err.status)
    assert.equal("api_error", err.code)
    assert.is_true(err.maybe_submitted)
    assert.truthy(err.message:find("may have been created", 1, true))
    assert.equal(1, sim:stats().submits)
  end)

  for _, status in ipairs({ 502, 503, 504 }) do
    it("a " .. status .. " carrying task_id is followed to success with one submit", function()
      sim:fault({ path = MOTION, status = status, create_task = true })
      local seen
      local result, err = client:motion(Simulator.params({ on_submit = function(id) seen = id end }))
      assert.is_nil(err)
      assert.equal("succeed", result.state)
      assert.equal(seen, result.task_id)
      assert.equal(1, sim:stats().submits)
      assert.equal(1, sim:stats().tasks_created)
    end)

    it("a " .. status .. " without task_id is reported, not retried", function()
      sim:fault({ path = MOTION, status = status, create_task = true, with_task_id = false })
      local id, err = client:submit(Simulator.params())
      assert.is_nil(id)
      assert.equal("api", err.kind)
      assert.equal(status, err.status)
      assert.is_true(err.maybe_submitted)
      assert.equal(1, sim:stats().submits)
    end)
  end

  it("an HTML gateway page on submit is reported, not retried", function()
    sim:fault({ path = MOTION, status = 502, body = "html" })
    local id, err = client:submit(Simulator.params())
    assert.is_nil(id)
    assert.equal("api", err.kind)
    assert.truthy(err.message:find("text/html", 1, true))
    assert.equal(1, sim:stats().submits)
  end)

  it("a timeout after sending is not retried", function()
    local c = sim:client({ timeout = 0.3 })
    sim:fault({ path = MOTION, delay = 1, create_task = true })
    local id, err = c:submit(Simulator.params())
    c:close()
    assert.is_nil(id)
    assert.equal("timeout", err.kind)
    assert.is_true(err.maybe_submitted)
    assert.equal(1, sim:stats().submits)
  end)

  it("a dropped connection is not retried", function()
    sim:fault({ path = MOTION, drop = true, create_task = true })
    local id, err = client:submit(Simulator.params())
    assert.is_nil(id)
    assert.equal("network", err.kind)
    assert.is_true(err.maybe_submitted)
    assert.equal(1, sim:stats().submits)
  end)

  it("a submit dropped on a reused keep-alive connection is not resent by libcurl", function()
    -- a poll leaves an idle keep-alive connection in the client's pool
    assert.equal("not_found", select(2, client:task("warm-up")).kind)
    sim:fault({ path = MOTION, drop = true, create_task = true })
    local id, err = client:submit(Simulator.params())
    assert.is_nil(id)
    assert.equal("network", err.kind)
    assert.is_true(err.maybe_submitted)
    assert.equal(1, sim:stats().submits)
    assert.equal(1, sim:stats().tasks_created)
  end)

  it("a 2xx without task_id is a bad_response that may have created a job", function()
    sim:fault({ path = MOTION, status = 200, json = { ok = true } })
    local id, err = client:submit(Simulator.params())
    assert.is_nil(id)
    assert.equal("bad_response", err.kind)
    assert.is_true(err.maybe_submitted)
    assert.equal(1, sim:stats().submits)
  end)

  -- 303 See Other means the request was processed; a 2xx that is neither a
  -- task id nor a well-formed error says nothing about the job either.
  it("a 303 answer to a submit may have created a job", function()
    sim:fault({ path = MOTION, status = 303, create_task = true, with_task_id = false })
    local id, err = client:submit(Simulator.params())
    assert.is_nil(id)
    assert.is_true(err.maybe_submitted)
    assert.equal(1, sim:stats().submits)
  end)

  it("a 2xx with a malformed error object may have created a job", function()
    sim:fault({ path = MOTION, status = 200, json = { success = false, error = { code = 5 } } })
    local id, err = client:submit(Simulator.params())
    assert.is_nil(id)
    assert.is_true(err.maybe_submitted)
    sim:fault({ path = MOTION, status = 201, json = { success = false, error = "oops" } })
    id, err = client:submit(Simulator.params())
    assert.is_nil(id)
    assert.is_true(err.maybe_submitted)
    assert.equal(2, sim:stats().submits)
  end)

  it("a status outside 100..599 on a submit is a bad_response that may have created a job", function()
    sim:fault({ path = MOTION, raw = "HTTP/1.1 999 X\r\nContent-Length: 2\r\n\r\n{}" })
    local id, err = client:submit(Simulator.params())
    assert.is_nil(id)
    assert.equal("bad_response", err.kind)
    assert.is_true(err.maybe_submitted)
    assert.equal(1, sim:stats().submits)
  end)

  it("a 429 is retried, honouring Retry-After", function()
    sim:fault({ path = MOTION, status = 429, retry_after = 1 })
    local started = core.now()
    local id = assert(client:submit(Simulator.params()))
    assert.is_true(core.now() - started >= 0.95)
    assert.is_string(id)
    assert.equal(2, sim:stats().submits)
    assert.equal(1, sim:stats().tasks_created)
  end)

  it("a 429 that persists ends as rate_limited with retry_after", function()
    sim:fault({ path = MOTION, status = 429, retry_after = 0, times = 10 })
    local id, err = client:submit(Simulator.params())
    assert.is_nil(id)
    assert.equal("rate_limited", err.kind)
    assert.equal(0, err.retry_after)
    assert.equal(3, sim:stats().submits) -- max_retries = 2
  end)

  it("a Retry-After beyond max_retry_after is reported, not slept through", function()
    local c = sim:client({ max_retry_after = 5 })
    sim:fault({ path = MOTION, status = 429, retry_after = 60 })
    local started = core.now()
    local id, err = c:submit(Simulator.params())
    c:close()
    assert.is_nil(id)
    assert.equal("rate_limited", err.kind)
    assert.equal(60, err.retry_after)
    assert.is_true(core.now() - started < 1)
    assert.equal(1, sim:stats().submits)
  end)

  it("403 used_up is an auth error and is never retried", function()
    sim:config({ credits = 0 })
    local id, err = client:submit(Simulator.params())
    assert.is_nil(id)
    assert.equal("auth", err.kind)
    assert.equal(403, err.status)
    assert.equal("used_up", err.code)
    assert.is_string(err.trace_id)
    assert.is_nil(err.maybe_submitted)
    assert.equal(1, sim:stats().submits)
  end)

  it("a bad token is an auth error", function()
    local c = sim:client({ token = "wrong" })
    local id, err = c:submit(Simulator.params())
    c:close()
    assert.is_nil(id)
    assert.equal("auth", err.kind)
    assert.equal(401, err.status)
    assert.equal("invalid_token", err.code)
  end)

  it("a connection refused before sending is retried (nothing reached a server)", function()
    local port = http.free_port()
    local log = {}
    local c = sim:client({ base_url = "http://127.0.0.1:" .. port, verbose = function(t) log[#log + 1] = t end })
    local id, err = c:submit(Simulator.params())
    c:close()
    assert.is_nil(id)
    assert.equal("network", err.kind)
    assert.equal("connect", err.reason)
    assert.equal(7, err.curl_code) -- CURLE_COULDNT_CONNECT, libcurl's own word for it
    assert.is_false(err.sent)
    assert.is_nil(err.maybe_submitted)
    local _, attempts = table.concat(log):gsub("Trying 127%.0%.0%.1:" .. port, "")
    assert.equal(3, attempts)
  end)
end)

describe("poll retries", function()
  local sim, client
  Simulator.for_each_spec({ generation_time = 0.1, client = true }, function(ctx) sim, client = ctx.sim, ctx.client end)

  local polls_before
  -- a finished task, and the poll count from which a spec counts its own polls
  local function submitted()
    local id = assert(client:submit(Simulator.params()))
    assert(client:wait(id))
    polls_before = sim:count(TASKS)
    return id
  end
  local function polls() return sim:count(TASKS) - polls_before end

  for _, fault in ipairs({
    { status = 500 }, { status = 502, body = "html" }, { status = 503 }, { status = 504, body = "empty" },
    { status = 408 }, { status = 429, retry_after = 0 }, { drop = true }, { truncate = true },
  }) do
    local name = fault.status and ("HTTP " .. fault.status)
      or (fault.drop and "a dropped connection" or "a truncated answer")
    it("retries " .. name .. " on retrieve", function()
      local id = submitted()
      fault.path = TASKS
      sim:fault(fault)
      local t, err = client:task(id)
      assert.is_nil(err)
      assert.is_true(t.done)
      assert.equal(2, polls())
    end)
  end

  it("honours an HTTP-date Retry-After", function()
    local id = submitted()
    sim:fault({ path = TASKS, status = 503, retry_after = 2, retry_after_date = true })
    local started = core.now()
    assert(client:task(id))
    local waited = core.now() - started
    assert.is_true(waited >= 0.9 and waited < 3.5, "waited " .. waited)
  end)

  it("gives up after max_retries with the last error", function()
    local id = submitted()
    sim:fault({ path = TASKS, status = 500, times = 5 })
    local t, err = client:task(id)
    assert.is_nil(t)
    assert.equal("api", err.kind)
    assert.equal(500, err.status)
    assert.equal(id, err.task_id)
    assert.equal(3, polls())
  end)

  it("a wait rides out a burst of server errors", function()
    local id = submitted()
    sim:fault({ path = TASKS, status = 503, times = 4 })
    local result = assert(client:wait(id))
    assert.equal(id, result.task_id)
  end)

  it("does not retry 401", function()
    local id = submitted()
    local c = sim:client({ token = "wrong" })
    local t, err = c:task(id)
    c:close()
    assert.is_nil(t)
    assert.equal("auth", err.kind)
    assert.equal(1, polls())
  end)

  for _, body in ipairs({ "html", "empty", "malformed", "array" }) do
    it("a 200 with " .. body .. " body is bad_response", function()
      local id = submitted()
      sim:fault({ path = TASKS, status = 200, body = body })
      local t, err = client:task(id)
      assert.is_nil(t)
      assert.equal("bad_response", err.kind)
      assert.equal(200, err.status)
      assert.equal(1, polls())
    end)
  end

  it("a slow answer hits the HTTP deadline as a timeout", function()
    local id = submitted()
    local c = sim:client({ timeout = 0.2, max_retries = 0 })
    sim:fault({ path = TASKS, delay = 1 })
    local started = core.now()
    local t, err = c:task(id)
    c:close()
    assert.is_nil(t)
    assert.equal("timeout", err.kind)
    assert.is_true(core.now() - started < 0.8)
  end)

  it("a timeout under half a millisecond still limits the request", function()
    local id = submitted()
    local c = sim:client({ timeout = 1e-4, max_retries = 0 })
    sim:fault({ path = TASKS, delay = 1.5 })
    local started = core.now()
    local t, err = c:task(id)
    c:close()
    assert.is_nil(t)
    assert.equal("timeout", err.kind)
    assert.is_true(core.now() - started < 1, "the request was not limited")
  end)

  -- Each request made for a wait gets min(timeout, time left).
  it("a wait's polls never outlast the wait", function()
    local id = submitted()
    sim:fault({ path = TASKS, delay = 3, times = 3 })
    local started = core.now()
    local r, err = client:wait(id, { timeout = 0.5 })
    local took = core.now() - started
    assert.is_nil(r)
    assert.equal("timeout", err.kind)
    assert.equal(id, err.task_id)
    assert.is_true(took < 1, ("the wait of 0.5 s took %.2f s"):format(took))
  end)

  -- Answers that are not usable HTTP: polls retry them, and the error names no status.
  --  * a three-digit status outside 100..599, which libcurl hands on as it is;
  --  * HTTP/0.9, another protocol on the port, or a status line libcurl cannot parse:
  --    libcurl says "unsupported protocol", which is not a URL kling refused.
  local JSON_TAIL = "\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
  for _, case in ipairs({
    { "HTTP/1.1 600 X" .. JSON_TAIL, "bad_response", "bad_status" },
    { "HTTP/1.1 999 X" .. JSON_TAIL, "bad_response", "bad_status" },
    { "SSH-2.0-OpenSSH_9.2\r\n", "network", "protocol" },
    { "HTTP/1.1 2 OK" .. JSON_TAIL, "network", "protocol" },
    { "HTTP/1.1 -1 X\r\n\r\n", "network", "protocol" },
    { "HTTP/1.1 222222222 OK\r\n\r\n", "network", "protocol" },
  }) do
    local raw, kind, reason = case[1], case[2], case[3]
    it(("%q is %s (%s) and polls retry it"):format(raw:match("^[^\r]*"), kind, reason), function()
      local id = submitted()
      sim:fault({ path = TASKS, raw = raw })
      local t, err = client:task(id)
      assert.is_nil(err)
      assert.is_true(t.done)
      assert.equal(2, polls())
      sim:fault({ path = TASKS, times = 3, raw = raw })
      t, err = client:task(id)
      assert.is_nil(t)
      assert.equal(kind, err.kind)
      assert.equal(reason, err.reason)
      assert.is_nil(err.status)
    end)
  end

  it("an oversized answer is bad_response", function()
    local id = submitted()
    local c = sim:client({ max_response_bytes = 100 })
    local t, err = c:task(id)
    c:close()
    assert.is_nil(t)
    assert.equal("bad_response", err.kind)
    assert.equal("too_large", err.reason)
  end)
end)
