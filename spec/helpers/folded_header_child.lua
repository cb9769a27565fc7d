-- Run as its own process by hostile_server_spec.lua (a crash must not take
-- busted with it): one client meets an answer whose first header line is
-- folded, from each kind of host it talks to, on easy handles that already
-- served a transfer. Prints "survived" when it gets to the end.
package.path = "spec/?.lua;" .. package.path
local Simulator = require "helpers.simulator"

local sim = setmetatable({ url = assert(os.getenv("KLING_SIM_URL")) }, Simulator)
local client = sim:client({ platform_token = "sim-platform-token", platform_url = sim.url, max_retries = 0 })
local FOLDED = "HTTP/1.1 200 OK\r\n\tX-Folded: yes\r\nContent-Type: application/json\r\n"
  .. "Content-Length: 2\r\nConnection: close\r\n\r\n{}"

local task_id = assert(client:submit(Simulator.params()))
assert(client:task(task_id)) -- every later request runs on a handle used before

local cases = {
  { "/kling/tasks", function() return client:task(task_id) end },
  { "/kling/motion", function() return client:submit(Simulator.params()) end },
  { "/api/v1/files/", function() return client:upload("bytes", { filename = "x.png" }) end },
  { "/files/a.mp4", function() return client:download(sim.url .. "/files/a.mp4", os.tmpname()) end },
}
for _, case in ipairs(cases) do
  sim:fault({ path = case[1], raw = FOLDED })
  case[2]()
  assert(client:task(task_id))
end
-- a redirect's target, on a used handle
sim:fault({ path = "/files/b.mp4", raw = "HTTP/1.1 302 Found\r\nLocation: /files/c.mp4\r\nContent-Length: 0\r\n\r\n" })
sim:fault({ path = "/files/c.mp4", raw = FOLDED })
client:download(sim.url .. "/files/b.mp4", os.tmpname())
assert(client:task(task_id))
client:close()
io.write("survived\n")
