-- POST /kling/videos (endpoints/videos.lua): text2video, image2video and
-- extend through the same submit, journal, uploads and waiting as motion;
-- every rule between fields refused before any traffic, naming the field.
local cjson = require "cjson"
local samples = require "kling.simulator.media"
local Simulator = require "helpers.simulator"

local PLATFORM_TOKEN = "sim-platform-token"
local IMAGE = "https://cdn.example.test/first.png"
local LAST = "https://cdn.example.test/last.png"

-- the bodies the simulator received at path
local function sent(sim, path)
  local list = {}
  for _, r in ipairs(sim:requests()) do
    if r.path == path then list[#list + 1] = cjson.decode(r.body) end
  end
  return list
end

describe("client:video", function()
  local sim, client, dir
  Simulator.for_each_spec({ generation_time = 0.2, dir = true,
                            client = { platform_token = PLATFORM_TOKEN } },
    function(ctx) sim, client, dir = ctx.sim, ctx.client, ctx.dir end)
  before_each(function()
    client:close()
    client = sim:client({ platform_token = PLATFORM_TOKEN, platform_url = sim.url })
  end)
  after_each(function() client:close() end)

  it("text2video: sends the fields as given to /kling/videos and follows the task to its video", function()
    local result = assert(client:video({ action = "text2video", prompt = "a lighthouse at dusk",
      model = "kling-v2-5-turbo", duration = 10, aspect_ratio = "9:16", negative_prompt = "blur",
      cfg_scale = 0.5, camera_control = { type = "simple", config = { zoom = -0.5 } } }))
    assert.equal("succeed", result.state)
    assert.truthy(result.video_url:find("%.mp4$"))
    local body = sent(sim, "/kling/videos")[1]
    assert.same({ action = "text2video", prompt = "a lighthouse at dusk", model = "kling-v2-5-turbo", duration = 10,
      aspect_ratio = "9:16", negative_prompt = "blur", cfg_scale = 0.5,
      camera_control = { type = "simple", config = { zoom = -0.5 } }, async = true }, body)
    assert.equal(0, sim:count("/kling/motion"))
  end)

  it("image2video: first and last frames as URLs, pro mode where the model needs it", function()
    local result = assert(client:video({ action = "image2video", start_image_url = IMAGE, end_image_url = LAST,
      model = "kling-v2-6", mode = "pro", generate_audio = true, duration = 5 }))
    assert.equal("succeed", result.state)
    local body = sent(sim, "/kling/videos")[1]
    assert.equal(IMAGE, body.start_image_url)
    assert.equal(LAST, body.end_image_url)
  end)

  it("image2video: first and last frames as local files, checked and uploaded", function()
    local first = samples.write(dir .. "/first.png", samples.png(640, 800))
    local last = samples.write(dir .. "/last.jpg", samples.jpeg(640, 800))
    local result = assert(client:video({ action = "image2video", start_image_file = first, end_image_file = last,
      model = "kling-v3" }))
    assert.equal("succeed", result.state)
    assert.equal(2, sim:stats().uploads)
    local body = sent(sim, "/kling/videos")[1]
    assert.truthy(body.start_image_url:find("/uploads/.+/first%.png$"), body.start_image_url)
    assert.truthy(body.end_image_url:find("/uploads/.+/last%.jpg$"), body.end_image_url)
    assert.is_nil(body.start_image_file)
  end)

  it("refuses a local frame that breaks Kling's image limits before any upload or submit", function()
    local small = samples.write(dir .. "/small.png", samples.png(200, 200))
    local result, err = client:video({ action = "image2video", start_image_file = small })
    assert.is_nil(result)
    assert.equal("invalid_argument", err.kind)
    assert.equal("start_image_file", err.field)
    assert.equal(0, sim:stats().uploads)
    assert.equal(0, sim:count("/kling/videos"))
  end)

  it("extend: the video_id of an earlier task's result", function()
    local first = assert(client:video({ action = "text2video", prompt = "a wave" }))
    local more = assert(client:video({ action = "extend", video_id = first.video_id, prompt = "and another" }))
    assert.equal("succeed", more.state)
    assert.equal(first.video_id, sent(sim, "/kling/videos")[2].video_id)
  end)

  it("a video job's callback carries its token, and handle_callback re-reads its task", function()
    local id = assert(client:submit_video({ action = "text2video", prompt = "snow",
                                            callback_url = sim.url .. "/_sim/inbox/hook" }))
    local inbox = sim:inbox(1)
    assert.equal(1, #inbox)
    assert.truthy(inbox[1].path:find("kling_token=", 1, true))
    local task = assert(client:handle_callback(inbox[1].body, { url = inbox[1].path }))
    assert.equal(id, task.id)
    assert.is_true(task.first_delivery)
    local _, err = client:handle_callback(inbox[1].body, { url = "/_sim/inbox/hook?kling_token=0000" })
    assert.equal("auth", err.kind)
  end)

  it("submit_video returns the task id; wait follows it like any task", function()
    local id = assert(client:submit_video({ action = "text2video", prompt = "rain" }))
    assert.equal("succeed", assert(client:wait(id)).state)
  end)

  -- Each rule of the schema's, one refused case: (params, the field named).
  local refused = {
    { "an unknown action", { action = "lipsync", prompt = "x" }, "action" },
    { "no action", { prompt = "x" }, "action" },
    { "an unknown field", { action = "text2video", prompt = "x", image_url = IMAGE }, "image_url" },
    { "text2video without a prompt", { action = "text2video" }, "prompt" },
    { "image2video without a first frame", { action = "image2video", prompt = "x" }, "start_image_url" },
    { "a first frame for text2video", { action = "text2video", prompt = "x", start_image_url = IMAGE },
      "start_image_url" },
    { "a last frame without a first", { action = "image2video", end_image_url = LAST }, "start_image_url" },
    { "a frame file for extend", { action = "extend", video_id = "1", end_image_file = "/tmp/x.png" },
      "end_image_file" },
    { "extend without video_id", { action = "extend", prompt = "x" }, "video_id" },
    { "video_id outside extend", { action = "text2video", prompt = "x", video_id = "1" }, "video_id" },
    { "4k on a model without it", { action = "text2video", prompt = "x", model = "kling-v2-6", mode = "4k" }, "mode" },
    { "4k with the default model (kling-v1)", { action = "text2video", prompt = "x", mode = "4k" }, "mode" },
    { "a duration of 7 s on a 5-or-10 model", { action = "text2video", prompt = "x", duration = 7 }, "duration" },
    { "16 s on kling-v3", { action = "text2video", prompt = "x", model = "kling-v3", duration = 16 }, "duration" },
    { "3.5 s on kling-v3", { action = "text2video", prompt = "x", model = "kling-v3", duration = 3.5 }, "duration" },
    { "a duration that is not a number", { action = "text2video", prompt = "x", duration = "5" }, "duration" },
    { "a last frame on kling-v2-master", { action = "image2video", start_image_url = IMAGE, end_image_url = LAST,
      model = "kling-v2-master" }, "end_image_url" },
    { "a last frame on kling-v1-6 in std", { action = "image2video", start_image_url = IMAGE, end_image_url = LAST,
      model = "kling-v1-6", mode = "std" }, "mode" },
    { "a last frame with 10 s", { action = "image2video", start_image_url = IMAGE, end_image_url = LAST,
      model = "kling-v3", duration = 10 }, "duration" },
    { "audio on kling-v2-6 in std", { action = "text2video", prompt = "x", model = "kling-v2-6",
      generate_audio = true }, "generate_audio" },
    { "audio on kling-v1", { action = "text2video", prompt = "x", generate_audio = true }, "generate_audio" },
    { "generate_audio as a string", { action = "text2video", prompt = "x", generate_audio = "yes" },
      "generate_audio" },
    { "a negative prompt of 201 characters", { action = "text2video", prompt = "x",
      negative_prompt = ("n"):rep(201) }, "negative_prompt" },
    { "cfg_scale above 1", { action = "text2video", prompt = "x", cfg_scale = 1.5 }, "cfg_scale" },
    { "cfg_scale as a string", { action = "text2video", prompt = "x", cfg_scale = "0.5" }, "cfg_scale" },
    { "an unknown aspect ratio", { action = "text2video", prompt = "x", aspect_ratio = "4:3" }, "aspect_ratio" },
    { "an unknown model", { action = "text2video", prompt = "x", model = "kling-v9" }, "model" },
    { "an unknown camera type", { action = "text2video", prompt = "x", camera_control = { type = "orbit" } },
      "camera_control.type" },
    { "a camera axis out of range", { action = "text2video", prompt = "x",
      camera_control = { type = "simple", config = { pan = 2 } } }, "camera_control.config.pan" },
    { "an unknown camera axis", { action = "text2video", prompt = "x",
      camera_control = { type = "simple", config = { dolly = 0.1 } } }, "camera_control.config.dolly" },
    { "camera_control as a string", { action = "text2video", prompt = "x", camera_control = "simple" },
      "camera_control" },
    { "an element without element_id", { action = "text2video", prompt = "x", element_list = { { id = 1 } } },
      "element_list[1].id" },
    { "eight elements", { action = "text2video", prompt = "x",
      element_list = { { element_id = 1 }, { element_id = 2 }, { element_id = 3 }, { element_id = 4 },
                       { element_id = 5 }, { element_id = 6 }, { element_id = 7 }, { element_id = 8 } } },
      "element_list" },
    { "five elements with a reference video", { action = "text2video", prompt = "x",
      video_list = { { video_url = "https://cdn.example.test/ref.mp4", refer_type = "feature" } },
      element_list = { { element_id = 1 }, { element_id = 2 }, { element_id = 3 }, { element_id = 4 },
                       { element_id = 5 } } }, "element_list" },
    { "two reference videos", { action = "text2video", prompt = "x",
      video_list = { { video_url = "https://a.test/1.mp4" }, { video_url = "https://a.test/2.mp4" } } },
      "video_list" },
    { "a reference video's unknown refer_type", { action = "text2video", prompt = "x",
      video_list = { { video_url = "https://a.test/1.mp4", refer_type = "style" } } }, "video_list[1].refer_type" },
    { "a base reference video with a first frame", { action = "image2video", start_image_url = IMAGE,
      video_list = { { video_url = "https://a.test/1.mp4" } } }, "start_image_url" },
    { "a callback_url that is not a URL", { action = "text2video", prompt = "x", callback_url = "ftp://x" },
      "callback_url" },
    { "a frame URL and file at once", { action = "image2video", start_image_url = IMAGE,
      start_image_file = "/tmp/x.png" }, "start_image_file" },
  }
  for _, case in ipairs(refused) do
    it("refuses " .. case[1] .. ", naming " .. case[3] .. ", before any traffic", function()
      local result, err = client:submit_video(case[2])
      assert.is_nil(result)
      assert.equal("invalid_argument", err.kind)
      assert.equal(case[3], err.field, tostring(err))
      assert.equal(0, #sim:requests())
    end)
  end

  -- ... and the simulator, which checks /kling/videos its own way
  -- (simulator/videos.lua), refuses each of them too (those without local files)
  it("the simulator's independent checks refuse each body kling refuses", function()
    local http, ltn12 = require "socket.http", require "ltn12"
    for _, case in ipairs(refused) do
      local body, local_file = {}, false
      for k, v in pairs(case[2]) do
        body[k] = v
        local_file = local_file or tostring(k):find("_file$") ~= nil
      end
      if not local_file then
        body.async = true
        local payload = cjson.encode(body)
        local _, status = http.request({ url = sim.url .. "/kling/videos", method = "POST",
          source = ltn12.source.string(payload), sink = ltn12.sink.null(),
          headers = { ["content-type"] = "application/json", ["content-length"] = #payload,
                      authorization = "Bearer " .. Simulator.TOKEN } })
        assert.equal(400, status, case[1])
      end
    end
    assert.equal(0, sim:stats().tasks_created)
  end)

  -- The simulator checks /kling/videos its own way (simulator/videos.lua):
  -- what kling lets through, it takes, for every case kling accepts above.
  it("what kling accepts, the simulator's independent checks accept too", function()
    for _, params in ipairs({
      { action = "text2video", prompt = "x", model = "kling-v3", mode = "4k", duration = 13, generate_audio = true },
      { action = "text2video", prompt = "x", model = "kling-v3-omni", aspect_ratio = "1:1",
        video_list = { { video_url = "https://a.test/1.mp4", refer_type = "feature", keep_original_sound = "no" } },
        element_list = { { element_id = "e1" }, { element_id = 2 } } },
      { action = "image2video", start_image_url = IMAGE, end_image_url = LAST, model = "kling-v1", duration = 5 },
      { action = "image2video", start_image_url = IMAGE, model = "kling-video-o1",
        camera_control = { type = "down_back" } },
    }) do
      assert(client:submit_video(params))
    end
  end)
end)

describe("videos and the journal", function()
  local sim, client
  Simulator.for_each_spec({ generation_time = 0.2, journal = true, client = true },
    function(ctx) sim, client = ctx.sim, ctx.client end)

  it("a keyed video job is submitted once: run again, it resumes with no new submit", function()
    local params = { action = "text2video", prompt = "fog", key = "intro" }
    local first = assert(client:video(params))
    local again = assert(client:video(params))
    assert.equal(first.task_id, again.task_id)
    assert.equal(1, sim:stats().submits)
    assert.equal("videos", client.journal:get("intro").endpoint)
  end)

  it("a video submit that may have been billed is never sent again on a guess", function()
    -- the task exists, then the connection drops before its answer
    sim:fault({ path = "/kling/videos", drop = true, create_task = true })
    local params = { action = "text2video", prompt = "storm", key = "risky" }
    local result, err = client:video(params)
    assert.is_nil(result)
    assert.is_true(err.maybe_submitted)
    assert.equal("uncertain", client.journal:get("risky").state)
    result, err = client:video(params)
    assert.is_nil(result)
    assert.equal("uncertain", err.kind)
    assert.equal(1, sim:stats().tasks_created)
    assert.equal(1, sim:count("/kling/videos"))
  end)

  it("a key of a motion job is refused for a video job, before any traffic", function()
    assert(client:motion(Simulator.params({ key = "shared" })))
    local before = #sim:requests()
    local result, err = client:video({ action = "text2video", prompt = "x", key = "shared" })
    assert.is_nil(result)
    assert.equal("key", err.field)
    assert.truthy(tostring(err):find("motion", 1, true), tostring(err))
    assert.equal(before, #sim:requests())
  end)

  it("a batch mixes both endpoints (an item names its endpoint)", function()
    local results = client:batch({
      Simulator.params({ key = "m1" }),
      { endpoint = "videos", key = "v1", action = "text2video", prompt = "dunes" },
      { endpoint = "videos", key = "v2", action = "image2video", start_image_url = IMAGE },
    })
    for i, r in ipairs(results) do assert(r.result, ("item %d: %s"):format(i, tostring(r.error))) end
    assert.equal(1, sim:count("/kling/motion"))
    assert.equal(2, sim:count("/kling/videos"))
    assert.equal("videos", client.journal:get("v2").endpoint)
  end)
end)

describe("kling video (the command)", function()
  local LUA = os.getenv("KLING_LUA") or "lua5.4"
  local KLING = LUA .. " " .. (os.getenv("PWD") or ".") .. "/bin/kling"
  local sim, dir
  local read = Simulator.read_file
  -- a directory of its own for each spec, with two frames (not the same
  -- bytes: uploads go by content) and the journal the command keeps there
  Simulator.for_each_spec({ generation_time = 0.2, dir = true }, function(ctx)
    sim, dir = ctx.sim, ctx.dir
    samples.write(dir .. "/first.png", samples.png(640, 800))
    samples.write(dir .. "/last.png", samples.png(600, 800))
  end)

  -- Runs `kling args` in dir; returns the exit status, stdout and stderr.
  local function kling(args)
    os.execute(("cd '%s' && ACEDATACLOUD_API_TOKEN=%s ACEDATACLOUD_API_BASE_URL=%s ACEDATACLOUD_PLATFORM_TOKEN=%s "
      .. "ACEDATACLOUD_PLATFORM_BASE_URL=%s XDG_STATE_HOME=state KLING_POLL_INTERVAL=0.05 "
      .. "KLING_MAX_POLL_INTERVAL=0.2 %s %s >out 2>err; echo $? >code"):format(dir, Simulator.TOKEN, sim.url,
      PLATFORM_TOKEN, sim.url, KLING, args))
    return tonumber(read(dir .. "/code")), read(dir .. "/out"), read(dir .. "/err")
  end

  it("text2video: saves the video, prints JSON; run again, it sends nothing", function()
    local code, out, err = kling("video text2video --prompt 'a red kite' --duration 10 -o kite.mp4 --json")
    assert.equal(0, code, err)
    local r = cjson.decode(out)
    assert.equal("succeed", r.state)
    assert.equal("kite.mp4", r.path)
    assert.equal(1040, #read(dir .. "/kite.mp4"))
    local body = sent(sim, "/kling/videos")[1]
    assert.equal(10, body.duration) -- a number, as the field takes it
    local submits = sim:stats().submits
    code, out = kling("video text2video --prompt 'a red kite' --duration 10 -o kite.mp4 --json")
    assert.equal(0, code)
    assert.equal(r.task_id, cjson.decode(out).task_id)
    assert.equal(submits, sim:stats().submits)
  end)

  it("image2video: local first and last frames, uploaded; extend: a result's video_id, --async", function()
    local code, out, err = kling("video image2video first.png --end-image last.png --model kling-v3 "
      .. "-o framed.mp4 --json")
    assert.equal(0, code, err)
    local r = cjson.decode(out)
    assert.equal(2, sim:stats().uploads)
    local body = sent(sim, "/kling/videos")[1]
    assert.equal("image2video", body.action)
    assert.truthy(body.end_image_url:find("last%.png$"))
    code, out, err = kling("video extend " .. r.video_id .. " --prompt more --async --json")
    assert.equal(0, code, err)
    assert.is_string(cjson.decode(out).task_id)
    assert.equal(r.video_id, sent(sim, "/kling/videos")[2].video_id)
  end)

  it("a request that breaks a rule exits 2 with the field named, before any traffic", function()
    local code, out = kling("video text2video --prompt x --duration 7 --json")
    assert.equal(2, code)
    assert.equal("duration", cjson.decode(out).error.field)
    code, out = kling("video image2video first.png --end-image last.png --model kling-v2-master --json")
    assert.equal(2, code)
    assert.equal("end_image_file", cjson.decode(out).error.field)
    assert.equal(0, #sim:requests())
  end)

  it("kling batch takes an endpoint column: motion and videos rows in one file", function()
    local f = assert(io.open(dir .. "/mixed.jsonl", "w"))
    f:write('{"key": "m", "image_url": "https://cdn.example.test/p.jpg", '
      .. '"video_url": "https://cdn.example.test/d.mp4"}\n')
    f:write('{"key": "v", "endpoint": "videos", "action": "text2video", "prompt": "tide"}\n')
    f:close()
    f = assert(io.open(dir .. "/mixed.csv", "w"))
    f:write("key,endpoint,action,image,duration\n")
    f:write("w,videos,image2video,https://cdn.example.test/f.png,5\n")
    f:close()
    local code, out, err = kling("batch mixed.jsonl --out mixed --json")
    assert.equal(0, code, err .. out)
    code, out, err = kling("batch mixed.csv --out mixed --json")
    assert.equal(0, code, err .. out)
    assert.equal(1, sim:count("/kling/motion"))
    assert.equal(2, sim:count("/kling/videos"))
    assert.equal(5, sent(sim, "/kling/videos")[2].duration)
    assert.equal(1040, #read(dir .. "/mixed/w.mp4"))
  end)
end)
