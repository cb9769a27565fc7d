-- Neovim (LuaJIT): drive the client from a libuv timer so the editor never blocks.
--   :luafile examples/nvim/kling_motion.lua
local kling = require "kling"

local client, new_err = kling.new()
if not client then error(tostring(new_err)) end -- (assert would print a table on Lua 5.1/5.2)
local job = client:spawn(function()
  return client:motion({
    image_url = "https://example.com/hero.png", video_url = "https://example.com/dance.mp4",
    character_orientation = "image", mode = "std",
  })
end)

local timer = vim.loop.new_timer()
timer:start(0, 100, vim.schedule_wrap(function()
  if client:step(0) == 0 then -- nothing pending: the job has ended
    timer:stop()
    timer:close()
    local result, err = job:result()
    vim.notify(result and ("kling: " .. result.video_url) or ("kling: " .. tostring(err)))
    client:close()
  end
end))
