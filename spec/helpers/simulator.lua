-- Starts bin/kling-simulator as its own process on 127.0.0.1 (an OS-chosen
-- port) and talks to its /_sim/ control endpoints with luasocket, so that the
-- specs never use the library under test to observe it.
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"
local kling = require "kling"

local Simulator = {}
Simulator.__index = Simulator

Simulator.TOKEN = "sim-token"

function Simulator.start(opts)
  opts = opts or {}
  local lua = os.getenv("KLING_LUA") or "lua5.4"
  local cmd = ("%s bin/kling-simulator --port 0 --idle-exit 300 --generation-time %s --token %s")
    :format(lua, tostring(opts.generation_time or 0.3), Simulator.TOKEN)
  local proc = assert(io.popen(cmd, "r"))
  local line = proc:read("*l") or ""
  local url = line:match("(http://%S+)")
  assert(url, "the simulator did not start: " .. line)
  return setmetatable({ proc = proc, url = url }, Simulator)
end

function Simulator:request(method, path, body)
  local chunks = {}
  local payload = body and cjson.encode(body) or ""
  local ok, status = http.request({
    url = self.url .. path, method = method, sink = ltn12.sink.table(chunks),
    source = ltn12.source.string(payload),
    headers = { ["content-type"] = "application/json", ["content-length"] = #payload },
  })
  assert(ok, "simulator control request failed: " .. tostring(status))
  local text = table.concat(chunks)
  return text ~= "" and cjson.decode(text) or nil, status
end

function Simulator:stats() return (self:request("GET", "/_sim/stats")) end
function Simulator:tasks() return (self:request("GET", "/_sim/tasks")) end
function Simulator:requests() return (self:request("GET", "/_sim/requests")) end
-- The callbacks posted to /_sim/inbox; with min, waits (up to 5 s) until
-- that many have arrived.
function Simulator:inbox(min)
  return (self:request("GET", ("/_sim/inbox?min=%d&wait=5"):format(min or 0)))
end
function Simulator:reset() return self:request("POST", "/_sim/reset", {}) end
function Simulator:config(t) return self:request("POST", "/_sim/config", t) end
function Simulator:fault(f) return self:request("POST", "/_sim/faults", f) end
function Simulator:next_task(t) return self:request("POST", "/_sim/next_task", t) end

function Simulator:count(path)
  return self:stats().requests[path] or 0
end

function Simulator:stop()
  pcall(self.request, self, "POST", "/_sim/shutdown", {})
  self.proc:close()
end

-- A client tuned for fast specs: short polls and backoffs, same rules.
function Simulator:client(overrides)
  local options = {
    token = Simulator.TOKEN, base_url = self.url, timeout = 5, connect_timeout = 2,
    poll_interval = 0.05, max_poll_interval = 0.2, wait_timeout = 10,
    retry_delay = 0.01, max_retry_delay = 0.05, poll_batch_window = 0.01,
  }
  for k, v in pairs(overrides or {}) do options[k] = v end
  return assert(kling.new(options))
end

Simulator.PARAMS = {
  image_url = "https://cdn.example.test/person.jpg",
  video_url = "https://cdn.example.test/dance.mp4",
  character_orientation = "image",
  mode = "std",
}

-- A file's bytes, or "" when it cannot be read.
function Simulator.read_file(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

-- Whether a file can be opened for reading.
function Simulator.file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- Whether a command is on the PATH (a host a spec runs: nvim, nginx).
function Simulator.have_command(name)
  local probe = io.popen("command -v " .. name .. " 2>/dev/null")
  local found = probe:read("*l")
  probe:close()
  return found ~= nil and found ~= ""
end

-- A new empty directory for a spec's files; remove it with Simulator.remove_dir.
function Simulator.tempdir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(require("kling.core").mkdir(dir))
  return dir
end

function Simulator.remove_dir(dir)
  os.execute("rm -rf '" .. dir:gsub("'", "'\\''") .. "'")
end

-- A journal file of its own for a spec (removed with its WAL and owner files by cleanup).
function Simulator.journal_path()
  local path = os.tmpname()
  os.remove(path)
  return path .. ".db"
end

function Simulator.remove_journal(path)
  os.execute(("rm -rf '%s' '%s-wal' '%s-shm' '%s-owners'"):format(path, path, path, path))
end

-- The set-up every describe block that talks to the simulator shares: one
-- simulator for the block (started in its setup, stopped in its teardown),
-- reset before each spec. opts: what Simulator.start takes, and
--   journal = true   a journal file of its own for each spec (removed after)
--   dir = true       a directory of its own for each spec (removed after)
--   client = true or options: a client for each spec (on that journal, if
--                    any), closed after it
-- use(ctx) is called before each spec with ctx.sim, ctx.client,
-- ctx.journal, ctx.dir, so that the specs keep plain locals.
function Simulator.for_each_spec(opts, use)
  local busted = require "busted"
  local ctx = {}
  busted.setup(function() ctx.sim = Simulator.start(opts) end)
  busted.teardown(function() ctx.sim:stop() end)
  busted.before_each(function()
    ctx.sim:reset()
    ctx.journal = opts.journal and Simulator.journal_path() or nil
    ctx.dir = opts.dir and Simulator.tempdir() or nil
    if opts.client then
      local options = type(opts.client) == "table" and opts.client or {}
      if ctx.journal then
        local with = { journal = ctx.journal }
        for k, v in pairs(options) do with[k] = v end
        options = with
      end
      ctx.client = ctx.sim:client(options)
    end
    use(ctx)
  end)
  busted.after_each(function()
    if ctx.client then ctx.client:close() end
    if ctx.journal then Simulator.remove_journal(ctx.journal) end
    if ctx.dir then Simulator.remove_dir(ctx.dir) end
    ctx.client, ctx.journal, ctx.dir = nil, nil, nil
  end)
  return ctx
end

function Simulator.params(extra)
  local p = {}
  for k, v in pairs(Simulator.PARAMS) do p[k] = v end
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end

return Simulator
