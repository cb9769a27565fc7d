-- Where videos are written. A destination is checked before anything is
-- sent or paid for (an output path found wrong only after the job was
-- billed is money lost), and every download writes a file of its own,
-- created new (src/files.c), renamed onto the destination when complete:
-- two writers of one destination (processes running one batch) never write
-- into each other's bytes, and no half-written file is left under either
-- name.
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local core = require "kling.core"
local errors = require "kling.errors"

local files = {}

-- The directory a path is in ("." for a bare name).
function files.dirname(path)
  local dir = path:match("^(.*)/[^/]*$")
  if dir == nil then return "." end
  if dir == "" then return "/" end
  return dir
end

-- Is dir a directory this process can create files in? true, or nil and
-- an invalid_argument error naming field.
function files.check_dir(dir, field)
  local info, err = core.stat(dir)
  if not info then return nil, errors.invalid(field, ("cannot be written: %s"):format(err)) end
  if info.type ~= "directory" then
    return nil, errors.invalid(field, ("cannot be written: %s is not a directory"):format(dir))
  end
  local ok, werr = core.writable_dir(dir)
  if not ok then return nil, errors.invalid(field, ("cannot be written: %s"):format(werr)) end
  return true
end

-- Can path be a download's destination (a new file, or a regular file to
-- replace, in a directory we can write)? true, or nil and an
-- invalid_argument error naming field.
function files.check_destination(path, field)
  if type(path) ~= "string" or path == "" or path:find("%z") then
    return nil, errors.invalid(field, "must be a file name")
  end
  local info = core.stat(path)
  if info and info.type == "directory" then
    return nil, errors.invalid(field, ("%s is a directory; name a file to write (for example %s/video.mp4)")
      :format(path, path:gsub("/+$", "")))
  end
  if info and info.type ~= "file" then
    return nil, errors.invalid(field, ("%s is not a regular file (a %s)"):format(path, info.type))
  end
  return files.check_dir(files.dirname(path), field)
end

-- A name of this writer's own beside path, for the bytes as they arrive.
function files.part_path(path)
  return ("%s.%s.part"):format(path, core.random_token(4))
end

return files
