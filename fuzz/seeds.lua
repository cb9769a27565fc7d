-- Writes the seed corpus of fuzz/transfer_fuzz.c into fuzz/corpus/:
--   lua fuzz/seeds.lua
-- Each seed is a flag byte (see fuzz/transfer_fuzz.c) and records of [kind][length][bytes] (kind % 4:
-- 0 header, 1 body, 2 debug text (type chosen by kind >> 2), 3 result code).
local SECRET = "fuzz-3f1c9b7a5e2d-secret-token"

local function records(kind, text)
  local out = {}
  for i = 1, #text, 255 do
    local part = text:sub(i, i + 254)
    out[#out + 1] = string.char(kind, #part) .. part
  end
  return table.concat(out)
end

local HEAD = { "HTTP/1.1 200 OK\r\n", "Content-Type: application/json\r\n", "Retry-After: 3\r\n", "\r\n" }
local function head(lines)
  local out = {}
  for _, line in ipairs(lines or HEAD) do out[#out + 1] = records(0, line) end
  return table.concat(out)
end

local TASK = '{"id":"2006","created_at":1740969535.333,"finished_at":1740969852.463,"type":"motion",'
  .. '"response":{"success":true,"task_id":"2006","video_id":"8425","video_url":"https://cdn.example/v.mp4",'
  .. '"duration":"5.1","state":"succeed"}}'

local seeds = {
  task = "\1" .. head() .. records(1, TASK),
  error_body = "\1" .. head({ "HTTP/1.1 503 Service Unavailable\r\n", "content-type: application/json\r\n", "\r\n" })
    .. records(1, '{"success":false,"error":{"code":"service_unavailable","message":"Bearer ' .. SECRET
      .. '"},"trace_id":"x","task_id":"abc","started_at":1}'),
  continue_then_ok = "\1" .. head({ "HTTP/1.1 100 Continue\r\n", "\r\n" }) .. head() .. records(1, "{}"),
  redirect = "\3" .. head({ "HTTP/1.1 302 Found\r\n", "Location: http://127.0.0.1/x\r\n", "\r\n" })
    .. records(3, string.char(1)),
  too_large = "\5" .. head() .. records(1, string.rep("[1,", 40) .. "1" .. string.rep("]", 40)),
  deep_json = "\1" .. head() .. records(1, string.rep("[", 300) .. string.rep("]", 300)),
  -- flag 8: decoded apart (src/records.c), and its records read
  batch = "\9" .. head() .. records(1, '{"count":3,"items":[' .. TASK .. ',{"id":"a","response":null},7,{"id":"b",'
    .. '"request":{"nested":[1,[2,{"x":null}]]}},{"id":""}]}'),
  batch_deep = "\9" .. head() .. records(1, '{"items":[{"id":"a","x":' .. string.rep("[", 70) .. string.rep("]", 70)
    .. '}]}'),
  bad_json = "\1" .. head() .. records(1, '{"success": true, "task'),
  headers_odd = "\0" .. head({ "HTTP/1.1 200 OK\r\n", ": empty name\r\n", "no colon\r\n", "X:\r\n",
    "X-Long: " .. string.rep("v", 200) .. "\r\n", "\r\n" }),
  verbose_h1 = "\0" .. records(2 + 4 * 2, "POST /kling/motion HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer "
    .. SECRET .. "\r\nProxy-Authorization: Basic abc\r\n\r\n")
    .. records(2 + 4 * 1, "HTTP/1.1 401 Unauthorized\r\nx-echo: " .. SECRET .. "\r\n\r\n"),
  verbose_h2 = "\0" .. records(2, "h2h3 [authorization: Bearer " .. SECRET .. "]\n")
    .. records(2, "[HTTP/2] [1] [authorization: Bearer " .. SECRET .. "]\n")
    .. records(2, "h2h3 [:path: /kling/tasks]"),
  verbose_split = "\0" .. records(2, "h2h3 [authorization: Bearer " .. SECRET:sub(1, 10))
    .. records(2, SECRET:sub(11) .. "]\n"),
}

local n = 0
for name, bytes in pairs(seeds) do
  local f = assert(io.open("fuzz/corpus/" .. name, "wb"))
  f:write(bytes)
  f:close()
  n = n + 1
end
print(("wrote %d seeds to fuzz/corpus/"):format(n))
