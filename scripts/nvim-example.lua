-- Runs examples/nvim/kling_motion.lua in a headless Neovim, the way a user
-- would: kling found through the runtimepath (lua/kling/core.so from make
-- nvim), :KlingMotion on local files. From the repository's directory:
--   nvim --headless --clean --cmd 'set rtp^=.' -c 'luafile scripts/nvim-example.lua'
-- What it measured goes to $KLING_NVIM_REPORT as JSON (spec/nvim_spec.lua
-- reads it), else to stdout; then Neovim quits (exit 1 if the job failed):
--   idle_steps       kling steps in the second before any job (want 0)
--   job_steps        steps from :KlingMotion to the saved video
--   read_ms          a task read, from spawn to its answer handled in a job
--   idle_after       steps in the second after the last job ended (want 0)
local dir = vim.fn.tempname()
vim.fn.mkdir(dir, "p")
local media = require "kling.simulator.media"
media.write(dir .. "/person.png", media.png(640, 800))
media.write(dir .. "/dance.mp4", media.video(1280, 720, 5))

local report = { saved = false }
local function finish()
  local text = vim.fn.json_encode(report)
  local path = os.getenv("KLING_NVIM_REPORT")
  if path then
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
  else
    io.stdout:write(text, "\n")
  end
  vim.fn.delete(dir, "rf")
  vim.cmd(report.saved and "qa!" or "cq!")
end
vim.defer_fn(function() report.error = "no answer within 60 s" finish() end, 60000)

local example = dofile("examples/nvim/kling_motion.lua")
local client, loop = example.client, example.loop

-- after the video is saved: one task read spawned from an editor timer
-- (outside any step: the spawn itself must wake the loop), then a quiet second
local function measure_read()
  report.job_steps = loop.steps - report.idle_steps
  vim.defer_fn(function()
    local started = vim.loop.hrtime()
    client:spawn(function()
      assert(client:task(report.task_id))
      report.read_ms = (vim.loop.hrtime() - started) / 1e6
      local before = loop.steps
      vim.defer_fn(function()
        report.idle_after = loop.steps - before
        finish()
      end, 1000)
    end)
  end, 100)
end

vim.notify = function(message, level)
  report.task_id = report.task_id or message:match("^kling: submitted (%S+)")
  if message:match("^kling: saved ") then
    report.saved = true
    measure_read()
  elseif level == vim.log.levels.ERROR then
    report.error = message
    finish()
  end
end

vim.defer_fn(function()
  report.idle_steps = loop.steps
  vim.cmd(("KlingMotion %s/person.png %s/dance.mp4 %s/motion.mp4"):format(dir, dir, dir))
end, 1000)
