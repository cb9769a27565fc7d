-- luarocks --lua-version 5.4 make    (from a checkout: builds and installs kling and
-- its commands for Lua 5.4; --deps-mode=none when the dependencies come from Debian)
rockspec_format = "3.0"
package = "kling"
version = "scm-1"
source = {
  -- where the project will be published is not decided yet; luarocks make
  -- builds from the checkout and does not read this
  url = "git+file:///dev/null",
}
description = {
  summary = "Kling Motion (AceData Cloud) for Lua: a libcurl multi engine with non-blocking jobs",
  detailed = [[
Submit a reference image and a reference motion video to AceData Cloud's Kling
Motion API and get back the generated video. Blocking calls for scripts,
coroutine jobs driven by client:step() for game loops and editors, uploads of
local files, a durable SQLite journal so that no job is billed twice, and the
kling command. Ships a local simulator of the API (kling-simulator).
]],
  license = "MIT",
  labels = { "http", "curl", "video", "ai" },
}
dependencies = {
  "lua >= 5.1",
  "lua-cjson",
  "argparse",   -- the kling command
  "luasocket",  -- the simulator (kling-simulator, kling simulator)
}
-- kling.core links libcurl and SQLite, and uses lua-cjson at run time
external_dependencies = {
  -- a library probe, not a header one: LuaRocks does not look in Debian's
  -- multiarch include directory, where the compiler finds curl/curl.h anyway
  CURL = { library = "curl" },
  -- the job journal (kling.core binds SQLite itself: see docs/design.md)
  SQLITE3 = { header = "sqlite3.h", library = "sqlite3" },
  -- SHA-256 of uploaded files, so that a file shared by many jobs is uploaded once
  OPENSSL = { header = "openssl/evp.h", library = "crypto" },
}
-- luarocks test: the busted suite, through the Makefile (it builds kling.core
-- for the Lua LuaRocks runs and starts the simulator; see scripts/rock-test.lua).
-- busted comes with the test set-up (make test installs it), not as a
-- test_dependencies rock: LuaRocks would fetch one even where Debian's is there.
test = {
  type = "command",
  script = "scripts/rock-test.lua",
}
build = {
  type = "builtin",
  modules = {
    ["kling.core"] = {
      sources = { "src/background.c", "src/buffer.c", "src/clock.c", "src/core.c", "src/digest.c", "src/files.c", "src/journal.c",
                  "src/journal_writer.c", "src/json.c", "src/media.c", "src/multi.c", "src/owners.c", "src/pollset.c", "src/process.c", "src/profile.c", "src/records.c", "src/request.c", "src/sockets.c",
                  "src/credentials.c", "src/secret.c", "src/statements.c", "src/transfer.c" },
      defines = { "_POSIX_C_SOURCE=200809L" },
      libraries = { "curl", "sqlite3", "crypto", "pthread" },
      incdirs = { "$(CURL_INCDIR)", "$(SQLITE3_INCDIR)", "$(OPENSSL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)", "$(SQLITE3_LIBDIR)", "$(OPENSSL_LIBDIR)" },
    },
    ["kling.batch"] = "lua/kling/batch.lua",
    ["kling.billing"] = "lua/kling/billing.lua",
    ["kling.cli"] = "lua/kling/cli/init.lua",
    ["kling.cli.commands"] = "lua/kling/cli/commands.lua",
    ["kling.cli.progress"] = "lua/kling/cli/progress.lua",
    ["kling.client"] = "lua/kling/client.lua",
    ["kling.compat"] = "lua/kling/compat.lua",
    ["kling.config"] = "lua/kling/config.lua",
    ["kling.durations"] = "lua/kling/durations.lua",
    ["kling.endpoints"] = "lua/kling/endpoints/init.lua",
    ["kling.endpoints.motion"] = "lua/kling/endpoints/motion.lua",
    ["kling.endpoints.videos"] = "lua/kling/endpoints/videos.lua",
    ["kling.endpoints.limits"] = "lua/kling/endpoints/limits.lua",
    ["kling.engine"] = "lua/kling/engine.lua",
    ["kling.errors"] = "lua/kling/errors.lua",
    ["kling.files"] = "lua/kling/files.lua",
    ["kling.heap"] = "lua/kling/heap.lua",
    ["kling"] = "lua/kling/init.lua",
    ["kling.job"] = "lua/kling/job.lua",
    ["kling.handover"] = "lua/kling/handover.lua",
    ["kling.journal"] = "lua/kling/journal/init.lua",
    ["kling.journal.store"] = "lua/kling/journal/store.lua",
    ["kling.journal.tracker"] = "lua/kling/journal/tracker.lua",
    ["kling.media"] = "lua/kling/media.lua",
    ["kling.loop"] = "lua/kling/loop/init.lua",
    ["kling.loop.uv"] = "lua/kling/loop/uv.lua",
    ["kling.loop.cqueues"] = "lua/kling/loop/cqueues.lua",
    ["kling.loop.ngx"] = "lua/kling/loop/ngx.lua",
    ["kling.loop.handle"] = "lua/kling/loop/handle.lua",
    ["kling.poller"] = "lua/kling/poller.lua",
    ["kling.recent"] = "lua/kling/recent.lua",
    ["kling.retry"] = "lua/kling/retry.lua",
    ["kling.scheduler"] = "lua/kling/scheduler/init.lua",
    ["kling.scheduler.closing"] = "lua/kling/scheduler/closing.lua",
    ["kling.scheduler.queue"] = "lua/kling/scheduler/queue.lua",
    ["kling.scheduler.transfers"] = "lua/kling/scheduler/transfers.lua",
    ["kling.submission"] = "lua/kling/submission.lua",
    ["kling.task"] = "lua/kling/task.lua",
    ["kling.transport"] = "lua/kling/transport.lua",
    ["kling.uploads"] = "lua/kling/uploads.lua",
    ["kling.validate"] = "lua/kling/validate.lua",
    ["kling.webhooks"] = "lua/kling/webhooks.lua",
    ["kling.simulator.api"] = "lua/kling/simulator/api.lua",
    ["kling.simulator.http"] = "lua/kling/simulator/http.lua",
    ["kling.simulator.loop"] = "lua/kling/simulator/loop.lua",
    ["kling.simulator.videos"] = "lua/kling/simulator/videos.lua",
    ["kling.simulator.main"] = "lua/kling/simulator/main.lua",
    ["kling.simulator.media"] = "lua/kling/simulator/media.lua",
    ["kling.simulator.sample_video"] = "lua/kling/simulator/sample_video.lua",
  },
  install = {
    bin = { ["kling"] = "bin/kling", ["kling-simulator"] = "bin/kling-simulator" },
  },
}
