-- The simulator as a program: `kling-simulator` and `kling simulator`.
--   [--port N] [--host 127.0.0.1] [--token T] [--platform-token T]
--   [--generation-time SECONDS] [--idle-exit SECONDS] [--samples DIR]
-- --samples DIR writes person.png and dance.mp4 there first: local media that
-- fit Kling's limits, for trying `kling motion` with files.
-- Prints "kling-simulator listening on http://HOST:PORT" once it accepts
-- connections (port 0, the default, lets the OS choose); runs until
-- /_sim/shutdown, or until idle for --idle-exit seconds.
local Loop = require "kling.simulator.loop"
local Api = require "kling.simulator.api"
local http = require "kling.simulator.http"

local main = {}

main.USAGE = [[
usage: kling-simulator [--port N] [--host ADDR] [--token T] [--platform-token T]
                       [--generation-time S] [--idle-exit S] [--samples DIR]

A local stand-in for AceData's Kling Motion API and its upload endpoint.

  --port N               port to listen on (default: 0, one the system picks;
                         the address is printed once it accepts connections)
  --host ADDR            address to listen on (default: 127.0.0.1)
  --token T              the API token it accepts (default: sim-token)
  --platform-token T     the upload token it accepts (default: sim-platform-token)
  --generation-time S    seconds a task takes (default: 2)
  --idle-exit S          stop after S seconds without a request (default: never)
  --samples DIR          write person.png and dance.mp4 into DIR first (never
                         over a file that exists)]]

local OPTIONS = { ["--port"] = "port", ["--host"] = "host", ["--token"] = "token",
                  ["--platform-token"] = "platform_token", ["--generation-time"] = "generation_time",
                  ["--idle-exit"] = "idle_exit", ["--samples"] = "samples" }
local STRINGS = { host = true, token = true, platform_token = true, samples = true }

-- Sample media that fit Kling's motion limits (docs/api.md), written into
-- dir; a file that exists is never overwritten (it may be the user's own).
-- Returns the list of messages about what was done.
function main.write_samples(dir)
  local media = require "kling.simulator.media"
  local said = {}
  for _, sample in ipairs({ { "person.png", function() return media.png(640, 800) end },
                            { "dance.mp4", function() return media.video(1280, 720, 5) end } }) do
    local path = dir .. "/" .. sample[1]
    local existing = io.open(path, "rb")
    if existing then
      existing:close()
      said[#said + 1] = ("kling-simulator: %s exists; left as it is"):format(path)
    else
      media.write(path, sample[2]())
      said[#said + 1] = ("kling-simulator: wrote %s"):format(path)
    end
  end
  return said
end

-- The options, or nil and a message.
function main.parse(args)
  local o = { host = "127.0.0.1", port = 0 }
  local i = 1
  while i <= #args do
    local name, value = args[i], args[i + 1]
    local key = OPTIONS[name]
    if not key or value == nil then return nil, main.USAGE end
    o[key] = STRINGS[key] and value or tonumber(value)
    if o[key] == nil then return nil, "kling-simulator: " .. name .. " needs a number" end
    i = i + 2
  end
  return o
end

-- Runs until shut down; returns the exit status.
function main.run(args)
  for _, a in ipairs(args) do
    if a == "-h" or a == "--help" then
      print(main.USAGE)
      return 0
    end
  end
  local opts, err = main.parse(args)
  if not opts then
    io.stderr:write(err, "\n")
    return 2
  end
  math.randomseed(os.time() + math.floor((Loop.now() % 1) * 1e6))
  local loop = Loop.new()
  local api = Api.new(loop, { token = opts.token, platform_token = opts.platform_token,
                              generation_time = opts.generation_time })
  -- listening first; the line below is printed only once the samples are
  -- written too, so a script that waits for it finds both ready
  local server, port = http.serve(loop, opts.host, opts.port, function(req, conn) return api:handle(req, conn) end)
  if not server then
    io.stderr:write("kling-simulator: ", port, "\n")
    return 1
  end
  if opts.samples then
    for _, line in ipairs(main.write_samples(opts.samples)) do io.stderr:write(line, "\n") end
  end
  local host = opts.host:find(":", 1, true) and "[" .. opts.host .. "]" or opts.host
  api.base_url = ("http://%s:%d"):format(host, port)
  api.last_activity = Loop.now()
  io.stdout:write("kling-simulator listening on ", api.base_url, "\n")
  io.stdout:flush()
  loop:run(opts.idle_exit, function() return api.last_activity end)
  return 0
end

return main
