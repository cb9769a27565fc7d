-- Neovim: :KlingMotion IMAGE VIDEO [OUTPUT] makes a motion video while you
-- keep editing. kling.loop.uv drives the client from the editor's own libuv
-- loop: it wakes when a transfer has data or a poll falls due, and not at
-- all while nothing is pending. The token comes from ACEDATACLOUD_API_TOKEN.
--   lazy.nvim: { "<this repository>", build = "make nvim" }
--   then :luafile examples/nvim/kling_motion.lua (or require it from your config)
local kling = require "kling"

local client, err = kling.new{}
if not client then error(tostring(err)) end -- (assert would print a table on Lua 5.1)
local loop = assert(require("kling.loop").uv(client)) -- vim.uv / vim.loop; steps run through vim.schedule

local function say(message, level) vim.notify("kling: " .. message, level or vim.log.levels.INFO) end

vim.api.nvim_create_user_command("KlingMotion", function(command)
  local image, video = command.fargs[1], command.fargs[2]
  local output = command.fargs[3] or "motion.mp4"
  client:spawn(function() -- a job: each call below yields to the editor instead of blocking it
    local result, failure = client:motion{
      image_file = image, video_file = video, character_orientation = "image", mode = "std",
      on_submit = function(task_id) say("submitted " .. task_id) end,
    }
    if result then result, failure = client:download(result, output) end
    if result then say("saved " .. output) else say(tostring(failure), vim.log.levels.ERROR) end
  end)
end, { nargs = "+", complete = "file", desc = "kling: a video of IMAGE's character doing VIDEO's motion" })

-- On exit, a submit already on the wire is given its timeout to learn its task id.
vim.api.nvim_create_autocmd("VimLeavePre", { callback = function() loop:close() end })

return { client = client, loop = loop }
