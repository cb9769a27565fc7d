-- The hand-over (handover.lua) against a real journal file and its writer
-- thread, with a scheduler that records what it is told instead of holding
-- real bodies: a held body goes once "sending" is committed for an entry
-- that is this handle's and queued, and never otherwise.
local Handover = require "kling.handover"
local Store = require "kling.journal.store"
local Simulator = require "helpers.simulator"

describe("the hand-over", function()
  local path, store, held, released, handing
  before_each(function()
    path = Simulator.journal_path()
    store = assert(Store.open(path))
    held, released, handing = {}, {}, {}
  end)
  after_each(function()
    store:close()
    Simulator.remove_journal(path)
  end)

  local scheduler = {
    held = function() return held end,
    handing = function(_, id) handing[#handing + 1] = id end,
    release = function(_, id, ok) released[id] = ok end,
  }

  local function claim(key)
    assert(store:claim(key, function() return "submit" end, { endpoint = "motion", request = "{}" }))
  end

  -- What one flush point after another does: stage, commit, act.
  local function flush_until_released(h, ids)
    local tracker = store.tracker
    h:stage_held(tracker)
    store.db:barrier()
    for _ = 1, 50 do
      local done = store.db:completed()
      for i = 1, #done, 2 do h:completed(done[i], done[i + 1]) end
      local all = true
      for _, id in ipairs(ids) do all = all and released[id] ~= nil end
      if all then return end
      store.db:barrier()
    end
    error("never released")
  end

  it("releases a held body once its entry is committed as sending, and only its own", function()
    claim("mine")
    held[1] = { id = 7, key = "mine" }
    local h = Handover.new(scheduler, store:owner())
    -- staged once: a second flush point before the commit does not stage it again
    h:stage_held(store.tracker)
    h:stage_held(store.tracker)
    assert.same({ 7 }, handing)
    flush_until_released(h, { 7 })
    assert.is_true(released[7])
    assert.equal("sending", store:get("mine").state)
  end)

  it("ends a held body with nothing sent when the entry is not this handle's queued one", function()
    local other = assert(Store.open(path))
    assert(other:claim("theirs", function() return "submit" end, { endpoint = "motion", request = "{}" }))
    held[1] = { id = 8, key = "theirs" }   -- another handle's entry
    held[2] = { id = 9, key = "forgotten" } -- no entry at all
    local h = Handover.new(scheduler, store:owner())
    flush_until_released(h, { 8, 9 })
    assert.is_false(released[8])
    assert.is_false(released[9])
    assert.equal("queued", store:get("theirs").state)
    other:close()
  end)
end)
