-- The simulator's check of a POST /kling/videos body, written from the
-- schema (../shared/acedata/kling.openapi.json; docs/api.md) apart from the
-- library's (endpoints/videos.lua), so that a spec catches one drifting from
-- the other. Returns a problem in words, or nil.
local videos = {}

local TYPES = {
  action = "string", model = "string", mode = "string", prompt = "string", negative_prompt = "string",
  duration = "number", aspect_ratio = "string", cfg_scale = "number", camera_control = "table",
  generate_audio = "boolean", video_id = "string", element_list = "table", video_list = "table",
  callback_url = "string", start_image_url = "string", end_image_url = "string", async = "boolean",
}

local SETS = {
  action = { text2video = 1, image2video = 1, extend = 1 },
  mode = { std = 1, pro = 1, ["4k"] = 1 },
  aspect_ratio = { ["16:9"] = 1, ["9:16"] = 1, ["1:1"] = 1 },
  model = { ["kling-v1"] = 1, ["kling-v1-6"] = 1, ["kling-v2-master"] = 1, ["kling-v2-1-master"] = 1,
            ["kling-v2-5-turbo"] = 1, ["kling-v2-6"] = 1, ["kling-v3"] = 1, ["kling-v3-omni"] = 1,
            ["kling-video-o1"] = 1 },
}

local V3 = { ["kling-v3"] = 1, ["kling-v3-omni"] = 1 }
-- end frames: what each model wants ("any" mode, "pro" only, or not at all)
local END_FRAMES = { ["kling-v1"] = "any", ["kling-v1-6"] = "pro", ["kling-v2-5-turbo"] = "pro",
                     ["kling-v2-6"] = "pro", ["kling-v3"] = "any", ["kling-v3-omni"] = "any",
                     ["kling-video-o1"] = "any" }

local function url(s) return type(s) == "string" and s:match("^https?://[^%s/]+") ~= nil end

local function chars(s)
  local _, n = s:gsub("[^\128-\191]", "")
  return n
end

local function camera_problem(c)
  local kinds = { simple = 1, down_back = 1, forward_up = 1, left_turn_forward = 1, right_turn_forward = 1 }
  if not kinds[c.type] then return "camera_control.type is invalid" end
  for k in pairs(c) do
    if k ~= "type" and k ~= "config" then return "camera_control has an unknown field" end
  end
  if c.config ~= nil then
    if type(c.config) ~= "table" then return "camera_control.config must be an object" end
    local axes = { horizontal = 1, vertical = 1, pan = 1, tilt = 1, roll = 1, zoom = 1 }
    for k, v in pairs(c.config) do
      if not axes[k] or type(v) ~= "number" or v < -1 or v > 1 then return "camera_control.config is invalid" end
    end
  end
end

-- known_video(id): whether a task of this simulator made that video.
function videos.problem(body, known_video)
  if type(body) ~= "table" then return "request body must be a JSON object" end
  for name, value in pairs(body) do
    if not TYPES[name] then return "unknown field " .. tostring(name) end
    if type(value) ~= TYPES[name] then return name .. " must be a " .. TYPES[name] end
    if SETS[name] and not SETS[name][value] then return name .. " is invalid" end
  end
  if not body.action then return "action is required" end
  for _, name in ipairs({ "start_image_url", "end_image_url", "callback_url" }) do
    if body[name] ~= nil and not url(body[name]) then return name .. " is not a valid URL" end
  end
  local model, mode = body.model or "kling-v1", body.mode or "std"
  if mode == "4k" and not V3[model] then return "4k mode needs kling-v3 or kling-v3-omni" end
  if body.negative_prompt and chars(body.negative_prompt) > 200 then return "negative_prompt is too long" end
  if body.cfg_scale and (body.cfg_scale < 0 or body.cfg_scale > 1) then return "cfg_scale must be in [0,1]" end
  local d = body.duration
  if d ~= nil then
    if V3[model] then
      if d ~= math.floor(d) or d < 3 or d > 15 then return "duration must be 3 to 15 for this model" end
    elseif d ~= 5 and d ~= 10 then
      return "duration must be 5 or 10"
    end
  end
  if body.action == "text2video" and not body.prompt then return "prompt is required" end
  if body.action == "image2video" and not body.start_image_url then return "start_image_url is required" end
  if body.action ~= "image2video" and (body.start_image_url or body.end_image_url) then
    return "start and end frames are only for image2video"
  end
  if body.action == "extend" then
    if not body.video_id then return "video_id is required" end
    if not known_video(body.video_id) then return "video_id is not a video of yours" end
  elseif body.video_id then
    return "video_id is only for extend"
  end
  if body.end_image_url then
    local wants = END_FRAMES[model]
    if not wants then return "this model does not support end frames" end
    if wants == "pro" and mode ~= "pro" then return "end frames need pro mode on this model" end
    if d ~= nil and d ~= 5 then return "end frames only support 5 seconds" end
  end
  if body.generate_audio and not (V3[model] or (model == "kling-v2-6" and mode == "pro")) then
    return "generate_audio is not supported here"
  end
  if body.camera_control then
    local problem = camera_problem(body.camera_control)
    if problem then return problem end
  end
  local refs = body.video_list
  if refs then
    if #refs ~= 1 or type(refs[1]) ~= "table" or not url(refs[1].video_url) then
      return "video_list must hold one video with a video_url"
    end
    local kind = refs[1].refer_type or "base"
    if kind ~= "base" and kind ~= "feature" then return "video_list refer_type is invalid" end
    if kind == "base" and (body.start_image_url or body.end_image_url) then
      return "a base video cannot have start or end frames"
    end
  end
  if body.element_list then
    local most = refs and 4 or 7
    if #body.element_list == 0 or #body.element_list > most then return "element_list has too many subjects" end
    for _, e in ipairs(body.element_list) do
      if type(e) ~= "table" or e.element_id == nil then return "element_list needs element_id" end
    end
  end
end

return videos
