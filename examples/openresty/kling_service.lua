-- The Lua side of examples/openresty/nginx.conf: a motion service whose
-- requests never block the worker. kling.loop.ngx owns the client (one
-- timer per worker steps every job); handlers only spawn jobs and wait for
-- them through the loop, which yields the request, not the worker.
local cjson = require "cjson.safe"
local kling = require "kling"

local service = {}
local client, loop
local jobs, last_id = {}, 0
local counts = { callbacks = 0, verified = 0, refused = 0 }

-- init_worker_by_lua: the token and the API's address from the environment
-- (nginx.conf's env lines).
function service.init_worker()
  local err
  client, err = kling.new{}
  if not client then return ngx.log(ngx.ERR, "kling: ", tostring(err)) end
  loop, err = require("kling.loop").ngx(client)
  if not loop then ngx.log(ngx.ERR, "kling: ", tostring(err)) end
end

local function reply(status, body)
  ngx.status = status
  ngx.header.content_type = "application/json"
  ngx.say(cjson.encode(body))
  return ngx.exit(status)
end

local function read_json()
  ngx.req.read_body()
  local body = cjson.decode(ngx.req.get_body_data() or "")
  if type(body) ~= "table" then return reply(400, { error = "the body must be a JSON object" }) end
  return body
end

-- A job's state as JSON: an error as its message and kind, never the token.
local function describe(job)
  local result, err = job:result()
  if job:status() == "running" then return { status = "running" } end
  if result then return { status = job:status(), result = result } end
  return { status = job:status(), error = tostring(err), kind = type(err) == "table" and err.kind or nil }
end

function service.motion()
  local params = read_json()
  last_id = last_id + 1
  local id = last_id
  -- ?from=timer: spawned from a timer's context instead (any context works)
  if ngx.var.arg_from == "timer" then
    ngx.timer.at(0, function() jobs[id] = client:spawn(client.motion, client, params) end)
    return reply(202, { job = id })
  end
  jobs[id] = client:spawn(client.motion, client, params)
  if not ngx.var.arg_wait then return reply(202, { job = id }) end
  loop:wait(jobs[id])
  return reply(200, describe(jobs[id]))
end

function service.job(id)
  local job = jobs[tonumber(id)]
  if not job then return reply(404, { error = "no job " .. id }) end
  local wait = tonumber(ngx.var.arg_wait)
  if wait then loop:wait(job, wait) end
  return reply(200, describe(job))
end

-- handle_callback{spawn = true} checks the callback's token (no traffic)
-- and returns a job that re-reads the task; the POST is answered at once.
function service.callback()
  ngx.req.read_body()
  counts.callbacks = counts.callbacks + 1
  local reread, err = client:handle_callback(ngx.req.get_body_data() or "", { url = ngx.var.request_uri, spawn = true })
  if not reread then
    counts.refused = counts.refused + 1
    local status = err.kind == "auth" and 403 or err.kind == "not_found" and 404 or 400
    return reply(status, { error = tostring(err) })
  end
  client:spawn(function()
    local task = reread:wait()
    if task and task.first_delivery then counts.verified = counts.verified + 1 end
  end)
  return ngx.exit(204)
end

function service.stats()
  local running, ended = 0, 0
  for _, job in pairs(jobs) do
    if job:status() == "running" then running = running + 1 else ended = ended + 1 end
  end
  return reply(200, { running = running, ended = ended, reserved = last_id, steps = loop and loop.steps,
                      callbacks = counts.callbacks, verified = counts.verified, refused = counts.refused })
end

return service
