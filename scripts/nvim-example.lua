-- Runs examples/nvim/kling_motion.lua inside a headless Neovim (LuaJIT) and
-- quits when it reports: proof that a vim.loop timer drives the client.
--   nvim --headless --clean -l... is not in Neovim 0.7, hence:
--   nvim --headless --clean -c 'luafile scripts/nvim-example.lua'
vim.notify = function(message)
  io.stdout:write(message, "\n")
  vim.cmd("qa!")
end
vim.defer_fn(function()
  io.stdout:write("kling: no answer from the example within 60 s\n")
  vim.cmd("cq!")
end, 60000)
dofile("examples/nvim/kling_motion.lua")
