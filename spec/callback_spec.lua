-- Webhooks: the simulator POSTs the final answer to callback_url; the client
-- trusts only what it re-reads from /kling/tasks, once per finished task.
local cjson = require "cjson"
local Recent = require "kling.recent"
local Simulator = require "helpers.simulator"

describe("callbacks", function()
  local sim, client
  setup(function() sim = Simulator.start({ generation_time = 0.2 }) end)
  teardown(function() sim:stop() end)
  before_each(function() sim:reset(); client = sim:client() end)
  after_each(function() client:close() end)

  local function delivered(n)
    local inbox = sim:inbox(n)
    assert(#inbox >= n, "the callbacks were not delivered")
    return inbox
  end

  it("the simulator posts the final answer, and handle_callback verifies it", function()
    sim:next_task({ callback_times = 2 }) -- deliveries may repeat
    local id = assert(client:submit(Simulator.params({ callback_url = sim.url .. "/_sim/inbox/hook" })))
    local inbox = delivered(2)
    local payload = cjson.decode(inbox[1].body)
    assert.equal(id, payload.task_id)
    assert.equal("succeed", payload.state)
    local before = sim:count("/kling/tasks")
    local t = assert(client:handle_callback(inbox[1].body, { url = inbox[1].path }))
    assert.equal(before + 1, sim:count("/kling/tasks"))
    assert.equal(id, t.id)
    assert.is_true(t.done)
    assert.is_true(t.first_delivery)
    local again = assert(client:handle_callback(inbox[2].body, { url = inbox[2].path }))
    assert.is_false(again.first_delivery)
  end)

  it("a forged body does not change what the API says", function()
    local id = assert(client:submit(Simulator.params()))
    assert(client:wait(id))
    local forged = cjson.encode({ task_id = id, success = false, state = "failed",
                                  error = { code = "x", message = "forged" } })
    local t = assert(client:handle_callback(forged))
    assert.equal("succeed", t.state)
  end)

  it("refuses a callback for a task this client did not submit, unless accepted", function()
    local other = sim:client()
    local id = assert(other:submit(Simulator.params()))
    other:close()
    local t, err = client:handle_callback({ task_id = id })
    assert.is_nil(t)
    assert.equal("not_found", err.kind)
    assert.equal(id, err.task_id)
    t = assert(client:handle_callback({ task_id = id }, { accept = function(x) return x == id end }))
    assert.equal(id, t.id)
  end)

  it("an accept function that raises gives a hook error, not a raise", function()
    local t, err = client:handle_callback({ task_id = "someone-else" }, { accept = function() error("db down") end })
    assert.is_nil(t)
    assert.equal("hook", err.kind)
    assert.equal("someone-else", err.task_id)
    assert.truthy(err.message:find("db down", 1, true))
  end)

  it("remembers a bounded number of task ids (a long-lived client does not grow)", function()
    local r = Recent.new(3)
    for _, k in ipairs({ "a", "b", "c", "a", "d" }) do r:add(k) end
    assert.is_false(r:has("a"))
    assert.is_true(r:has("b") and r:has("c") and r:has("d"))
    assert.equal(3, r:count())
    for i = 1, 1000 do r:add("k" .. i) end
    assert.equal(3, r:count())
    assert.is_true(r:has("k1000"))
    local id = assert(client:submit(Simulator.params()))
    assert.is_true(client._submitted:has(id))
    assert.equal(10000, client._submitted.capacity)
  end)

  it("rejects bodies that are not JSON objects or lack task_id", function()
    assert.equal("bad_response", select(2, client:handle_callback("<html>")).kind)
    assert.equal("bad_response", select(2, client:handle_callback("{}")).kind)
    assert.has_error(function() client:handle_callback(42) end)
  end)
end)
