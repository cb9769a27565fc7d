-- The subcommands of the kling command. Each takes the parsed arguments and
-- returns an exit status; results go to standard output (text, or JSON with
-- --json), progress and messages to standard error.
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local cjson = require "cjson"
local core = require "kling.core"
local endpoints = require "kling.endpoints"
local kling = require "kling"
local cli = require "kling.cli"
local files = require "kling.files"
local Journal = require "kling.journal"
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

-- The journal alone, for the subcommands that read or mend it: they need no
-- token and send nothing.
local function open_journal(args)
  local out = cli.output(args.json)
  local path, err = journal_path(args)
  if not path then return nil, out:fail(kling.errors.new("journal", err)) end
  local journal
  journal, err = Journal.open(path)
  if not journal then return nil, out:fail(err) end
  return journal, out
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

local INTERRUPTED = "interrupted"

-- Runs fn as a job, stepping the client five times a second (tick() after
-- each step) until it ends, or until a signal (Ctrl-C, SIGTERM, SIGHUP):
-- then nil, INTERRUPTED, job, the signal's number.
local function drive(client, fn, tick)
  core.catch_interrupt()
  local job = client:spawn(fn)
  while job:status() == "running" do
    client:step(0.2)
    local sig = core.interrupted()
    if sig then return nil, INTERRUPTED, job, sig end
    if tick then tick() end
  end
  local r = { job:result() }
  return r[1], r[2], job
end

local SIGNAL_NAMES = { [1] = "SIGHUP", [2] = "Ctrl-C", [15] = "SIGTERM" }

-- A signal: a submit already on the wire is allowed to finish (its task id
-- is what makes resuming possible), whatever else runs is stopped (a
-- download's partial file is removed); then where things stand is printed.
-- The exit status is 128 + the signal's number (130 for Ctrl-C).
local function interrupted(client, job, out, progress, ctx, sig)
  local name = SIGNAL_NAMES[sig] or ("signal " .. tostring(sig))
  progress:say(("kling: %s; a request already sent is allowed to finish (%s again: stop at once)"):format(
    name == "Ctrl-C" and "interrupted" or ("stopped by " .. name), name == "Ctrl-C" and name or "the signal"))
  client:close()
  local _, err = job:result()
  local task_id = ctx.task_id or (type(err) == "table" and err.task_id) or nil
  local how
  if task_id then
    how = ("task %s goes on at AceData; run the same command again to resume (or: kling wait %s)")
      :format(task_id, task_id)
  elseif type(err) == "table" and err.maybe_submitted then
    how = "the submit may have reached AceData; run the same command again to see where it stands"
  elseif ctx.submits then
    how = "nothing was submitted; run the same command again to start"
  else
    how = "stopped; nothing was left half-written"
  end
  progress:say("kling: " .. how)
  out:record({ interrupted = true, signal = sig, task_id = task_id, key = ctx.key })
  return 128 + sig
end

-- The status line's clock counts from the task's creation (a resumed job
-- goes on counting), once a poll has told when that was.
local function note_task(ctx, t)
  ctx.task_id, ctx.state, ctx.polls = t.id, t.state, ctx.polls + 1
  local created = type(t.raw) == "table" and tonumber(t.raw.created_at)
  local age = created and core.time() - created
  if age and age >= 0 and age < 366 * 86400 and not ctx.dated then -- a plausible epoch time
    ctx.started, ctx.dated = core.now() - age, true
  end
end

local function status_line(ctx)
  return ("%s  %ds  %d poll%s  task %s"):format(ctx.state, math.floor(core.now() - ctx.started), ctx.polls,
    ctx.polls == 1 and "" or "s", ctx.task_id or "-")
end

-- Saves a result's video with a byte progress bar; returns path, bytes, or
-- what drive returns when it did not (nil, err; nil, INTERRUPTED, job, sig).
local function save(client, result, path, progress)
  local saved, bytes, job, sig = drive(client, function()
    return client:download(result, path, { on_progress = function(n, total)
      progress:bytes("downloading " .. path, n, total)
    end })
  end)
  progress:done()
  return saved, bytes, job, sig
end

-- An output path (-o) is checked before anything is uploaded or paid for.
local function check_output(path, out)
  local ok, err
  if path then
    ok, err = files.check_destination(path, "output")
  else -- the default name goes into the working directory
    ok, err = files.check_dir(".", "output")
  end
  if not ok then return out:fail(err) end
end

local function result_record(key, result, path, bytes)
  return { key = key, task_id = result.task_id, state = result.state, video_url = result.video_url,
           video_id = result.video_id, duration = result.duration, path = path, bytes = bytes }
end

-- ---- a job of an endpoint ----

-- A source given on the command line or in a batch file: a URL, or a
-- local file (uploaded). src: one of the endpoint's sources.
local function set_source(params, src, value)
  if is_url(value) then params[src.url] = value else params[src.file] = value end
end

local function source_named(endpoint, url_field)
  for _, src in ipairs(endpoint.sources) do
    if src.url == url_field then return src end
  end
end

-- The default key names the inputs (endpoint.command.key says which), so the
-- same command resumes the same job.
local function default_key(endpoint, params)
  local spec, parts = endpoint.command.key, {}
  for _, src in ipairs(endpoint.sources) do
    local file = params[src.file]
    parts[#parts + 1] = file and ("%s:%d"):format(absolute(file), uploads.file_size(file) or -1)
      or tostring(params[src.url])
  end
  for _, k in ipairs(spec.fields) do
    parts[#parts + 1] = k .. "=" .. tostring(params[k])
  end
  for _, flag in ipairs(spec.flags or {}) do
    parts[#parts + 1] = flag[1] .. "=" .. tostring(params[flag[2]] ~= nil)
  end
  return spec.prefix .. core.digest(table.concat(parts, "\n"))
end

-- The name argparse gives an option's value ("--no-sound" -> no_sound).
local function arg_name(flag)
  return (flag:match("^%-%-(.+)$") or flag):gsub("%-", "_")
end

-- An option's value as its field takes it: a number option's text read as
-- a number (text that is not one is left for validation to name).
local function option_value(o, value)
  if o.number and type(value) == "string" then return tonumber(value) or value end
  return value
end

-- An endpoint's params from its subcommand's arguments (endpoint.command;
-- for an endpoint with actions, the action's subcommand, whose name is the
-- field `action`).
local function params_of(endpoint, args)
  local spec, form = endpoint.command, endpoint.command
  local params = { callback_url = args.callback_url, retry_failed = args.retry_failed or nil }
  for _, action in ipairs(spec.actions or {}) do
    if action.name == args.action then form, params.action = action, action.name end
  end
  for _, a in ipairs(form.arguments) do
    if a.source then set_source(params, source_named(endpoint, a.source), args[a.name])
    else params[a.field] = args[a.name] end
  end
  for _, o in ipairs(form.options) do
    local value = args[arg_name(o.flag)]
    if o.value ~= nil then
      if value then params[o.field] = o.value end
    elseif o.source then
      if value ~= nil then set_source(params, source_named(endpoint, o.source), value) end
    else
      params[o.field] = option_value(o, value)
    end
  end
  return params
end

-- `kling <endpoint> ...`: a job of that endpoint, followed to its end and
-- its video saved (or, with --async, submitted).
function commands.request(endpoint, args)
  local out = cli.output(args.json)
  if not args.async then -- where the video goes is known to work before anything is paid for
    local bad = check_output(args.output, out)
    if bad then return bad end
  end
  local client, progress
  client, out, progress = setup(args)
  if not client then return out end
  local params = params_of(endpoint, args)
  params.key = args.key or default_key(endpoint, params)
  local ctx = { key = params.key, state = "starting", polls = 0, started = core.now(), submits = true }
  params.on_upload = function(sent, total, file) progress:bytes("uploading " .. file, sent, total) end
  params.on_submit = function(id)
    ctx.task_id, ctx.state = id, "submitted"
    progress:say(("kling: task %s (key %s)"):format(id, params.key))
  end
  params.on_status = function(t) note_task(ctx, t) end
  local result, err, job, sig = drive(client, function()
    if args.async then return client:submit_request(endpoint.name, params) end
    return client:request(endpoint.name, params)
  end, function() if ctx.task_id then progress:show(status_line(ctx), ctx.state) end end)
  if err == INTERRUPTED then return interrupted(client, job, out, progress, ctx, sig) end
  if not result then return failed(client, out, err, progress) end
  progress:done()
  if args.async then
    out:line(result)
    out:record({ key = params.key, task_id = result })
    client:close()
    return cli.EXIT.ok
  end
  local path = args.output or ("kling-%s.mp4"):format(result.task_id:sub(1, 8))
  local saved, bytes
  saved, bytes, job, sig = save(client, result, path, progress)
  if bytes == INTERRUPTED then return interrupted(client, job, out, progress, ctx, sig) end
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
  local out = cli.output(args.json)
  if args.output then
    local bad = check_output(args.output, out)
    if bad then return bad end
  end
  local client, progress
  client, out, progress = setup(args)
  if not client then return out end
  local ctx = { task_id = args.task_id, state = "waiting", polls = 0, started = core.now() }
  local result, err, job, sig = drive(client, function()
    return client:wait(args.task_id, { on_status = function(t) note_task(ctx, t) end })
  end, function() progress:show(status_line(ctx), ctx.state) end)
  if err == INTERRUPTED then return interrupted(client, job, out, progress, ctx, sig) end
  if not result then return failed(client, out, err, progress) end
  progress:done()
  local path, bytes
  if args.output then
    path, bytes, job, sig = save(client, result, args.output, progress)
    if bytes == INTERRUPTED then return interrupted(client, job, out, progress, ctx, sig) end
    if not path then return failed(client, out, bytes, progress) end
    out:line(("saved %s (%s)"):format(path, Progress.human(bytes)))
  end
  client:close()
  out:line("task_id   ", result.task_id)
  out:line("video_url ", tostring(result.video_url))
  out:record(result_record(nil, result, path, bytes))
  return cli.EXIT.ok
end

-- Every id is shown (one request); an id the API does not know makes the
-- exit status 10 (not found), as `kling --help` says.
function commands.task(args)
  local client, out, progress = setup(args)
  if not client then return out end
  local list, err, job, sig = drive(client, function() return client:tasks(args.task_id) end)
  if err == INTERRUPTED then return interrupted(client, job, out, progress, {}, sig) end
  client:close()
  if not list then return out:fail(err, progress) end
  local status = cli.EXIT.ok
  for _, t in ipairs(list) do
    local detail = t.result and t.result.video_url or (t.error and t.error.message) or ""
    out:line(("%s  %s  %s"):format(t.id, t.state, detail))
    out:record({ id = t.id, state = t.state, done = t.done, video_url = t.result and t.result.video_url,
                 error = t.error and cli.error_record(t.error) or nil })
    if t.state == "not_found" then status = cli.EXIT.not_found end
  end
  return status
end

function commands.download(args)
  local out = cli.output(args.json)
  local bad = check_output(args.output, out)
  if bad then return bad end
  local client, progress
  client, out, progress = setup(args)
  if not client then return out end
  local source = args.source
  if not is_url(source) then
    local t, err, job, sig = drive(client, function() return client:task(source) end)
    if err == INTERRUPTED then return interrupted(client, job, out, progress, {}, sig) end
    if not t then return failed(client, out, err, progress) end
    if not t.result then
      return failed(client, out, t.error or kling.errors.new("not_found", ("task %s has no video yet (it is %s)")
        :format(source, t.state), { task_id = source }), progress)
    end
    source = t.result
  end
  local path, bytes, job, sig = save(client, source, args.output, progress)
  if bytes == INTERRUPTED then return interrupted(client, job, out, progress, {}, sig) end
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
    local url, err, job, sig = drive(client, function()
      return client:upload(file, { on_progress = function(sent, total)
        progress:bytes("uploading " .. file, sent, total)
      end })
    end)
    progress:done()
    if err == INTERRUPTED then return interrupted(client, job, out, progress, {}, sig) end
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

-- One CSV line into fields (RFC 4180 quoting), or nil and the column
-- (1-based, in characters) where it breaks and why.
local function csv_fields(line)
  local fields, i, n = {}, 1, #line
  while i <= n + 1 do
    if line:sub(i, i) == '"' then
      local value, j, closed = {}, i + 1, false
      while j <= n do
        local c = line:sub(j, j)
        if c == '"' and line:sub(j + 1, j + 1) == '"' then
          value[#value + 1] = '"'
          j = j + 2
        elseif c == '"' then
          closed = true
          break
        else
          value[#value + 1] = c
          j = j + 1
        end
      end
      if not closed then return nil, i, "a quoted cell is not closed" end
      local after = line:sub(j + 1, j + 1)
      if after ~= "" and after ~= "," then return nil, j + 1, "text after a quoted cell (quote the whole cell)" end
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

local function batch_error(path, line, column, message)
  local where = column and ("%s, line %d, column %d"):format(path, line, column) or ("%s, line %d"):format(path, line)
  return kling.errors.new("invalid_argument", ("%s: %s"):format(where, message),
    { field = "file", line = line, column = column })
end

-- The jobs of a batch file: JSON lines, or CSV with a header row; and the
-- line each came from. Every line is read before anything is sent, and a
-- line that cannot be read exactly (a CSV row with more cells than the
-- header: an unquoted comma would cut a prompt) is an error naming it.
local function read_batch(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, kling.errors.invalid("file", tostring(err)) end
  local text = f:read("*a")
  f:close()
  local items, lines, header, header_line = {}, {}, nil, nil
  local n = 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    line = line:gsub("\r$", "")
    local item
    if line:match("^%s*$") or line:match("^%s*#") then -- luacheck: ignore 542
    elseif line:match("^%s*{") then
      local ok, value = pcall(cjson.decode, line)
      if not ok or type(value) ~= "table" then
        return nil, batch_error(path, n, nil, "not a JSON object" .. (ok and "" or (": " .. tostring(value))))
      end
      item = value
    else
      local cells, column, why = csv_fields(line)
      if not cells then return nil, batch_error(path, n, column, why) end
      if not header then
        header, header_line = cells, n
        for i, name in ipairs(header) do
          if name == "" then return nil, batch_error(path, n, nil, ("header cell %d is empty"):format(i)) end
        end
      else
        if #cells > #header then
          return nil, batch_error(path, n, nil, ("%d cells, but the header (line %d) names %d; a cell that holds a "
            .. "comma must be quoted"):format(#cells, header_line, #header))
        end
        item = {}
        for i, value in ipairs(cells) do
          if value ~= "" then item[header[i]] = value end
        end
      end
    end
    if item then
      -- the row's endpoint (an "endpoint" column; else the default): its
      -- short column names, and its subcommand's defaults
      local endpoint = endpoints.get(item.endpoint or endpoints.default)
      if endpoint then
        local spec = endpoint.command
        for short, long in pairs(spec.columns or {}) do
          if item[short] ~= nil then
            local value = item[short]
            item[short] = nil
            local src = source_named(endpoint, long)
            if src then set_source(item, src, value) else item[long] = value end
          end
        end
        for _, o in ipairs(endpoints.options(endpoint)) do
          if o.field and o.default ~= nil and item[o.field] == nil then item[o.field] = o.default end
          if o.field and item[o.field] ~= nil then item[o.field] = option_value(o, item[o.field]) end
        end
      end
      items[#items + 1] = item
      lines[#items] = n
    end
  end
  return items, lines
end

function commands.batch(args)
  local out = cli.output(args.json)
  local items, lines = read_batch(args.file)
  if not items then return out:fail(lines) end
  local client, progress
  client, out, progress = setup(args)
  if not client then return out end
  local results, err, job, sig = drive(client, function()
    return client:batch(items, { concurrency = args.concurrency, download_dir = args.out,
      retry_failed = args.retry_failed, on_progress = function(c)
        progress:show(("%d of %d done  %d submitted  %d failed  %d uncertain"):format(c.succeed, c.total,
          c.submitted, c.failed, c.uncertain))
      end })
  end)
  if err == INTERRUPTED then return interrupted(client, job, out, progress, { submits = true }, sig) end
  client:close()
  if not results then
    -- an item's error names the line it came from
    local i = type(err) == "table" and type(err.field) == "string" and tonumber(err.field:match("^items%[(%d+)%]"))
    if i and lines[i] then
      err.message = ("%s, line %d: %s"):format(args.file, lines[i], err.message:gsub("^items%[%d+%]%.?", ""))
      err.line = lines[i]
    end
    return out:fail(err, progress)
  end
  progress:done()
  local status = cli.EXIT.ok
  for _, r in ipairs(results) do
    if r.result then
      out:line(("%s  succeed  %s"):format(r.key, r.path or tostring(r.result.video_url)))
      out:record(result_record(r.key, r.result, r.path))
    else
      out:line(("%s  %s  %s"):format(r.key, r.error.kind, r.error.message))
      out:record({ key = r.key, error = cli.error_record(r.error) })
      if status == cli.EXIT.ok then status = cli.exit_code(r.error) end
    end
  end
  return status
end

-- The journal: list it, forget keys, adopt a task id for an uncertain key.
-- Reads and mends the local file only: no token needed, nothing sent.
function commands.jobs(args)
  local journal, out = open_journal(args)
  if not journal then return out end
  local status = cli.EXIT.ok
  if args.adopt then
    local key, task_id = args.adopt[1], args.adopt[2]
    local ok, err = journal:adopt(key, task_id)
    if not ok then
      journal:close()
      return out:fail(err)
    end
    out:line(("key %s now follows task %s; run its command again to resume"):format(key, task_id))
    out:record({ key = key, task_id = task_id, adopted = true })
  end
  for _, key in ipairs(args.forget or {}) do
    local ok, err = journal:forget(key, { force = args.force })
    if ok == nil then
      status = out:fail(err)
    else
      out:line(ok and ("forgot " .. key) or ("no entry " .. key))
      out:record({ key = key, forgotten = ok })
      if not ok and status == cli.EXIT.ok then status = cli.EXIT.not_found end
    end
  end
  if args.adopt or (args.forget and #args.forget > 0) then
    journal:close()
    return status
  end
  local list, err = journal:list({ state = args.state })
  journal:close()
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
