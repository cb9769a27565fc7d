-- Runs one batch of N keyed jobs against a base URL on a journal, and prints
-- how it ended. The two-process spec and the crash harness run it as a child:
--   lua scripts/batch-worker.lua --journal FILE --base-url URL --keys N [--concurrency C]
--                                [--max-connections M] [--download-dir DIR]
-- Key i is clip-NNN with image https://cdn.example.test/person-i.jpg, so the
-- simulator's per-image counts tell the submits of each key apart.
local kling = require "kling"

local opts = { keys = 50, concurrency = 4, max_connections = 32, token = "sim-token" }
local i = 1
while arg[i] do
  local name, value = arg[i]:match("^%-%-([%w-]+)$"), arg[i + 1]
  if not name or value == nil then
    io.stderr:write("usage: batch-worker.lua --journal FILE --base-url URL [--keys N] [--concurrency C]\n")
    os.exit(2)
  end
  opts[name:gsub("-", "_")] = tonumber(value) or value
  i = i + 2
end

local client = assert(kling.new({
  token = opts.token, base_url = opts.base_url, journal = opts.journal,
  poll_interval = 0.05, max_poll_interval = 0.2, retry_delay = 0.01, max_retry_delay = 0.05,
  max_connections = opts.max_connections,
}))
local items = {}
for k = 1, opts.keys do
  items[k] = {
    key = ("clip-%03d"):format(k),
    image_url = ("https://cdn.example.test/person-%d.jpg"):format(k),
    video_url = "https://cdn.example.test/dance.mp4",
    character_orientation = "image", mode = "std",
  }
end
local results = assert(client:batch(items, { concurrency = opts.concurrency, download_dir = opts.download_dir }))
local counts = { succeed = 0, failed = 0, uncertain = 0 }
for _, r in ipairs(results) do
  local state = r.result and "succeed" or (r.error.kind == "uncertain" or r.error.maybe_submitted) and "uncertain"
    or "failed"
  counts[state] = counts[state] + 1
  if state == "failed" then io.stderr:write(r.key, ": ", tostring(r.error), "\n") end
end
client:close()
print(("%d keys: %d succeed, %d failed, %d uncertain"):format(#results, counts.succeed, counts.failed,
  counts.uncertain))
