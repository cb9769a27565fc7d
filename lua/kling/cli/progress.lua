-- What the kling command shows while it waits, on standard error: on a
-- terminal one live line (redrawn in place); elsewhere (a log, a pipe) one
-- plain line per change, so that output stays readable when captured.
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local Progress = {}
Progress.__index = Progress

local BAR_WIDTH = 24

-- stream: a file (io.stderr); live: redraw in place (a terminal); quiet: show nothing.
function Progress.new(stream, live, quiet)
  return setmetatable({ stream = stream, live = live, quiet = quiet, shown = nil, drawn = false }, Progress)
end

local function human(bytes)
  if bytes >= 1024 * 1024 then return ("%.1f MB"):format(bytes / 1048576) end
  if bytes >= 1024 then return ("%.1f KB"):format(bytes / 1024) end
  return ("%d B"):format(bytes)
end
Progress.human = human

-- A line that replaces the current one. `key` is what counts as a change
-- when not live (defaults to the text itself).
function Progress:show(text, key)
  if self.quiet then return end
  if self.live then
    self.stream:write("\r\27[K", text)
    self.drawn = true
  elseif (key or text) ~= self.shown then
    self.stream:write(text, "\n")
  end
  self.shown = key or text
  self.stream:flush()
end

-- A byte progress bar: "uploading person.png [#######.........] 45% 1.2 MB of 2.6 MB".
function Progress:bytes(label, done, total)
  done, total = done or 0, total or 0
  if total > 0 then
    local share = math.min(done / total, 1)
    local fill = math.floor(share * BAR_WIDTH + 0.5)
    local text = ("%s [%s%s] %3d%% %s of %s"):format(label, string.rep("#", fill), string.rep(".", BAR_WIDTH - fill),
      math.floor(share * 100), human(done), human(total))
    -- not live: a line at the start, every quarter, and the end
    self:show(text, label .. math.floor(share * 4))
  else
    self:show(("%s %s"):format(label, human(done)), label)
  end
end

-- A line that stays (the live line, if any, is finished first).
function Progress:say(text)
  if self.quiet then return end
  self:done()
  self.stream:write(text, "\n")
  self.stream:flush()
end

-- Ends the live line so that what follows starts on its own line.
function Progress:done()
  if self.live and self.drawn then
    self.stream:write("\n")
    self.drawn = false
  end
  self.shown = nil
end

return Progress
