-- The billing rule, in one place: every accepted submit (to any endpoint) is
-- billed, so a submit is sent again only when the server provably never took
-- it, and a key in the journal is submitted only when nothing can have been
-- billed for it yet. Pure functions of errors and journal entries: the truth
-- tables are in spec/billing_spec.lua and need no server.
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local billing = {}

-- Could the server have accepted (and billed) a submit that failed this way?
-- Any submit that was delivered and not plainly refused might have been.
function billing.may_have_been_taken(err)
  local kind = err.kind
  if kind == "network" then return err.sent == true end
  if kind == "timeout" then return err.sent ~= false end
  if kind == "bad_response" then return true end
  if kind == "closed" then return err.in_flight == true end
  local s = err.status
  -- a 4xx (but 408) is a refusal; 2xx, 3xx (303 means "processed") and 5xx are not
  return s ~= nil and not (s >= 400 and s <= 499 and s ~= 408)
end

-- May the same submit be sent again at once? Only when nothing reached a
-- server (DNS, connect, a journal that refused the hand-over) or it answered 429.
function billing.provably_not_taken(err)
  if err.status == 429 then return true end
  if err.reason == "journal" then return true end
  return (err.reason == "resolve" or err.reason == "connect" or err.reason == "timeout")
    and err.sent == false
end

-- What a failed submit leaves in the journal: "queued" when no job can exist
-- (the key may be submitted again), "uncertain" when one may.
function billing.after_failure(err)
  if billing.may_have_been_taken(err) or err.maybe_submitted then return "uncertain" end
  return "queued"
end

-- What to do with a key, given its journal entry (nil: unknown) and:
--   ctx.mine         the entry's owner is this client's journal handle
--   ctx.active       this client is working on the key right now
--   ctx.owner_alive  the entry's owner (another handle) is still open
--   ctx.retry_failed a failed task may be submitted again
-- Returns one of:
--   "submit"    claim it and send (nothing was billed for it)
--   "result"    it succeeded: the stored answer, no request
--   "failure"   it failed: the stored error, no request
--   "follow"    it has a task id: wait for that task, never submit again
--   "wait"      another submit of it is under way: look again later
--   "uncertain" a submit may have been billed without a known task id
function billing.on_claim(entry, ctx)
  if entry == nil then return "submit" end
  local state = entry.state
  if state == "succeed" then return "result" end
  if state == "failed" then return ctx.retry_failed and "submit" or "failure" end
  if state == "submitted" then return "follow" end
  if state == "uncertain" then return "uncertain" end
  local taken = entry.owner ~= nil and ((ctx.mine and ctx.active) or (not ctx.mine and ctx.owner_alive))
  if state == "queued" then return taken and "wait" or "submit" end
  if state == "sending" then return taken and "wait" or "uncertain" end
  error("kling: unknown journal state " .. tostring(state))
end

return billing
