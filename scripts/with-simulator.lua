-- Runs a shell command with a simulator started for it:
--   lua scripts/with-simulator.lua 'lua examples/motion.lua' [GENERATION_SECONDS]
-- The command sees ACEDATACLOUD_API_BASE_URL and ACEDATACLOUD_API_TOKEN (and
-- the platform's pair) pointing at the simulator, which stops when the command ends.
-- KLING_SIM_PREFIX (say "taskset -c 1") prefixes the simulator's command line.
local http = require "socket.http"
local cjson = require "cjson"

local cmd = assert(arg[1], "usage: with-simulator.lua COMMAND [GENERATION_SECONDS]")
local lua = os.getenv("KLING_LUA") or "lua5.4"
local token = "sim-token"
local prefix = os.getenv("KLING_SIM_PREFIX") or ""
local sim = assert(io.popen(("%s %s bin/kling-simulator --port 0 --idle-exit 600 --token %s --generation-time %s")
  :format(prefix, lua, token, arg[2] or "3")))
local url = (sim:read("*l") or ""):match("(http://%S+)")
if not url then
  io.stderr:write("with-simulator: the simulator did not start\n")
  os.exit(1)
end
io.write("simulator: ", url, "\n")
io.flush()
-- the simulator plays the platform's upload endpoint too
local ok, how, code = os.execute(("export ACEDATACLOUD_API_BASE_URL='%s' ACEDATACLOUD_API_TOKEN='%s' "
  .. "ACEDATACLOUD_PLATFORM_BASE_URL='%s' ACEDATACLOUD_PLATFORM_TOKEN=sim-platform-token; %s")
  :format(url, token, url, cmd))

http.TIMEOUT = 5
local body = http.request(url .. "/_sim/stats")
local decoded, stats = pcall(cjson.decode, body or "")
if decoded then
  print(("simulator saw %d submits and %d task requests (%d of them batched)")
    :format(stats.submits, stats.retrieve + stats.retrieve_batch, stats.retrieve_batch))
end
http.request(url .. "/_sim/shutdown", "{}")
sim:close()

-- os.execute answers a number on 5.1 and true|nil, "exit", code on 5.2+
local status = type(ok) == "number" and ok or (ok and 0 or 1)
if how == "exit" then status = code end
os.exit(status == 0 and 0 or 1)
