-- Uploads through the platform API (the simulator plays it), and motion
-- from files on disk: checked against Kling's limits, uploaded, then sent.
local cjson = require "cjson"
local socket = require "socket"
local samples = require "kling.simulator.media"
local Simulator = require "helpers.simulator"

local PLATFORM_TOKEN = "sim-platform-token"
local UPLOAD = "/api/v1/files/"

describe("uploads", function()
  local sim, client, dir
  setup(function()
    sim = Simulator.start({ generation_time = 0.2 })
    dir = Simulator.tempdir()
  end)
  teardown(function()
    sim:stop()
    Simulator.remove_dir(dir)
  end)
  before_each(function()
    sim:reset()
    client = sim:client({ platform_token = PLATFORM_TOKEN, platform_url = sim.url })
  end)
  after_each(function() client:close() end)

  local function file(name, bytes) return samples.write(dir .. "/" .. name, bytes) end
  local function fetch(url)
    local body = require("socket.http").request(url)
    return body
  end

  it("uploads a file as multipart/form-data with the platform token, and returns its URL", function()
    local bytes = samples.png(320, 400)
    local url = assert(client:upload(file("person.png", bytes)))
    assert.truthy(url:match("^http://127%.0%.0%.1:%d+/uploads/.+/person%.png$"), url)
    assert.equal(bytes, fetch(url))
    local r = sim:requests()[1]
    assert.equal(UPLOAD, r.path)
    assert.equal("Bearer " .. PLATFORM_TOKEN, r.headers.authorization)
    assert.truthy(r.headers["content-type"]:find("multipart/form-data", 1, true))
    assert.truthy(r.body:find('name="file"; filename="person.png"', 1, true))
    assert.equal(1, sim:stats().uploads)
    -- bytes in memory, named by the caller
    url = assert(client:upload("hello", { filename = "note.txt" }))
    assert.equal("hello", fetch(url))
  end)

  it("accepts the answer as file_url, url, or inside data", function()
    for _, answer in ipairs({ "url", "data" }) do
      sim:config({ upload_answer = answer })
      assert.truthy(assert(client:upload("x", { filename = "x.bin" })):find("/uploads/", 1, true))
    end
  end)

  it("streams the file from disk and reports progress", function()
    local big = file("big.bin", string.rep("0123456789abcdef", 5 * 65536)) -- 5 MiB
    collectgarbage()
    local before = collectgarbage("count")
    local last_sent, total, calls = 0, 0, 0
    local url = assert(client:upload(big, { on_progress = function(sent, to_send)
      assert.is_true(sent >= last_sent)
      last_sent, total, calls = sent, to_send, calls + 1
    end }))
    local grew = collectgarbage("count") - before
    assert.is_true(grew < 1024, ("the Lua heap grew by %.0f KiB during a 5 MiB upload"):format(grew))
    assert.is_true(calls > 0)
    assert.is_true(total >= 5 * 1024 * 1024)
    assert.equal(5 * 1024 * 1024, sim:stats().upload_bytes)
    assert.truthy(url:find("big.bin", 1, true))
  end)

  -- A host stepping on a 100 ms timer (Neovim's, say) gets a step's budget
  -- of streaming each time (4 ms there), not one libcurl buffer (64 KiB):
  -- 20 MiB in under 2 s, where it took 5.5 s (and 32 s with a flat budget).
  it("a 20 MiB upload stepped every 100 ms by step(0) ends in under 2 s", function()
    local big = file("stream.bin", string.rep("0123456789abcdef", 20 * 65536)) -- 20 MiB
    local job = client:spawn(function() return client:upload(big) end)
    local steps = 0
    while job:status() == "running" do
      client:step(0)
      steps = steps + 1
      assert.is_true(steps <= 20, "more than 20 steps of 100 ms for a 20 MiB upload")
      if job:status() == "running" then socket.sleep(0.1) end -- the host's timer
    end
    assert(job:result())
    assert.equal(20 * 1024 * 1024, sim:stats().upload_bytes)
  end)

  it("retries a failed upload like a retrieval (uploads are not billed)", function()
    sim:fault({ path = UPLOAD, status = 503 })
    assert(client:upload("again", { filename = "a.bin" }))
    assert.equal(2, sim:stats().requests[UPLOAD])
    sim:fault({ path = UPLOAD, drop = true })
    assert(client:upload("again", { filename = "a.bin" }))
  end)

  it("needs the platform token, and says so by name before any request", function()
    local c = sim:client({ platform_url = sim.url })
    local url, err = c:upload("x", { filename = "x.bin" })
    c:close()
    assert.is_nil(url)
    assert.equal("auth", err.kind)
    assert.equal("platform_token", err.field)
    assert.truthy(err.message:find("ACEDATACLOUD_PLATFORM_TOKEN", 1, true))
    c = sim:client({ platform_url = sim.url, platform_token = "wrong-token" })
    url, err = c:upload("x", { filename = "x.bin" })
    c:close()
    assert.is_nil(url)
    assert.equal("auth", err.kind)
    assert.equal(401, err.status)
    assert.equal(1, sim:stats().requests[UPLOAD])
  end)

  it("checks the size limit first", function()
    local c = sim:client({ platform_url = sim.url, platform_token = PLATFORM_TOKEN, max_upload_bytes = 1000 })
    local url, err = c:upload(file("big.png", string.rep("x", 2000)))
    assert.is_nil(url)
    assert.equal("invalid_argument", err.kind)
    assert.equal("file", err.field)
    assert.truthy(err.message:find("2000 bytes", 1, true))
    err = select(2, c:upload(dir .. "/missing.png"))
    assert.equal("file", err.field)
    c:close()
    assert.is_nil(sim:stats().requests[UPLOAD])
  end)

  it("uploads only regular files: a device, a FIFO or a directory is refused at once, before any traffic", function()
    local fifo = dir .. "/pipe.mp4"
    os.execute("mkfifo '" .. fifo .. "'")
    local c = sim:client({ platform_url = sim.url, platform_token = PLATFORM_TOKEN })
    for _, path in ipairs({ "/dev/zero", fifo, dir }) do
      local started = require("kling.core").now()
      local url, err = c:upload(path)
      assert.is_nil(url)
      assert.equal("invalid_argument", err.kind)
      assert.equal("file", err.field)
      assert.truthy(err.message:find("not a regular file", 1, true), err.message)
      assert.is_true(require("kling.core").now() - started < 1)
      -- the media checks of a motion job open it the same way: no block, no read
      local params = Simulator.params({ video_file = path })
      params.video_url = nil
      local r, merr = c:motion(params)
      assert.is_nil(r)
      assert.equal("video_file", merr.field)
      assert.truthy(merr.message:find("not a regular file", 1, true), merr.message)
    end
    c:close()
    os.remove(fifo)
    assert.is_nil(sim:stats().requests[UPLOAD])
    assert.equal(0, sim:stats().submits)
  end)

  it("a file that grows or shrinks while it is uploaded ends the upload with an error, never a hang", function()
    local core = require "kling.core"
    for _, change in ipairs({ "grow", "shrink" }) do
      local path = file("changing.bin", string.rep("z", 300000))
      local m = core.multi()
      m:set_token(PLATFORM_TOKEN, "platform")
      local id = m:add({ url = sim.url .. UPLOAD, auth = "platform", form = { file = path, name = "c.bin" },
                         timeout = 5 })
      -- the size was measured when the transfer was made; now it changes
      if change == "grow" then
        local f = assert(io.open(path, "ab"))
        f:write("more")
        f:close()
      else
        local f = assert(io.open(path, "wb"))
        f:write("short")
        f:close()
      end
      local result
      local started = core.now()
      while not result do
        for _, r in ipairs(assert(m:perform(0.05))) do
          if r.id == id then result = r end
        end
      end
      m:close()
      assert.equal("file_changed", result.reason, change)
      assert.is_true(core.now() - started < 2, change)
    end
  end)

  it("reports an upload's progress in the file's bytes, not the multipart body's", function()
    local path = file("exact.bin", string.rep("q", 200000))
    local last_sent, last_total = 0, 0
    assert(client:upload(path, { on_progress = function(sent, total) last_sent, last_total = sent, total end }))
    assert.equal(200000, last_total)
    assert.equal(200000, last_sent)
  end)

  it("keeps the platform token out of errors and verbose output", function()
    local log = {}
    local c = sim:client({ platform_url = sim.url, platform_token = PLATFORM_TOKEN, max_retries = 0,
                           verbose = function(t) log[#log + 1] = t end })
    sim:fault({ path = UPLOAD, status = 500, json = { error = { code = "x", message = "echo " .. PLATFORM_TOKEN } } })
    local _, err = c:upload("x", { filename = "x.bin" })
    c:close()
    assert.is_nil(tostring(err):find(PLATFORM_TOKEN, 1, true))
    assert.is_nil(table.concat(log):find(PLATFORM_TOKEN, 1, true))
    assert.truthy(table.concat(log):find("[redacted]", 1, true))
  end)
end)

describe("motion from files on disk", function()
  local sim, dir
  setup(function()
    sim = Simulator.start({ generation_time = 0.2 })
    dir = Simulator.tempdir()
  end)
  teardown(function()
    sim:stop()
    Simulator.remove_dir(dir)
  end)
  before_each(function() sim:reset() end)

  local function file(name, bytes) return samples.write(dir .. "/" .. name, bytes) end
  local function params(extra)
    local p = { image_file = file("person.png", samples.png(320, 400)),
                video_file = file("dance.mp4", samples.video(1280, 720, 5)),
                character_orientation = "image", mode = "std" }
    for k, v in pairs(extra or {}) do p[k] = v end
    return p
  end
  local function new_client(extra)
    local o = { platform_token = PLATFORM_TOKEN, platform_url = sim.url }
    for k, v in pairs(extra or {}) do o[k] = v end
    return sim:client(o)
  end

  it("checks, uploads both files and sends their URLs", function()
    local c = new_client()
    local result = assert(c:motion(params()))
    c:close()
    assert.equal("succeed", result.state)
    assert.equal(2, sim:stats().uploads)
    local body
    for _, r in ipairs(sim:requests()) do
      if r.path == "/kling/motion" then body = cjson.decode(r.body) end
    end
    assert.truthy(body.image_url:find("/uploads/.+/person%.png$"))
    assert.truthy(body.video_url:find("/uploads/.+/dance%.mp4$"))
    assert.is_nil(body.image_file)
  end)

  it("refuses a file that breaks Kling's limits, naming the field and the value, before any traffic", function()
    local c = new_client()
    for _, case in ipairs({
      { { image_file = file("small.png", samples.png(200, 400)) }, "image_file", "200x400 px" },
      { { video_file = file("long.mp4", samples.video(1280, 720, 12)) }, "video_file", "12.00 s long" },
      { { video_file = file("short.mov", samples.video(1280, 720, 2, { format = "mov" })) }, "video_file", "2.00 s" },
      { { image_file = file("clip.mp4", samples.video(640, 480, 4)) }, "image_file", "got mp4 video" },
      { { image_file = file("notes.png", "not an image at all") }, "image_file", "not a PNG" },
      { { image_file = "", image_url = nil }, "image_file", "file path" },
      { { image_url = "https://cdn.example.test/p.jpg" }, "image_file", "alternatives" },
      { { prompt = string.rep("é", 2501) }, "prompt", "2501 characters" },
    }) do
      local r, err = c:motion(params(case[1]))
      assert.is_nil(r)
      assert.equal("invalid_argument", err.kind)
      assert.equal(case[2], err.field)
      assert.truthy(err.message:find(case[3], 1, true), err.message)
    end
    -- 12 s is fine when the character follows the video
    assert(c:submit(params({ video_file = file("long.mp4", samples.video(1280, 720, 12)),
                             character_orientation = "video" })))
    c:close()
    assert.equal(1, sim:stats().submits)
  end)

  it("with a journal, a resumed job never uploads again", function()
    local path = Simulator.journal_path()
    sim:config({ credits = 0 }) -- the first run's submit is refused, after the uploads
    local c = new_client({ journal = path })
    local _, err = c:submit(params({ key = "from-disk" }))
    assert.equal("auth", err.kind)
    c:close()
    assert.equal(2, sim:stats().uploads)
    sim:config({ credits = false })
    c = new_client({ journal = path }) -- a new run
    assert(c:motion(params({ key = "from-disk" })))
    c:close()
    assert.equal(2, sim:stats().uploads)
    assert.equal(2, sim:stats().submits)
    Simulator.remove_journal(path)
  end)

  it("with a journal, an attempt refused before anything left the machine leaves no entry behind", function()
    local path = Simulator.journal_path()
    local c = new_client({ journal = path })
    for i = 1, 3 do
      local r, err = c:motion(params({ key = "refused-" .. i, image_file = file("tiny.png", samples.png(100, 100)) }))
      assert.is_nil(r)
      assert.equal("image_file", err.field)
    end
    -- a job cancelled before its submit left: nothing either
    local slow = c:spawn(function() return c:motion(params({ key = "cancelled" })) end)
    c:step(0)
    slow:cancel()
    assert.same({}, c.journal:list())
    -- an attempt whose files were uploaded keeps its entry: the next run does not upload again
    sim:config({ credits = 0 })
    local _, err = c:submit(params({ key = "paid-uploads" }))
    assert.equal("auth", err.kind)
    local list = c.journal:list()
    assert.equal(1, #list)
    assert.equal("paid-uploads", list[1].key)
    c:close()
    Simulator.remove_journal(path)
  end)

  it("a wrong API token is found before any upload, and the error names the token at fault", function()
    local c = new_client({ token = "wrong-api-token" })
    local r, err = c:motion(params())
    c:close()
    assert.is_nil(r)
    assert.equal("auth", err.kind)
    assert.truthy(err.message:find("the API token", 1, true), err.message)
    assert.truthy(err.message:find("ACEDATACLOUD_API_TOKEN", 1, true), err.message)
    assert.equal(0, sim:stats().uploads)
    assert.equal(0, sim:stats().submits)
    -- and a wrong platform token is named as such
    c = new_client({ platform_token = "wrong-platform-token" })
    r, err = c:motion(params())
    assert.is_nil(r)
    c:close()
    assert.equal("auth", err.kind)
    assert.truthy(err.message:find("the platform token", 1, true), err.message)
    assert.equal(0, sim:stats().submits)
  end)

  it("with a journal, a file shared by many jobs is uploaded once, whatever its name", function()
    local path = Simulator.journal_path()
    local c = new_client({ journal = path })
    local p = params()
    local items = {}
    for i = 1, 6 do
      items[i] = { key = "row-" .. i, image_file = p.image_file, video_file = p.video_file,
                   character_orientation = "image", mode = "std" }
    end
    -- the same bytes under another name (and path) are the same content
    local copy = file("copy-of-dance.mp4", samples.video(1280, 720, 5))
    items[6].video_file = copy
    local results = assert(c:batch(items, { concurrency = 3 }))
    for _, r in ipairs(results) do assert.equal("succeed", r.result.state, tostring(r.error)) end
    assert.equal(2, sim:stats().uploads)
    c:close()
    -- another run, other keys: still nothing to upload
    c = new_client({ journal = path })
    assert(c:submit(params({ key = "later" })))
    -- a file whose content changed is uploaded again
    local changed = params({ key = "changed" })
    file("person.png", samples.png(330, 400))
    assert(c:submit(changed))
    c:close()
    assert.equal(3, sim:stats().uploads)
    Simulator.remove_journal(path)
  end)
end)
