-- `luarocks test`: the busted suite for the Lua LuaRocks runs this script
-- with (its interpreter is arg[-1]), through the Makefile, which builds
-- kling.core for that Lua and starts the simulator the specs need.
--   luarocks --lua-version 5.4 test
local lua = arg and arg[-1] or "lua"
local version = rawget(_G, "jit") and "luajit" or _VERSION:match("(%d+%.%d+)")
local cmd = ("make check LUA_VERSION=%s LUA=%s"):format(version, lua)
io.stderr:write(cmd, "\n")
local ok = os.execute(cmd)
os.exit((ok == true or ok == 0) and 0 or 1) -- 5.1 returns a status number, 5.2+ true or nil
