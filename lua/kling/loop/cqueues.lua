-- kling.loop.cqueues(client [, cq]): a coroutine in the cqueues controller cq
-- (a new one by default) that waits with cqueues.poll(client), which takes
-- the client as it is (pollfd, events, timeout: cqueues' convention), and
-- then steps it. An idle client has no timeout, so the wait is on the
-- descriptor alone. Returns a handle: handle.controller (cq, to run with
-- cq:loop() or step with cq:step()), handle:stop(), handle:close(grace)
-- (stops, then closes the client), handle.steps.
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local cqueues = require "cqueues"
local condition = require "cqueues.condition"
local new_handle = require "kling.loop.handle"

return function(client, cq)
  cq = cq or cqueues.new()
  local fd, err = client:pollfd()
  if not fd then return nil, err end
  local stop = condition.new()
  local handle = new_handle(client, function() stop:signal() end, { controller = cq })

  cq:wrap(function()
    -- (a stop or a close from inside a step is seen before the next wait:
    -- a condition signalled before it is waited on does not wake it)
    while not handle.stopped and not client:is_closed() do
      cqueues.poll(client, stop)
      if handle.stopped or client:is_closed() then return end
      handle.steps = handle.steps + 1
      client:step(0)
    end
  end)

  return handle
end
