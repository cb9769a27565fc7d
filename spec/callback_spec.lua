-- Webhooks: the simulator POSTs the final answer to callback_url; the client
-- checks the per-job secret kling put in the URL, trusts only what it re-reads
-- from /kling/tasks, once per finished task; with a journal, knowledge and
-- de-duplication are shared by every client of that journal.
local cjson = require "cjson"
local core = require "kling.core"
local Recent = require "kling.recent"
local webhooks = require "kling.webhooks"
local Simulator = require "helpers.simulator"

-- The callbacks the simulator delivered to its inbox, once n have arrived.
local function delivered(sim, n)
  local inbox = sim:inbox(n)
  assert(#inbox >= n, "the callbacks were not delivered")
  return inbox
end

describe("callbacks", function()
  local sim, client
  Simulator.for_each_spec({ generation_time = 0.2, client = true }, function(ctx) sim, client = ctx.sim, ctx.client end)

  it("the simulator posts the final answer, and handle_callback verifies it", function()
    sim:next_task({ callback_times = 2 }) -- deliveries may repeat
    local id = assert(client:submit(Simulator.params({ callback_url = sim.url .. "/_sim/inbox/hook" })))
    local inbox = delivered(sim, 2)
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
    local id = assert(client:submit(Simulator.params({ callback_url = sim.url .. "/_sim/inbox/hook" })))
    local inbox = delivered(sim, 1)
    local forged = cjson.encode({ task_id = id, success = false, state = "failed",
                                  error = { code = "x", message = "forged" } })
    local t = assert(client:handle_callback(forged, { url = inbox[1].path }))
    assert.equal("succeed", t.state)
  end)

  it("a callback for a task submitted without callback_url is an auth error, before any request", function()
    local id = assert(client:submit(Simulator.params()))
    local before = sim:count("/kling/tasks")
    for _, url in ipairs({ false, "/hook", "/hook?kling_token=" .. string.rep("0", 32) }) do
      local t, err = client:handle_callback({ task_id = id }, { url = url or nil })
      assert.is_nil(t)
      assert.equal("auth", err.kind)
      assert.equal(id, err.task_id)
    end
    assert.equal(before, sim:count("/kling/tasks"))
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
    assert.is_true(client.engine.submitted:has(id))
    assert.equal(10000, client.engine.submitted.capacity)
  end)

  it("rejects bodies that are not JSON objects or lack task_id", function()
    assert.equal("bad_response", select(2, client:handle_callback("<html>")).kind)
    assert.equal("bad_response", select(2, client:handle_callback("{}")).kind)
    assert.has_error(function() client:handle_callback(42) end)
  end)
end)

describe("webhook tokens", function()
  local sim, client
  Simulator.for_each_spec({ generation_time = 0.2, client = true }, function(ctx) sim, client = ctx.sim, ctx.client end)

  it("puts 128 random bits into each job's callback URL and checks them before any request", function()
    local hook = sim.url .. "/_sim/inbox/hook?user=7"
    local a = assert(client:submit(Simulator.params({ callback_url = hook })))
    local b = assert(client:submit(Simulator.params({ callback_url = hook })))
    local sent = {}
    for _, r in ipairs(sim:requests()) do
      if r.path == "/kling/motion" then sent[#sent + 1] = cjson.decode(r.body).callback_url end
    end
    local ta, tb = webhooks.token_of(sent[1]), webhooks.token_of(sent[2])
    assert.truthy(sent[1]:find("?user=7&kling_token=", 1, true))
    assert.equal(32, #ta)
    assert.truthy(ta:match("^%x+$"))
    assert.are_not.equal(ta, tb)
    local inbox = delivered(sim, 2)
    local body_a = inbox[1].body:find(a, 1, true) and inbox[1] or inbox[2]
    local before = sim:count("/kling/tasks")
    -- missing, wrong, and another job's token: auth, and the API is not asked
    for _, url in ipairs({ false, "/_sim/inbox/hook?user=7", "/_sim/inbox/hook?kling_token=" .. string.rep("0", 32),
                           "/_sim/inbox/hook?kling_token=" .. (body_a == inbox[1] and tb or ta) }) do
      local t, err = client:handle_callback(body_a.body, { url = url or nil })
      assert.is_nil(t)
      assert.equal("auth", err.kind)
      assert.equal(a, err.task_id)
    end
    assert.equal(before, sim:count("/kling/tasks"))
    local t = assert(client:handle_callback(body_a.body, { url = body_a.path }))
    assert.equal(a, t.id)
    assert.is_true(t.first_delivery)
    assert.is_string(b)
  end)

  it("compares tokens in constant time", function()
    assert.is_true(core.secret_equal("abc", "abc"))
    assert.is_false(core.secret_equal("abc", "abd"))
    assert.is_false(core.secret_equal("abc", "abcd"))
    assert.is_false(core.secret_equal("", "a"))
  end)

  it("reads the token from a full URL or a path, not from the fragment", function()
    assert.equal("x1", webhooks.token_of("https://h/p?a=1&kling_token=x1#f"))
    assert.equal("x2", webhooks.token_of("/p?kling_token=x2"))
    assert.is_nil(webhooks.token_of("/p#kling_token=x3"))
    assert.equal("https://h/p?kling_token=t#frag", webhooks.with_token("https://h/p#frag", "t"))
  end)
end)

describe("webhooks with a journal", function()
  local sim, path
  Simulator.for_each_spec({ generation_time = 0.2 }, function(ctx) sim = ctx.sim end)
  before_each(function()
    path = Simulator.journal_path()
  end)
  after_each(function() Simulator.remove_journal(path) end)

  it("any client of the journal accepts the task, and first_delivery is true once across them", function()
    local submitter = sim:client({ journal = path })
    sim:next_task({ callback_times = 3 })
    local id = assert(submitter:submit(Simulator.params({ key = "hooked", callback_url = sim.url .. "/_sim/inbox/h" })))
    submitter:close()
    local inbox = sim:inbox(3)
    assert.equal(3, #inbox)
    -- two workers, and a restart: the journal is their shared memory
    local w1, w2 = sim:client({ journal = path }), sim:client({ journal = path })
    local firsts = 0
    for i, w in ipairs({ w1, w2, w1 }) do
      local t = assert(w:handle_callback(inbox[i].body, { url = inbox[i].path }))
      assert.equal(id, t.id)
      if t.first_delivery then firsts = firsts + 1 end
    end
    w1:close()
    w2:close()
    local restarted = sim:client({ journal = path })
    local t = assert(restarted:handle_callback(inbox[1].body, { url = inbox[1].path }))
    assert.is_false(t.first_delivery)
    assert.equal("succeed", restarted.journal:get("hooked").state)
    -- the journal's token is checked too
    assert.equal("auth", select(2, restarted:handle_callback(inbox[1].body, { url = "/_sim/inbox/h" })).kind)
    restarted:close()
    assert.equal(1, firsts)
  end)

  it("a journaled task submitted without callback_url takes no callback: no request, first_delivery unspent",
    function()
    local submitter = sim:client({ journal = path })
    local id = assert(submitter:motion(Simulator.params({ key = "plain" }))).task_id
    submitter:close()
    local c = sim:client({ journal = path })
    local before = sim:count("/kling/tasks")
    local t, err = c:handle_callback({ task_id = id }, { url = "/hook" })
    assert.is_nil(t)
    assert.equal("auth", err.kind)
    assert.equal(before, sim:count("/kling/tasks"))
    assert.is_true(c.journal.store:first_delivery(id)) -- still unspent
    c:close()
  end)

  it("a key resubmitted without callback_url after an attempt with one sends no token and raises nothing",
    function()
    local c = sim:client({ journal = path })
    sim:fault({ path = "/kling/motion", status = 400, code = "bad_request" }) -- refused: the key stays queued
    local _, err = c:submit(Simulator.params({ key = "again", callback_url = sim.url .. "/_sim/inbox/h" }))
    assert.equal("api", err.kind)
    local id = assert(c:submit(Simulator.params({ key = "again" })))
    local last = sim:requests()
    local body = cjson.decode(last[#last].body)
    assert.is_nil(body.callback_url)
    assert.equal("submitted", c.journal:get("again").state)
    assert.equal(id, c.journal:get("again").task_id)
    c:close()
  end)

  it("refuses a task the journal does not know", function()
    local stranger = sim:client()
    local id = assert(stranger:submit(Simulator.params()))
    stranger:close()
    local c = sim:client({ journal = path })
    local t, err = c:handle_callback({ task_id = id })
    c:close()
    assert.is_nil(t)
    assert.equal("not_found", err.kind)
  end)
end)
