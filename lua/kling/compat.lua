-- Differences between Lua 5.1, LuaJIT and 5.2+ that the pure-Lua layer meets.
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local compat = {}

compat.unpack = table.unpack or unpack -- luacheck: ignore 143

function compat.pack(...)
  return { n = select("#", ...), ... }
end

-- PUC Lua 5.1 cannot yield across pcall; LuaJIT and 5.2+ can.
compat.pcall_yields = not (_VERSION == "Lua 5.1" and rawget(_G, "jit") == nil)

-- Closes a suspended coroutine where the runtime can (5.4 runs its pending
-- to-be-closed variables); elsewhere dropping it is all there is.
function compat.close_coroutine(co)
  if coroutine.close and coroutine.status(co) == "suspended" then
    coroutine.close(co)
  end
end

return compat
