-- The hand-over of a journaled submit: the moment a submit leaves the
-- machine, made durable before it happens. Every accepted submit is billed,
-- and a crash must leave the journal saying whether the request may have
-- left, so (docs/design.md, "Where handed over is"):
--
--   1. submission.lua sends the body with `hold_key` = the entry's key:
--      kling.core gives libcurl the body through a read callback that
--      pauses (src/transfer.c, on_read) until released. The request line
--      and headers may leave; a POST without its body is never acted on.
--   2. At the scheduler's next flush point, stage_held() stages, for every
--      body newly held, UPDATE jobs SET state = 'sending' WHERE key = ?
--      AND owner = (this handle) AND state = 'queued', and tells the
--      scheduler the submit counts as on the wire from now on (a cancel
--      waits for its answer).
--   3. The journal's writer commits it with the other writes of that moment
--      (journal/tracker.lua; src/journal_writer.c).
--   4. At the flush point after the commit, completed() releases the body
--      (one row changed: libcurl sends it) or ends the transfer with
--      nothing sent (0 rows: the entry is no longer this handle's queued
--      one; or the commit failed): reason "journal", provably not taken.
--   5. submission.lua records "submitted" with the task id the answer
--      carries, or what the failure leaves (billing.after_failure).
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local core = require "kling.core"

local Handover = {}
Handover.__index = Handover

-- ?1 key, ?2 owner, ?3 now: only a queued entry of this handle's becomes
-- sending; anything else keeps the request's body back for good.
local HANDOVER = [[UPDATE jobs SET state = 'sending', updated_at = ?3
  WHERE key = ?1 AND owner = ?2 AND state = 'queued']]

-- scheduler: held(), handing(id), release(id, ok); owner: this journal
-- handle's owner id.
function Handover.new(scheduler, owner)
  return setmetatable({ scheduler = scheduler, owner = owner,
                        handing = {},     -- held transfer id -> seq of its hand-over
                        handover_of = {}, -- seq -> held transfer id
                      }, Handover)
end

-- Step 2: stages the hand-over of every body newly held (tracker: stage).
function Handover:stage_held(tracker)
  local scheduler = self.scheduler
  local held = scheduler:held()
  if #held == 0 then return end
  local t = core.time()
  for _, h in ipairs(held) do
    if not self.handing[h.id] then
      local seq = tracker:stage(HANDOVER, h.key, self.owner, t)
      self.handing[h.id], self.handover_of[seq] = seq, h.id
      scheduler:handing(h.id)
    end
  end
end

-- Step 4: the outcome of write seq. true if it was a hand-over (acted on
-- here), false if it is someone else's.
function Handover:completed(seq, outcome)
  local id = self.handover_of[seq]
  if not id then return false end
  self.handover_of[seq], self.handing[id] = nil, nil
  self.scheduler:release(id, outcome == 1)
  return true
end

return Handover
