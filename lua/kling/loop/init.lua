-- kling inside a host's event loop (README, "Inside an event loop"). Each
-- adapter is a few lines on top of the pollable client (client:pollfd(),
-- :timeout(), cqueues' convention) and loads its library only when called:
--   kling.loop.uv(client [, uv])       luv, or Neovim's vim.uv / vim.loop
--   kling.loop.cqueues(client [, cq])  a cqueues controller
--   kling.loop.ngx(client)             OpenResty (lua-nginx-module)
-- A game's loop needs none: it calls client:step(0) once per frame.
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local loop = {}

for _, name in ipairs({ "uv", "cqueues", "ngx" }) do
  loop[name] = function(...) return require("kling.loop." .. name)(...) end
end

return loop
