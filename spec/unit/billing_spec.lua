-- The billing rule as truth tables: no server, no journal file.
local billing = require "kling.billing"

describe("billing: may a failed submit have been billed?", function()
  local cases = {
    -- err                                                          taken  resend now
    { { kind = "network", reason = "connect", sent = false },        false, true },
    { { kind = "network", reason = "resolve", sent = false },        false, true },
    { { kind = "network", reason = "empty", sent = true },           true,  false },
    { { kind = "network", reason = "protocol", sent = true },        true,  false },
    { { kind = "journal", reason = "journal", sent = false },        false, true },
    { { kind = "timeout", reason = "timeout", sent = false },        false, true },
    { { kind = "timeout", reason = "timeout", sent = true },         true,  false },
    { { kind = "bad_response", reason = "bad_status" },              true,  false },
    { { kind = "bad_response", status = 200 },                       true,  false },
    { { kind = "closed", in_flight = true },                         true,  false },
    { { kind = "closed" },                                           false, false },
    { { kind = "api", status = 500 },                                true,  false },
    { { kind = "api", status = 503 },                                true,  false },
    { { kind = "api", status = 303 },                                true,  false },
    { { kind = "api", status = 200 },                                true,  false },
    { { kind = "api", status = 408 },                                true,  false },
    { { kind = "api", status = 400 },                                false, false },
    { { kind = "auth", status = 401 },                               false, false },
    { { kind = "auth", status = 403 },                               false, false },
    { { kind = "rate_limited", status = 429 },                       false, true },
  }
  for i, case in ipairs(cases) do
    local err, taken, resend = case[1], case[2], case[3]
    it(("row %d: %s %s"):format(i, err.kind, tostring(err.status or err.reason or "")), function()
      assert.equal(taken, billing.may_have_been_taken(err))
      assert.equal(resend, billing.provably_not_taken(err))
      assert.equal(taken and "uncertain" or "queued", billing.after_failure(err))
    end)
  end

  it("an error already flagged maybe_submitted stays uncertain", function()
    assert.equal("uncertain", billing.after_failure({ kind = "api", status = 400, maybe_submitted = true }))
  end)
end)

describe("billing: what a journal entry allows", function()
  local A, B = "owner-a", "owner-b"
  local function entry(state, owner) return { state = state, owner = owner } end
  local cases = {
    -- entry                       mine   active alive  retry  action
    { nil,                         false, false, false, false, "submit" },
    { entry("succeed", nil),       false, false, false, false, "result" },
    { entry("failed", nil),        false, false, false, false, "failure" },
    { entry("failed", nil),        false, false, false, true,  "submit" },
    { entry("submitted", B),       false, false, true,  false, "follow" },
    { entry("submitted", nil),     true,  true,  true,  true,  "follow" },
    { entry("uncertain", nil),     false, false, false, true,  "uncertain" },
    { entry("queued", nil),        false, false, false, false, "submit" },
    { entry("queued", B),          false, false, true,  false, "wait" },
    { entry("queued", B),          false, false, false, false, "submit" },
    { entry("queued", A),          true,  true,  true,  false, "wait" },
    { entry("queued", A),          true,  false, true,  false, "submit" },
    { entry("sending", B),         false, false, true,  false, "wait" },
    { entry("sending", B),         false, false, false, false, "uncertain" },
    { entry("sending", A),         true,  true,  true,  false, "wait" },
    { entry("sending", A),         true,  false, true,  false, "uncertain" },
    { entry("sending", nil),       false, false, false, false, "uncertain" },
  }
  for i, case in ipairs(cases) do
    local e, action = case[1], case[6]
    it(("row %d: %s -> %s"):format(i, e and (e.state .. "/" .. tostring(e.owner)) or "unknown", action), function()
      assert.equal(action, billing.on_claim(e, { mine = case[2], active = case[3], owner_alive = case[4],
                                                  retry_failed = case[5] }))
    end)
  end
end)
