-- The behaviour of AceData's Kling API as the simulator plays it:
-- /kling/motion and /kling/videos (sync, async, callbacks; videos' checks in
-- simulator/videos.lua), /kling/tasks (retrieve, batch), the
-- bearer-token check with the API's own error bodies, request validation from
-- docs/api.md, and the /_sim/ control endpoints that let a test
-- inject faults, shape task outcomes and read request counts.
local cjson = require "cjson"
local http = require "kling.simulator.http"
local sample_video = require "kling.simulator.sample_video"
local videos = require "kling.simulator.videos"

local Api = {}
Api.__index = Api

local DEFAULTS = {
  token = "sim-token",
  generation_time = 2,   -- seconds from submit to a finished video
  wrap_data = false,     -- answer success bodies inside { data = ... }
  credits = false,       -- number of submits before 403 used_up; false: unlimited
  submit_delay = 0,      -- each async submit answers up to this many seconds after its task exists
  platform_token = "sim-platform-token", -- the upload credential (apart from the API token)
  upload_answer = "file_url", -- how an upload answers: "file_url", "url" or "data" (file_url inside data)
}

-- The submits: /kling/motion and /kling/videos (the same tasks, polled
-- through /kling/tasks); each checks its body its own way (Api:problem).
local SUBMITS = { ["/kling/motion"] = "motion", ["/kling/videos"] = "videos" }

local ERROR_CODES = {
  [400] = { "bad_request", "Bad request." },
  [401] = { "invalid_token", "The specified token is invalid or wrong." },
  [403] = { "used_up", "Your balance is not sufficient for current request, please buy more in Ace Data Cloud." },
  [404] = { "no_api", "API does not exist, please make sure url is correct." },
  [408] = { "timeout", "Request timeout." },
  [429] = { "too_many_requests", "You have exceeded the rate limit." },
  [500] = { "api_error", "Internal server error." },
  [502] = { "bad_gateway", "Bad gateway." },
  [503] = { "service_unavailable", "Service unavailable." },
  [504] = { "timeout", "Gateway timeout." },
}

-- The ways a task can end, as AceData has been seen to report them (docs/api.md, "When a task is over").
local OUTCOMES = {
  succeed = true,
  failed_state = true,       -- success=false, state=failed, error object
  failed_no_state = true,    -- success=false, error object, no state word
  failed_unfinished = true,  -- as failed_no_state, and no finished_at either
  failed_with_video = true,  -- success=false beside a video URL and state=succeed
  state_failed = true,       -- only state=failed: no success flag, no error
  unflagged_then_succeed = true, -- success=false with nothing else while running
  never = true,              -- keeps processing for ever
}

local REQUIRED = { "image_url", "video_url", "character_orientation", "mode" }
local FIELDS = {
  image_url = "string", video_url = "string", character_orientation = "string",
  mode = "string", keep_original_sound = "string", prompt = "string",
  model_name = "string", watermark_info = "table", callback_url = "string",
  async = "boolean",
}
local ENUMS = {
  character_orientation = { image = true, video = true },
  mode = { std = true, pro = true },
  keep_original_sound = { yes = true, no = true },
  model_name = { ["kling-v2-6"] = true, ["kling-v3"] = true },
}

-- A version 4 UUID. Built from 16-bit draws: Lua 5.1's math.random(m, n)
-- overflows a C int for a range of 2^31 and gives negative numbers.
local function uuid()
  local r = math.random
  return ("%04x%04x-%04x-4%03x-%04x-%04x%04x%04x"):format(
    r(0, 0xffff), r(0, 0xffff), r(0, 0xffff), r(0, 0xfff), r(0x8000, 0xbfff), r(0, 0xffff), r(0, 0xffff),
    r(0, 0xffff))
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

function Api.new(loop, options)
  local self = setmetatable({ loop = loop, base_url = "", options = options or {} }, Api)
  self:reset()
  return self
end

function Api:reset()
  self.config = copy(DEFAULTS)
  for k, v in pairs(self.options) do self.config[k] = v end
  self.tasks, self.task_order = {}, {}
  self.faults, self.next_tasks = {}, {}
  self.counts = { requests = {}, submits = 0, retrieve = 0, retrieve_batch = 0,
                  tasks_created = 0, callbacks_sent = 0, callbacks_failed = 0,
                  downloads = 0, downloads_with_token = 0, connections = 0,
                  submits_by_image = {}, submits_open = 0, uploads = 0, upload_bytes = 0 }
  self.files = {}
  self.log, self.inbox = {}, {}
  self.used_credits = 0
end

-- ---- responses ----

local function json_response(status, body, headers)
  local h = headers or {}
  h["Content-Type"] = "application/json"
  return { status = status, headers = h, body = cjson.encode(body) }
end

local function api_error(status, code, message, extra)
  local defaults = ERROR_CODES[status] or { "api_error", "Error." }
  local body = { success = false, trace_id = uuid(),
                 error = { code = code or defaults[1], message = message or defaults[2] } }
  for k, v in pairs(extra or {}) do body[k] = v end
  return json_response(status, body)
end

function Api:success(body)
  if self.config.wrap_data then body = { success = true, data = body } end
  return json_response(200, body)
end

-- ---- tasks ----

function Api:create_task(request, kind)
  local spec = table.remove(self.next_tasks, 1) or {}
  local now = self.loop.now()
  local task = {
    id = uuid(), created_at = now, trace_id = uuid(), request = request, kind = kind or "motion",
    generation_time = spec.generation_time or self.config.generation_time,
    outcome = spec.outcome or "succeed",
    error_code = spec.error_code or "generation_failed",
    error_message = spec.error_message or "The video could not be generated.",
    callback_times = spec.callback_times or 1,
    video_id = tostring(math.random(10 ^ 8, 10 ^ 9)),
  }
  self.tasks[task.id] = task
  self.task_order[#self.task_order + 1] = task.id
  self.counts.tasks_created = self.counts.tasks_created + 1
  if request.callback_url then self:schedule_callback(task) end
  return task
end

function Api:is_finished(task, now)
  return task.outcome ~= "never" and (now or self.loop.now()) >= task.created_at + task.generation_time
end

-- The answer a finished task gives: the same JSON for sync, callback and record.
function Api:final_response(task)
  local video_url = self.base_url .. "/files/" .. task.id .. ".mp4"
  local err = { code = task.error_code, message = task.error_message }
  local o = task.outcome
  if o == "succeed" or o == "unflagged_then_succeed" then
    return { success = true, task_id = task.id, video_id = task.video_id,
             video_url = video_url, duration = "1.000", state = "succeed" }
  elseif o == "failed_state" then
    return { success = false, task_id = task.id, state = "failed", error = err }
  elseif o == "failed_no_state" or o == "failed_unfinished" then
    return { success = false, task_id = task.id, error = err }
  elseif o == "failed_with_video" then
    return { success = false, task_id = task.id, video_id = task.video_id,
             video_url = video_url, duration = "1.000", state = "succeed" }
  elseif o == "state_failed" then
    return { task_id = task.id, state = "failed" }
  end
end

function Api:record(task)
  local now = self.loop.now()
  local rec = { id = task.id, created_at = task.created_at, started_at = task.created_at + 0.01,
                type = task.kind, request = task.request, trace_id = task.trace_id }
  if self:is_finished(task, now) then
    rec.response = self:final_response(task)
    if task.outcome ~= "failed_unfinished" then
      rec.finished_at = task.created_at + task.generation_time
      rec.elapsed = task.generation_time
    end
  elseif task.outcome == "unflagged_then_succeed" then
    rec.response = { success = false, task_id = task.id }
  elseif now - task.created_at > task.generation_time * 0.3 then
    rec.response = { task_id = task.id, state = "processing" }
  end
  return rec
end

function Api:schedule_callback(task)
  self.loop:spawn(function()
    self.loop:sleep(task.generation_time)
    if task.outcome == "never" then return end
    local body = cjson.encode(self:final_response(task))
    for _ = 1, task.callback_times do
      local status = http.post(self.loop, task.request.callback_url, body)
      local key = status and status < 300 and "callbacks_sent" or "callbacks_failed"
      self.counts[key] = self.counts[key] + 1
    end
  end)
end

-- ---- validation (docs/api.md, "Submitting") ----

local function is_http_url(s)
  return type(s) == "string" and s:match("^https?://[^%s/]+") ~= nil
end

local function validate_motion(body)
  if type(body) ~= "table" then return "request body must be a JSON object" end
  for _, name in ipairs(REQUIRED) do
    if body[name] == nil then return name .. " is required" end
  end
  for name, value in pairs(body) do
    local want = FIELDS[name]
    if not want then return "unknown field " .. tostring(name) end
    if type(value) ~= want then return name .. " must be a " .. want end
    if ENUMS[name] and not ENUMS[name][value] then return name .. " is invalid" end
  end
  if not is_http_url(body.image_url) then return "image_url is not a valid URL" end
  if not is_http_url(body.video_url) then return "video_url is not a valid URL" end
  if body.callback_url and not is_http_url(body.callback_url) then
    return "callback_url is not a valid URL"
  end
  if body.watermark_info then
    for k, v in pairs(body.watermark_info) do
      if k ~= "enabled" or type(v) ~= "boolean" then return "watermark_info is invalid" end
    end
  end
end

-- ---- faults ----

local function http_date(offset)
  return os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + offset)
end

function Api:take_fault(req, body)
  for i, f in ipairs(self.faults) do
    local action = type(body) == "table" and body.action or nil
    if f.path == req.path and (f.action == nil or f.action == action) then
      f.times = (f.times or 1) - 1
      if f.times <= 0 then table.remove(self.faults, i) end
      return f
    end
  end
end

local BROKEN_BODIES = {
  html = { "text/html", "<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>" },
  empty = { "application/json", "" },
  malformed = { "application/json", '{"success": true, "task_id": "abc' },
  array = { "application/json", "[1, 2, 3]" },
}

function Api:fault_response(f, req, body)
  local extra = {}
  if f.create_task and SUBMITS[req.path] and not self:problem(req.path, body) then
    local task = self:create_task(body, SUBMITS[req.path])
    if f.with_task_id ~= false then
      extra.task_id, extra.started_at = task.id, task.created_at
    end
  end
  -- the job (if any) exists from the start; only the answer is slow
  if f.delay then self.loop:sleep(f.delay) end
  if f.drop then return { drop = true } end
  -- bytes as they are, then close: malformed status lines, HTTP/0.9, garbage
  if f.raw then return { close = true, raw = f.raw } end
  local status = f.status or 500
  local headers = {}
  for k, v in pairs(type(f.headers) == "table" and f.headers or {}) do headers[k] = v end
  if f.retry_after then
    headers["Retry-After"] = f.retry_after_date and http_date(f.retry_after)
      or ("%d"):format(f.retry_after)
  end
  if f.truncate then
    return { close = true, raw = "HTTP/1.1 " .. status .. " X\r\nContent-Type: application/json\r\n"
      .. "Content-Length: 500\r\n\r\n{\"success\": true, \"task" }
  end
  local broken = BROKEN_BODIES[f.body]
  if broken then
    headers["Content-Type"] = broken[1]
    return { status = status, headers = headers, body = broken[2] }
  end
  if f.json then return json_response(status, f.json, headers) end
  if f.text then -- a body of the test's own, with its own Content-Type header
    headers["Content-Type"] = headers["Content-Type"] or "text/plain"
    return { status = status, headers = headers, body = f.text }
  end
  local res = api_error(status, f.code, f.message, extra)
  for k, v in pairs(headers) do res.headers[k] = v end
  return res
end

-- ---- endpoints ----

function Api:check_token(req)
  local auth = req.headers.authorization
  if not auth then return api_error(400, "no_token", "No token specified for the request.") end
  local token = auth:match("^Bearer%s+(.+)$")
  if token == "expired" then return api_error(401, "token_expired", "token expired.") end
  if token ~= self.config.token then return api_error(401, "invalid_token") end
end

function Api:problem(path, body)
  if path == "/kling/motion" then return validate_motion(body) end
  return videos.problem(body, function(id)
    for _, task in pairs(self.tasks) do
      if task.video_id == id and self:is_finished(task) then return true end
    end
    return false
  end)
end

function Api:submit(body, path)
  local problem = self:problem(path, body)
  if problem then return api_error(400, "bad_request", problem) end
  if self.config.credits and self.used_credits >= self.config.credits then
    return api_error(403, "used_up")
  end
  self.used_credits = self.used_credits + 1
  local task = self:create_task(body, SUBMITS[path])
  if body.async or body.callback_url then
    -- the task exists (and is billed) before its answer leaves
    if self.config.submit_delay > 0 then self.loop:sleep(math.random() * self.config.submit_delay) end
    return self:success({ task_id = task.id })
  end
  if task.outcome == "never" then self.loop:sleep(3600) end
  self.loop:sleep(task.generation_time)
  return self:success(self:final_response(task))
end

function Api:retrieve(body)
  if type(body) ~= "table" then return api_error(400, "bad_request", "request body must be a JSON object") end
  if body.action == "retrieve" then
    self.counts.retrieve = self.counts.retrieve + 1
    if type(body.id) ~= "string" then return api_error(400, "bad_request", "id is required") end
    local task = self.tasks[body.id]
    return self:success(task and self:record(task) or {})
  elseif body.action == "retrieve_batch" then
    self.counts.retrieve_batch = self.counts.retrieve_batch + 1
    if type(body.ids) ~= "table" then return api_error(400, "bad_request", "ids is required") end
    local items = {}
    for _, id in ipairs(body.ids) do
      if self.tasks[id] then items[#items + 1] = self:record(self.tasks[id]) end
    end
    return self:success({ items = setmetatable(items, cjson.array_mt), count = #items })
  end
  return api_error(400, "bad_request", "action is invalid")
end

function Api:video(req)
  self.counts.downloads = self.counts.downloads + 1
  if req.headers.authorization then
    self.counts.downloads_with_token = self.counts.downloads_with_token + 1
  end
  local fault = self:take_fault(req)
  if fault then return self:fault_response(fault, req) end
  local id = req.path:match("^/files/([%w%-]+)%.mp4$")
  if not id or not self.tasks[id] then return { status = 404, headers = {}, body = "not found" } end
  return { status = 200, headers = { ["Content-Type"] = "video/mp4" }, body = sample_video }
end

-- ---- the platform's upload endpoint (docs/api.md, "Uploading local files") ----

-- The parts of a multipart/form-data body: { name, filename, type, data }.
local function multipart(req)
  local ctype = req.headers["content-type"] or ""
  local boundary = ctype:match('boundary="([^"]+)"') or ctype:match("boundary=([^;%s]+)")
  if not ctype:lower():find("multipart/form-data", 1, true) or not boundary then return nil end
  local parts, body, delim = {}, req.body, "--" .. boundary
  local at = body:find(delim, 1, true)
  while at do
    local head_start = at + #delim
    if body:sub(head_start, head_start + 1) == "--" then break end
    local head_end = body:find("\r\n\r\n", head_start, true)
    if not head_end then return nil end
    local head = body:sub(head_start, head_end)
    local next_at = body:find("\r\n" .. delim, head_end + 4, true)
    if not next_at then return nil end
    parts[#parts + 1] = {
      name = head:match('name="([^"]*)"'), filename = head:match('filename="([^"]*)"'),
      type = head:match("[Cc]ontent%-[Tt]ype:%s*([^\r\n]+)"), data = body:sub(head_end + 4, next_at - 1),
    }
    at = next_at + 2
  end
  return parts
end

function Api:upload(req)
  local auth = req.headers.authorization
  local token = auth and auth:match("^Bearer%s+(.+)$")
  if token ~= self.config.platform_token then return api_error(401, "invalid_token") end
  local parts = multipart(req)
  if not parts then return api_error(400, "bad_request", "the body is not multipart/form-data") end
  local file
  for _, part in ipairs(parts) do
    if part.name == "file" then file = part end
  end
  if not file or not file.filename then return api_error(400, "bad_request", "a part named file is required") end
  self.counts.uploads = self.counts.uploads + 1
  self.counts.upload_bytes = self.counts.upload_bytes + #file.data
  local id = uuid()
  local name = file.filename:gsub("[^%w%._%-]", "_")
  self.files["/uploads/" .. id .. "/" .. name] = file.data
  local url = self.base_url .. "/uploads/" .. id .. "/" .. name
  local answer = self.config.upload_answer
  if answer == "url" then return json_response(200, { url = url }) end
  if answer == "data" then return json_response(200, { success = true, data = { file_url = url } }) end
  return json_response(200, { file_url = url, mime = file.type })
end

function Api:uploaded_file(req)
  local data = self.files[req.path]
  if not data then return { status = 404, headers = {}, body = "not found" } end
  return { status = 200, headers = { ["Content-Type"] = "application/octet-stream" }, body = data }
end

-- ---- control: /_sim/... ----

function Api:stats()
  return json_response(200, self.counts)
end

function Api:control(req, body)
  local p = req.path
  if p == "/_sim/stats" then return self:stats() end
  if p == "/_sim/tasks" then -- every task created: { id, image_url, state }
    local list = {}
    for _, id in ipairs(self.task_order) do
      local t = self.tasks[id]
      list[#list + 1] = { id = id, image_url = t.request.image_url,
                          state = self:is_finished(t) and "finished" or "processing" }
    end
    return json_response(200, setmetatable(list, cjson.array_mt))
  end
  if p == "/_sim/reset" then self:reset(); return json_response(200, { ok = true }) end
  if p == "/_sim/requests" then
    return json_response(200, setmetatable(self.log, cjson.array_mt))
  end
  if p == "/_sim/inbox" and req.method == "GET" then
    -- ?min=N&wait=S: answer once N callbacks arrived, or after S seconds
    local min = tonumber(req.query:match("min=(%d+)")) or 0
    local deadline = self.loop.now() + (tonumber(req.query:match("wait=([%d.]+)")) or 0)
    while #self.inbox < min and self.loop.now() < deadline do self.loop:sleep(0.01) end
    return json_response(200, setmetatable(self.inbox, cjson.array_mt))
  end
  if p:match("^/_sim/inbox") then
    self.inbox[#self.inbox + 1] = { path = req.target, body = req.body }
    return json_response(200, { ok = true })
  end
  if p == "/_sim/shutdown" then
    self.loop:stop()
    return json_response(200, { ok = true })
  end
  if type(body) ~= "table" then return api_error(400, "bad_request", "control body must be a JSON object") end
  if p == "/_sim/config" then
    for k, v in pairs(body) do self.config[k] = v end
    return json_response(200, self.config)
  elseif p == "/_sim/faults" then
    for _, f in ipairs(body[1] and body or { body }) do self.faults[#self.faults + 1] = f end
    return json_response(200, { queued = #self.faults })
  elseif p == "/_sim/next_task" then
    if body.outcome and not OUTCOMES[body.outcome] then
      return api_error(400, "bad_request", "unknown outcome " .. tostring(body.outcome))
    end
    for _ = 1, body.count or 1 do self.next_tasks[#self.next_tasks + 1] = body end
    return json_response(200, { queued = #self.next_tasks })
  end
  return api_error(404, "no_api")
end

function Api:remember(req)
  local log = self.log
  -- an upload's body is kept in part: enough to see what was sent
  log[#log + 1] = { method = req.method, path = req.path, headers = req.headers, body = req.body:sub(1, 65536) }
  if #log > 500 then table.remove(log, 1) end
end

-- conn is the connection the request came on: the counts of API connections
-- let a spec see whether the client reuses them.
function Api:handle(req, conn)
  self.last_activity = self.loop.now()
  local ok, body = pcall(cjson.decode, req.body ~= "" and req.body or "null")
  if not ok then body = nil end
  if body == cjson.null then body = nil end
  if req.path:match("^/_sim/") then return self:control(req, body) end
  if req.path:match("^/files/") then return self:video(req) end
  if req.path:match("^/uploads/") then return self:uploaded_file(req) end
  if req.path == "/api/v1/files/" then
    self.counts.requests[req.path] = (self.counts.requests[req.path] or 0) + 1
    self:remember(req)
    local fault = self:take_fault(req, body)
    if fault then return self:fault_response(fault, req, body) end
    return self:upload(req)
  end
  local counts = self.counts.requests
  counts[req.path] = (counts[req.path] or 0) + 1
  if conn and not conn.counted then
    conn.counted = true
    self.counts.connections = self.counts.connections + 1
  end
  self:remember(req)
  if SUBMITS[req.path] then
    -- per image_url (or prompt), so a harness can tell submits of the same job apart
    self.counts.submits = self.counts.submits + 1
    local image = type(body) == "table" and (type(body.image_url) == "string" and body.image_url
      or type(body.start_image_url) == "string" and body.start_image_url
      or type(body.prompt) == "string" and body.prompt) or "?"
    self.counts.submits_by_image[image] = (self.counts.submits_by_image[image] or 0) + 1
    self.counts.submits_open = self.counts.submits_open + 1
    local res = self:answer(req, body, ok)
    self.counts.submits_open = self.counts.submits_open - 1
    return res
  end
  return self:answer(req, body, ok)
end

function Api:answer(req, body, ok)
  local fault = self:take_fault(req, body)
  if fault and fault.pass then
    -- a slow answer that is otherwise normal: the request is handled after the delay
    self.loop:sleep(fault.delay or 0)
  elseif fault then
    return self:fault_response(fault, req, body)
  end
  if req.method ~= "POST" then return api_error(404, "no_api") end
  local denied = self:check_token(req)
  if denied then return denied end
  if not ok then return api_error(400, "bad_request", "request body is not valid JSON") end
  if SUBMITS[req.path] then return self:submit(body, req.path) end
  if req.path == "/kling/tasks" then return self:retrieve(body) end
  return api_error(404, "no_api")
end

return Api
