-- A real HTTPS front for the simulator: nginx on 127.0.0.1 with a private
-- certificate authority made by openssl, offering HTTP/2 (ALPN h2) and
-- proxying every path to the simulator over plain HTTP/1.1.
--   /redirect-to-http/NAME   answers 302 to http://<simulator>/NAME (a downgrade)
--   /redirect-to-https/NAME  answers 302 to https://<this proxy>/NAME
local http = require "kling.simulator.http"

local TlsProxy = {}
TlsProxy.__index = TlsProxy

-- Children must not inherit a sanitizer runtime preloaded for the suite (make asan).
local CLEAN_ENV = "env -u LD_PRELOAD -u ASAN_OPTIONS -u UBSAN_OPTIONS "

local function sh(cmd)
  local ok = os.execute(CLEAN_ENV .. cmd .. " >/dev/null 2>&1")
  assert(ok == true or ok == 0, "failed: " .. cmd)
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end


-- A CA, and a server certificate for 127.0.0.1 signed by it.
local function make_ca(dir)
  sh(("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=kling-test-ca "
    .. "-keyout %s/ca.key -out %s/ca.pem"):format(dir, dir))
  sh(("openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout %s/server.key -out %s/server.csr")
    :format(dir, dir))
  write(dir .. "/san.ext", "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
  sh(("openssl x509 -req -in %s/server.csr -CA %s/ca.pem -CAkey %s/ca.key -CAcreateserial -days 2 "
    .. "-extfile %s/san.ext -out %s/server.pem"):format(dir, dir, dir, dir, dir))
end

local CONF = [[
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  server {
    listen 127.0.0.1:{port} ssl http2;
    ssl_certificate {dir}/server.pem;
    ssl_certificate_key {dir}/server.key;
    location /redirect-to-http/ {
      rewrite ^/redirect-to-http/(.*)$ {upstream}/$1 redirect;
    }
    location /redirect-to-https/ {
      rewrite ^/redirect-to-https/(.*)$ https://127.0.0.1:{port}/$1 redirect;
    }
    location / {
      proxy_pass {upstream};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 60s;
    }
  }
}
]]

-- upstream: the simulator's base URL (http://127.0.0.1:PORT).
function TlsProxy.start(upstream)
  local dir = os.tmpname()
  os.remove(dir)
  sh("mkdir -p " .. dir)
  make_ca(dir)
  local port = http.free_port()
  local conf = CONF:gsub("{(%w+)}", { dir = dir, port = tostring(port), upstream = upstream })
  write(dir .. "/nginx.conf", conf)
  local pipe = assert(io.popen(("exec %snginx -p %s -c %s/nginx.conf -e %s/error.log 2>&1 & echo $!")
    :format(CLEAN_ENV, dir, dir, dir)))
  local self = setmetatable({ dir = dir, port = port, pid = pipe:read("*l"), pipe = pipe,
                              url = "https://127.0.0.1:" .. port, cainfo = dir .. "/ca.pem" }, TlsProxy)
  if http.wait_accepting(port, 5) then return self end
  self:stop()
  error("nginx did not start; see " .. dir .. "/error.log")
end

function TlsProxy:stop()
  os.execute("kill " .. self.pid .. " 2>/dev/null")
  self.pipe:close()
  os.execute("rm -rf " .. self.dir)
end

return TlsProxy
