-- kling.loop.cqueues(client [, cq]): a coroutine in the cqueues controller cq
-- (a new one by default) that waits with cqueues.poll(client), which takes
-- the client as it is (pollfd, events, timeout: cqueues' convention), and
-- then steps it. An idle client has no timeout, so the wait is on the
-- descriptor alone. Returns a handle: handle.controller (cq, to run with
-- cq:loop() or step with cq:step()), handle:stop(), handle:close(grace)
-- (stops, then closes the client), handle.steps.
local cqueues = require "cqueues"
local condition = require "cqueues.condition"

return function(client, cq)
  cq = cq or cqueues.new()
  local fd, err = client:pollfd()
  if not fd then return nil, err end
  local stop = condition.new()
  local handle = { controller = cq, steps = 0 }
  local stopped = false

  cq:wrap(function()
    -- (a stop or a close from inside a step is seen before the next wait:
    -- a condition signalled before it is waited on does not wake it)
    while not stopped and not client:is_closed() do
      cqueues.poll(client, stop)
      if stopped or client:is_closed() then return end
      handle.steps = handle.steps + 1
      client:step(0)
    end
  end)

  function handle.stop()
    if stopped then return end
    stopped = true
    stop:signal()
  end

  function handle:close(grace)
    self:stop()
    client:close(grace)
  end

  client:on_close(function() handle:stop() end)
  return handle
end
