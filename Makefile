# kling: build the C module kling.core, run the specs, the demo and the simulator.
#   make             build for Lua 5.4 (LUA_VERSION=5.1|5.2|5.3|5.4|luajit for another)
#   make deps        install what kling needs at run time (Debian/Ubuntu: apt-get; elsewhere: says what)
#   make deps-test   that and the test tools (busted, nginx, openssl); no service is left running
#   make test        make deps-test, build, run the busted suite (Lua 5.4)
#   make demo        make deps, build, run the kling command on the simulator with local files
#   make test-all    the suite on Lua 5.1, 5.2, 5.3, 5.4 and LuaJIT
#   make nvim        kling.core for Neovim's LuaJIT in lua/kling/core.so (a plugin manager's build step)
#   make env         print the exports that use this checkout without installing
#   make install     the modules and both commands: PREFIX=/usr/local (or LUADIR, LIBDIR, BINDIR)
#   make simulator   the simulator in the foreground (SIMULATOR_ARGS="--port 8080")
#   make lint, valgrind, asan, rock-check, example-batch, example-nvim, example-openresty, example-love
#   make bench [MODE=paced|upload], bench-engine, crash-test, fuzz, fuzz-probe   (harnesses: they print; not part of CI)
# Overrides: LUA=interpreter, LUA_INCDIR=dir, LUA_CFLAGS, CURL_CFLAGS, CURL_LIBS,
#            SQLITE_CFLAGS, SQLITE_LIBS, CRYPTO_CFLAGS, CRYPTO_LIBS, CC, CFLAGS.

SHELL := /bin/bash
LUA_VERSION ?= 5.4
RUNTIMES    := 5.1 5.2 5.3 5.4 luajit

ifeq ($(LUA_VERSION),luajit)
LUA      ?= luajit
LUA_PC   ?= luajit
LUA_ABI  := 5.1
else
LUA      ?= lua$(LUA_VERSION)
LUA_PC   ?= lua$(LUA_VERSION)
LUA_ABI  := $(LUA_VERSION)
endif

PKG_CONFIG ?= pkg-config
ifdef LUA_INCDIR
LUA_CFLAGS ?= -I$(LUA_INCDIR)
else
LUA_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags $(LUA_PC) 2>/dev/null)
endif
CURL_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags libcurl 2>/dev/null)
CURL_LIBS   ?= $(shell $(PKG_CONFIG) --libs libcurl 2>/dev/null || echo -lcurl)
SQLITE_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags sqlite3 2>/dev/null)
SQLITE_LIBS   ?= $(shell $(PKG_CONFIG) --libs sqlite3 2>/dev/null || echo -lsqlite3)
# SHA-256 of uploaded files (src/digest.c): OpenSSL's libcrypto
CRYPTO_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags libcrypto 2>/dev/null)
CRYPTO_LIBS   ?= $(shell $(PKG_CONFIG) --libs libcrypto 2>/dev/null || echo -lcrypto)
# the journal's writer thread (src/journal_writer.c)
THREAD_LIBS ?= -pthread

CC      ?= cc
CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror=implicit-function-declaration
ALL_CFLAGS := -std=c99 -D_POSIX_C_SOURCE=200809L -fPIC -fvisibility=hidden $(WARN) $(CFLAGS) $(LUA_CFLAGS) $(CURL_CFLAGS) \
              $(SQLITE_CFLAGS) $(CRYPTO_CFLAGS)
# Lua modules take the interpreter's symbols at load time, so they never link liblua.
ifeq ($(shell uname -s),Darwin)
LIBFLAG ?= -bundle -undefined dynamic_lookup
else
LIBFLAG ?= -shared
endif

BUILD   := build/$(LUA_VERSION)
SOURCES := $(wildcard src/*.c)
OBJECTS := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(SOURCES))
MODULE  := $(BUILD)/kling/core.so

PREFIX  ?= /usr/local
LUADIR  ?= $(PREFIX)/share/lua/$(LUA_ABI)
LIBDIR  ?= $(PREFIX)/lib/lua/$(LUA_ABI)

# How the specs, the demo and the simulator find this checkout's modules.
RUN_ENV := LUA_PATH="$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;" \
           LUA_CPATH="$(CURDIR)/$(BUILD)/?.so;;" KLING_LUA="$(LUA)"
BUSTED  ?= $(shell command -v busted 2>/dev/null || echo /usr/bin/busted)
WITH_SIMULATOR = $(RUN_ENV) $(LUA) scripts/with-simulator.lua

.PHONY: all deps deps-test deps-all test check test-all demo simulator lint rock-check valgrind asan fuzz fuzz-probe fuzz-corpus \
        bench bench-engine crash-test example-batch \
        example-nvim example-openresty example-love nvim install uninstall env help clean run-example-love

all: $(MODULE)

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h) | $(BUILD)/obj
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(MODULE): $(OBJECTS) | $(BUILD)/kling
	$(CC) $(LIBFLAG) $(LDFLAGS) -o $@ $(OBJECTS) $(CURL_LIBS) $(SQLITE_LIBS) $(CRYPTO_LIBS) $(THREAD_LIBS)

$(BUILD)/obj $(BUILD)/kling:
	mkdir -p $@

# Neovim: kling.core for LuaJIT where Neovim looks for C modules on its
# runtimepath (lua/kling/core.so, git-ignored), so that a plugin manager's
# { "<repo>", build = "make nvim" } gives a working require "kling". It needs
# LuaJIT's headers (make deps LUA_VERSION=luajit installs them on Debian).
NVIM_MODULE := lua/kling/core.so
nvim: $(NVIM_MODULE)
$(NVIM_MODULE): $(SOURCES) $(wildcard src/*.h)
	@$(PKG_CONFIG) --exists luajit || [ -n "$(LUA_INCDIR)" ] || { echo "make nvim: LuaJIT's headers are missing" \
	  "(Debian: make deps LUA_VERSION=luajit; elsewhere LUA_INCDIR=...)" >&2; exit 1; }
	@$(MAKE) --no-print-directory LUA_VERSION=luajit
	cp build/luajit/kling/core.so $@

# What kling needs at run time (a user's install), and what its tests need too.
deps:
	@sh scripts/install-deps.sh runtime $(LUA_VERSION)

deps-test:
	@sh scripts/install-deps.sh test $(LUA_VERSION)

deps-all:
	@sh scripts/install-deps.sh test $(RUNTIMES)

test: deps-test
	@$(MAKE) --no-print-directory check

# The suite alone, on LUA_VERSION, with no set-up step: the spec files run as
# SPEC_JOBS busted processes at once (default: two per processor, plus one; they mostly
# wait on the simulator); SPEC_JOBS=1 runs them one by one. SPECS="spec/x_spec.lua"
# runs some.
SPEC_JOBS ?=
SPECS ?=
check: $(MODULE)
	@$(RUN_ENV) sh scripts/run-specs.sh $(LUA) $(BUSTED) "$(CURDIR)/$(BUILD)/?.so" "$(SPEC_JOBS)" $(SPECS)

# Every runtime, then the grand total of the busted runs.
test-all: deps-all
	@set -o pipefail; log=$$(mktemp); status=0; for v in $(RUNTIMES); do \
	  echo "=== Lua $$v"; $(MAKE) --no-print-directory check LUA_VERSION=$$v 2>&1 | tee -a $$log || status=1; done; \
	grep -Eo '^[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' $$log \
	  | awk '{s += $$1; f += $$4; e += $$7; p += $$10} END {printf "=== all runtimes: %d successes / %d failures / %d errors / %d pending\n", s, f, e, p}'; \
	rm -f $$log; exit $$status

# The kling command on the simulator, with local files made here (a real PNG
# and MP4 headers): checks, uploads with progress, the task, the download.
demo: deps
	@$(MAKE) --no-print-directory $(MODULE)
	@rm -rf build/demo && mkdir -p build/demo
	@$(RUN_ENV) $(LUA) -e 'require("kling.simulator.main").write_samples("build/demo")'
	@$(WITH_SIMULATOR) "$(LUA) bin/kling probe build/demo/person.png build/demo/dance.mp4 \
	  && $(LUA) bin/kling motion build/demo/person.png build/demo/dance.mp4 -o build/demo/motion.mp4 \
	     --journal build/demo/jobs.db"

# Benchmarks are programs, not tests: JOBS jobs on one client without and with a journal,
# simulator generation 3 s.
JOBS ?= 1000
ROUNDS ?= 3
CONFIGS ?= all
GC_STEPMUL ?=
# With two CPUs or more, the simulator runs on CPU 1 only, at the lowest
# priority: a step's time is then kling's own, not the simulator's preempting
# it. The client is left free, so that the journal's writer thread may use
# the other CPU. MODE=paced keeps the client (its Lua thread, libcurl's
# thread) off the simulator's CPU too: left free, the scheduler put the
# game's thread on CPU 1, and the simulator, woken by a request, held it
# off for 0.3-0.8 ms of its step (perf sched); a real server never shares
# the game's CPU.
BENCH_PIN := $(shell [ "$$(nproc 2>/dev/null || echo 1)" -ge 2 ] && command -v taskset >/dev/null 2>&1 && echo yes)
# MODE=paced: a game's loop instead (bench/paced.lua): step(0) once per
# FPS frame, the rest of the frame slept, 5 s generation; BUDGET=seconds
# passes step(0, budget); FRAME=busy spends the rest of each frame working
# instead of sleeping; GC=stop stops the collector for each round.
# MODE=upload: one MB-megabyte upload stepped every PERIOD seconds, then
# from a loop on pollfd() (bench/paced_upload.lua).
MODE ?=
PERIOD ?= 0.1
MB ?= 20
FPS ?= 60
FRAME ?=
GC ?=
BUDGET ?=
bench: deps-test
	@$(MAKE) --no-print-directory $(MODULE)
ifeq ($(MODE),paced)
	@$(if $(BENCH_PIN),KLING_SIM_PREFIX="nice -n 19 taskset -c 1") $(WITH_SIMULATOR) \
	  "$(if $(BENCH_PIN),taskset -c 0 )$(LUA) bench/paced.lua $(JOBS) $(ROUNDS) $(FPS) '$(BUDGET)' '$(FRAME)' '$(GC)' $(GC_STEPMUL)" 5
else ifeq ($(MODE),upload)
	@$(WITH_SIMULATOR) "$(LUA) bench/paced_upload.lua $(PERIOD) $(ROUNDS) $(MB)" 1
else
	@$(if $(BENCH_PIN),KLING_SIM_PREFIX="nice -n 19 taskset -c 1") $(WITH_SIMULATOR) \
	  "$(LUA) bench/many_jobs.lua $(JOBS) $(ROUNDS) $(CONFIGS) $(GC_STEPMUL)" 3
endif

# kling against raw libcurl on one request (client:task(id) in a row), same
# CPU, nginx answering: see bench/engine.lua. Prints; never fails the build.
#   make bench-engine [REQUESTS=20000] [ROUNDS=3]
REQUESTS ?= 20000
RAW_BENCH := build/bench/raw_libcurl
$(RAW_BENCH): bench/raw_libcurl.c
	@mkdir -p build/bench
	$(CC) -std=c99 -D_POSIX_C_SOURCE=200809L -O2 $(WARN) $(CURL_CFLAGS) -o $@ bench/raw_libcurl.c $(CURL_LIBS)
bench-engine: deps-all $(RAW_BENCH)
	@$(MAKE) --no-print-directory build/5.4/kling/core.so LUA_VERSION=5.4
	@$(MAKE) --no-print-directory build/luajit/kling/core.so LUA_VERSION=luajit
	@$(RUN_ENV) $(LUA) bench/engine.lua $(RAW_BENCH) $(REQUESTS) $(ROUNDS) \
	  "Lua 5.4=lua5.4:build/5.4/?.so" "LuaJIT=luajit:build/luajit/?.so"

# examples/batch.lua on the simulator, twice on one journal: the second run
# sends nothing (the simulator's counts show it).
example-batch: deps
	@$(MAKE) --no-print-directory $(MODULE)
	@rm -rf build/example-batch && mkdir -p build/example-batch
	@$(WITH_SIMULATOR) "$(LUA) examples/batch.lua examples/clips.txt build/example-batch/out build/example-batch/clips.db \
	  && $(LUA) examples/batch.lua examples/clips.txt build/example-batch/out build/example-batch/clips.db" 1

# The crash harness: RUNS batches of KEYS jobs killed with SIGKILL at random
# moments, each run again to the end; checks no key is billed twice and no
# billed task is unknown to the journal. A harness to run and report.
RUNS ?= 200
KEYS ?= 50
crash-test: deps
	@$(MAKE) --no-print-directory $(MODULE)
	$(RUN_ENV) $(LUA) scripts/crash-harness.lua $(RUNS) $(KEYS)

# The simulator in the foreground, for developing offline (Ctrl-C to stop).
simulator: deps
	$(RUN_ENV) $(LUA) bin/kling-simulator $(SIMULATOR_ARGS)

lint:
	@KLING_EXTRAS=1 sh scripts/install-deps.sh $(LUA_VERSION)
	luacheck lua spec examples scripts bench fuzz bin/kling-simulator

# The C engine under memcheck: the specs that drive it hardest (timing specs
# are left out: valgrind slows everything twenty-fold).
VALGRIND_SPECS := spec/core_spec.lua spec/motion_spec.lua spec/retry_spec.lua spec/security_spec.lua \
                  spec/unit/billing_spec.lua spec/journal_spec.lua spec/unit/media_spec.lua spec/unit/scheduler_spec.lua spec/unit/handover_spec.lua \
                  spec/uploads_spec.lua \
                  spec/callback_spec.lua spec/journal_file_spec.lua spec/hostile_server_spec.lua spec/records_spec.lua
valgrind: $(MODULE)
	@KLING_EXTRAS=1 sh scripts/install-deps.sh $(LUA_VERSION)
	$(RUN_ENV) valgrind -q --keep-debuginfo=yes --leak-check=full --errors-for-leak-kinds=definite,indirect \
	  --suppressions=scripts/valgrind.supp --error-exitcode=9 \
	  $(LUA) $(BUSTED) --cpath="$(CURDIR)/$(BUILD)/?.so" $(VALGRIND_SPECS)

# The whole suite with kling.core built by clang under AddressSanitizer and
# UndefinedBehaviorSanitizer (every finding is fatal). The interpreter is not
# instrumented, so the sanitizer runtime is preloaded into it.
ASAN_BUILD  := build/asan-$(LUA_VERSION)
ASAN_CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
ASAN_RT      = $(shell clang -print-file-name=libclang_rt.asan-x86_64.so)
asan:
	@KLING_EXTRAS=1 sh scripts/install-deps.sh $(LUA_VERSION)
	@mkdir -p $(ASAN_BUILD)/kling
	clang -std=c99 -D_POSIX_C_SOURCE=200809L -fPIC -fvisibility=hidden $(WARN) $(ASAN_CFLAGS) -shared-libasan \
	  $(LUA_CFLAGS) $(CURL_CFLAGS) $(SQLITE_CFLAGS) $(CRYPTO_CFLAGS) $(LIBFLAG) -o $(ASAN_BUILD)/kling/core.so $(SOURCES) \
	  $(CURL_LIBS) $(SQLITE_LIBS) $(CRYPTO_LIBS) $(THREAD_LIBS)
	LUA_PATH="$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;" LUA_CPATH="$(CURDIR)/$(ASAN_BUILD)/?.so;;" \
	  KLING_LUA="$(LUA)" LD_PRELOAD="$(ASAN_RT)" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(LUA) $(BUSTED) --cpath="$(CURDIR)/$(ASAN_BUILD)/?.so" spec

# libFuzzer on the C paths that read untrusted bytes (fuzz/transfer_fuzz.c),
# under ASan and UBSan, starting from the seeds in fuzz/corpus/ (new inputs
# go to build/fuzz/corpus). A harness to run and report, not part of CI:
#   make fuzz FUZZ_SECONDS=600
# make fuzz-corpus replays the committed seeds only (quick; CI runs it).
FUZZ_SECONDS ?= 60
FUZZ_BIN     := build/fuzz/transfer_fuzz
$(FUZZ_BIN): fuzz/transfer_fuzz.c $(SOURCES) $(wildcard src/*.h)
	@KLING_EXTRAS=1 sh scripts/install-deps.sh 5.4
	@mkdir -p build/fuzz/corpus
	clang -std=c99 -D_POSIX_C_SOURCE=200809L -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	  $(WARN) -Isrc $(shell $(PKG_CONFIG) --cflags lua5.4) $(CURL_CFLAGS) \
	  fuzz/transfer_fuzz.c src/background.c src/buffer.c src/json.c src/credentials.c src/profile.c src/records.c src/request.c src/journal.c src/journal_writer.c src/owners.c src/statements.c src/secret.c src/files.c \
	  $(shell $(PKG_CONFIG) --libs lua5.4) $(CURL_LIBS) $(SQLITE_LIBS) $(THREAD_LIBS) -o $@
fuzz: $(FUZZ_BIN)
	$(FUZZ_BIN) -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=10 build/fuzz/corpus fuzz/corpus

# libFuzzer on kling.core.probe (fuzz/probe_fuzz.c): PNG, JPEG, MP4/MOV headers.
PROBE_FUZZ_BIN := build/fuzz/probe_fuzz
$(PROBE_FUZZ_BIN): fuzz/probe_fuzz.c src/media.c src/media.h
	@KLING_EXTRAS=1 sh scripts/install-deps.sh 5.4
	@mkdir -p build/fuzz/probe-corpus
	clang -std=c99 -D_POSIX_C_SOURCE=200809L -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	  $(WARN) -Isrc $(shell $(PKG_CONFIG) --cflags lua5.4) fuzz/probe_fuzz.c src/media.c src/files.c src/secret.c \
	  $(shell $(PKG_CONFIG) --libs lua5.4) -o $@
fuzz-probe: $(PROBE_FUZZ_BIN)
	$(PROBE_FUZZ_BIN) -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 build/fuzz/probe-corpus fuzz/probe-corpus

fuzz-corpus: $(FUZZ_BIN) $(PROBE_FUZZ_BIN)
	$(FUZZ_BIN) -runs=0 fuzz/corpus
	$(PROBE_FUZZ_BIN) -runs=0 fuzz/probe-corpus

# The examples, unchanged, in their real hosts on the simulator (LuaJIT builds):
#   example-nvim  examples/nvim/kling_motion.lua in a headless Neovim (spec/nvim_spec.lua)
#   example-openresty  examples/openresty in nginx with its Lua module (spec/openresty_spec.lua)
#   example-love  examples/love/main.lua in LOVE under Xvfb; the harness reports
#                 frames and the slowest love.update
EXAMPLE_love := "xvfb-run -a love scripts/love-example"
example-nvim:
	@KLING_EXTRAS=1 sh scripts/install-deps.sh test luajit $(LUA_VERSION)
	@$(MAKE) --no-print-directory nvim
	@KLING_HOST_SPECS=required $(MAKE) --no-print-directory check SPECS=spec/nvim_spec.lua

# nginx with its Lua module (OpenResty's LuaJIT) running examples/openresty
example-openresty:
	@KLING_EXTRAS=1 sh scripts/install-deps.sh test luajit $(LUA_VERSION)
	@$(MAKE) --no-print-directory LUA_VERSION=luajit
	@KLING_HOST_SPECS=required $(MAKE) --no-print-directory check SPECS=spec/openresty_spec.lua

example-love:
	@KLING_EXTRAS=1 sh scripts/install-deps.sh luajit
	@$(MAKE) --no-print-directory LUA_VERSION=luajit run-$@

run-example-love: run-example-%: $(MODULE)
	KLING_EXAMPLE_DIR="$(CURDIR)/examples/$*" $(WITH_SIMULATOR) $(EXAMPLE_$*) 1

# Installs the rockspec into a scratch tree and loads it from there.
ROCK_TREE := build/rock-tree
rock-check:
	@KLING_EXTRAS=1 sh scripts/install-deps.sh $(LUA_VERSION)
	@for f in $$(find lua -name '*.lua') src/*.c; do grep -q "\"$$f\"" kling-scm-1.rockspec \
	  || { echo "kling-scm-1.rockspec does not list $$f"; exit 1; }; done
	@# the release rockspec is the scm one but for its version and source tag
	@diff <(grep -v -e '^version' -e 'tag =' -e '^  --' kling-scm-1.rockspec) \
	      <(grep -v -e '^version' -e 'tag =' -e '^  --' kling-0.1.0-1.rockspec) >/dev/null \
	  || { echo "kling-0.1.0-1.rockspec differs from kling-scm-1.rockspec"; exit 1; }
	rm -rf $(ROCK_TREE)
	luarocks --lua-version $(LUA_ABI) --tree $(ROCK_TREE) make --deps-mode=none kling-scm-1.rockspec
	cd /tmp && LUA_PATH="$(CURDIR)/$(ROCK_TREE)/share/lua/$(LUA_ABI)/?.lua;$(CURDIR)/$(ROCK_TREE)/share/lua/$(LUA_ABI)/?/init.lua;;" \
	  LUA_CPATH="$(CURDIR)/$(ROCK_TREE)/lib/lua/$(LUA_ABI)/?.so;;" \
	  $(LUA) -e 'local k = require "kling"; assert(package.searchpath("kling.core", package.cpath):find("rock%-tree")); print("rock ok: " .. k._VERSION)'
	@# the commands LuaRocks installed run with this Lua and find the tree
	eval "$$(luarocks --lua-version $(LUA_ABI) --tree $(ROCK_TREE) path)" && cd /tmp \
	  && $(CURDIR)/$(ROCK_TREE)/bin/kling --help | grep -q "Exit codes" \
	  && { $(CURDIR)/$(ROCK_TREE)/bin/kling probe /dev/null; test $$? -eq 2; }
	@echo "rock commands ok"
	@# make install PREFIX=...: the commands find their modules from anywhere
	rm -rf $(CURDIR)/build/install-tree
	$(MAKE) --no-print-directory install PREFIX=$(CURDIR)/build/install-tree >/dev/null
	cd / && env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 $(CURDIR)/build/install-tree/bin/kling --version \
	  | grep -q "^kling " && env -u LUA_PATH -u LUA_CPATH $(CURDIR)/build/install-tree/bin/kling-simulator --help \
	  | grep -q "usage: kling-simulator"
	@echo "make install ok"

BINDIR ?= $(PREFIX)/bin
LUA_BIN := $(shell command -v $(LUA) 2>/dev/null || echo /usr/bin/env $(LUA))
install: $(MODULE)
	install -d $(DESTDIR)$(LIBDIR)/kling $(DESTDIR)$(BINDIR)
	install -m 0755 $(MODULE) $(DESTDIR)$(LIBDIR)/kling/core.so
	@# lua/kling and its folders, as they are
	for d in $$(cd lua && find kling -type d); do install -d $(DESTDIR)$(LUADIR)/$$d; \
	  install -m 0644 lua/$$d/*.lua $(DESTDIR)$(LUADIR)/$$d/; done
	@# the commands run with the Lua they were installed for, and find the
	@# modules where they were installed, whatever that Lua's own paths are
	for c in kling kling-simulator; do \
	  sed -e '1s|.*|#!$(LUA_BIN)|' \
	      -e '1a package.path = "$(LUADIR)/?.lua;$(LUADIR)/?/init.lua;" .. package.path' \
	      -e '1a package.cpath = "$(LIBDIR)/?.so;" .. package.cpath' \
	      bin/$$c > $(DESTDIR)$(BINDIR)/$$c && chmod 0755 $(DESTDIR)$(BINDIR)/$$c; done

uninstall:
	rm -rf $(DESTDIR)$(LIBDIR)/kling $(DESTDIR)$(LUADIR)/kling $(DESTDIR)$(BINDIR)/kling $(DESTDIR)$(BINDIR)/kling-simulator

# Prints the exports that let your own scripts (and bin/kling) use this
# checkout without installing it:   eval "$(make -s env)"
env: $(MODULE)
	@echo 'export LUA_PATH="$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;"'
	@echo 'export LUA_CPATH="$(CURDIR)/$(BUILD)/?.so;;"'
	@echo 'export PATH="$(CURDIR)/bin:$$PATH"'

help:
	@sed -n '2,/^$$/p' Makefile | sed 's/^# \{0,1\}//'

clean:
	rm -rf build $(NVIM_MODULE)
