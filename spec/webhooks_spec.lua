-- Webhooks with a per-job secret in the callback URL, and, with a journal,
-- knowledge and de-duplication shared by every client of that journal.
local core = require "kling.core"
local webhooks = require "kling.webhooks"
local Simulator = require "helpers.simulator"

describe("webhook tokens", function()
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

  it("puts 128 random bits into each job's callback URL and checks them before any request", function()
    local hook = sim.url .. "/_sim/inbox/hook?user=7"
    local a = assert(client:submit(Simulator.params({ callback_url = hook })))
    local b = assert(client:submit(Simulator.params({ callback_url = hook })))
    local sent = {}
    for _, r in ipairs(sim:requests()) do
      if r.path == "/kling/motion" then sent[#sent + 1] = require("cjson").decode(r.body).callback_url end
    end
    local ta, tb = webhooks.token_of(sent[1]), webhooks.token_of(sent[2])
    assert.truthy(sent[1]:find("?user=7&kling_token=", 1, true))
    assert.equal(32, #ta)
    assert.truthy(ta:match("^%x+$"))
    assert.are_not.equal(ta, tb)
    local inbox = delivered(2)
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
  setup(function() sim = Simulator.start({ generation_time = 0.2 }) end)
  teardown(function() sim:stop() end)
  before_each(function()
    sim:reset()
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
