-- Kling videos, POST /kling/videos: action = "text2video" (a prompt),
-- "image2video" (a first frame, and maybe a last one) or "extend" (a video
-- of an earlier task, by its video_id). Everything kling knows of this
-- endpoint is here, as data and one function of rules between fields
-- (docs/api.md, "Submitting: POST /kling/videos"); validation, uploads,
-- submission, the journal and batches are the same as motion's.
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local limits = require "kling.endpoints.limits"

local MODELS = { "kling-v1", "kling-v1-6", "kling-v2-master", "kling-v2-1-master", "kling-v2-5-turbo",
                 "kling-v2-6", "kling-v3", "kling-v3-omni", "kling-video-o1" }
-- the server's model when the request names none (the schema's default)
local DEFAULT_MODEL = "kling-v1"
-- the models whose duration is any whole number of seconds from 3 to 15,
-- and which alone take mode = "4k"
local FLEXIBLE = { ["kling-v3"] = true, ["kling-v3-omni"] = true }
-- the models that take a last frame, and what they need for it (nil: none)
local END_FRAME = {
  ["kling-v1"] = {}, ["kling-v1-6"] = { mode = "pro" }, ["kling-v2-5-turbo"] = { mode = "pro" },
  ["kling-v2-6"] = { mode = "pro" }, ["kling-v3"] = {}, ["kling-v3-omni"] = {}, ["kling-video-o1"] = {},
}
local CAMERA_TYPES = { simple = true, down_back = true, forward_up = true, left_turn_forward = true,
                       right_turn_forward = true }
local CAMERA_AXES = { horizontal = true, vertical = true, pan = true, tilt = true, roll = true, zoom = true }

-- A Lua sequence 1..n and nothing else, or nil.
local function sequence(value)
  if type(value) ~= "table" then return nil end
  local n = #value
  for k in next, value do
    if type(k) ~= "number" or k < 1 or k > n or k % 1 ~= 0 then return nil end
  end
  return n
end

local function copy_list(list)
  local out = {}
  for i, item in ipairs(list) do
    local t = {}
    for k, v in next, item do t[k] = v end
    out[i] = t
  end
  return out
end

-- camera_control = { type = ..., config = { horizontal = -1..1, ... } }:
-- typed "string" in the schema but described as an object; kling sends the
-- object (docs/api.md).
local function check_camera(value, name)
  if type(value) ~= "table" then return name, "must be a table { type = ..., config = { ... } }" end
  for k in next, value do
    if k ~= "type" and k ~= "config" then return name .. "." .. tostring(k), "is not a field of " .. name end
  end
  if not CAMERA_TYPES[value.type] then
    return name .. ".type", "must be simple, down_back, forward_up, left_turn_forward or right_turn_forward, got "
      .. tostring(value.type)
  end
  local config = value.config
  if config == nil then return nil end
  if type(config) ~= "table" then return name .. ".config", "must be a table of numbers from -1 to 1" end
  for k, v in next, config do
    local field = name .. ".config." .. tostring(k)
    if not CAMERA_AXES[k] then
      return field, "is not one of horizontal, vertical, pan, tilt, roll, zoom"
    end
    if type(v) ~= "number" or v ~= v or v < -1 or v > 1 then return field, "must be a number from -1 to 1" end
  end
end

local function copy_camera(value)
  local out = { type = value.type }
  if value.config then
    out.config = {}
    for k, v in next, value.config do out.config[k] = v end
  end
  return out
end

-- element_list = { { element_id = ... }, ... }: subjects from the subject library.
local function check_elements(value, name)
  local n = sequence(value)
  if not n or n == 0 then return name, "must be a non-empty list of { element_id = ... }" end
  for i, item in ipairs(value) do
    local field = ("%s[%d]"):format(name, i)
    if type(item) ~= "table" then return field, "must be a table { element_id = ... }" end
    for k in next, item do
      if k ~= "element_id" then return field .. "." .. tostring(k), "is not a field of an element" end
    end
    local id = item.element_id
    if not ((type(id) == "string" and id ~= "") or (type(id) == "number" and id % 1 == 0)) then
      return field .. ".element_id", "must be a non-empty string or an integer"
    end
  end
end

-- video_list = { { video_url = ..., refer_type = "feature" | "base", keep_original_sound = "yes" | "no" } }
local function check_videos(value, name)
  local n = sequence(value)
  if n ~= 1 then return name, "must be a list of exactly one { video_url = ... } (the API takes one video)" end
  local item, field = value[1], name .. "[1]"
  if type(item) ~= "table" then return field, "must be a table { video_url = ... }" end
  for k, v in next, item do
    local f = field .. "." .. tostring(k)
    if k == "video_url" then
      if type(v) ~= "string" or not v:match("^[hH][tT][tT][pP][sS]?://[^/?#%s]+") or v:find("[%c%s]") then
        return f, "must be an http:// or https:// URL without spaces"
      end
    elseif k == "refer_type" then
      if v ~= "feature" and v ~= "base" then return f, "must be feature or base, got " .. tostring(v) end
    elseif k == "keep_original_sound" then
      if v ~= "yes" and v ~= "no" then return f, "must be yes or no, got " .. tostring(v) end
    else
      return f, "is not a field of a reference video"
    end
  end
  if item.video_url == nil then return field .. ".video_url", "is required" end
end

-- The field a source was given as (its URL field or its file field), or nil.
local function given(body, own, url, file)
  if body[url] ~= nil then return url end
  if own[file] ~= nil then return file end
end

-- The rules between fields, from the schema's descriptions: the field at
-- fault and why, or nil.
local function check(body, own)
  local action, model = body.action, body.model or DEFAULT_MODEL
  local mode = body.mode or "std"
  local start = given(body, own, "start_image_url", "start_image_file")
  local last = given(body, own, "end_image_url", "end_image_file")
  if action == "text2video" and body.prompt == nil then
    return "prompt", "is required for text2video"
  end
  if action == "image2video" and not start then
    return "start_image_url", "is required for image2video (or start_image_file, a local file to upload)"
  end
  if action ~= "image2video" and (start or last) then
    return start or last, "is only for image2video, not " .. action
  end
  if action == "extend" and body.video_id == nil then
    return "video_id", "is required for extend (the video_id of an earlier task's result)"
  end
  if action ~= "extend" and body.video_id ~= nil then
    return "video_id", "is only for extend, not " .. action
  end
  if mode == "4k" and not FLEXIBLE[model] then
    return "mode", ("4k is only for kling-v3 and kling-v3-omni, not %s"):format(model)
  end
  local duration = body.duration
  if duration ~= nil then
    if FLEXIBLE[model] then
      if duration % 1 ~= 0 or duration < 3 or duration > 15 then
        return "duration", ("must be a whole number of seconds from 3 to 15 with %s, got %s"):format(model, duration)
      end
    elseif duration ~= 5 and duration ~= 10 then
      return "duration", ("must be 5 or 10 with %s, got %s"):format(model, tostring(duration))
    end
  end
  if last then
    local needs = END_FRAME[model]
    if not needs then return last, ("is not supported by %s"):format(model) end
    if needs.mode and mode ~= needs.mode then
      return "mode", ("must be %s with a last frame on %s, got %s"):format(needs.mode, model, mode)
    end
    if duration ~= nil and duration ~= 5 then
      return "duration", ("must be 5 with a last frame, got %s"):format(tostring(duration))
    end
  end
  if body.generate_audio == true and not (FLEXIBLE[model] or (model == "kling-v2-6" and mode == "pro")) then
    return "generate_audio", ("is only for kling-v3, kling-v3-omni and kling-v2-6 in pro mode, not %s in %s")
      :format(model, mode)
  end
  local reference = body.video_list and body.video_list[1]
  if reference and (reference.refer_type or "base") == "base" and (start or last) then
    return start or last, "cannot go with a base reference video (video_list's refer_type = \"base\")"
  end
  if body.element_list and #body.element_list > (reference and 4 or 7) then
    return "element_list", ("has %d subjects; at most %d %s"):format(#body.element_list, reference and 4 or 7,
      reference and "with a reference video" or "without a reference video")
  end
end

-- The options of every action's subcommand; number: the value is read as one.
local OPTIONS = {
  { flag = "--prompt", field = "prompt", help = "The prompt (at most 2500 characters)." },
  { flag = "--negative-prompt", field = "negative_prompt", help = "What to avoid (at most 200 characters)." },
  { flag = "--model", field = "model", choices = MODELS, help = "The model (the server's default: kling-v1)." },
  { flag = "--mode", field = "mode", choices = { "std", "pro", "4k" }, help = "std, pro, or 4k (kling-v3 models)." },
  { flag = "--duration", field = "duration", number = true,
    help = "Seconds: 5 or 10; 3 to 15 with kling-v3 models; 5 with a last frame." },
  { flag = "--aspect-ratio", field = "aspect_ratio", choices = { "16:9", "9:16", "1:1" }, help = "Default 16:9." },
  { flag = "--cfg-scale", field = "cfg_scale", number = true, help = "How closely to follow the prompt, 0 to 1." },
  { flag = "--audio", field = "generate_audio", value = true,
    help = "Generate sound too (kling-v3 models; kling-v2-6 in pro mode)." },
}

local IMAGE2VIDEO_OPTIONS = { { flag = "--end-image", source = "end_image_url",
                                help = "The last frame: a URL or a file (uploaded)." } }
for _, o in ipairs(OPTIONS) do IMAGE2VIDEO_OPTIONS[#IMAGE2VIDEO_OPTIONS + 1] = o end

return {
  name = "videos",
  path = "/kling/videos",

  fields = {
    action = { enum = { "text2video", "image2video", "extend" }, required = true },
    model = { enum = MODELS },
    mode = { enum = { "std", "pro", "4k" } },
    prompt = { text = 2500 },
    negative_prompt = { text = 200 },
    duration = { number = { min = 3, max = 15 } },
    aspect_ratio = { enum = { "16:9", "9:16", "1:1" } },
    -- typed "string" in the schema, described as a number from 0 to 1: kling
    -- sends a JSON number (docs/api.md)
    cfg_scale = { number = { min = 0, max = 1 } },
    camera_control = { check = check_camera, copy = copy_camera },
    generate_audio = { type = "boolean" },
    video_id = { type = "string" },
    element_list = { check = check_elements, copy = copy_list },
    video_list = { check = check_videos, copy = copy_list },
    callback_url = { url = true },
  },

  sources = {
    { url = "start_image_url", file = "start_image_file", media = "image" },
    { url = "end_image_url", file = "end_image_file", media = "image" },
  },

  check = check,

  limits = function() return limits.image() end,

  -- The command: `kling video ACTION ...`, one subcommand per action (the
  -- action is the field `action`); every one also gets -o, --key, --async,
  -- --retry-failed, --callback-url, --json and --journal (kling.cli).
  command = {
    name = "video",
    help = "Make a video from a prompt (text2video), from frames (image2video), or extend one (extend).",
    actions = {
      { name = "text2video", help = "A video from a prompt (--prompt is required).",
        arguments = {}, options = OPTIONS },
      { name = "image2video", help = "A video from IMAGE, its first frame (a URL or a file; uploaded).",
        arguments = { { name = "image", source = "start_image_url", help = "The first frame: a URL or a file." } },
        options = IMAGE2VIDEO_OPTIONS },
      { name = "extend", help = "Extend the video VIDEO_ID (a result's video_id) from an earlier task.",
        arguments = { { name = "video_id", field = "video_id", help = "The video_id of an earlier result." } },
        options = OPTIONS },
    },
    -- a batch file's short column names (an "endpoint" column says videos)
    columns = { image = "start_image_url", end_image = "end_image_url" },
    key = { prefix = "cli-video-",
            fields = { "action", "prompt", "negative_prompt", "model", "mode", "duration", "aspect_ratio",
                       "cfg_scale", "generate_audio", "video_id", "callback_url" } },
  },
}
