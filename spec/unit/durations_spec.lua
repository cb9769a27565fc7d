-- What kling.durations learns from finished tasks, and what it refuses to
-- learn from (a hostile or broken answer must not make waits poll early).
local Durations = require "kling.durations"

local function finished(kind, created, finished_at, failed)
  local t = { done = true, created_at = created, finished_at = finished_at, raw = { type = kind } }
  if failed then t.error = {} else t.result = {} end
  return t
end

describe("task durations", function()
  it("knows nothing before a task has finished", function()
    local d = Durations.new()
    assert.is_nil(d:expected({ raw = { type = "motion" } }))
  end)

  it("keeps the shortest generation time seen, per record type", function()
    local d = Durations.new()
    d:note(finished("motion", 100, 400))
    d:note(finished("motion", 200, 450))
    d:note(finished("motion", 300, 900))
    d:note(finished("videos", 100, 160))
    assert.equal(250, d:expected({ raw = { type = "motion" } }))
    assert.equal(60, d:expected({ raw = { type = "videos" } }))
    assert.is_nil(d:expected({ raw = { type = "other" } }))
    assert.is_nil(d:expected({ raw = {} })) -- untyped records are their own kind
  end)

  it("keeps at most 16 record types, whatever types a server makes up", function()
    local d = Durations.new()
    for i = 1, 1000 do d:note(finished("type" .. i, 0, i)) end
    assert.equal(1, d:expected({ raw = { type = "type1" } }))
    assert.equal(16, d:expected({ raw = { type = "type16" } }))
    assert.is_nil(d:expected({ raw = { type = "type17" } }))
    d:note(finished("type3", 0, 0.5)) -- a known type still learns
    assert.equal(0.5, d:expected({ raw = { type = "type3" } }))
  end)

  it("learns nothing from failures, missing or hostile times", function()
    local d = Durations.new()
    d:note(finished("motion", 100, 101, true))             -- a failure may end at any time
    d:note(finished("motion", 100, nil))
    d:note(finished("motion", "100", "200"))
    d:note(finished("motion", 200, 100))                  -- negative
    d:note(finished("motion", 100, 100))                  -- zero
    d:note(finished("motion", 0, 1e12))                   -- not a generation time
    d:note(finished("motion", 0 / 0, 5))                  -- NaN
    d:note(finished("motion", 1, math.huge))
    d:note({ done = true, result = {}, created_at = 1, finished_at = 5, raw = "not a table" })
    assert.is_nil(d:expected({ raw = { type = "motion" } }))
    assert.equal(4, d:expected({ raw = "x" }))            -- the last one, as untyped
  end)
end)
