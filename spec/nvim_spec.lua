-- Neovim as a host: a headless Neovim finds kling through its runtimepath
-- (lua/kling/core.so from make nvim, as a plugin manager's build step makes
-- it) and runs examples/nvim/kling_motion.lua through scripts/nvim-example.lua:
-- no kling step while nothing is pending, an answer handled at once.
local cjson = require "cjson"
local Simulator = require "helpers.simulator"


describe("Neovim (kling on the runtimepath, kling.loop.uv on the editor's loop)", function()
  -- pending where Neovim is not set up; make example-nvim (CI) sets it up
  -- and asks with KLING_HOST_SPECS=required that it run
  local missing = not Simulator.have_command("nvim") and "Neovim is not installed (make example-nvim installs it)"
    or not Simulator.file_exists("lua/kling/core.so")
      and "lua/kling/core.so is not built: make nvim (make example-nvim does)"
  if missing then
    if os.getenv("KLING_HOST_SPECS") == "required" then error(missing) end
    pending(missing)
    return
  end

  local sim
  setup(function() sim = Simulator.start({ generation_time = 0.5 }) end)
  teardown(function() sim:stop() end)

  it("steps 0 times while idle, runs :KlingMotion to a saved video, answers a read in milliseconds", function()
    local report_path = os.tmpname()
    -- the environment of a user's editor: no LUA_PATH or LUA_CPATH (the
    -- suite's point at another Lua's modules), kling only through the runtimepath
    local cmd = ("env -u LUA_PATH -u LUA_CPATH ACEDATACLOUD_API_BASE_URL=%s ACEDATACLOUD_API_TOKEN=%s "
      .. "ACEDATACLOUD_PLATFORM_BASE_URL=%s ACEDATACLOUD_PLATFORM_TOKEN=sim-platform-token "
      .. "KLING_POLL_INTERVAL=0.2 KLING_NVIM_REPORT=%s "
      .. "nvim --headless --clean --cmd 'set rtp^=.' -c 'luafile scripts/nvim-example.lua' </dev/null 2>&1")
      :format(sim.url, Simulator.TOKEN, sim.url, report_path)
    local out = io.popen(cmd)
    local said = out:read("*a")
    out:close()
    local text = Simulator.read_file(report_path)
    os.remove(report_path)
    local ok, report = pcall(cjson.decode, text)
    assert(ok and type(report) == "table", "no report from Neovim: " .. said)
    assert.is_nil(report.error)
    assert.is_true(report.saved)
    assert.equal(0, report.idle_steps)   -- no timer ticking before any job
    assert.equal(0, report.idle_after)   -- nor after the last one ended
    -- upload, submit and a few polls of 0.2 s: a step per event, not per tick
    assert.is_true(report.job_steps < 60, report.job_steps .. " steps for one job")
    -- spawned from an editor timer: the wake pipe, the request, the answer
    -- handled as it arrived (a 100 ms timer would take up to 100 ms)
    assert.is_true(report.read_ms < 20, ("a task read took %.1f ms"):format(report.read_ms))
  end)
end)
