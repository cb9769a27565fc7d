-- Uploads: local files become public CDN URLs through AceData's platform API
-- (docs/api.md, "Uploading local files"), for the API takes URLs only.
-- An upload is not billed, so it is retried like a task retrieval; it needs
-- the platform token, a credential of its own.
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local core = require "kling.core"
local errors = require "kling.errors"
local media = require "kling.media"
local Recent = require "kling.recent"
local retry = require "kling.retry"
local validate = require "kling.validate"

local uploads = {}

local UPLOAD_PATH = "/api/v1/files/"

-- The size of a regular file, or nil and a message. Only regular files are
-- uploaded: a FIFO would block the open, a device (/dev/zero) would stream
-- past every size limit. kling.core opens it the same way again to send it,
-- and a file that changes size meanwhile ends the upload.
function uploads.file_size(path)
  local info, err = core.stat(path)
  if not info then return nil, err end
  if info.type ~= "file" then return nil, ("%s is not a regular file (a %s)"):format(path, info.type) end
  return info.size
end

local function base_name(path)
  return path:match("([^/\\]+)$") or path
end

-- Uploads a file (source is a path) or bytes (opts.filename names them);
-- returns the URL, or nil and an error. opts.on_progress(sent, total) is
-- called as the bytes go out.
function uploads.upload(engine, source, opts)
  local s = engine.settings
  local name, form
  if opts.filename ~= nil then
    if type(opts.filename) ~= "string" or opts.filename == "" or opts.filename:find("[%c/\\]") then
      return nil, errors.invalid("filename", "must be a plain file name")
    end
    name, form = opts.filename, { data = source, name = opts.filename }
    if #source > s.max_upload_bytes then
      return nil, errors.invalid("file", ("is %d bytes; uploads are at most %d"):format(#source, s.max_upload_bytes))
    end
  else
    local size, err = uploads.file_size(source)
    if not size then return nil, errors.invalid("file", ("cannot be read: %s"):format(tostring(err))) end
    if size > s.max_upload_bytes then
      return nil, errors.invalid("file", ("%s is %d bytes; uploads are at most %d"):format(source, size,
        s.max_upload_bytes))
    end
    name, form = base_name(source), { file = source, name = base_name(source) }
  end
  if not s.has_platform_token then
    return nil, errors.new("auth", "uploading needs the platform token (a credential apart from the API token): "
      .. "pass platform_token = ... or set ACEDATACLOUD_PLATFORM_TOKEN", { field = "platform_token" })
  end
  if engine.closed then return nil, errors.closed() end
  local transport = engine.transport
  local progress = opts.on_progress and function(sent, total) opts.on_progress(sent, total) end
  local url, err = transport:retrying(nil, retry.retryable, function()
    local res = engine.scheduler:transfer(transport:common_options({
      url = s.platform_url .. UPLOAD_PATH, form = form, auth = "platform", decode = true,
      headers = { "Accept: application/json" }, timeout = s.upload_timeout, max_body = s.max_response_bytes,
    }), { progress = progress })
    if res.reason == "setup" then return nil, errors.invalid("file", tostring(res.error)) end
    if res.reason == "file_changed" then
      return nil, errors.invalid("file", ("%s changed size while it was uploaded"):format(name))
    end
    local json, e = transport:interpret(res, "platform")
    if not json then return nil, e end
    -- file_url, else url, flat or inside data (interpret unwraps it)
    local found = transport:foreign(json.file_url) or transport:foreign(json.url)
    if not found or validate.url("file_url", found) then
      return nil, errors.new("bad_response", "the upload answer has no file URL", { status = res.status })
    end
    return found
  end)
  if not url then
    err.message = ("uploading %s: %s"):format(name, err.message)
    return nil, err
  end
  return url
end

-- The local files of a request (the endpoint's sources given as files):
-- each checked against the endpoint's limits before any upload (fields
-- named, values measured). Returns what was probed, by field ({} when there
-- are none), or nil and an error.
function uploads.check(endpoint, own, body)
  local infos = {}
  for _, src in ipairs(endpoint.sources) do
    local path = own[src.file]
    if path then
      local info, err = media.check(path, src.file, endpoint.limits(src.media, body))
      if not info then return nil, err end
      infos[src.file] = info
    end
  end
  return infos
end

-- ---- uploads by content ----
-- With a journal, a file's SHA-256 names what was uploaded, so that the same
-- content is uploaded once however many jobs (and runs) use it. Hashing
-- reads the whole file: a slice per step inside a job, so that a step stays
-- short, and once per file identity (device, inode, size, mtime) per
-- process.

local DIGEST_SLICE = 1024 * 1024
local digests = Recent.new(256) -- file identity -> sha256 (a pure function of the content)

local function identity(info)
  return ("%.0f:%.0f:%.0f:%.9f"):format(info.dev, info.ino, info.size, info.mtime)
end

-- The SHA-256 of path's content, or nil and a message.
local function digest_of(engine, path, info)
  local id = identity(info)
  local known = digests:get(id)
  if known then return known end
  local d, err = core.digest_file(path)
  if not d then return nil, err end
  local scheduler = engine.scheduler
  local in_job = scheduler:current_job() ~= nil
  while true do
    local hex, size_or_err = d:step(DIGEST_SLICE)
    if hex == nil then return nil, size_or_err end
    if hex then
      d:close()
      digests:add(id, hex)
      return hex
    end
    if in_job then scheduler:sleep(0) end -- the rest at the next step
  end
end

local function suffix_of(path)
  return (base_name(path):match("(%.[%w]+)$") or ""):lower()
end

-- Uploads of one content under way, per scheduler: content -> the waiters
-- of the jobs that want the same file meanwhile (they get its URL).
local under_way = setmetatable({}, { __mode = "k" })

-- Uploads path once per content: the URL the journal knows for its
-- content, the URL of the same content being uploaded by another job of
-- this client right now, or a new upload (then remembered).
local function upload_once(engine, path, opts)
  local journal, platform, scheduler = engine.store, engine.settings.platform_url, engine.scheduler
  local info = journal and core.stat(path)
  local sha = info and info.type == "file" and digest_of(engine, path, info)
  if not sha then return uploads.upload(engine, path, opts) end
  local suffix = suffix_of(path)
  local content = table.concat({ sha, info.size, suffix }, ":")
  local mine = under_way[scheduler] or {}
  under_way[scheduler] = mine
  while mine[content] do -- another job uploads it: wait for its URL
    local waiter = { kind = "event" }
    local list = mine[content]
    list[#list + 1] = waiter
    local url = scheduler:await(waiter, false)
    if url then return url end
    if engine.closed then return nil, errors.closed() end
  end
  local url = journal:uploaded(sha, info.size, suffix, platform)
  if url then return url end
  local waiting = {}
  mine[content] = waiting
  local function hand_over(value) -- however this upload ends, the waiters go on
    if mine[content] ~= waiting then return end
    mine[content] = nil
    for _, w in ipairs(waiting) do scheduler:wake_later(w, value or false) end
  end
  scheduler:on_exit(hand_over)
  local err
  url, err = uploads.upload(engine, path, opts)
  if url then
    -- remembered only if the file is what was hashed (unchanged meanwhile)
    local after = core.stat(path)
    if after and identity(after) == identity(info) then
      journal:remember_upload(sha, info.size, suffix, platform, url)
    end
  end
  hand_over(url)
  return url, err
end

-- Uploads the request's local files and puts their URLs into body;
-- known = { [file field] = url, ... } from the journal's entry of this job
-- is reused, and so is any upload of the same content (with a journal).
-- Returns the URLs by field, or nil and an error.
function uploads.resolve(engine, endpoint, own, body, known)
  local urls = {}
  for _, src in ipairs(endpoint.sources) do
    local file = src.file
    if own[file] then
      local url = known and known[file]
      if not url then
        local err
        local report = own.on_upload
        url, err = upload_once(engine, own[file], {
          on_progress = report and function(sent, total) report(sent, total, own[file]) end })
        if not url then
          err.field = err.field or file
          return nil, err
        end
      end
      urls[file] = url
      body[src.url] = url
    end
  end
  return urls
end

return uploads
