#!/bin/sh
# Installs what kling needs, for the Lua runtimes named after the set:
#   install-deps.sh runtime 5.4      build and run kling (make deps)
#   install-deps.sh test 5.4 luajit  also run the specs, the demo and the
#                                    simulator's TLS proxy (make test)
# With KLING_EXTRAS=1, also CI's extra checks (luacheck, memcheck, the
# sanitizers, the example hosts). On Debian or Ubuntu it uses apt-get (as
# root, or through sudo), and installs nothing that is present; elsewhere it
# checks and prints exactly what is missing. No service it installs is left
# running or enabled: nginx is a test tool, started by the specs themselves.
set -eu

set_name=${1:-runtime}
case $set_name in
  runtime|test) shift ;;
  *) set_name=runtime ;;
esac
runtimes=${*:-5.4}
# run time: a C compiler and the libraries kling.core links (libcurl, SQLite,
# OpenSSL's libcrypto), LuaRocks, and the Lua modules kling requires
packages="gcc make pkg-config libcurl4-openssl-dev libsqlite3-dev libssl-dev ca-certificates luarocks lua-cjson lua-socket lua-argparse"
# the tests: busted, nginx and openssl (a private CA, TLS and HTTP/2 in front
# of the simulator), and the event loop libraries kling.loop is tested on
tests="lua-busted nginx openssl lua-luv lua-cqueues"
[ "$set_name" = test ] && packages="$packages $tests"
# CI's extras: the hosts (Neovim, LOVE, nginx's Lua module, which needs
# OpenResty's LuaJIT: the luajit runtime below is luajit2 for it) and the checkers
[ -n "${KLING_EXTRAS:-}" ] && packages="$packages $tests lua-check valgrind clang libclang-rt-dev neovim love xvfb xauth \
  libnginx-mod-http-lua"
for v in $runtimes; do
  case $v in
    5.1) packages="$packages lua5.1 liblua5.1-0-dev" ;;
    5.2|5.3|5.4) packages="$packages lua$v liblua$v-dev" ;;
    # OpenResty's LuaJIT 2.1 (Debian's luajit2): the one nginx's Lua module
    # takes; Neovim and LOVE take it as well as Debian's luajit, which it replaces
    luajit) packages="$packages luajit2 libluajit2-5.1-dev" ;;
    *) echo "install-deps: unknown Lua runtime '$v' (use 5.1 5.2 5.3 5.4 luajit)" >&2; exit 2 ;;
  esac
done

if command -v dpkg-query >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  missing=""
  for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
  [ -z "$missing" ] && exit 0
  if [ "$(id -u)" = 0 ]; then
    sudo=""
  elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
  else
    echo "kling needs these Debian packages; run as root:" >&2
    echo "  apt-get update && apt-get install -y$missing" >&2
    exit 1
  fi
  echo "Installing:$missing"
  # No service starts from this install (Debian's policy-rc.d convention,
  # which invoke-rc.d and deb-systemd-invoke obey): nginx is only a test
  # tool here, and a user who installs kling gets no web server on port 80.
  policy=/usr/sbin/policy-rc.d
  own_policy=""
  if [ ! -e $policy ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee $policy >/dev/null && $sudo chmod 0755 $policy && own_policy=yes
  fi
  status=0
  $sudo apt-get update -qq || status=$?
  if [ $status = 0 ]; then
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null || status=$?
  fi
  [ -n "$own_policy" ] && $sudo rm -f $policy
  case " $missing " in
    *" nginx"*) if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
                  $sudo systemctl disable --now nginx >/dev/null 2>&1 || true
                fi ;;
  esac
  exit $status
fi

# Not Debian: check what can be checked, and say exactly what is missing.
problems=""
command -v cc >/dev/null 2>&1 || problems="$problems\n  a C compiler (cc)"
command -v pkg-config >/dev/null 2>&1 || problems="$problems\n  pkg-config"
pkg-config --exists libcurl 2>/dev/null || problems="$problems\n  libcurl with its headers (libcurl-devel / curl via your package manager)"
pkg-config --exists sqlite3 2>/dev/null || problems="$problems\n  SQLite 3 with its headers (libsqlite3-dev / sqlite-devel / sqlite via your package manager)"
pkg-config --exists libcrypto 2>/dev/null || problems="$problems\n  OpenSSL's libcrypto with its headers (libssl-dev / openssl-devel / openssl via your package manager)"
modules="cjson socket argparse"
[ "$set_name" = test ] && modules="$modules busted.runner"
for v in $runtimes; do
  if [ "$v" = luajit ]; then lua=luajit; pc=luajit; else lua=lua$v; pc=lua$v; fi
  command -v $lua >/dev/null 2>&1 || { problems="$problems\n  $lua (the interpreter) and its headers"; continue; }
  pkg-config --exists $pc 2>/dev/null || [ -n "${LUA_INCDIR:-}" ] || problems="$problems\n  headers for $lua (or pass LUA_INCDIR=...)"
  for m in $modules; do
    $lua -e "require '$m'" >/dev/null 2>&1 || problems="$problems\n  the Lua module '$m' for $lua (luarocks --lua-version=${v#lua} install $(echo $m | sed 's/cjson/lua-cjson/; s/socket/luasocket/; s/busted.runner/busted/'))"
  done
done
if [ "$set_name" = test ]; then
  command -v nginx >/dev/null 2>&1 || problems="$problems\n  nginx (the specs put it in front of the simulator for TLS and HTTP/2)"
  command -v openssl >/dev/null 2>&1 || problems="$problems\n  openssl (the command: the specs make a private CA)"
fi
if [ -n "$problems" ]; then
  printf "kling cannot build or test here yet; install:%b\n" "$problems" >&2
  exit 1
fi
