-- The crash harness (make crash-test): runs a batch of KEYS keyed jobs
-- (scripts/batch-worker.lua) against the simulator, kills it with SIGKILL at
-- a random moment, reads the journal it left, runs the same batch again to
-- the end, and checks the billing promises. Meanwhile a second client runs
-- the same batch on the same journal reached through a symbolic link (it is
-- not killed), and the harness forgets random keys through that link (as
-- `kling jobs --forget KEY` would: queued keys go, billed ones are refused).
-- The promises:
--   * no key was ever submitted twice (the simulator counts per key);
--   * every task the simulator created is known to the journal, by its task
--     id, or as an "uncertain" key (the journal says it may exist);
--   * keys left uncertain never exceed the requests that were in flight at
--     the kill (entries in "sending": handed to the network, no answer yet;
--     or already found "uncertain" by the second client, which runs on).
--   lua scripts/crash-harness.lua RUNS KEYS     (prints a line per run and a total)
local cjson = require "cjson"
local http = require "socket.http"
local socket = require "socket"
local Journal = require "kling.journal"

local RUNS, KEYS = tonumber(arg[1]) or 200, tonumber(arg[2]) or 50
-- more jobs than connections: some submits wait inside libcurl ("queued")
local CONCURRENCY, CONNECTIONS, MAX_KILL_AFTER = 12, 2, 2.5
local lua = os.getenv("KLING_LUA") or "lua5.4"

local function control(url, path, body)
  local text = http.request(url .. path, body and cjson.encode(body) or nil)
  return text and text ~= "" and cjson.decode(text) or nil
end

local sim = assert(io.popen(("%s bin/kling-simulator --port 0 --idle-exit 120 --generation-time 0.1"):format(lua)))
local url = assert((sim:read("*l") or ""):match("(http://%S+)"), "the simulator did not start")
math.randomseed(os.time())

local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p " .. dir)

local function worker_cmd(journal)
  return ("%s scripts/batch-worker.lua --journal %s --base-url %s --keys %d --concurrency %d --max-connections %d")
    :format(lua, journal, url, KEYS, CONCURRENCY, CONNECTIONS)
end

local function journal_rows(path)
  local j = assert(Journal.open(path))
  local rows = assert(j.store.db:query("SELECT key, state, task_id FROM jobs"))
  j:close()
  return rows
end

local function count(rows, state)
  local n = 0
  for _, r in ipairs(rows) do if r.state == state then n = n + 1 end end
  return n
end

local totals = { runs = 0, failures = 0, max_submits = 0, unknown = 0, uncertain = 0, in_flight = 0,
                 queued_at_kill = 0, recovered = 0, forgotten = 0, refused = 0 }
print(("crash harness: %d runs of %d keys (concurrency %d on %d connections, kill within %.1f s, "
  .. "submits answer up to 0.3 s late; a second client through a symlink; keys forgotten meanwhile)")
  :format(RUNS, KEYS, CONCURRENCY, CONNECTIONS, MAX_KILL_AFTER))

-- Until `seconds` have passed: forgets a random key every 20 ms or so through
-- the link, without force. Returns the counts of keys forgotten and refused.
local function forget_randomly(link, seconds)
  local deadline = socket.gettime() + seconds
  local forgotten, refused = 0, 0
  local j
  while socket.gettime() < deadline do
    j = j or Journal.open(link) -- once the workers made the file
    if j then
      local ok = j:forget(("clip-%03d"):format(math.random(1, KEYS)))
      if ok then forgotten = forgotten + 1 elseif ok == nil then refused = refused + 1 end
    end
    socket.sleep(0.01 + math.random() * 0.02)
  end
  if j then j:close() end
  return forgotten, refused
end

for run = 1, RUNS do
  control(url, "/_sim/reset", {})
  control(url, "/_sim/config", { submit_delay = 0.3 })
  local journal = ("%s/run-%d.db"):format(dir, run)
  local link = ("%s/link-%d.db"):format(dir, run)
  os.execute(("ln -s '%s' '%s'"):format(journal, link))
  -- the batch, killed at a random moment; the second client, through the link, runs to its end
  local pid = assert(io.popen(("exec %s >/dev/null 2>&1 & echo $!"):format(worker_cmd(journal))):read("*l"))
  local second = io.popen(worker_cmd(link) .. " 2>&1")
  local forgotten, refused = forget_randomly(link, 0.05 + math.random() * MAX_KILL_AFTER)
  os.execute("kill -9 " .. pid .. " 2>/dev/null")
  socket.sleep(0.05) -- let the kernel close its sockets
  local at_kill = journal_rows(journal)
  second:read("*a")
  second:close()
  local sending, queued = count(at_kill, "sending") + count(at_kill, "uncertain"), count(at_kill, "queued")
  local open = control(url, "/_sim/stats").submits_open
  -- the same batch again, to the end
  local rerun = io.popen(worker_cmd(journal) .. " 2>&1")
  local summary = rerun:read("*a"):match("(%d+ keys: [^\n]*)") or "the rerun printed nothing"
  rerun:close()

  local stats = control(url, "/_sim/stats")
  local max_submits = 0
  for _, n in pairs(stats.submits_by_image) do max_submits = math.max(max_submits, n) end
  local rows = journal_rows(journal)
  local by_task, uncertain_keys = {}, {}
  for _, r in ipairs(rows) do
    if r.task_id then by_task[r.task_id] = true end
    if r.state == "uncertain" then uncertain_keys[r.key] = true end
  end
  local unknown = 0
  for _, t in ipairs(control(url, "/_sim/tasks")) do
    local key = ("clip-%03d"):format(tonumber(t.image_url:match("person%-(%d+)")))
    if not by_task[t.id] and not uncertain_keys[key] then unknown = unknown + 1 end
  end
  local uncertain = count(rows, "uncertain")
  local ok = max_submits <= 1 and unknown == 0 and uncertain <= sending
  print(("run %3d: killed with %2d sending (or found uncertain), %2d queued (server still answering %d); "
    .. "%d keys forgotten, %d refused; rerun: %s; max submits per key %d, unknown tasks %d, uncertain %d%s")
    :format(run, sending, queued, open, forgotten, refused, summary, max_submits, unknown, uncertain,
      ok and "" or "  <-- FAILED"))
  totals.forgotten, totals.refused = totals.forgotten + forgotten, totals.refused + refused
  totals.runs = totals.runs + 1
  totals.failures = totals.failures + (ok and 0 or 1)
  totals.max_submits = math.max(totals.max_submits, max_submits)
  totals.unknown = totals.unknown + unknown
  totals.uncertain = totals.uncertain + uncertain
  totals.in_flight = totals.in_flight + sending
  totals.queued_at_kill = totals.queued_at_kill + queued
  totals.recovered = totals.recovered + count(rows, "succeed")
  os.execute(("rm -rf '%s' '%s' '%s-wal' '%s-shm' '%s-owners'"):format(link, journal, journal, journal, journal))
end

print(("total: %d runs, %d failed; max submits of one key %d; tasks unknown to the journal %d; "
  .. "keys uncertain %d (in flight at the kills: %d); keys queued at the kills %d (all resubmitted safely); "
  .. "keys that ended succeed %d of %d; keys forgotten meanwhile %d (forgets refused: %d)"):format(totals.runs,
  totals.failures, totals.max_submits, totals.unknown, totals.uncertain, totals.in_flight, totals.queued_at_kill,
  totals.recovered, RUNS * KEYS, totals.forgotten, totals.refused))
control(url, "/_sim/shutdown", {})
sim:close()
os.execute("rm -rf " .. dir)
os.exit(totals.failures == 0 and 0 or 1)
