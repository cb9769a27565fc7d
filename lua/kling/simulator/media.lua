-- Sample media for trying kling offline and for the specs: real PNG files
-- (decodable: zlib stored blocks, CRCs), JPEG files with real JFIF and frame
-- headers, and MP4/MOV files with real ftyp/moov/mvhd/trak boxes (tkhd, and
-- mdia with mdhd, hdlr and a sample description), fragmented ones too (the
-- media data itself is filler: nothing here plays). Pure Lua, 5.1 to 5.4.
local media = {}

-- ---- bytes ----

local function u16(n) return string.char(math.floor(n / 256) % 256, n % 256) end
local function u32(n)
  return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
end
local function u64(n) return u32(math.floor(n / 4294967296)) .. u32(n % 4294967296) end

-- XOR of two 32-bit numbers: the runtime's own where it has one (5.3+
-- operators, 5.2's bit32, LuaJIT's bit), else arithmetic (PUC Lua 5.1).
local bxor
if _VERSION ~= "Lua 5.1" and _VERSION ~= "Lua 5.2" then
  bxor = load("return function(a, b) return a ~ b end")()
elseif rawget(_G, "bit32") then
  bxor = rawget(_G, "bit32").bxor
elseif rawget(_G, "jit") then
  local bit = require "bit"
  bxor = function(a, b) return bit.bxor(a, b) % 4294967296 end
else
  bxor = function(a, b)
    local r, place = 0, 1
    while a > 0 or b > 0 do
      if a % 2 ~= b % 2 then r = r + place end
      a, b, place = math.floor(a / 2), math.floor(b / 2), place * 2
    end
    return r
  end
end

local CRC_TABLE = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do
    if c % 2 == 1 then c = bxor(0xEDB88320, math.floor(c / 2)) else c = math.floor(c / 2) end
  end
  CRC_TABLE[i] = c
end

local function crc32(s)
  local c = 0xFFFFFFFF
  for i = 1, #s do
    c = bxor(CRC_TABLE[bxor(c % 256, s:byte(i))], math.floor(c / 256))
  end
  return bxor(c, 0xFFFFFFFF)
end

local function adler32(s)
  local a, b = 1, 0
  for i = 1, #s do
    a = (a + s:byte(i)) % 65521
    b = (b + a) % 65521
  end
  return b * 65536 + a
end

-- ---- PNG ----

local function chunk(kind, data)
  return u32(#data) .. kind .. data .. u32(crc32(kind .. data))
end

-- zlib with deflate "stored" blocks: valid, uncompressed.
local function zlib_stored(raw)
  local out, i = { "\120\1" }, 1
  repeat
    local part = raw:sub(i, i + 65534)
    i = i + #part
    local last = i > #raw and 1 or 0
    out[#out + 1] = string.char(last) .. string.char(#part % 256, math.floor(#part / 256))
      .. string.char(255 - #part % 256, 255 - math.floor(#part / 256)) .. part
  until i > #raw
  out[#out + 1] = u32(adler32(raw))
  return table.concat(out)
end

-- A grey gradient, width x height, 8-bit greyscale.
function media.png(width, height)
  local row = {}
  for x = 1, width do row[x] = string.char(math.floor(x * 255 / width)) end
  local line = "\0" .. table.concat(row)
  local raw = string.rep(line, height)
  return "\137PNG\r\n\26\n" .. chunk("IHDR", u32(width) .. u32(height) .. "\8\0\0\0\0")
    .. chunk("IDAT", zlib_stored(raw)) .. chunk("IEND", "")
end

-- ---- JPEG (headers of a baseline JFIF; the scan is filler) ----

function media.jpeg(width, height)
  local app0 = "JFIF\0\1\1\0\0\1\0\1\0\0"
  local dqt = "\0" .. string.rep("\1", 64)
  local sof = "\8" .. u16(height) .. u16(width) .. "\1\1\17\0"
  local dht = "\0" .. string.rep("\0", 15) .. "\1" .. "\0"
  local sos = "\1\1\0\0\63\0"
  local function segment(marker, data) return "\255" .. marker .. u16(#data + 2) .. data end
  return "\255\216" .. segment("\224", app0) .. segment("\219", dqt) .. segment("\192", sof)
    .. segment("\196", dht) .. segment("\218", sos) .. string.rep("\0", 64) .. "\255\217"
end

-- ---- MP4 / MOV ----

local function box(kind, data) return u32(8 + #data) .. kind .. data end

local IDENTITY = u32(0x00010000) .. u32(0) .. u32(0) .. u32(0) .. u32(0x00010000) .. u32(0)
  .. u32(0) .. u32(0) .. u32(0x40000000)

local function mvhd(seconds, version)
  local timescale = 1000
  if version == 1 then
    return box("mvhd", "\1\0\0\0" .. u64(0) .. u64(0) .. u32(timescale) .. u64(math.floor(seconds * timescale))
      .. u32(0x00010000) .. u16(0x0100) .. string.rep("\0", 10) .. IDENTITY .. string.rep("\0", 24) .. u32(3))
  end
  return box("mvhd", "\0\0\0\0" .. u32(0) .. u32(0) .. u32(timescale) .. u32(math.floor(seconds * timescale))
    .. u32(0x00010000) .. u16(0x0100) .. string.rep("\0", 10) .. IDENTITY .. string.rep("\0", 24) .. u32(3))
end

local function tkhd(id, width, height, seconds, version)
  local head
  if version == 1 then
    head = "\1\0\0\3" .. u64(0) .. u64(0) .. u32(id) .. u32(0) .. u64(math.floor(seconds * 1000))
  else
    head = "\0\0\0\3" .. u32(0) .. u32(0) .. u32(id) .. u32(0) .. u32(math.floor(seconds * 1000))
  end
  return box("tkhd", head .. string.rep("\0", 8) .. u16(0) .. u16(0) .. u16(width == 0 and 0x0100 or 0) .. u16(0)
    .. IDENTITY .. u32(width * 65536) .. u32(height * 65536))
end

-- A media's time scale (ticks per second) in the samples below.
local MEDIA_TIMESCALE = 12800

local function mdhd(seconds)
  return box("mdhd", "\0\0\0\0" .. u32(0) .. u32(0) .. u32(MEDIA_TIMESCALE)
    .. u32(math.floor(seconds * MEDIA_TIMESCALE)) .. u16(0x55c4) .. u16(0))
end

local function hdlr(handler, qt)
  return box("hdlr", "\0\0\0\0" .. (qt and "mhlr" or u32(0)) .. handler .. string.rep("\0", 12) .. "kling\0")
end

-- The first sample description: a visual entry (avc1) with its coded size,
-- or an audio (mp4a) or text (tx3g) one.
local function stsd(handler, coded_w, coded_h)
  local entry
  if handler == "vide" then
    entry = box("avc1", string.rep("\0", 6) .. u16(1) .. string.rep("\0", 16) .. u16(coded_w) .. u16(coded_h)
      .. u32(0x00480000) .. u32(0x00480000) .. u32(0) .. u16(1) .. string.rep("\0", 32) .. u16(0x18) .. u16(0xffff))
  elseif handler == "soun" then
    entry = box("mp4a", string.rep("\0", 6) .. u16(1) .. string.rep("\0", 8) .. u16(2) .. u16(16) .. u32(0)
      .. u32(44100 * 65536))
  else
    entry = box("tx3g", string.rep("\0", 6) .. u16(1) .. string.rep("\0", 30))
  end
  return box("stsd", "\0\0\0\0" .. u32(1) .. entry)
end

-- A whole track: tkhd, then mdia with its media header, handler and sample
-- description. opts.coded: { w, h } when the coded size differs from the
-- display size (anamorphic video).
local function trak(id, handler, width, height, seconds, opts)
  local coded = opts.coded or { width, height }
  local media_header = handler == "vide" and box("vmhd", "\0\0\0\1" .. string.rep("\0", 8))
    or handler == "soun" and box("smhd", string.rep("\0", 8)) or box("nmhd", "\0\0\0\0")
  local stbl = box("stbl", stsd(handler, coded[1], coded[2]))
  local minf = box("minf", media_header .. stbl)
  local mdia = box("mdia", mdhd(opts.fragmented and 0 or seconds) .. hdlr(handler, opts.format == "mov") .. minf)
  return box("trak", tkhd(id, width, height, opts.fragmented and 0 or seconds, opts.version) .. mdia)
end

-- Movie fragments for a fragmented file: one per second of video, each
-- with a track run of 25 samples of their own duration.
local function fragments(seconds, trun_durations)
  local out, per_second, tick = {}, 25, MEDIA_TIMESCALE / 25
  local whole = math.floor(seconds)
  for i = 1, whole do
    local runs
    if trun_durations then -- durations in the run (flags 0x100)
      local samples = {}
      for _ = 1, per_second do samples[#samples + 1] = u32(tick) end
      runs = box("trun", "\0\0\1\0" .. u32(per_second) .. table.concat(samples))
    else -- the track fragment header's default duration
      runs = box("trun", "\0\0\0\0" .. u32(per_second))
    end
    local tfhd = trun_durations and box("tfhd", "\0\2\0\0" .. u32(1))
      or box("tfhd", "\0\2\0\8" .. u32(1) .. u32(tick))
    out[#out + 1] = box("moof", box("mfhd", "\0\0\0\0" .. u32(i)) .. box("traf", tfhd .. runs))
    out[#out + 1] = box("mdat", string.rep("\0", 16))
  end
  return table.concat(out)
end

-- opts: format "mp4" (default) or "mov", version 0 or 1 headers, moov_last
-- (the movie header after the media data, as many cameras write it), large
-- (the media data in a box with a 64-bit size), text_first (a subtitle
-- track of 1280x60 before the video), coded = { w, h } (the coded size,
-- when it differs from the display size), fragmented = "mehd" (mvhd says 0,
-- mvex/mehd the duration) or "trun" / "tfhd" (no duration anywhere but the
-- fragments' samples), second_moov = { w, h, s } (a later moov, which
-- demuxers ignore).
function media.video(width, height, seconds, opts)
  opts = opts or {}
  local ftyp = opts.format == "mov" and box("ftyp", "qt  " .. u32(0x200) .. "qt  ")
    or box("ftyp", "isom" .. u32(0x200) .. "isomiso2avc1mp41")
  local tracks = {}
  if opts.text_first then tracks[#tracks + 1] = trak(3, "text", 1280, 60, seconds, opts) end
  tracks[#tracks + 1] = trak(2, "soun", 0, 0, seconds, opts)
  tracks[#tracks + 1] = trak(1, "vide", width, height, seconds, opts)
  local mvex = ""
  if opts.fragmented then
    local mehd = opts.fragmented == "mehd" and box("mehd", "\0\0\0\0" .. u32(math.floor(seconds * 1000))) or ""
    mvex = box("mvex", mehd .. box("trex", "\0\0\0\0" .. u32(1) .. u32(1) .. u32(0) .. u32(0) .. u32(0)))
  end
  local moov = box("moov", mvhd(opts.fragmented and 0 or seconds, opts.version) .. table.concat(tracks) .. mvex)
  local filler = string.rep("\0", 256)
  local mdat = opts.large and (u32(1) .. "mdat" .. u64(16 + #filler) .. filler) or box("mdat", filler)
  if opts.fragmented then
    return ftyp .. moov .. fragments(seconds, opts.fragmented == "trun")
  end
  local later = ""
  if opts.second_moov then
    local w, h, sec = opts.second_moov[1], opts.second_moov[2], opts.second_moov[3]
    later = box("moov", mvhd(sec) .. trak(1, "vide", w, h, sec, {}))
  end
  if opts.moov_last then return ftyp .. mdat .. moov .. later end
  return ftyp .. moov .. mdat .. later
end

function media.write(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
  return path
end

return media
