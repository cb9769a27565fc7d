-- Runs a shell command with a simulator started for it:
--   lua scripts/with-simulator.lua 'lua examples/motion.lua'
-- The command sees ACEDATACLOUD_API_BASE_URL and ACEDATACLOUD_API_TOKEN
-- pointing at the simulator, which stops when the command ends.
local cmd = assert(arg[1], "usage: with-simulator.lua COMMAND [GENERATION_SECONDS]")
local lua = os.getenv("KLING_LUA") or "lua5.4"
local token = "sim-token"
local sim = assert(io.popen(("%s bin/kling-simulator --port 0 --idle-exit 600 --token %s --generation-time %s")
  :format(lua, token, arg[2] or "3")))
local url = (sim:read("*l") or ""):match("(http://%S+)")
if not url then
  io.stderr:write("with-simulator: the simulator did not start\n")
  os.exit(1)
end
io.write("simulator: ", url, "\n")
io.flush()
local ok, how, code = os.execute(("ACEDATACLOUD_API_BASE_URL='%s' ACEDATACLOUD_API_TOKEN='%s' %s")
  :format(url, token, cmd))
os.execute(("%s -e \"local h=require'socket.http'; h.TIMEOUT=2; h.request('%s/_sim/shutdown', '{}')\"")
  :format(lua, url))
sim:close()
-- os.execute answers true/0 on 5.1 and true,"exit",0 on 5.2+
local status = type(ok) == "number" and ok or ((ok and 0) or code or 1)
if how == "exit" then status = code end
os.exit(status == 0 and 0 or 1)
