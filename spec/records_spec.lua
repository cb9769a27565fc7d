-- kling.records (src/records.c): a batched answer decoded apart from the
-- caller's heap, each record copied out when its reader asks for it.
local core = require "kling.core"
local Simulator = require "helpers.simulator"

-- A retrieve_batch answer of n records, as the API sends them.
local function batch_text(n)
  local items = {}
  for i = 1, n do
    items[i] = {
      id = ("task-%04d"):format(i), created_at = 1765000000.25 + i, type = "motion", trace_id = "trace-" .. i,
      request = { image_url = "https://cdn.example.test/p.jpg", video_url = "https://cdn.example.test/d.mp4",
                  character_orientation = "image", mode = "std" },
      response = { task_id = ("task-%04d"):format(i), state = "processing" },
    }
  end
  return core.encode({ items = items, count = n })
end

describe("kling.records", function()
  it("keeps the list apart and copies out the record asked for, whole", function()
    local text = '{"count":2,"note":"x","items":[{"id":"a","n":3,"f":1.5,"ok":true,"gone":null,'
      .. '"deep":{"list":[1,{"k":"v"},null]}},{"id":"b","response":{"state":"succeed"}}]}'
    local answer = assert(core.records(text, "items", "id"))
    assert.equal(2, answer.count)
    assert.equal("x", answer.note)
    local items = answer.items
    assert.equal("kling.records", getmetatable(items).__name)
    assert.equal(2, items:count())
    assert.equal("kling.records (2)", tostring(items))
    local a = items:get("a")
    assert.same(core.decode(text).items[1], a)
    assert.equal(core.null, a.gone)
    assert.equal(core.null, a.deep.list[3])
    if math.type then -- integers stay integers, as cjson made them
      assert.equal(math.type(core.decode(text).items[1].n), math.type(a.n))
    end
    assert.equal("succeed", items:get("b").response.state)
    -- each reader gets a copy of its own
    a.n = 99
    assert.equal(3, items:get("a").n)
  end)

  it("finds only records with a non-empty string id, and nothing else", function()
    local answer = assert(core.records('{"items":[7,"s",{"id":""},{"id":5},{"noid":1},{"id":"ok"},[1]]}',
      "items", "id"))
    assert.equal(7, answer.items:count())
    assert.equal("ok", answer.items:get("ok").id)
    for _, id in ipairs({ "", "5", "noid", "s", "missing" }) do assert.is_nil(answer.items:get(id)) end
    assert.has_error(function() answer.items:get() end)
  end)

  it("leaves an answer without the list as cjson decodes it", function()
    assert.same({ items = 5 }, core.records('{"items":5}', "items", "id"))
    assert.same({ 1, 2 }, core.records("[1,2]", "items", "id"))
    assert.same({ other = { 1 } }, core.records('{"other":[1]}', "items", "id"))
    assert.equal("text", core.records('"text"', "items", "id"))
  end)

  it("reports malformed and hostile JSON as an error, not a crash", function()
    local none, err = core.records('{"items":[1,2', "items", "id")
    assert.is_nil(none)
    assert.is_string(err)
    none, err = core.records(('['):rep(100000), "items", "id")
    assert.is_nil(none)
    assert.matches("nested", err)
    -- the decoder still works afterwards
    assert.equal("a", core.records('{"items":[{"id":"a"}]}', "items", "id").items:get("a").id)
  end)

  it("refuses reads once closed, and outlives many answers in any order", function()
    local answer = assert(core.records('{"items":[{"id":"a"}]}', "items", "id"))
    answer.items:close()
    answer.items:close()
    assert.equal(0, answer.items:count())
    assert.equal("kling.records (closed)", tostring(answer.items))
    assert.has_error(function() answer.items:get("a") end, "records are closed")
    local kept = {}
    for i = 1, 200 do
      local list = assert(core.records(batch_text(3), "items", "id")).items
      if i % 3 == 0 then list:close() elseif i % 3 == 1 then kept[#kept + 1] = list end
    end
    collectgarbage()
    collectgarbage()
    for _, list in ipairs(kept) do assert.equal("task-0002", list:get("task-0002").id) end
  end)

  it("allocates next to nothing in the caller's heap until a record is read", function()
    local text = batch_text(50)
    -- warm up: the decoder, and the strings both ways share
    core.records(text, "items", "id").items:close()
    core.decode(text)
    collectgarbage()
    collectgarbage("stop")
    local before = collectgarbage("count")
    local answer = assert(core.records(text, "items", "id"))
    local apart = collectgarbage("count") - before
    before = collectgarbage("count")
    local whole = core.decode(text)
    local decoded = collectgarbage("count") - before
    before = collectgarbage("count")
    local one = answer.items:get("task-0007")
    local read = collectgarbage("count") - before
    collectgarbage("restart")
    assert.same(whole.items[7], one)
    assert.is_true(apart < 2, ("apart: %.2f KB"):format(apart))
    assert.is_true(decoded > 15, ("whole: %.2f KB"):format(decoded))
    assert.is_true(read < decoded / 10, ("one record: %.2f KB of %.2f"):format(read, decoded))
  end)

  describe("through kling.multi", function()
    local sim
    Simulator.for_each_spec({}, function(ctx) sim = ctx.sim end)

    local function fetch(m, request)
      local r, err = m:run(request)
      assert(r, err)
      return r
    end

    local function apart_request()
      return { url = sim.url .. "/kling/tasks", body = "{}", decode = true, apart = "items", apart_key = "id" }
    end

    it("keeps a 2xx answer's list apart when asked, and decodes the rest whole", function()
      local m = core.multi()
      local json = core.decode(batch_text(3))
      sim:fault({ path = "/kling/tasks", status = 200, json = json, times = 1 })
      local r = fetch(m, apart_request())
      assert.equal(3, r.json.count)
      assert.equal("kling.records", getmetatable(r.json.items).__name)
      assert.same(json.items[2], r.json.items:get("task-0002"))
      -- an error's body is read whole (the error path reads its fields)
      sim:fault({ path = "/kling/tasks", status = 500, json = json, times = 1 })
      r = fetch(m, apart_request())
      assert.equal(500, r.status)
      assert.same(json.items, r.json.items)
      -- without apart, as always
      sim:fault({ path = "/kling/tasks", status = 200, json = json, times = 1 })
      r = fetch(m, { url = sim.url .. "/kling/tasks", body = "{}", decode = true })
      assert.same(json.items, r.json.items)
      sim:fault({ path = "/kling/tasks", status = 200, json = json, times = 1 })
      local items = fetch(m, { url = sim.url .. "/kling/tasks", body = "{}", decode = true, apart = "items",
        apart_key = "id" }).json.items
      m:close()
      collectgarbage()
      -- the records outlive their client
      assert.equal(3, items:count())
      assert.same(json.items[3], items:get("task-0003"))
    end)

    it("checks the apart fields before anything is sent", function()
      local m = core.multi()
      local url = sim.url .. "/kling/tasks"
      local before = sim:count("/kling/tasks")
      for _, bad in ipairs({
        { apart = "items" }, { apart_key = "id" }, { apart = "", apart_key = "id" },
        { apart = ("x"):rep(32), apart_key = "id" }, { apart = "it\0ems", apart_key = "id" },
        { apart = 1, apart_key = "id" },
      }) do
        bad.url, bad.body, bad.decode = url, "{}", true
        assert.has_error(function() m:add(bad) end)
      end
      assert.equal(before, sim:count("/kling/tasks"))
      m:close()
    end)

    it("a client's polls of many tasks go through it", function()
      local client = sim:client()
      local ids = {}
      for i = 1, 3 do ids[i] = assert(client:submit(Simulator.params())) end
      ids[4] = "unknown-task"
      local list = assert(client:tasks(ids))
      for i = 1, 3 do
        assert.equal(ids[i], list[i].id)
        assert.is_table(list[i].raw.request)
      end
      assert.equal("not_found", list[4].state)
      client:close()
    end)
  end)
end)
