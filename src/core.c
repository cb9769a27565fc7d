/* kling.core: the C half of kling. It owns libcurl and the JSON codec; the
 * Lua half (kling.client and friends) owns policy: retries, polling, jobs. */
#include <curl/curl.h>
#include <lua.h>
#include <lauxlib.h>

#include "clock.h"
#include "compat.h"
#include "json.h"
#include "multi.h"

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
    lua_setfield(L, -4, "null");
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, core_encode, 1);
    lua_setfield(L, -4, "encode");
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, core_decode, 1);
    lua_setfield(L, -4, "decode");
    kl_multi_open(L);
    lua_setfield(L, -2, "multi");
    lua_pushcfunction(L, core_now);
    lua_setfield(L, -2, "now");
    lua_pushstring(L, curl_version());
    lua_setfield(L, -2, "curl_version");
    lua_pushstring(L, KLING_CORE_VERSION);
    lua_setfield(L, -2, "version");
    return 1;
}
