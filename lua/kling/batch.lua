-- client:batch(items, opts): many jobs, each named by its key, at
-- most opts.concurrency in flight, each result saved to
-- download_dir/<key>.mp4. With a journal, running the same batch again after
-- a crash costs no request for a finished key, follows submitted ones and
-- submits only what never left (see submission.lua).
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local core = require "kling.core"
local endpoints = require "kling.endpoints"
local errors = require "kling.errors"
local files = require "kling.files"
local media = require "kling.media"
local submission = require "kling.submission"
local validate = require "kling.validate"

local Batch = {}

local DEFAULT_CONCURRENCY = 4
local MAX_CONCURRENCY = 1000

-- The states on_progress counts: where each item is now.
local STATES = { "queued", "submitted", "succeed", "failed", "uncertain" }

local function prefixed(err, i)
  local field = ("items[%d].%s"):format(i, err.field or "?")
  return errors.new("invalid_argument", ("items[%d].%s"):format(i, err.message), { field = field })
end

-- A key names a file in download_dir: it must be one plain file name.
local function file_name_error(key)
  if key:find("[/\\]") or key == "." or key == ".." then
    return "cannot name a file in download_dir (no / or \\, not . or ..)"
  end
end

-- Checks everything before any traffic; returns the jobs to run or nil, err.
local function check(items, opts)
  local concurrency = opts.concurrency or DEFAULT_CONCURRENCY
  if type(concurrency) ~= "number" or concurrency % 1 ~= 0 or concurrency < 1 or concurrency > MAX_CONCURRENCY then
    return nil, errors.invalid("concurrency", ("must be a whole number from 1 to %d"):format(MAX_CONCURRENCY))
  end
  if opts.download_dir ~= nil and (type(opts.download_dir) ~= "string" or opts.download_dir == ""
      or opts.download_dir:find("%c")) then
    return nil, errors.invalid("download_dir", "must be a directory name")
  end
  if opts.on_progress ~= nil and type(opts.on_progress) ~= "function" then
    return nil, errors.invalid("on_progress", "must be a function")
  end
  if opts.retry_failed ~= nil and type(opts.retry_failed) ~= "boolean" then
    return nil, errors.invalid("retry_failed", "must be a boolean")
  end
  local list, seen, probed, n = {}, {}, {}, 0
  for k in next, items do
    if type(k) ~= "number" or k < 1 or k % 1 ~= 0 then
      return nil, errors.invalid("items", "must be a list of requests; it has the key " .. tostring(k))
    end
    n = n + 1
  end
  for i = 1, n do
    local item = rawget(items, i)
    if type(item) ~= "table" then
      return nil, errors.invalid(("items[%d]"):format(i), "must be a table of request params")
    end
    -- an item may name its endpoint; the rest are that endpoint's params
    local params = {}
    for k, v in next, item do params[k] = v end
    local name = params.endpoint or endpoints.default
    params.endpoint = nil
    local endpoint = type(name) == "string" and endpoints.get(name)
    if not endpoint then
      return nil, errors.invalid(("items[%d].endpoint"):format(i), ("names no endpoint kling knows: %s"):format(
        tostring(name)))
    end
    local body, own = validate.request(endpoint, params, "batch")
    if not body then return nil, prefixed(own, i) end
    local key = own.key
    local field = ("items[%d].key"):format(i)
    if key == nil then return nil, errors.invalid(field, "is required: a batch names every job") end
    if seen[key] then return nil, errors.invalid(field, ("repeats items[%d].key %q"):format(seen[key], key)) end
    local bad = opts.download_dir and file_name_error(key)
    if bad then return nil, errors.invalid(field, bad) end
    -- every item's local files against Kling's limits, before any item is
    -- sent: a file refused after other items were paid for stops a batch
    -- halfway (a file shared by many items is probed once)
    for _, src in ipairs(endpoint.sources) do
      local path = own[src.file]
      if path then
        local limits = endpoint.limits(src.media, body)
        local probe_key = table.concat({ endpoint.name, src.file, path, core.encode(limits) }, "\0")
        local problem = probed[probe_key]
        if problem == nil then
          local _, err = media.check(path, src.file, limits)
          problem = err or false
          probed[probe_key] = problem
        end
        if problem then return nil, prefixed(problem, i) end
      end
    end
    seen[key] = i
    list[i] = { key = key, endpoint = endpoint, body = body, own = own }
  end
  return list, concurrency
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- The journal says the key's video was saved at path, and it is there.
local function saved_at(engine, key, path)
  local entry = engine.store and engine.store:get(key)
  return entry ~= nil and entry.path == path and exists(path)
end

-- Saves the video once: a file the journal says was saved there is kept.
-- Processes running one batch on one journal may download the same key at
-- once: each writes a file of its own and renames it into place, and one
-- that finds the key saved by another meanwhile has succeeded too.
local function save(engine, key, result, dir)
  local path = dir .. "/" .. key .. ".mp4"
  if saved_at(engine, key, path) then return path end
  local url = validate.url("video_url", result.video_url) == nil and result.video_url
  if not url then return nil, errors.new("bad_response", "the task's answer has no usable video_url") end
  local saved, err = engine:download(url, path)
  if not saved then
    if saved_at(engine, key, path) then return path end
    return nil, err
  end
  if engine.store then engine.store:set_path(key, path) end
  return path
end

function Batch.run(engine, items, opts)
  local jobs, concurrency = check(items, opts)
  if not jobs then return nil, concurrency end
  if opts.download_dir then -- written to only after the jobs are paid for: checked first
    local ok, err = core.mkdir(opts.download_dir)
    if not ok then return nil, errors.invalid("download_dir", err) end
    ok, err = files.check_dir(opts.download_dir, "download_dir")
    if not ok then return nil, err end
    for i, job in ipairs(jobs) do
      local info = core.stat(opts.download_dir .. "/" .. job.key .. ".mp4")
      if info and info.type ~= "file" then
        return nil, errors.invalid(("items[%d].key"):format(i), ("names %s/%s.mp4, which is a %s, not a file")
          :format(opts.download_dir, job.key, info.type))
      end
    end
  end
  local results, counts = {}, { total = #jobs }
  for _, state in ipairs(STATES) do counts[state] = 0 end
  counts.queued = #jobs
  local progress = opts.on_progress
  local function move(from, to)
    counts[from], counts[to] = counts[from] - 1, counts[to] + 1
    if progress then
      local snapshot = {}
      for k, v in pairs(counts) do snapshot[k] = v end
      local ok, err = engine.scheduler:pcall(progress, snapshot)
      if not ok then -- a reporting hook must not stop the batch: it is switched off
        progress = nil
        results.progress_error = errors.hook("on_progress", err)
      end
    end
  end

  local function run_one(job)
    local state = "queued"
    local hooks = {
      on_status = job.own.on_status,
      on_submit = function(task_id)
        move(state, "submitted")
        state = "submitted"
        if job.own.on_submit then return job.own.on_submit(task_id) end
      end,
    }
    local own = { retry_failed = opts.retry_failed }
    for k, v in pairs(job.own) do own[k] = v end -- key, local files, on_upload
    local result, err = submission.run(engine, job.endpoint, job.body, hooks, own)
    local path
    if result and opts.download_dir then path, err = save(engine, job.key, result, opts.download_dir) end
    local final = (result and not err) and "succeed" or (err.kind == "uncertain" or err.maybe_submitted)
      and "uncertain" or "failed"
    move(state, final)
    return { key = job.key, result = result, error = err, path = path }
  end

  local next_index = 0
  local function worker()
    while true do
      next_index = next_index + 1
      local i = next_index
      if i > #jobs or engine.closed then return end
      results[i] = run_one(jobs[i])
    end
  end
  local workers = {}
  for w = 1, math.min(concurrency, #jobs) do workers[w] = engine:spawn(worker) end
  -- a caller that is itself a job and gets cancelled takes its workers along
  engine.scheduler:on_exit(function()
    for _, w in ipairs(workers) do w:cancel() end
  end)
  for _, w in ipairs(workers) do
    local ok, err = w:wait()
    if not ok and err and w:status() ~= "done" then results.error = results.error or err end
  end
  for i, job in ipairs(jobs) do
    results[i] = results[i] or { key = job.key, error = errors.closed() }
  end
  return results
end

return Batch
