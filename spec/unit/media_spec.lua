-- kling.media: what a local file is, from its headers, and whether Kling's
-- motion control takes it. Real files of each format are made in the suite.
local kling = require "kling"
local samples = require "kling.simulator.media"
local Simulator = require "helpers.simulator"

local dir

local function file(name, bytes)
  return samples.write(dir .. "/" .. name, bytes)
end

describe("kling.media.probe", function()
  setup(function()
    dir = Simulator.tempdir()
  end)
  teardown(function() Simulator.remove_dir(dir) end)

  it("reads PNG and JPEG dimensions", function()
    local png = assert(kling.media.probe(file("a.png", samples.png(320, 400))))
    assert.same({ kind = "image", format = "png", width = 320, height = 400,
                  bytes = #samples.png(320, 400) }, png)
    local jpeg = assert(kling.media.probe(file("a.jpg", samples.jpeg(1920, 1080))))
    assert.equal("jpeg", jpeg.format)
    assert.equal(1920, jpeg.width)
    assert.equal(1080, jpeg.height)
  end)

  it("reads MP4 and MOV size and duration from the movie and track headers", function()
    local mp4 = assert(kling.media.probe(file("a.mp4", samples.video(1280, 720, 5))))
    assert.equal("video", mp4.kind)
    assert.equal("mp4", mp4.format)
    assert.equal(1280, mp4.width)
    assert.equal(720, mp4.height)
    assert.equal(5, mp4.duration)
    -- version 1 headers, the movie header after the media data, a 64-bit box size
    local mov = assert(kling.media.probe(file("a.mov", samples.video(720, 1280, 12.5,
      { format = "mov", version = 1, moov_last = true, large = true }))))
    assert.equal("mov", mov.format)
    assert.equal(720, mov.width)
    assert.equal(1280, mov.height)
    assert.equal(12.5, mov.duration)
  end)

  it("reads the video track (not a text track before it), the first movie, and fragmented files", function()
    local function probe(name, ...)
      return assert(kling.media.probe(file(name, samples.video(...))))
    end
    -- a subtitle track of 1280x60 comes first: the video is the track whose handler is 'vide'
    local text_first = probe("text.mp4", 1280, 720, 5, { text_first = true })
    assert.equal(1280, text_first.width)
    assert.equal(720, text_first.height)
    -- two movies: demuxers read the first
    local two = probe("two.mp4", 1280, 720, 5, { second_moov = { 100, 100, 60 } })
    assert.equal(1280, two.width)
    assert.equal(5, two.duration)
    -- fragmented: mvhd says 0; the duration is mehd's, or the fragments' samples'
    assert.equal(6, probe("mehd.mp4", 1280, 720, 6, { fragmented = "mehd" }).duration)
    assert.equal(7, probe("trun.mp4", 1280, 720, 7, { fragmented = "trun" }).duration)
    assert.equal(4, probe("tfhd.mp4", 1280, 720, 4, { fragmented = "tfhd" }).duration)
    assert.same({}, kling.media.problems(probe("frag.mp4", 1280, 720, 6, { fragmented = "mehd" }), "video", "image"))
    -- the coded size is read too, and checked
    local anamorphic = probe("coded.mp4", 1280, 720, 5, { coded = { 320, 720 } })
    assert.equal(1280, anamorphic.width)
    assert.equal(320, anamorphic.coded_width)
    assert.equal(720, anamorphic.coded_height)
    local problems = kling.media.problems(anamorphic, "video", "image")
    assert.equal(1, #problems)
    assert.truthy(problems[1]:find("coded at 320x720", 1, true), problems[1])
  end)

  it("gives a clear error for files that are not media, missing or truncated anywhere", function()
    local _, err = kling.media.probe(file("a.txt", "just some text, not a picture"))
    assert.equal("invalid_argument", err.kind)
    assert.truthy(err.message:find("not a PNG, JPEG, MP4 or MOV", 1, true))
    _, err = kling.media.probe(dir .. "/missing.png")
    assert.truthy(err.message:find("cannot open", 1, true))
    for name, bytes in pairs({ png = samples.png(300, 300):sub(1, 400), jpg = samples.jpeg(640, 480),
                               mp4 = samples.video(640, 480, 4), mov = samples.video(640, 480, 4, { version = 1 }) }) do
      for cut = 0, #bytes - 1 do
        local info, e = kling.media.probe(file("cut." .. name, bytes:sub(1, cut)))
        if info == nil then
          assert.is_string(e.message)
        else -- a header that is whole before the cut may still read
          assert.is_number(info.width)
        end
      end
    end
  end)

  it("never raises on corrupted bytes", function()
    local bytes = samples.video(640, 480, 4) .. samples.png(300, 300):sub(1, 64)
    local seed = 12345
    local function rand(n) seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n end
    for _ = 1, 400 do
      local t = {}
      for i = 1, #bytes do t[i] = bytes:sub(i, i) end
      for _ = 1, 1 + rand(8) do
        local at = 1 + rand(#t)
        t[at] = string.char(rand(256))
      end
      local ok, info = pcall(kling.media.probe, file("bad.mp4", table.concat(t)))
      assert.is_true(ok)
      if info then assert.is_number(info.width) end
    end
  end)
end)

describe("kling.media.problems: Kling's motion limits", function()
  local function image(w, h, bytes)
    return { kind = "image", format = "png", width = w, height = h, bytes = bytes or 1000 }
  end
  local function video(w, h, d, bytes)
    return { kind = "video", format = "mp4", width = w, height = h, duration = d, bytes = bytes or 1000 }
  end
  local function says(list, text)
    assert.equal(1, #list, table.concat(list, " | "))
    assert.truthy(list[1]:find(text, 1, true), list[1])
  end

  it("accepts what fits", function()
    assert.same({}, kling.media.problems(image(300, 750), "image"))
    assert.same({}, kling.media.problems(video(340, 3850, 3), "video", "image"))
    assert.same({}, kling.media.problems(video(1920, 1080, 30), "video", "video"))
  end)

  it("names what breaks a limit and the value measured", function()
    says(kling.media.problems(image(299, 600), "image"), "299x600 px")
    says(kling.media.problems(image(300, 760), "image"), "aspect 2.53:1")
    says(kling.media.problems(image(1000, 1000, 11 * 1024 * 1024), "image"), "11.0 MB")
    says(kling.media.problems(video(339, 500, 5), "video"), "at least 340 px")
    says(kling.media.problems(video(3851, 500, 5), "video"), "at most 3850 px")
    says(kling.media.problems(video(1280, 720, 2.5), "video"), "2.50 s long; at least 3 s")
    says(kling.media.problems(video(1280, 720, 12), "video", "image"),
      'at most 10 s with character_orientation = "image"')
    assert.same({}, kling.media.problems(video(1280, 720, 12), "video", "video"))
    says(kling.media.problems(video(1280, 720, 31), "video", "video"), "at most 30 s")
    says(kling.media.problems(video(1280, 720, 5), "image"), "must be a PNG or JPEG image, got mp4 video")
  end)
end)
