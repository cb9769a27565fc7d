-- Benchmark: kling against raw libcurl on the same request, same CPU.
--   make bench-engine [REQUESTS=20000] [ROUNDS=3]
-- Starts nginx (plain HTTP on 127.0.0.1) answering POST /kling/tasks with a
-- fixed finished task record of 661 bytes, then runs, interleaved over the
-- rounds, bench/raw_libcurl.c (one reused easy handle) and
-- bench/engine_client.lua on each Lua runtime given, every contender and
-- nginx pinned to one CPU (taskset) when the machine allows it: the client
-- CPU per request is then what throughput depends on. Prints per-request
-- client CPU, throughput, and kling / raw libcurl (the median of the rounds
-- and each contender's best round); then RSS before and after the run
-- (growth over N sequential retrievals). Not a test: it prints.
--
-- arg: raw_libcurl binary, requests, rounds, then "name=interpreter:cpath" per runtime.
local http = require "kling.simulator.http"

local raw_bin, requests, rounds = arg[1], tonumber(arg[2]) or 20000, tonumber(arg[3]) or 3
local runtimes = {}
for i = 4, #arg do
  local name, interp, cpath = arg[i]:match("^([^=]+)=([^:]+):(.+)$")
  runtimes[#runtimes + 1] = { name = name, interp = interp, cpath = cpath }
end

-- A finished task as AceData answers a retrieve (661 bytes).
local RECORD = '{"id":"bench-task","created_at":1795000000.123,"started_at":1795000000.133,'
  .. '"finished_at":1795000047.51,"elapsed":47.387,"type":"motion","trace_id":"4c1f0a5e-8d2b-4a57-9c3e-2f6b1d7e9a40",'
  .. '"request":{"image_url":"https://cdn.example.test/people/person-0001.jpg",'
  .. '"video_url":"https://cdn.example.test/motions/dance-0001.mp4","character_orientation":"image",'
  .. '"mode":"std","keep_original_sound":"yes","prompt":"a person dancing in a sunlit studio"},'
  .. '"response":{"success":true,"task_id":"bench-task","video_id":"v-7d2c9b41e0a34f8f",'
  .. '"video_url":"https://cdn.example.test/results/bench-task/7d2c9b41e0a34f8f.mp4",'
  .. '"duration":"5.041","state":"succeed"},"credits":{"consumed":12.5,"balance":987.5},'
  .. '"padding":"kling-bench-kling-bench-kling-"}'

local function sh(cmd)
  local r = os.execute(cmd)
  return r == true or r == 0
end

local function capture(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  return out
end


local pin = capture("command -v taskset 2>/dev/null") ~= "" and sh("taskset -c 0 true") and "taskset -c 0 " or ""

local dir = os.tmpname()
os.remove(dir)
assert(sh("mkdir -p " .. dir))
local port = http.free_port()
local conf = io.open(dir .. "/nginx.conf", "w")
conf:write(([[
daemon off;
master_process off;
worker_processes 1;
pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  keepalive_requests 100000000;
  client_body_temp_path %s/body;
  server {
    listen 127.0.0.1:%d;
    location = /kling/tasks { default_type application/json; return 200 '%s'; }
  }
}
]]):format(dir, dir, dir, port, RECORD))
conf:close()
assert(sh(("%snginx -p %s -c %s/nginx.conf >/dev/null 2>&1 &"):format(pin, dir, dir)))
local base_url = ("http://127.0.0.1:%d"):format(port)
assert(http.wait_accepting(port, 10), "nginx did not start; see " .. dir .. "/error.log")

local function stop()
  local f = io.open(dir .. "/nginx.pid")
  if f then
    sh("kill " .. f:read("*l") .. " 2>/dev/null")
    f:close()
  end
  sh("rm -rf " .. dir)
end

local contenders = { { name = "raw libcurl", cmd = ("%s%s %s %d"):format(pin, raw_bin, base_url, requests) } }
for _, rt in ipairs(runtimes) do
  contenders[#contenders + 1] = {
    name = "kling " .. rt.name,
    cmd = ('%senv LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="%s;;" %s bench/engine_client.lua %s %d')
      :format(pin, rt.cpath, rt.interp, base_url, requests),
  }
end

local samples = {}
print(("%d sequential retrieves per run, %d rounds, %s"):format(requests, rounds,
  pin ~= "" and "client and nginx on CPU 0" or "not pinned (no taskset)"))
local ok, err = pcall(function()
  for round = 1, rounds do
    for _, c in ipairs(contenders) do
      local out = capture(c.cmd .. " 2>&1")
      local n, cpu, wall, rss_warm, rss_end = out:match("^%a+ (%d+) ([%d.]+) ([%d.]+) ?(%d*) ?(%d*)")
      if not n then error(c.name .. " failed: " .. out) end
      local s = { cpu_us = tonumber(cpu) / n * 1e6, rate = n / tonumber(wall),
                  rss_warm = tonumber(rss_warm), rss_end = tonumber(rss_end) }
      samples[c.name] = samples[c.name] or {}
      table.insert(samples[c.name], s)
      local rss = s.rss_warm and ("  RSS %d KiB after %d, %d KiB after %d")
        :format(s.rss_warm, math.floor(requests / 10), s.rss_end, requests) or ""
      print(("round %d  %-14s %6.1f us CPU/request  %7.0f requests/s%s"):format(round, c.name, s.cpu_us, s.rate, rss))
    end
  end
end)
stop()
if not ok then error(err, 0) end

local function median(list, field)
  local v = {}
  for i, s in ipairs(list) do v[i] = s[field] end
  table.sort(v)
  return v[math.floor((#v + 1) / 2)]
end

-- The run with the most requests per second (and its CPU per request):
-- whatever else the machine does only ever slows a run down, so on a busy
-- machine the best round is the steadier figure; the median is printed too.
local function best(list)
  local top = list[1]
  for _, s in ipairs(list) do
    if s.rate > top.rate then top = s end
  end
  return top.rate, top.cpu_us
end

local function report(title, pick)
  local raw_rate = pick(samples["raw libcurl"])
  print(title)
  print("| client | CPU per request | requests/s | throughput vs raw libcurl |")
  print("|---|---|---|---|")
  for _, c in ipairs(contenders) do
    local rate, cpu = pick(samples[c.name])
    print(("| %s | %.1f us | %.0f | %.2f |"):format(c.name, cpu, rate, rate / raw_rate))
  end
end

report("median of the rounds:", function(list) return median(list, "rate"), median(list, "cpu_us") end)
report("best round of each:", best)
