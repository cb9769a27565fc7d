-- The kling command: its arguments (lua-argparse), its exit codes, and how
-- results and errors are printed. The subcommands are in kling.cli.commands.
--   kling motion IMAGE VIDEO [-o out.mp4] ...   (see `kling --help`)
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local argparse = require "argparse"
local cjson = require "cjson"
local endpoints = require "kling.endpoints"
local errors = require "kling.errors"

local cli = {}

-- One exit code per error kind, so that scripts can tell failures apart.
cli.EXIT = {
  ok = 0, failure = 1, invalid_argument = 2, usage = 2, auth = 3, rate_limited = 4, api = 5, network = 6,
  timeout = 7, bad_response = 8, task_failed = 9, not_found = 10, uncertain = 11, journal = 12,
  cancelled = 13, closed = 13, interrupted = 130,
}

local EPILOG = [[
Exit codes:
  0 done             5 api error (HTTP)         10 not found (unknown task id)
  1 other failure    6 network failure          11 uncertain: may be billed, no task id
  2 bad input/usage  7 timeout (task goes on)   12 journal (the state file)
  3 auth (token)     8 bad answer from the API  13 cancelled or closed
  4 rate limited     9 the task failed         130 interrupted (Ctrl-C; SIGTERM 143, SIGHUP 129)

Every run is journaled (--journal, default $XDG_STATE_HOME/kling/jobs.db): run the
same command again after Ctrl-C or a crash and it resumes; nothing is billed twice.
Environment: ACEDATACLOUD_API_TOKEN, ACEDATACLOUD_API_BASE_URL,
ACEDATACLOUD_PLATFORM_TOKEN (uploads), ACEDATACLOUD_PLATFORM_BASE_URL.]]

local function common(command)
  command:option("--journal", "The journal file (default: $XDG_STATE_HOME/kling/jobs.db).")
  command:flag("--json", "Print one JSON object (or JSON lines) on standard output, nothing else.")
  return command
end

-- The endpoints that have a subcommand, by its name (kling <name>).
local function endpoint_commands()
  local names = {}
  for name, endpoint in pairs(endpoints.by_name) do
    if endpoint.command then names[#names + 1] = endpoint.command.name or name end
  end
  table.sort(names)
  return names
end

-- A job's subcommand: its arguments (sources or fields), its options, and
-- what every job's subcommand has: -o, --key, --callback-url, --async,
-- --retry-failed.
local function job_command(parent, name, help, form)
  local c = common(parent:command(name, help))
  for _, a in ipairs(form.arguments) do c:argument(a.name, a.help) end
  c:option("-o --output", "Where to save the video (default: kling-<task>.mp4).")
  for _, o in ipairs(form.options) do
    if o.value ~= nil then
      c:flag(o.flag, o.help)
    else
      local opt = c:option(o.flag, o.help)
      if o.choices then opt:choices(o.choices) end
      if o.default then opt:default(o.default) end
    end
  end
  c:option("--key", "A name for the job in the journal (default: one made from the inputs).")
  c:option("--callback-url", "A URL the API POSTs the result to.")
  c:flag("--async", "Submit only: print the task id and return.")
  c:flag("--retry-failed", "If this job's task failed before, submit it again (billed again).")
  return c
end

-- An endpoint's subcommand, from its description (endpoint.command); one
-- with actions gets a subcommand per action (args.action names it).
function cli.endpoint_command(p, endpoint)
  local spec = endpoint.command
  local name = spec.name or endpoint.name
  if not spec.actions then return job_command(p, name, spec.help, spec) end
  local c = p:command(name, spec.help)
  c:command_target("action")
  c:require_command(true)
  for _, action in ipairs(spec.actions) do job_command(c, action.name, action.help, action) end
  return c
end

-- The parser, and its subcommands' parsers by name.
function cli.parser()
  local p = argparse("kling", "Kling (AceData Cloud): motion (a reference image and a motion video in, "
    .. "a video of the character doing that motion out), and video (from a prompt, from frames, or extended).")
  p:epilog(EPILOG)
  p:command_target("command")
  p:require_command(true)
  p:flag("--version", "Print kling's version and exit.")

  local subcommands = {}
  for _, name in ipairs(endpoint_commands()) do
    subcommands[name] = cli.endpoint_command(p, endpoints.for_command(name))
  end

  local wait = common(p:command("wait", "Follow a task to its end."))
  wait:argument("task_id", "The task id.")
  wait:option("-o --output", "Where to save the video.")

  local task = common(p:command("task", "Show tasks (one request for all)."))
  task:argument("task_id", "Task ids."):args("+")

  local download = common(p:command("download", "Save a task's video, or a video URL."))
  download:argument("source", "A task id or a URL.")
  download:option("-o --output", "The file to write."):count(1)

  local upload = common(p:command("upload", "Upload local files; prints their URLs."))
  upload:argument("file", "Files to upload."):args("+")

  local probe = common(p:command("probe", "What a media file is, and whether Kling's motion control takes it."))
  probe:argument("file", "Image or video files."):args("+")

  local batch = common(p:command("batch", "Run many jobs from a JSON lines or CSV file (a key column names each)."))
  batch:argument("file", "The jobs: JSON lines of motion params, or CSV with a header row.")
  batch:option("--out", "Where to save the videos (as <key>.mp4).")
  batch:option("--concurrency", "Jobs at once."):default("4"):convert(tonumber)
  batch:flag("--retry-failed", "Submit again the jobs whose task failed.")

  local jobs = common(p:command("jobs", "List the journal."))
  jobs:option("--state", "Only entries in this state."):choices({ "queued", "sending", "submitted", "succeed",
                                                                    "failed", "uncertain" })
  jobs:option("--forget", "Forget a key, so that it may be submitted again (repeatable).")
    :count("*"):argname("<key>")
  jobs:flag("--force", "With --forget: also forget a key that may have been billed (submitted, finished or "
    .. "uncertain): submitting it again is billed again.")
  jobs:option("--adopt", "Attach a task id you found (in your AceData task list) to an uncertain key; the key "
    .. "is then followed like a submitted one."):args(2):argname({ "<key>", "<task_id>" })

  local sim = p:command("simulator", "Run the local simulator of the API (for trying kling offline); "
    .. "`kling simulator --help` lists its options and their defaults.")
  sim:handle_options(false)
  sim:add_help(false)
  sim:argument("options", "--port N, --host A, --token T, --platform-token T, --generation-time S, "
    .. "--idle-exit S, --samples DIR"):args("*")
  subcommands.wait, subcommands.task, subcommands.download, subcommands.upload = wait, task, download, upload
  subcommands.probe, subcommands.batch, subcommands.jobs, subcommands.simulator = probe, batch, jobs, sim
  return p, subcommands
end

-- ---- output ----

local Out = {}
Out.__index = Out

function cli.output(json)
  return setmetatable({ json = json }, Out)
end

-- A line of the result (text mode only).
function Out:line(...)
  if not self.json then
    io.stdout:write(...)
    io.stdout:write("\n")
  end
end

-- One JSON value on its own line (JSON mode only).
function Out:record(value)
  if self.json then
    io.stdout:write(cjson.encode(value), "\n")
  end
end

local ERROR_FIELDS = { "kind", "message", "code", "status", "field", "task_id", "key", "reason", "retry_after",
                       "maybe_submitted" }

-- An error as plain fields (no metatable, no cause), for JSON.
function cli.error_record(err)
  if not errors.is(err) then return { kind = "failure", message = tostring(err) } end
  local t = {}
  for _, k in ipairs(ERROR_FIELDS) do t[k] = err[k] end
  return t
end

-- The exit status of an error. A submit that may have been billed without a
-- known task id is "uncertain" (11) whether it just happened (a 503, a
-- timeout after sending) or a later run finds it in the journal: the same
-- state, the same status.
function cli.exit_code(err)
  if not errors.is(err) then return cli.EXIT.failure end
  if err.maybe_submitted and not err.task_id then return cli.EXIT.uncertain end
  return cli.EXIT[err.kind] or cli.EXIT.failure
end

-- What to do next, by kind, for the errors a user can act on.
local NEXT_STEP = {
  task_failed = "AceData ran the job and it failed; fix the inputs, or run the same command again with "
    .. "--retry-failed to submit it again (billed again)",
  auth = "check the token named above",
  timeout = "the task goes on at AceData: run the same command again to go on waiting",
  uncertain = "look for the job in your AceData task list: if it is there, `kling jobs --adopt KEY TASK_ID`; "
    .. "if not, `kling jobs --forget KEY --force` and run the command again",
}

-- Prints err and returns its exit code.
function Out:fail(err, progress)
  if progress then progress:done() end
  if self.json then
    io.stdout:write(cjson.encode({ error = cli.error_record(err) }), "\n")
  else
    io.stderr:write("kling: ", errors.is(err) and err.message or tostring(err), "\n")
    if errors.is(err) then
      local facts = {}
      for _, k in ipairs({ "field", "task_id", "key", "code", "status" }) do
        if err[k] ~= nil and not tostring(err.message):find(tostring(err[k]), 1, true) then
          facts[#facts + 1] = ("%s %s"):format(k == "task_id" and "task" or k, tostring(err[k]))
        end
      end
      if #facts > 0 then io.stderr:write("  (", table.concat(facts, ", "), ")\n") end
      local kind = err.maybe_submitted and not err.task_id and "uncertain" or err.kind
      if NEXT_STEP[kind] then io.stderr:write("  next: ", NEXT_STEP[kind], "\n") end
    end
  end
  return cli.exit_code(err)
end

-- ---- main ----

-- Runs the command for argv; returns the exit status. Never raises for a
-- user's mistake or a failure: those are messages and exit codes.
-- The usage of the subcommand argv names (or the command's own).
local function usage_of(parser, subcommands, argv)
  for _, a in ipairs(argv) do
    if a:sub(1, 1) ~= "-" then
      if subcommands[a] then return subcommands[a]:get_usage() end
      break
    end
  end
  return parser:get_usage()
end

function cli.main(argv)
  -- from here on Ctrl-C, SIGTERM and SIGHUP are a flag the commands act on
  -- (see commands.lua)
  local core = require "kling.core"
  core.catch_interrupt()
  for _, a in ipairs(argv) do
    if a == "--version" then
      io.stdout:write(("%s (%s)\n"):format(require("kling")._VERSION, core.curl_version))
      return cli.EXIT.ok
    end
    if a == "simulator" then break end -- its own options follow
  end
  local parser, subcommands = cli.parser()
  local ok, args = parser:pparse(argv)
  if not ok then
    local json = false
    for _, a in ipairs(argv) do json = json or a == "--json" end
    if json then
      io.stdout:write(cjson.encode({ error = { kind = "usage", message = tostring(args) } }), "\n")
    else
      io.stderr:write(usage_of(parser, subcommands, argv), "\n\nkling: ", tostring(args), "\n")
    end
    return cli.EXIT.usage
  end
  local commands = require "kling.cli.commands"
  local endpoint = endpoints.for_command(args.command)
  local run_ok, status
  if endpoint then
    run_ok, status = pcall(commands.request, endpoint, args)
  else
    run_ok, status = pcall(commands[args.command], args)
  end
  if run_ok then return status end
  -- a bug of ours: say so plainly, without the token (errors never hold it)
  io.stderr:write("kling: internal error: ", tostring(status), "\n")
  return cli.EXIT.failure
end

return cli
