-- The kling command, run as a subprocess against the simulator: every
-- subcommand, --json output, exit codes, Ctrl-C and resuming, a terminal
-- session under a pseudo-terminal, and no token in any output.
local cjson = require "cjson"
local core = require "kling.core"
local samples = require "kling.simulator.media"
local Simulator = require "helpers.simulator"

local TOKEN, PLATFORM_TOKEN = "cli-secret-token-7d1e", "cli-platform-secret-93ab"
local LUA = os.getenv("KLING_LUA") or "lua5.4"
local KLING = LUA .. " " .. (os.getenv("PWD") or ".") .. "/bin/kling"

local read = Simulator.read_file

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

describe("the kling command", function()
  local sim, dir, env
  setup(function()
    sim = Simulator.start({ generation_time = 0.3 })
    dir = Simulator.tempdir()
    samples.write(dir .. "/person.png", samples.png(320, 400))
    samples.write(dir .. "/dance.mp4", samples.video(1280, 720, 5))
    samples.write(dir .. "/long.mp4", samples.video(1280, 720, 12))
  end)
  teardown(function()
    sim:stop()
    Simulator.remove_dir(dir)
  end)
  before_each(function()
    sim:reset()
    sim:config({ token = TOKEN, platform_token = PLATFORM_TOKEN })
    -- short polls and back-offs through the environment (KLING_<OPTION>), as a user may set them
    env = ("cd %s && export ACEDATACLOUD_API_TOKEN=%s ACEDATACLOUD_API_BASE_URL=%s ACEDATACLOUD_PLATFORM_TOKEN=%s "
      .. "ACEDATACLOUD_PLATFORM_BASE_URL=%s XDG_STATE_HOME=%s KLING_POLL_INTERVAL=0.05 KLING_MAX_POLL_INTERVAL=0.2 "
      .. "KLING_RETRY_DELAY=0.01 KLING_MAX_RETRY_DELAY=0.05; "):format(quote(dir), TOKEN, sim.url, PLATFORM_TOKEN,
      sim.url, quote(dir .. "/state"))
  end)
  after_each(function() os.execute("rm -rf " .. quote(dir .. "/state")) end)

  -- Runs `kling args`; returns the exit status, stdout and stderr.
  local function kling(args, prefix)
    local cmd = ("%s%s%s %s >%s/out 2>%s/err; echo $? >%s/code"):format(env, prefix or "", KLING, args,
      quote(dir), quote(dir), quote(dir))
    os.execute(cmd)
    local out, err = read(dir .. "/out"), read(dir .. "/err")
    for _, text in ipairs({ out, err }) do
      assert.is_nil(text:find(TOKEN, 1, true), "the API token was printed")
      assert.is_nil(text:find(PLATFORM_TOKEN, 1, true), "the platform token was printed")
    end
    return tonumber(read(dir .. "/code")), out, err
  end

  local function json(out)
    local lines = {}
    for line in out:gmatch("[^\n]+") do lines[#lines + 1] = cjson.decode(line) end
    return lines
  end

  it("motion: uploads local files, follows the task, saves the video; run again, it costs nothing", function()
    local code, out, err = kling("motion person.png dance.mp4 -o out.mp4")
    assert.equal(0, code, err)
    assert.truthy(out:find("saved out.mp4", 1, true))
    assert.truthy(err:find("uploading person.png", 1, true))
    assert.truthy(err:find("succeed", 1, true))
    assert.equal(1040, #read(dir .. "/out.mp4"))
    assert.equal(2, sim:stats().uploads)
    code, out = kling("motion person.png dance.mp4 -o again.mp4 --json")
    assert.equal(0, code)
    local r = json(out)
    assert.equal(1, #r)
    assert.equal("succeed", r[1].state)
    assert.equal("again.mp4", r[1].path)
    assert.truthy(r[1].key:match("^cli%-%x+$"))
    assert.equal(1, sim:stats().submits)
    assert.equal(2, sim:stats().uploads)
  end)

  it("motion --async and wait, task, download, jobs", function()
    local code, out = kling("motion https://cdn.example.test/p.jpg https://cdn.example.test/d.mp4 --async "
      .. "--key mine --mode pro --orientation video --json")
    assert.equal(0, code)
    local id = json(out)[1].task_id
    assert.is_string(id)
    code, out = kling("wait " .. id .. " -o w.mp4 --json")
    assert.equal(0, code)
    assert.equal("w.mp4", json(out)[1].path)
    code, out = kling("task " .. id .. " missing-id --json")
    assert.equal(10, code) -- every id shown, and one was not found
    local tasks = json(out)
    assert.equal("succeed", tasks[1].state)
    assert.equal("not_found", tasks[2].state)
    assert.equal(1, sim:stats().retrieve_batch)
    code = kling("download " .. id .. " -o d.mp4")
    assert.equal(0, code)
    assert.equal(1040, #read(dir .. "/d.mp4"))
    code, out = kling("jobs --json")
    assert.equal(0, code)
    local entries = json(out)
    assert.equal("mine", entries[1].key)
    assert.equal("succeed", entries[1].state)
    code, out = kling("jobs --state uncertain")
    assert.equal(0, code)
    assert.equal("", out)
    local body = cjson.decode(sim:requests()[1].body)
    assert.equal("pro", body.mode)
    assert.equal("video", body.character_orientation)
  end)

  it("names a job by its inputs as 0.1.0 did: the same command resumes the same job across the upgrade", function()
    local code, out = kling("motion https://cdn.example.test/p.jpg https://cdn.example.test/d.mp4 --async --json")
    assert.equal(0, code)
    assert.equal("cli-8f73601bfbdd2b97", json(out)[1].key) -- what 0.1.0 computed for these inputs
    code, out = kling("motion https://cdn.example.test/p.jpg https://cdn.example.test/d.mp4 --mode pro --async --json")
    assert.equal(0, code)
    assert.are_not.equal("cli-8f73601bfbdd2b97", json(out)[1].key)
  end)

  it("upload and probe", function()
    local code, out = kling("upload person.png dance.mp4")
    assert.equal(0, code)
    local urls = {}
    for line in out:gmatch("[^\n]+") do urls[#urls + 1] = line end
    assert.equal(2, #urls)
    assert.truthy(urls[1]:find("/uploads/.+/person%.png$"))
    code, out = kling("probe person.png long.mp4 --json")
    assert.equal(0, code)
    local r = json(out)
    assert.equal(320, r[1].width)
    assert.is_true(r[1].fits.image)
    assert.equal(12, r[2].duration)
    assert.is_false(r[2].fits.orientation_image)
    assert.is_true(r[2].fits.orientation_video)
    code, out = kling("probe long.mp4")
    assert.equal(0, code) -- it fits one way
    assert.truthy(out:find("does not fit as the motion video (--orientation image)", 1, true))
    code = kling("probe person.png notes.txt")
    assert.equal(2, code)
  end)

  it("batch from JSON lines and from CSV, resumable", function()
    local f = assert(io.open(dir .. "/jobs.jsonl", "w"))
    f:write('{"key": "a", "image": "person.png", "video": "dance.mp4"}\n')
    f:write('{"key": "b", "image_url": "https://cdn.example.test/b.jpg", '
      .. '"video_url": "https://cdn.example.test/b.mp4"}\n')
    f:close()
    local code, out, err = kling("batch jobs.jsonl --out videos --concurrency 2 --json")
    assert.equal(0, code, err .. out)
    local r = json(out)
    assert.equal("a", r[1].key)
    assert.equal("videos/a.mp4", r[1].path)
    assert.equal("videos/b.mp4", r[2].path)
    assert.equal(1040, #read(dir .. "/videos/b.mp4"))
    f = assert(io.open(dir .. "/jobs.csv", "w"))
    f:write('key,image_url,video_url,prompt\n')
    f:write('c,https://cdn.example.test/c.jpg,https://cdn.example.test/c.mp4,"wave, then ""bow"""\n')
    f:close()
    code, out = kling("batch jobs.csv")
    assert.equal(0, code)
    assert.truthy(out:find("c  succeed", 1, true))
    local last = cjson.decode(sim:requests()[#sim:requests()].body)
    for _, req in ipairs(sim:requests()) do
      if req.path == "/kling/motion" and req.body:find("c.jpg", 1, true) then last = cjson.decode(req.body) end
    end
    assert.equal('wave, then "bow"', last.prompt)
    local submits = sim:stats().submits
    code = kling("batch jobs.jsonl --out videos")
    assert.equal(0, code)
    assert.equal(submits, sim:stats().submits)
  end)

  it("exits with a code per error kind, and --json prints the error", function()
    local code, _, err = kling("motion")
    assert.equal(2, code)
    assert.truthy(err:find("missing argument", 1, true))
    local out
    code, out = kling("motion person.png long.mp4 --json")
    assert.equal(2, code)
    assert.equal("video_file", json(out)[1].error.field)
    code, out = kling("download no-such-task -o x.mp4 --json")
    assert.equal(10, code)
    assert.equal("not_found", json(out)[1].error.kind)
    sim:next_task({ outcome = "failed_state", error_code = "bad_image", error_message = "no person found" })
    code, _, err = kling("motion https://cdn.example.test/x.jpg https://cdn.example.test/x.mp4")
    assert.equal(9, code)
    assert.truthy(err:find("no person found", 1, true))
    sim:fault({ path = "/kling/motion", status = 503 })
    -- may have been billed, no task id: uncertain (11) on the first run and on the next, the same state
    code, _, err = kling("motion https://cdn.example.test/y.jpg https://cdn.example.test/y.mp4 --key maybe")
    assert.equal(11, code)
    assert.truthy(err:find("kling jobs --adopt", 1, true), err)
    code, out = kling("motion https://cdn.example.test/y.jpg https://cdn.example.test/y.mp4 --key maybe --json")
    assert.equal(11, code)
    assert.equal("uncertain", json(out)[1].error.kind)
    code = kling("jobs --forget maybe")
    assert.equal(2, code) -- it may have been billed: that takes --force
    code = kling("jobs --forget maybe --force")
    assert.equal(0, code)
    local saved = env
    env = env:gsub("ACEDATACLOUD_API_TOKEN=%S+", "ACEDATACLOUD_API_TOKEN=wrong")
    code = kling("task some-id")
    env = saved
    assert.equal(3, code)
  end)

  it("Ctrl-C stops promptly, prints the task id, and the same command resumes without paying again", function()
    sim:fault({ path = "/kling/motion", delay = 0.5, pass = true })
    sim:next_task({ generation_time = 0.5 })
    local args = "motion https://cdn.example.test/i.jpg https://cdn.example.test/v.mp4 -o v.mp4"
    os.remove(dir .. "/code")
    os.remove(dir .. "/pid")
    os.execute(("%s(%s %s >%s/out 2>%s/err & echo $! >%s/pid; wait $!; echo $? >%s/code) &"):format(
      env, KLING, args, quote(dir), quote(dir), quote(dir), quote(dir)))
    while sim:stats().submits == 0 do core.random() end -- the submit is on the wire
    local pid
    repeat pid = tonumber(read(dir .. "/pid")) until pid
    local started = core.now()
    os.execute("kill -INT " .. pid)
    local code
    repeat code = tonumber(read(dir .. "/code")) until code or core.now() - started > 10
    assert.equal(130, code, read(dir .. "/err") .. read(dir .. "/out"))
    assert.is_true(core.now() - started < 2, "stopping took too long")
    local err = read(dir .. "/err")
    assert.truthy(err:find("interrupted", 1, true))
    assert.truthy(err:find("run the same command again to resume", 1, true), err)
    assert.is_nil(err:find("traceback", 1, true))
    local id = err:match("task (%x+%-[%x%-]+) goes on")
    assert.is_string(id)
    local c2, out2 = kling(args .. " --json")
    assert.equal(0, c2)
    assert.equal(id, json(out2)[1].task_id)
    assert.equal(1, sim:stats().submits)
  end)

  -- Starts `kling args` in the background; returns its pid and a function
  -- that waits (up to 10 s) for its exit status.
  local function start(args)
    os.remove(dir .. "/code")
    os.remove(dir .. "/pid")
    os.execute(("%s(%s %s >%s/out 2>%s/err & echo $! >%s/pid; wait $!; echo $? >%s/code) &"):format(
      env, KLING, args, quote(dir), quote(dir), quote(dir), quote(dir)))
    local pid
    repeat pid = tonumber(read(dir .. "/pid")) until pid
    return pid, function()
      local started = core.now()
      local code
      repeat code = tonumber(read(dir .. "/code")) until code or core.now() - started > 10
      return code
    end
  end

  local function parts_in(d)
    local p = io.popen("ls -a " .. quote(d))
    local list = {}
    for name in p:lines() do
      if name:find("%.part$") then list[#list + 1] = name end
    end
    p:close()
    return list
  end

  it("SIGTERM and SIGHUP stop like Ctrl-C: a submit on the wire is recorded, and the rerun resumes it", function()
    for _, case in ipairs({ { "TERM", 143 }, { "HUP", 129 } }) do
      sim:reset()
      sim:config({ token = TOKEN, platform_token = PLATFORM_TOKEN })
      sim:fault({ path = "/kling/motion", delay = 0.5, pass = true })
      sim:next_task({ generation_time = 0.5 })
      local args = ("motion https://cdn.example.test/%s.jpg https://cdn.example.test/v.mp4 -o %s.mp4"):format(
        case[1], case[1])
      local pid, wait = start(args)
      while sim:stats().submits == 0 do core.random() end -- the submit is on the wire
      os.execute("kill -" .. case[1] .. " " .. pid)
      assert.equal(case[2], wait(), read(dir .. "/err"))
      local err = read(dir .. "/err")
      local id = err:match("task (%x+%-[%x%-]+) goes on")
      assert.is_string(id, err)
      local code, out = kling(args .. " --json")
      assert.equal(0, code)
      assert.equal(id, json(out)[1].task_id)
      assert.equal(1, sim:stats().submits)
    end
  end)

  it("Ctrl-C during a download exits 130 and leaves no partial file", function()
    local code, out = kling("motion https://cdn.example.test/d.jpg https://cdn.example.test/d.mp4 --async --json")
    assert.equal(0, code)
    local id = json(out)[1].task_id
    assert.equal(0, kling("wait " .. id)) -- finished
    sim:fault({ path = "/files/" .. id .. ".mp4", delay = 5 })
    local _, wait = start("download " .. id .. " -o slow.mp4")
    while sim:stats().downloads == 0 do core.random() end
    os.execute("kill -INT " .. tonumber(read(dir .. "/pid")))
    assert.equal(130, wait(), read(dir .. "/err"))
    assert.same({}, parts_in(dir))
    assert.is_nil(io.open(dir .. "/slow.mp4"))
  end)

  it("an output path that cannot be written is refused before any upload, submit or download", function()
    os.execute("mkdir -p " .. quote(dir .. "/adir"))
    for _, args in ipairs({ "motion person.png dance.mp4 -o nodir/x.mp4", "motion person.png dance.mp4 -o adir",
                            "download https://cdn.example.test/v.mp4 -o adir",
                            "wait 3f1c1e9e-0000-4000-8000-000000000000 -o nodir/w.mp4" }) do
      local code, out = kling(args .. " --json")
      assert.equal(2, code, args)
      assert.equal("output", json(out)[1].error.field, args)
    end
    assert.equal(0, sim:stats().uploads)
    assert.equal(0, sim:stats().submits)
    assert.equal(0, sim:stats().downloads)
    assert.same({}, parts_in(dir))
    assert.same({}, parts_in(dir .. "/adir"))
  end)

  it("jobs reads and mends the journal without a token; forgetting what may be billed takes --force", function()
    local code = kling("motion https://cdn.example.test/j.jpg https://cdn.example.test/j.mp4 --async --key paid")
    assert.equal(0, code)
    local out
    local saved = env
    env = env:gsub("export ACEDATACLOUD_API_TOKEN=%S+", "unset ACEDATACLOUD_API_TOKEN; export")
    code, out = kling("jobs --json")
    assert.equal(0, code, out)
    assert.equal("submitted", json(out)[1].state)
    local _, err
    code, _, err = kling("jobs --forget paid")
    assert.equal(2, code)
    assert.truthy(err:find("billed again", 1, true), err)
    code = kling("jobs --forget paid --forget nothing-here --force")
    assert.equal(10, code) -- one of the two was unknown
    _, out = kling("jobs --json")
    assert.equal("", out)
    env = saved
    -- an uncertain key takes the task id the user found
    sim:fault({ path = "/kling/motion", drop = true, create_task = true })
    code = kling("motion https://cdn.example.test/u.jpg https://cdn.example.test/u.mp4 --key lost")
    assert.equal(11, code)
    local id = sim:tasks()[#sim:tasks()].id
    code = kling("jobs --adopt lost " .. id)
    assert.equal(0, code)
    code, out = kling("motion https://cdn.example.test/u.jpg https://cdn.example.test/u.mp4 --key lost -o u.mp4 --json")
    assert.equal(0, code)
    assert.equal(id, json(out)[1].task_id)
    assert.equal(2, sim:stats().submits)
    -- the default state directory is the user's alone
    local p = io.popen("stat -c %a " .. quote(dir .. "/state/kling"))
    assert.equal("700", p:read("*l"))
    p:close()
  end)

  it("a batch file is read whole before anything is sent: a cut CSV row, a broken quote, a refused file", function()
    samples.write(dir .. "/tiny.png", samples.png(100, 100))
    local cases = {
      { "key,image_url,video_url,prompt\nk1,https://x.test/a.jpg,https://x.test/a.mp4,wave, then bow\n", "line 2",
        "3 cells" },
      { "key,image_url,video_url\nk1,\"https://x.test/a.jpg,https://x.test/a.mp4\n", "line 2, column 4",
        "not closed" },
      { "key,image,video\nk1,person.png,dance.mp4\nk2,person.png,dance.mp4\nk3,tiny.png,dance.mp4\n", "line 4",
        "image_file" },
    }
    cases[1][3] = "5 cells"
    for i, case in ipairs(cases) do
      local f = assert(io.open(dir .. "/bad" .. i .. ".csv", "w"))
      f:write(case[1])
      f:close()
      local code, _, err = kling("batch bad" .. i .. ".csv")
      assert.equal(2, code, err)
      assert.truthy(err:find(case[2], 1, true), err)
      assert.truthy(err:find(case[3], 1, true), err)
    end
    assert.equal(0, sim:stats().submits)
    assert.equal(0, sim:stats().uploads)
  end)

  it("prints its version, a subcommand's own usage, JSON for a usage error with --json, the simulator's defaults",
    function()
    local code, out = kling("--version")
    assert.equal(0, code)
    assert.truthy(out:match("^kling %d+%.%d+%.%d+"), out)
    local _, err
    code, _, err = kling("download some-task")
    assert.equal(2, code)
    assert.truthy(err:find("Usage: kling download", 1, true), err)
    code, out = kling("download some-task --json")
    assert.equal(2, code)
    assert.equal("usage", json(out)[1].error.kind)
    code, out = kling("simulator --help")
    assert.equal(0, code)
    assert.truthy(out:find("default: 127.0.0.1", 1, true), out)
  end)

  it("a failed task says which task, its code, and what to do next", function()
    sim:next_task({ outcome = "failed_state", error_code = "bad_image", error_message = "no person found" })
    local code, _, err = kling("motion https://cdn.example.test/f.jpg https://cdn.example.test/f.mp4")
    assert.equal(9, code)
    local id = sim:tasks()[1].id
    assert.truthy(err:find(id, 1, true), err)
    assert.truthy(err:find("bad_image", 1, true), err)
    assert.truthy(err:find("--retry-failed", 1, true), err)
    code = kling("motion https://cdn.example.test/f.jpg https://cdn.example.test/f.mp4 --retry-failed")
    assert.equal(0, code)
    assert.equal(2, sim:stats().submits)
  end)

  it("draws a live status line on a terminal", function()
    -- a pseudo-terminal from util-linux's script(1); a root without /dev/pts has none
    local made = os.execute("script -qefc true /dev/null >/dev/null 2>&1")
    if made ~= true and made ~= 0 then
      pending("no pseudo-terminal can be made here")
      return
    end
    local cmd = ("%sscript -qefc %s /dev/null"):format(env, quote(KLING
      .. " motion https://cdn.example.test/t.jpg https://cdn.example.test/t.mp4 -o t.mp4"))
    local p = assert(io.popen(cmd))
    local text = p:read("*a")
    p:close()
    assert.truthy(text:find("\r\27[K", 1, true), "no line redrawn in place")
    assert.truthy(text:find("downloading t.mp4 [", 1, true))
    assert.truthy(text:find("polls?%s+task") or text:find("poll "), text)
    assert.is_nil(text:find(TOKEN, 1, true))
  end)

  it("runs the simulator; its samples never overwrite a file, and are there once it says it listens", function()
    local samples_dir = dir .. "/samples"
    os.execute("mkdir -p " .. quote(samples_dir))
    local mine = assert(io.open(samples_dir .. "/person.png", "w"))
    mine:write("the user's own picture")
    mine:close()
    local p = assert(io.popen(KLING .. " simulator --port 0 --idle-exit 1 --samples " .. quote(samples_dir)
      .. " 2>/dev/null"))
    local line = p:read("*l")
    -- once it says so, it listens and the samples are written
    local video = read(samples_dir .. "/dance.mp4")
    p:close()
    assert.truthy(line:match("^kling%-simulator listening on http://127%.0%.0%.1:%d+$"))
    assert.equal("the user's own picture", read(samples_dir .. "/person.png"))
    assert.equal("ftyp", video:sub(5, 8))
    -- and its task ids are UUIDs on every runtime (Lua 5.1's math.random overflowed)
    local code, out = kling("motion https://cdn.example.test/q.jpg https://cdn.example.test/q.mp4 --async --json")
    assert.equal(0, code)
    assert.truthy(json(out)[1].task_id:match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x+$"),
      json(out)[1].task_id)
    assert.equal(36, #json(out)[1].task_id)
  end)
end)
