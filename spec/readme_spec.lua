-- Every snippet of README.md runs as pasted: the shell blocks in bash, the
-- Lua blocks in the runtime under test, one after the other in one new
-- directory, with the environment the README's offline block exports (the
-- simulator it starts on port 8080). Only the set-up blocks (make,
-- luarocks: what new-machine-test runs on a fresh Debian) are left out. A
-- block whose fence names a file (```lua examples/love/main.lua) must be that
-- file as it is: its host runs it (Neovim, nginx, LOVE), through its own spec.
local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- The fenced blocks of text: { lang =, code =, line = }.
local function blocks(text)
  local list, current, n = {}, nil, 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    local fence, source = line:match("^```(%w*)%s*(%S*)%s*$")
    if fence and not current then
      current = { lang = fence, source = source ~= "" and source or nil, lines = {}, line = n }
    elseif fence ~= nil and current then
      current.code = table.concat(current.lines, "\n") .. "\n"
      list[#list + 1] = current
      current = nil
    elseif current then
      current.lines[#current.lines + 1] = line
    end
  end
  return list
end

local function is_setup(block)
  return block.lang == "sh" and (block.code:find("^make ") or block.code:find("\nmake ")
    or block.code:find("luarocks"))
end

describe("README.md", function()
  it("has snippets that run as pasted, against the simulator", function()
    local lua = os.getenv("KLING_LUA") or "lua5.4"
    local root = os.getenv("PWD") or "."
    local dir = require("helpers.simulator").tempdir()
    -- `kling` on the PATH runs with the Lua under test
    local bin = dir .. "/.bin"
    os.execute("mkdir -p " .. quote(bin))
    local shim = assert(io.open(bin .. "/kling", "w"))
    shim:write(("#!/bin/sh\nexec %s %s/bin/kling \"$@\"\n"):format(lua, root))
    shim:close()
    os.execute("chmod +x " .. quote(bin .. "/kling"))
    -- short polls through the environment (KLING_<OPTION>): the snippets stay as they are
    local env = ("cd %s && export PATH=%s:$PATH LUA_PATH=%s LUA_CPATH=%s KLING_POLL_INTERVAL=0.05 "
      .. "KLING_MAX_POLL_INTERVAL=0.2 && "):format(quote(dir), quote(bin), quote(os.getenv("LUA_PATH") or ""),
      quote(os.getenv("LUA_CPATH") or ""))
    local exports = "" -- what the shell blocks export, for the blocks after them
    local ran, from_files = 0, 0
    local ok, failure = pcall(function()
      -- the offline block first: it starts the simulator and exports what the others use
      local list, ordered = blocks(read(root .. "/README.md")), {}
      for _, block in ipairs(list) do
        if block.code:find("kling simulator", 1, true) then table.insert(ordered, 1, block)
        else ordered[#ordered + 1] = block end
      end
      for _, block in ipairs(ordered) do
        if block.source then
          -- ```lua examples/x.lua: the file as it is, which its host's spec
          -- runs (spec/nvim_spec.lua, spec/openresty_spec.lua, make example-love)
          assert(read(root .. "/" .. block.source) == block.code,
            ("README.md line %d is not %s as it is"):format(block.line, block.source))
          from_files = from_files + 1
        elseif (block.lang == "sh" or block.lang == "lua") and not is_setup(block) then
          local file = ("%s/.block-%d.%s"):format(dir, block.line, block.lang)
          local f = assert(io.open(file, "w"))
          f:write(block.code)
          f:close()
          local cmd
          if block.lang == "sh" then
            cmd = ("%s%s set -e; . %s; export -p > %s/.exports"):format(env, exports, quote(file), quote(dir))
          else
            cmd = ("%s%s %s %s"):format(env, exports, lua, quote(file))
          end
          -- into a file, not a pipe: a server a block leaves in the background holds its output open
          os.execute("bash -c " .. quote(cmd) .. " > " .. quote(dir .. "/.out") .. " 2>&1; echo \"exit $?\" >> "
            .. quote(dir .. "/.out"))
          local out = read(dir .. "/.out")
          assert(out:find("exit 0\n$"), ("README.md line %d (%s) failed:\n%s\n%s"):format(block.line, block.lang,
            block.code, out))
          if block.lang == "sh" then
            local saved = io.open(dir .. "/.exports")
            if saved then
              local lines = {}
              for line in saved:lines() do
                local name = line:match("^declare %-x (ACEDATACLOUD_[%w_]+)=")
                if name then lines[#lines + 1] = line:gsub("^declare %-x ", "export ") .. "; " end
              end
              saved:close()
              exports = table.concat(lines)
            end
          end
          ran = ran + 1
        end
      end
    end)
    -- the simulator the offline block started
    os.execute("bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080 && printf \"POST /_sim/shutdown HTTP/1.1\\r\\nHost: x\\r\\n"
      .. "Content-Length: 0\\r\\n\\r\\n\" >&3' 2>/dev/null")
    require("helpers.simulator").remove_dir(dir)
    assert(ok, failure)
    assert.is_true(ran >= 8, "only " .. ran .. " snippets ran")
    assert.is_true(from_files >= 4, "only " .. from_files .. " snippets are the examples' files")
  end)
end)
