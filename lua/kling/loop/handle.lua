-- The handle kling.loop.uv and kling.loop.cqueues return:
--   handle.steps          how many times the loop stepped the client
--   handle.stopped        true once stopped
--   handle:stop()         halt() once (the loop stops watching the client);
--                         idempotent, and run when the client closes
--   handle:close(grace)   stop, then close the client
-- fields: the adapter's own (cqueues' controller), or nil.
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
return function(client, halt, fields)
  local handle = fields or {}
  handle.steps, handle.stopped = 0, false

  function handle.stop()
    if handle.stopped then return end
    handle.stopped = true
    halt()
  end

  function handle:close(grace)
    self:stop()
    client:close(grace)
  end

  client:on_close(handle.stop)
  return handle
end
