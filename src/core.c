/* kling.core: the C half of kling: libcurl (multi.c, transfer.c), the JSON
 * codec, the credentials and their redaction, the journal's SQLite binding,
 * local files, the media probe. The Lua half (lua/kling/) owns policy:
 * retries, polling, jobs, the journal's rules. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include <lua.h>
#include <lauxlib.h>

#include "clock.h"
#include "compat.h"
#include "digest.h"
#include "files.h"
#include "journal.h"
#include "json.h"
#include "media.h"
#include "multi.h"
#include "records.h"
#include "process.h"
#include "secret.h"

#define KLING_CORE_VERSION "0.1.0"

/* Built with -fvisibility=hidden: only the entry point is exported, so our
 * helpers cannot clash with another module's symbols. */
#if defined(__GNUC__)
#define KLING_EXPORT __attribute__((visibility("default")))
#else
#define KLING_EXPORT
#endif

KLING_EXPORT int luaopen_kling_core(lua_State *L);

static int core_now(lua_State *L)
{
    lua_pushnumber(L, kl_now());
    return 1;
}

/* Wall-clock seconds since the epoch, with fractions: for timestamps that
 * outlive the process (the journal's created_at, updated_at). */
static int core_time(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* Jitter must differ between processes started together, and must not
 * reseed or consume the caller's math.random: a private xorshift64*, one
 * state per module instance, seeded from the clocks, the pid and ASLR. */
static int core_random(lua_State *L)
{
    uint64_t *s = lua_touserdata(L, lua_upvalueindex(1));
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    lua_pushnumber(L, (lua_Number)((x * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0);
    return 1;
}

static void push_random(lua_State *L)
{
    uint64_t *s = lua_newuserdata(L, sizeof *s);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    *s = ((uint64_t)ts.tv_sec * 1000000007ULL) ^ (uint64_t)ts.tv_nsec
       ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)s ^ (uint64_t)(kl_now() * 1e9);
    if (*s == 0)
        *s = 0x9E3779B97F4A7C15ULL;
    lua_pushcclosure(L, core_random, 1);
}

/* mkdir(path [, mode]) -> true | nil, message; an existing directory is
 * fine. For a batch's download_dir and the command's state directory (Lua
 * has no portable way to make one); mode defaults to 0777 (less the umask). */
static int core_mkdir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    lua_Integer mode = luaL_optinteger(L, 2, 0777);
    struct stat st;
    luaL_argcheck(L, mode >= 0 && mode <= 0777, 2, "a mode from 0 to 0777");
    if (mkdir(path, (mode_t)mode) != 0 && !(errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode))) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot create directory %s: %s", path, strerror(errno == EEXIST ? ENOTDIR : errno));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int core_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    if (!kl_json_encode(L, lua_upvalueindex(1), 1)) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    return 1;
}

static int core_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    if (!kl_json_decode(L, lua_upvalueindex(1), s, len)) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    return 1;
}

/* strip_nulls(t) -> t, without its JSON nulls (see kl_json_strip_nulls):
 * one C call where a Lua walk made two per field. */
static int core_strip_nulls(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1)); /* null, at 2 */
    kl_json_strip_nulls(L, 1, 2);
    lua_settop(L, 1);
    return 1;
}

KLING_EXPORT int luaopen_kling_core(lua_State *L)
{
    /* once per process; never cleaned up, since other modules may share libcurl */
    static int curl_ready = 0;
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return luaL_error(L, "kling.core: curl_global_init failed");
        curl_ready = 1;
    }
    lua_newtable(L);
    kl_json_open(L); /* module, encode, decode, null */
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, core_strip_nulls, 1);
    lua_setfield(L, -5, "strip_nulls");
    lua_setfield(L, -4, "null");
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, core_encode, 1);
    lua_setfield(L, -4, "encode");
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, core_decode, 1);
    lua_setfield(L, -4, "decode");
    kl_multi_open(L);
    lua_setfield(L, -2, "multi");
    kl_records_open(L);
    lua_setfield(L, -2, "records");
    kl_journal_open(L);
    lua_setfield(L, -2, "journal");
    kl_secret_open(L);
    kl_process_open(L);
    kl_files_open(L);
    kl_digest_open(L);
    lua_setfield(L, -2, "digest_file");
    kl_media_open(L);
    lua_setfield(L, -2, "probe");
    lua_pushcfunction(L, core_now);
    lua_setfield(L, -2, "now");
    lua_pushcfunction(L, core_time);
    lua_setfield(L, -2, "time");
    lua_pushcfunction(L, core_mkdir);
    lua_setfield(L, -2, "mkdir");
    push_random(L);
    lua_setfield(L, -2, "random");
    lua_pushstring(L, curl_version());
    lua_setfield(L, -2, "curl_version");
    lua_pushstring(L, KLING_CORE_VERSION);
    lua_setfield(L, -2, "version");
    return 1;
}
