-- Writes the seed corpus of fuzz/probe_fuzz.c into fuzz/probe-corpus/:
--   lua fuzz/probe-seeds.lua
local media = require "kling.simulator.media"

local seeds = {
  png = media.png(4, 3), -- a small real PNG; the probe reads its first 24 bytes
  jpeg = media.jpeg(640, 480),
  mp4 = media.video(1280, 720, 5),
  mov_v1_moov_last = media.video(720, 1280, 12.5, { format = "mov", version = 1, moov_last = true }),
  mp4_large_box = media.video(640, 480, 3, { large = true }),
  mp4_text_first = media.video(1280, 720, 5, { text_first = true }),
  mp4_coded_size = media.video(1280, 720, 5, { coded = { 960, 720 } }),
  mp4_two_moov = media.video(1280, 720, 5, { second_moov = { 100, 100, 60 } }),
  fmp4_mehd = media.video(1280, 720, 6, { fragmented = "mehd" }),
  fmp4_trun = media.video(640, 480, 3, { fragmented = "trun" }),
  fmp4_tfhd = media.video(640, 480, 3, { fragmented = "tfhd" }),
}
local n = 0
for name, bytes in pairs(seeds) do
  local f = assert(io.open("fuzz/probe-corpus/" .. name, "wb"))
  f:write(bytes)
  f:close()
  n = n + 1
end
print(("wrote %d seeds to fuzz/probe-corpus/"):format(n))
