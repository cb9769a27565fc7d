-- Just enough HTTP/1.1 for the simulator: a keep-alive server and a one-shot
-- POST client, both non-blocking on a kling.simulator.loop.
local socket = require "socket"

local http = {}

local MAX_HEADER_LINE = 16 * 1024
local MAX_BODY = 32 * 1024 * 1024

local REASONS = {
  [200] = "OK", [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden",
  [404] = "Not Found", [408] = "Request Timeout", [429] = "Too Many Requests",
  [500] = "Internal Server Error", [502] = "Bad Gateway", [503] = "Service Unavailable",
  [504] = "Gateway Timeout",
}

-- A socket with a read buffer; every wait yields to the loop.
local Conn = {}
Conn.__index = Conn

function http.conn(loop, sock)
  sock:settimeout(0)
  return setmetatable({ loop = loop, sock = sock, buf = "" }, Conn)
end

function Conn:fill()
  while true do
    local data, err, partial = self.sock:receive(8192)
    local got = data or partial
    if got and #got > 0 then
      self.buf = self.buf .. got
      return true
    end
    if err ~= "timeout" then return nil end
    self.loop:wait_readable(self.sock)
  end
end

function Conn:read_line()
  while true do
    local i = self.buf:find("\n", 1, true)
    if i then
      local line = self.buf:sub(1, i - 1):gsub("\r$", "")
      self.buf = self.buf:sub(i + 1)
      return line
    end
    if #self.buf > MAX_HEADER_LINE or not self:fill() then return nil end
  end
end

function Conn:read(n)
  if #self.buf >= n then
    local data = self.buf:sub(1, n)
    self.buf = self.buf:sub(n + 1)
    return data
  end
  -- a large body (an upload) is gathered in pieces, not by growing one string
  local parts, have = { self.buf }, #self.buf
  self.buf = ""
  while have < n do
    local data, err, partial = self.sock:receive(n - have)
    local got = data or partial
    if got and #got > 0 then
      parts[#parts + 1] = got
      have = have + #got
    elseif err ~= "timeout" then
      return nil
    else
      self.loop:wait_readable(self.sock)
    end
  end
  return table.concat(parts)
end

function Conn:send(data)
  local i = 1
  while i <= #data do
    local last, err, partial = self.sock:send(data, i)
    if last then
      i = last + 1
    elseif err == "timeout" then
      i = partial + 1
      self.loop:wait_writable(self.sock)
    else
      return nil, err
    end
  end
  return true
end

function Conn:close()
  self.loop:forget(self.sock)
  self.sock:close()
end

local function read_headers(conn)
  local headers = {}
  while true do
    local line = conn:read_line()
    if not line then return nil end
    if line == "" then return headers end
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    if name then headers[name:lower()] = value end
  end
end

local function read_chunked(conn)
  local parts = {}
  while true do
    local size = tonumber((conn:read_line() or ""):match("^%x+"), 16)
    if not size then return nil end
    if size == 0 then
      read_headers(conn)
      return table.concat(parts)
    end
    parts[#parts + 1] = conn:read(size)
    conn:read_line()
  end
end

-- Reads one request; nil when the peer closed or sent garbage.
function http.read_request(conn)
  local line
  repeat line = conn:read_line() until line ~= ""
  if not line then return nil end
  local method, target, version = line:match("^(%u+) (%S+) HTTP/(%d%.%d)$")
  if not method then return nil end
  local headers = read_headers(conn)
  if not headers then return nil end
  local body = ""
  if (headers["transfer-encoding"] or ""):lower():find("chunked", 1, true) then
    body = read_chunked(conn)
  elseif headers["content-length"] then
    local n = tonumber(headers["content-length"])
    if not n or n > MAX_BODY then return nil end
    body = conn:read(n)
  end
  if not body then return nil end
  local path, query = target:match("^([^?]*)%??(.*)$")
  return {
    method = method, target = target, path = path, query = query,
    version = version, headers = headers, body = body,
  }
end

function http.encode_response(status, headers, body)
  local lines = { ("HTTP/1.1 %d %s"):format(status, REASONS[status] or "Status") }
  for name, value in pairs(headers or {}) do
    lines[#lines + 1] = name .. ": " .. tostring(value)
  end
  if not (headers and headers["Content-Length"]) then
    lines[#lines + 1] = "Content-Length: " .. #(body or "")
  end
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
end

local function wants_close(req)
  local c = (req.headers.connection or ""):lower()
  return c == "close" or (req.version == "1.0" and c ~= "keep-alive")
end

-- handler(req) returns { status=, headers=, body= } or { drop = true } (close
-- without answering), or { raw = bytes, close = true } for broken answers.
local function serve_connection(loop, sock, handler)
  local conn = http.conn(loop, sock)
  while true do
    local req = http.read_request(conn)
    if not req then break end
    local res = handler(req, conn)
    if res.drop then break end
    local payload = res.raw or http.encode_response(res.status, res.headers, res.body)
    if not conn:send(payload) or res.close or wants_close(req) then break end
  end
  conn:close()
end

-- Returns the server socket and its port, or nil and why it cannot listen.
function http.serve(loop, host, port, handler)
  local server, err = socket.bind(host, port)
  if not server then return nil, ("cannot listen on %s:%s: %s"):format(host, tostring(port), tostring(err)) end
  server:settimeout(0)
  loop:spawn(function()
    while true do
      loop:wait_readable(server)
      local client = server:accept()
      if client then loop:spawn(serve_connection, loop, client, handler) end
    end
  end)
  local _, bound_port = server:getsockname()
  return server, tonumber(bound_port)
end

-- For harnesses that start servers beside the simulator (specs, benches):
-- a TCP port on 127.0.0.1 that was free a moment ago.
function http.free_port()
  local probe = assert(socket.bind("127.0.0.1", 0))
  local _, port = probe:getsockname()
  probe:close()
  return tonumber(port)
end

-- Waits up to `seconds` until something accepts connections on
-- 127.0.0.1:port; true once it does, false when the time is up.
function http.wait_accepting(port, seconds)
  local deadline = socket.gettime() + seconds
  while true do
    local s = socket.tcp()
    s:settimeout(0.1)
    local ok = s:connect("127.0.0.1", port)
    s:close()
    if ok then return true end
    if socket.gettime() >= deadline then return false end
    socket.sleep(0.025)
  end
end

local LOOPBACK = { ["127.0.0.1"] = true, ["localhost"] = true, ["[::1]"] = true }

-- POSTs body to an http:// URL on this machine; returns the status or nil, err.
-- The simulator never sends traffic off the machine.
function http.post(loop, url, body, headers)
  local host, port, path = url:match("^http://([^/:]+):?(%d*)(/?.*)$")
  if not host then return nil, "only http:// callback URLs are delivered" end
  if not LOOPBACK[host] then return nil, "callbacks are delivered to loopback hosts only" end
  port = tonumber(port) or 80
  local sock = socket.tcp()
  sock:settimeout(0)
  local ok, err = sock:connect(host == "localhost" and "127.0.0.1" or host, port)
  while not ok and err == "timeout" do
    loop:wait_writable(sock)
    ok, err = sock:connect(host, port)
    if err == "already connected" then ok = true end
  end
  if not ok then sock:close(); return nil, err end
  local conn = http.conn(loop, sock)
  local lines = {
    "POST " .. (path ~= "" and path or "/") .. " HTTP/1.1",
    "Host: " .. host .. ":" .. port, "Content-Type: application/json",
    "Content-Length: " .. #body, "Connection: close",
  }
  for name, value in pairs(headers or {}) do lines[#lines + 1] = name .. ": " .. value end
  local sent, serr = conn:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. body)
  if not sent then conn:close(); return nil, serr end
  local status = tonumber(((conn:read_line() or ""):match("^HTTP/%d%.%d (%d+)")))
  conn:close()
  return status, status and nil or "no answer"
end

return http
