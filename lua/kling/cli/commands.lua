-- The subcommands of the kling command. Each takes the parsed arguments and
-- returns an exit status; results go to standard output (text, or JSON with
-- --json), progress and messages to standard error.
local cjson = require "cjson"
local core = require "kling.core"
local kling = require "kling"
local cli = require "kling.cli"
local Progress = require "kling.cli.progress"
local uploads = require "kling.uploads"

local commands = {}

-- ---- set-up ----

-- Directories it makes are the user's alone (0700: the XDG base directory
-- specification's mode; the journal holds callback secrets and URLs).
local PRIVATE_DIR = 448 -- 0700

local function mkdir_p(dir)
  local path = dir:sub(1, 1) == "/" and "" or "."
  for part in dir:gmatch("[^/]+") do
    path = path .. "/" .. part
    local ok, err = core.mkdir(path, PRIVATE_DIR)
    if not ok then return nil, err end
  end
  return true
end

-- The journal: --journal, else $XDG_STATE_HOME/kling/jobs.db (~/.local/state/...).
local function journal_path(args)
  if args.journal then return args.journal end
  local base = os.getenv("XDG_STATE_HOME")
  if not base or base == "" then base = (os.getenv("HOME") or ".") .. "/.local/state" end
  local ok, err = mkdir_p(base .. "/kling")
  if not ok then return nil, err end
  return base .. "/kling/jobs.db"
end

local function setup(args)
  local out = cli.output(args.json)
  local progress = Progress.new(io.stderr, core.isatty(2))
  local path, err = journal_path(args)
  if not path then return nil, out:fail(kling.errors.new("journal", err)) end
  local client
  client, err = kling.new({ journal = path })
  if not client then return nil, out:fail(err) end
  return client, out, progress
end

-- The client is done with, and err is what the user is told.
local function failed(client, out, err, progress)
  client:close()
  return out:fail(err, progress)
end

local function is_url(s)
  return s:match("^[hH][tT][tT][pP][sS]?://") ~= nil
end

local function absolute(path)
  if path:sub(1, 1) == "/" then return path end
  return (os.getenv("PWD") or ".") .. "/" .. path
end

-- Runs fn as a job, stepping the client five times a second (tick() after
-- each step) until it ends, or until Ctrl-C: then nil, "interrupted".
local function drive(client, fn, tick)
  core.catch_interrupt()
  local job = client:spawn(fn)
  while job:status() == "running" do
    client:step(0.2)
    if core.interrupted() then return nil, "interrupted", job end
    if tick then tick() end
  end
  local r = { job:result() }
  return r[1], r[2], job
end

-- Ctrl-C: a submit already on the wire is allowed to finish (its task id is
-- what makes resuming possible); then where things stand is printed.
local function interrupted(client, job, out, progress, ctx)
  progress:say("kling: interrupted; a request already sent is allowed to finish (Ctrl-C again: stop at once)")
  client:close()
  local _, err = job:result()
  local task_id = ctx.task_id or (type(err) == "table" and err.task_id) or nil
  local how
  if task_id then
    how = ("task %s goes on at AceData; run the same command again to resume (or: kling wait %s)")
      :format(task_id, task_id)
  elseif type(err) == "table" and err.maybe_submitted then
    how = "the submit may have reached AceData; run the same command again to see where it stands"
  else
    how = "nothing was submitted; run the same command again to start"
  end
  progress:say("kling: " .. how)
  out:record({ interrupted = true, task_id = task_id, key = ctx.key })
  return cli.EXIT.interrupted
end

local function status_line(ctx)
  return ("%s  %ds  %d poll%s  task %s"):format(ctx.state, math.floor(core.now() - ctx.started), ctx.polls,
    ctx.polls == 1 and "" or "s", ctx.task_id or "-")
end

-- Saves a result's video with a byte progress bar; returns path, bytes or nil, err.
local function save(client, result, path, progress)
  local saved, bytes = drive(client, function()
    return client:download(result, path, { on_progress = function(n, total)
      progress:bytes("downloading " .. path, n, total)
    end })
  end)
  progress:done()
  return saved, bytes
end

local function result_record(key, result, path, bytes)
  return { key = key, task_id = result.task_id, state = result.state, video_url = result.video_url,
           video_id = result.video_id, duration = result.duration, path = path, bytes = bytes }
end

-- ---- motion ----

local function set_source(params, kind, value)
  if is_url(value) then params[kind .. "_url"] = value else params[kind .. "_file"] = value end
end

-- The default key names the inputs, so the same command resumes the same job.
local function default_key(params)
  local parts = {}
  for _, kind in ipairs({ "image", "video" }) do
    local file = params[kind .. "_file"]
    parts[#parts + 1] = file and ("%s:%d"):format(absolute(file), uploads.file_size(file) or -1)
      or params[kind .. "_url"]
  end
  for _, k in ipairs({ "character_orientation", "mode", "prompt", "model_name", "keep_original_sound",
                       "callback_url" }) do
    parts[#parts + 1] = k .. "=" .. tostring(params[k])
  end
  parts[#parts + 1] = "watermark=" .. tostring(params.watermark_info ~= nil)
  return "cli-" .. core.digest(table.concat(parts, "\n"))
end

function commands.motion(args)
  local client, out, progress = setup(args)
  if not client then return out end
  local params = {
    character_orientation = args.orientation, mode = args.mode, prompt = args.prompt, model_name = args.model,
    keep_original_sound = args.no_sound and "no" or nil, watermark_info = args.watermark and { enabled = true } or nil,
    callback_url = args.callback_url,
  }
  set_source(params, "image", args.image)
  set_source(params, "video", args.video)
  params.key = args.key or default_key(params)
  local ctx = { key = params.key, state = "starting", polls = 0, started = core.now() }
  params.on_upload = function(sent, total, file) progress:bytes("uploading " .. file, sent, total) end
  params.on_submit = function(id)
    ctx.task_id, ctx.state = id, "submitted"
    progress:say(("kling: task %s (key %s)"):format(id, params.key))
  end
  params.on_status = function(t)
    ctx.task_id, ctx.state, ctx.polls = t.id, t.state, ctx.polls + 1
  end
  local result, err, job = drive(client, function()
    if args.async then return client:submit(params) end
    return client:motion(params)
  end, function() if ctx.task_id then progress:show(status_line(ctx), ctx.state) end end)
  if err == "interrupted" then return interrupted(client, job, out, progress, ctx) end
  if not result then return failed(client, out, err, progress) end
  progress:done()
  if args.async then
    out:line(result)
    out:record({ key = params.key, task_id = result })
    client:close()
    return cli.EXIT.ok
  end
  local path = args.output or ("kling-%s.mp4"):format(result.task_id:sub(1, 8))
  local saved, bytes = save(client, result, path, progress)
  client:close()
  if not saved then return out:fail(bytes, progress) end
  out:line(("saved %s (%s)"):format(path, Progress.human(bytes)))
  out:line("task_id   ", result.task_id)
  out:line("video_url ", tostring(result.video_url))
  out:record(result_record(params.key, result, path, bytes))
  return cli.EXIT.ok
end

-- ---- wait, task, download ----

function commands.wait(args)
  local client, out, progress = setup(args)
  if not client then return out end
  local ctx = { task_id = args.task_id, state = "waiting", polls = 0, started = core.now() }
  local result, err, job = drive(client, function()
    return client:wait(args.task_id, { on_status = function(t) ctx.state, ctx.polls = t.state, ctx.polls + 1 end })
  end, function() progress:show(status_line(ctx), ctx.state) end)
  if err == "interrupted" then return interrupted(client, job, out, progress, ctx) end
  if not result then return failed(client, out, err, progress) end
  progress:done()
  local path, bytes
  if args.output then
    path, bytes = save(client, result, args.output, progress)
    if not path then return failed(client, out, bytes, progress) end
    out:line(("saved %s (%s)"):format(path, Progress.human(bytes)))
  end
  client:close()
  out:line("task_id   ", result.task_id)
  out:line("video_url ", tostring(result.video_url))
  out:record(result_record(nil, result, path, bytes))
  return cli.EXIT.ok
end

function commands.task(args)
  local client, out, progress = setup(args)
  if not client then return out end
  local list, err = drive(client, function() return client:tasks(args.task_id) end)
  client:close()
  if not list then return out:fail(err, progress) end
  for _, t in ipairs(list) do
    local detail = t.result and t.result.video_url or (t.error and t.error.message) or ""
    out:line(("%s  %s  %s"):format(t.id, t.state, detail))
    out:record({ id = t.id, state = t.state, done = t.done, video_url = t.result and t.result.video_url,
                 error = t.error and cli.error_record(t.error) or nil })
  end
  return cli.EXIT.ok
end

function commands.download(args)
  local client, out, progress = setup(args)
  if not client then return out end
  local source = args.source
  if not is_url(source) then
    local t, err = drive(client, function() return client:task(source) end)
    if not t then return failed(client, out, err, progress) end
    if not t.result then
      return failed(client, out, t.error or kling.errors.new("not_found", ("task %s has no video yet (it is %s)")
        :format(source, t.state), { task_id = source }), progress)
    end
    source = t.result
  end
  local path, bytes = save(client, source, args.output, progress)
  client:close()
  if not path then return out:fail(bytes, progress) end
  out:line(("saved %s (%s)"):format(path, Progress.human(bytes)))
  out:record({ path = path, bytes = bytes })
  return cli.EXIT.ok
end

-- ---- files ----

function commands.upload(args)
  local client, out, progress = setup(args)
  if not client then return out end
  for _, file in ipairs(args.file) do
    local url, err = drive(client, function()
      return client:upload(file, { on_progress = function(sent, total)
        progress:bytes("uploading " .. file, sent, total)
      end })
    end)
    progress:done()
    if not url then return failed(client, out, err, progress) end
    out:line(url)
    out:record({ file = file, url = url })
  end
  client:close()
  return cli.EXIT.ok
end

function commands.probe(args)
  local out = cli.output(args.json)
  local status = cli.EXIT.ok
  for _, file in ipairs(args.file) do
    local info, err = kling.media.probe(file)
    if not info then
      status = out:fail(err)
    else
      local fits = {}
      if info.kind == "image" then
        fits.image = kling.media.problems(info, "image")
      else
        fits.orientation_image = kling.media.problems(info, "video", "image")
        fits.orientation_video = kling.media.problems(info, "video", "video")
      end
      local facts = ("%s: %s %s, %dx%d px, %s"):format(file, info.format, info.kind, info.width, info.height,
        Progress.human(info.bytes))
      if info.duration then facts = facts .. (", %.2f s"):format(info.duration) end
      out:line(facts)
      local any = false
      for _, name in ipairs({ "image", "orientation_image", "orientation_video" }) do
        local problems = fits[name]
        if problems then
          local label = name == "image" and "as the reference image"
            or ("as the motion video (--orientation %s)"):format(name:match("_(%a+)$"))
          if #problems == 0 then
            any = true
            out:line("  fits ", label)
          else
            out:line("  does not fit ", label, ": ", table.concat(problems, "; "))
          end
        end
      end
      local record = { file = file, kind = info.kind, format = info.format, width = info.width,
                       height = info.height, bytes = info.bytes, duration = info.duration, fits = {} }
      for name, problems in pairs(fits) do
        record.fits[name] = #problems == 0
        record[name .. "_problems"] = #problems > 0 and setmetatable(problems, cjson.array_mt) or nil
      end
      out:record(record)
      if not any then status = cli.EXIT.invalid_argument end
    end
  end
  return status
end

-- ---- batch and the journal ----

-- One CSV line into fields (RFC 4180 quoting).
local function csv_fields(line)
  local fields, i, n = {}, 1, #line
  while i <= n + 1 do
    if line:sub(i, i) == '"' then
      local value, j = {}, i + 1
      while j <= n do
        local c = line:sub(j, j)
        if c == '"' and line:sub(j + 1, j + 1) == '"' then
          value[#value + 1] = '"'
          j = j + 2
        elseif c == '"' then
          break
        else
          value[#value + 1] = c
          j = j + 1
        end
      end
      fields[#fields + 1] = table.concat(value)
      i = j + 2
    else
      local j = line:find(",", i, true) or n + 1
      fields[#fields + 1] = line:sub(i, j - 1)
      i = j + 1
    end
  end
  return fields
end

local SHORT = { image = true, video = true, orientation = "character_orientation", model = "model_name" }

-- The jobs of a batch file: JSON lines, or CSV with a header row.
local function read_batch(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, kling.errors.invalid("file", tostring(err)) end
  local text = f:read("*a")
  f:close()
  local items, header = {}, nil
  local n = 0
  for line in text:gmatch("[^\r\n]+") do
    n = n + 1
    local item
    if line:match("^%s*$") or line:match("^%s*#") then -- luacheck: ignore 542
    elseif line:match("^%s*{") then
      local ok, value = pcall(cjson.decode, line)
      if not ok or type(value) ~= "table" then
        return nil, kling.errors.invalid("file", ("line %d is not a JSON object"):format(n))
      end
      item = value
    elseif not header then
      header = csv_fields(line)
    else
      item = {}
      for i, value in ipairs(csv_fields(line)) do
        if header[i] and value ~= "" then item[header[i]] = value end
      end
    end
    if item then
      for short, long in pairs(SHORT) do
        if item[short] ~= nil then
          if long == true then
            set_source(item, short, item[short])
          else
            item[long] = item[short]
          end
          item[short] = nil
        end
      end
      item.character_orientation = item.character_orientation or "image"
      item.mode = item.mode or "std"
      items[#items + 1] = item
    end
  end
  return items
end

function commands.batch(args)
  local client, out, progress = setup(args)
  if not client then return out end
  local items, err = read_batch(args.file)
  if not items then return failed(client, out, err) end
  local results, job
  results, err, job = drive(client, function()
    return client:batch(items, { concurrency = args.concurrency, download_dir = args.out,
      retry_failed = args.retry_failed, on_progress = function(c)
        progress:show(("%d of %d done  %d submitted  %d failed  %d uncertain"):format(c.succeed, c.total,
          c.submitted, c.failed, c.uncertain))
      end })
  end)
  if err == "interrupted" then return interrupted(client, job, out, progress, {}) end
  client:close()
  if not results then return out:fail(err, progress) end
  progress:done()
  local status = cli.EXIT.ok
  for _, r in ipairs(results) do
    if r.result then
      out:line(("%s  succeed  %s"):format(r.key, r.path or tostring(r.result.video_url)))
      out:record(result_record(r.key, r.result, r.path))
    else
      out:line(("%s  %s  %s"):format(r.key, r.error.kind, r.error.message))
      out:record({ key = r.key, error = cli.error_record(r.error) })
      if status == cli.EXIT.ok then status = cli.EXIT[r.error.kind] or cli.EXIT.failure end
    end
  end
  return status
end

function commands.jobs(args)
  local client, out = setup(args)
  if not client then return out end
  if args.forget then
    local ok, err = client.journal:forget(args.forget)
    client:close()
    if ok == nil then return out:fail(err) end
    out:line(ok and ("forgot " .. args.forget) or ("no entry " .. args.forget))
    out:record({ key = args.forget, forgotten = ok })
    return ok and cli.EXIT.ok or cli.EXIT.not_found
  end
  local list, err = client.journal:list({ state = args.state })
  client:close()
  if not list then return out:fail(err) end
  for _, e in ipairs(list) do
    out:line(("%s  %-9s  %s  %s"):format(os.date("!%Y-%m-%d %H:%M:%S", math.floor(e.updated_at)), e.state,
      e.key, e.task_id or ""))
    out:record({ key = e.key, state = e.state, task_id = e.task_id, path = e.path,
                 video_url = e.result and e.result.video_url, error = e.error,
                 created_at = e.created_at, updated_at = e.updated_at })
  end
  return cli.EXIT.ok
end

function commands.simulator(args)
  return require("kling.simulator.main").run(args.options)
end

return commands
