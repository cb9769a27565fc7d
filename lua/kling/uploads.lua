-- Uploads: local files become public CDN URLs through AceData's platform API
-- (docs/api.md, "Uploading local files"), for /kling/motion takes URLs only.
-- An upload is not billed, so it is retried like a task retrieval; it needs
-- the platform token, a credential of its own.
local core = require "kling.core"
local errors = require "kling.errors"
local media = require "kling.media"
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
function uploads.upload(client, source, opts)
  local s = client.settings
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
  if client._closed then return nil, errors.closed() end
  local transport = client._transport
  local progress = opts.on_progress and function(sent, total) opts.on_progress(sent, total) end
  local url, err = transport:with_retries(function()
    local res = client._scheduler:transfer(transport:common_options({
      url = s.platform_url .. UPLOAD_PATH, form = form, auth = "platform", decode = true,
      headers = { "Accept: application/json" }, timeout = s.upload_timeout, max_body = s.max_response_bytes,
    }), { progress = progress })
    if res.reason == "setup" then return nil, errors.invalid("file", tostring(res.error)) end
    if res.reason == "file_changed" then
      return nil, errors.invalid("file", ("%s changed size while it was uploaded"):format(name))
    end
    local json, e = transport:interpret(res)
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

-- The local files of a motion request (image_file, video_file): each checked
-- against Kling's limits before any upload (fields named, values measured).
-- Returns what was probed, by field ({} when there are none), or nil and an error.
function uploads.check(own, body)
  local infos = {}
  for _, field in ipairs({ "image_file", "video_file" }) do
    if own[field] then
      local info, err = media.check(own[field], field, body.character_orientation)
      if not info then return nil, err end
      infos[field] = info
    end
  end
  return infos
end

-- Uploads the request's local files and puts their URLs into body;
-- known = { image_file = url, ... } from the journal is reused, never uploaded
-- again. Returns the URLs by field, or nil and an error.
function uploads.resolve(client, own, body, known)
  local urls = {}
  for _, pair in ipairs({ { "image_file", "image_url" }, { "video_file", "video_url" } }) do
    local file, url_field = pair[1], pair[2]
    if own[file] then
      local url = known and known[file]
      if not url then
        local err
        local report = own.on_upload
        url, err = uploads.upload(client, own[file], {
          on_progress = report and function(sent, total) report(sent, total, own[file]) end })
        if not url then
          err.field = err.field or file
          return nil, err
        end
      end
      urls[file] = url
      body[url_field] = url
    end
  end
  return urls
end

return uploads
