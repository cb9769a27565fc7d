-- When a task is over: each shape of ending AceData has been seen to report.
local core = require "kling.core"
local task = require "kling.task"
local Simulator = require "helpers.simulator"

describe("terminal rules against the simulator", function()
  local sim, client
  Simulator.for_each_spec({ generation_time = 0.2 }, function(ctx) sim = ctx.sim end)
  before_each(function() client = sim:client({ wait_timeout = 5 }) end)
  after_each(function() client:close() end)

  local function run_outcome(outcome)
    sim:next_task({ outcome = outcome, error_code = "bad_image", error_message = "no person found" })
    local started = core.now()
    local result, err = client:motion(Simulator.params())
    return result, err, core.now() - started
  end

  for _, outcome in ipairs({ "failed_state", "failed_no_state", "failed_unfinished" }) do
    it(outcome .. " ends the wait at once with task_failed and the task's own error", function()
      local result, err, elapsed = run_outcome(outcome)
      assert.is_nil(result)
      assert.equal("task_failed", err.kind)
      assert.equal("bad_image", err.code)
      assert.equal("no person found", err.message)
      assert.is_string(err.task_id)
      assert.is_true(elapsed < 2, "polled on after the failure")
    end)
  end

  it("success = false beside a video URL is a failure, not a success", function()
    local result, err = run_outcome("failed_with_video")
    assert.is_nil(result)
    assert.equal("task_failed", err.kind)
    assert.truthy(err.message:find("success = false", 1, true))
  end)

  it("state = failed alone is a failure", function()
    local result, err, elapsed = run_outcome("state_failed")
    assert.is_nil(result)
    assert.equal("task_failed", err.kind)
    assert.is_true(elapsed < 2)
  end)

  it("success = false with nothing else keeps waiting", function()
    local result = assert(run_outcome("unflagged_then_succeed"))
    assert.equal("succeed", result.state)
  end)

  it("a wait deadline returns timeout with the task id, and the wait can be resumed", function()
    sim:next_task({ generation_time = 1.2 })
    local id = assert(client:submit(Simulator.params()))
    local started = core.now()
    local result, err = client:wait(id, { timeout = 0.3 })
    local elapsed = core.now() - started
    assert.is_nil(result)
    assert.equal("timeout", err.kind)
    assert.equal(id, err.task_id)
    assert.equal("processing", err.state)
    assert.is_true(elapsed >= 0.3 and elapsed < 1.0, "waited " .. elapsed)
    result = assert(client:wait(id))
    assert.equal(id, result.task_id)
    assert.equal(1, sim:stats().submits)
  end)

  it("retry sleeps inside a wait's polls never outlast the wait deadline", function()
    local id = assert(client:submit(Simulator.params()))
    sim:fault({ path = "/kling/tasks", status = 503, retry_after = 3, times = 10 })
    local started = core.now()
    local result, err = client:wait(id, { timeout = 0.5 })
    local elapsed = core.now() - started
    assert.is_nil(result)
    assert.equal("timeout", err.kind)
    assert.equal(id, err.task_id)
    assert.equal(503, err.cause.status)
    assert.is_true(elapsed < 1.5, "waited " .. elapsed)
  end)

  it("a task that never ends times out after wait_timeout", function()
    sim:next_task({ outcome = "never" })
    local c = sim:client({ wait_timeout = 0.4 })
    local result, err = c:motion(Simulator.params())
    c:close()
    assert.is_nil(result)
    assert.equal("timeout", err.kind)
    assert.is_string(err.task_id)
  end)
end)

describe("task.normalize", function()
  local function norm(response, extra)
    local record = { id = "t1", response = response }
    for k, v in pairs(extra or {}) do record[k] = v end
    return task.normalize(record)
  end

  it("a record without a response is still running", function()
    local t = task.normalize({ id = "t1" })
    assert.is_false(t.done)
    assert.equal("processing", t.state)
  end)

  it("keeps upstream state words while running", function()
    for _, word in ipairs({ "submitted", "pending", "processing" }) do
      local t = norm({ state = word })
      assert.is_false(t.done)
      assert.equal(word, t.state)
    end
  end)

  it("succeed (not 'succeeded') ends with a result", function()
    local t = norm({ success = true, state = "succeed", video_url = "https://v/x.mp4", task_id = "t1" })
    assert.is_true(t.done)
    assert.equal("https://v/x.mp4", t.result.video_url)
    assert.is_false(norm({ state = "succeeded" }).done)
    assert.is_false(norm({ status = "succeed" }).done)
  end)

  it("an error object with success = false ends the task, finished_at or not", function()
    local t = norm({ success = false, error = { code = "x", message = "m" } })
    assert.is_true(t.done)
    assert.equal("failed", t.state)
    assert.equal("x", t.error.code)
  end)

  it("success = false with state succeed is a failure", function()
    local t = norm({ success = false, state = "succeed" })
    assert.is_true(t.done)
    assert.equal("failed", t.state)
  end)

  it("JSON nulls read as absent", function()
    local t = norm({ success = true, state = core.null, error = core.null })
    assert.is_false(t.done)
    assert.is_false(task.normalize({ id = "t1", response = core.null }).done)
  end)
end)
