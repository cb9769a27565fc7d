#!/bin/sh
# Installs what kling needs to build, run the demo and run the specs, for the
# Lua runtimes named on the command line (5.1 5.2 5.3 5.4 luajit).
# On Debian or Ubuntu it uses apt-get (as root, or through sudo); elsewhere it
# checks and prints exactly what is missing. Installs nothing that is present.
set -eu

runtimes=${*:-5.4}
packages="gcc make pkg-config libcurl4-openssl-dev libsqlite3-dev ca-certificates openssl nginx luarocks lua-cjson lua-socket lua-argparse lua-busted"
# CI's extra checks: luacheck, the rockspec, memcheck, the sanitizers, the example hosts
[ -n "${KLING_EXTRAS:-}" ] && packages="$packages lua-check luarocks valgrind clang libclang-rt-dev neovim love xvfb xauth"
for v in $runtimes; do
  case $v in
    5.1) packages="$packages lua5.1 liblua5.1-0-dev" ;;
    5.2|5.3|5.4) packages="$packages lua$v liblua$v-dev" ;;
    luajit) packages="$packages luajit libluajit-5.1-dev" ;;
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
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
  exit 0
fi

# Not Debian: check what can be checked, and say exactly what is missing.
problems=""
command -v cc >/dev/null 2>&1 || problems="$problems\n  a C compiler (cc)"
command -v pkg-config >/dev/null 2>&1 || problems="$problems\n  pkg-config"
pkg-config --exists libcurl 2>/dev/null || problems="$problems\n  libcurl with its headers (libcurl-devel / curl via your package manager)"
pkg-config --exists sqlite3 2>/dev/null || problems="$problems\n  SQLite 3 with its headers (libsqlite3-dev / sqlite-devel / sqlite via your package manager)"
for v in $runtimes; do
  if [ "$v" = luajit ]; then lua=luajit; pc=luajit; else lua=lua$v; pc=lua$v; fi
  command -v $lua >/dev/null 2>&1 || { problems="$problems\n  $lua (the interpreter) and its headers"; continue; }
  pkg-config --exists $pc 2>/dev/null || [ -n "${LUA_INCDIR:-}" ] || problems="$problems\n  headers for $lua (or pass LUA_INCDIR=...)"
  for m in cjson socket busted.runner; do
    $lua -e "require '$m'" >/dev/null 2>&1 || problems="$problems\n  the Lua module '$m' for $lua (luarocks --lua-version=${v#lua} install $(echo $m | sed 's/cjson/lua-cjson/; s/socket/luasocket/; s/busted.runner/busted/'))"
  done
done
if [ -n "$problems" ]; then
  printf "kling cannot build or test here yet; install:%b\n" "$problems" >&2
  exit 1
fi
