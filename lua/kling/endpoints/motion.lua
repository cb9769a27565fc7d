-- Kling Motion, POST /kling/motion: a reference image and a reference motion
-- video in, a video of the character performing that motion out. Everything
-- kling knows of this endpoint is here, as data: the fields and their rules
-- (docs/api.md, "Submitting: POST /kling/motion"), the local files it takes
-- and Kling's limits for them (docs/api.md, "Media limits"), what names a
-- job by default, and the command's subcommand. Validation, uploads,
-- submission, batches, the journal and the command are generic over an
-- endpoint (endpoints/init.lua says which exist).
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local limits = require "kling.endpoints.limits"

return {
  name = "motion",
  path = "/kling/motion",

  -- Fields sent as they are, once checked. enum: one of; boolean: what a
  -- Lua boolean stands for; text: at most that many characters; url: an
  -- http(s) URL; shape: a table of exactly these fields and types.
  fields = {
    character_orientation = { enum = { "image", "video" }, required = true },
    mode = { enum = { "std", "pro" }, required = true },
    keep_original_sound = { enum = { "yes", "no" }, boolean = { [true] = "yes", [false] = "no" } },
    prompt = { text = 2500 },
    model_name = { enum = { "kling-v2-6", "kling-v3" } },
    watermark_info = { shape = { enabled = "boolean" } },
    callback_url = { url = true },
  },

  -- The references: each a URL, or a local file kling checks and uploads.
  sources = {
    { url = "image_url", file = "image_file", media = "image", required = true },
    { url = "video_url", file = "video_file", media = "video", required = true },
  },

  -- Kling's limits for motion control's files; a file that breaks one would
  -- fail on the server after a paid round trip. body: the request, for the
  -- limits that depend on it (the longest video depends on whose orientation
  -- the character follows).
  limits = function(kind, body)
    if kind == "image" then return limits.image() end
    local orientation = body and body.character_orientation or "video"
    return limits.video(orientation == "image" and 10 or 30, ("with character_orientation = %q"):format(orientation))
  end,

  -- The command's subcommand: `kling motion IMAGE VIDEO [options]`. Every
  -- endpoint's subcommand also gets -o, --key, --async, --retry-failed,
  -- --callback-url, --json and --journal (kling.cli). Its default key is a
  -- digest of the sources and of these options' values.
  command = {
    help = "Make a video: IMAGE and VIDEO are URLs or local files (uploaded).",
    arguments = {
      { name = "image", source = "image_url", help = "The reference image (PNG or JPEG): a URL or a file." },
      { name = "video", source = "video_url", help = "The reference motion video (MP4 or MOV): a URL or a file." },
    },
    options = {
      { flag = "--orientation", field = "character_orientation", choices = { "image", "video" }, default = "image",
        help = "Whose orientation the character follows." },
      { flag = "--mode", field = "mode", choices = { "std", "pro" }, default = "std",
        help = "std (720p) or pro (1080p)." },
      { flag = "--prompt", field = "prompt", help = "A text prompt." },
      { flag = "--model", field = "model_name", choices = { "kling-v2-6", "kling-v3" },
        help = "The model: kling-v2-6 or kling-v3." },
      { flag = "--no-sound", field = "keep_original_sound", value = "no", help = "Drop the motion video's sound." },
      { flag = "--watermark", field = "watermark_info", value = { enabled = true }, help = "Ask for a watermark." },
    },
    -- a batch file's short column names: a source (by its URL field) or a field
    columns = { image = "image_url", video = "video_url", orientation = "character_orientation",
                model = "model_name" },
    -- what names a job by default: the sources, these fields' values, and
    -- whether these are set ({ name, field }): the same inputs, the same key,
    -- so running the same command again resumes the same job
    key = { prefix = "cli-",
            fields = { "character_orientation", "mode", "prompt", "model_name", "keep_original_sound", "callback_url" },
            flags = { { "watermark", "watermark_info" } } },
  },
}
