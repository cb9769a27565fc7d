#include "json.h"

#include <lauxlib.h>

/* Nesting deeper than this in a server answer is hostile, not data. */
#define KL_JSON_MAX_DEPTH 64

static void call_setting(lua_State *L, const char *name, int arg_is_bool, int value)
{
    lua_getfield(L, -1, name);
    if (lua_isnil(L, -1)) { /* an older cjson without this knob */
        lua_pop(L, 1);
        return;
    }
    if (arg_is_bool)
        lua_pushboolean(L, value);
    else
        lua_pushinteger(L, value);
    lua_call(L, 1, 0);
}

void kl_json_open(lua_State *L)
{
    lua_getglobal(L, "require");
    lua_pushstring(L, "cjson");
    if (lua_pcall(L, 1, 1, 0) != 0)
        luaL_error(L, "kling.core needs lua-cjson (require \"cjson\" failed: %s)",
                   lua_tostring(L, -1));
    lua_getfield(L, -1, "new");
    if (lua_isfunction(L, -1)) {
        lua_call(L, 0, 1);
        lua_remove(L, -2);
    } else {
        lua_pop(L, 1);
    }
    call_setting(L, "decode_max_depth", 0, KL_JSON_MAX_DEPTH);
    call_setting(L, "encode_max_depth", 0, KL_JSON_MAX_DEPTH);
    call_setting(L, "decode_invalid_numbers", 1, 0);
    call_setting(L, "encode_invalid_numbers", 1, 0);
    lua_getfield(L, -1, "encode");
    lua_getfield(L, -2, "decode");
    lua_getfield(L, -3, "null");
    lua_remove(L, -4);
}

int kl_json_encode(lua_State *L, int encode_idx, int value_idx)
{
    value_idx = value_idx < 0 ? lua_gettop(L) + value_idx + 1 : value_idx;
    lua_pushvalue(L, encode_idx);
    lua_pushvalue(L, value_idx);
    return lua_pcall(L, 1, 1, 0) == 0;
}

int kl_json_decode(lua_State *L, int decode_idx, const char *text, size_t len)
{
    lua_pushvalue(L, decode_idx);
    lua_pushlstring(L, text, len);
    return lua_pcall(L, 1, 1, 0) == 0;
}

static void strip_nulls(lua_State *L, int idx, int null_idx, int depth)
{
    if (depth > KL_JSON_MAX_DEPTH || !lua_checkstack(L, 3))
        return;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        if (lua_rawequal(L, -1, null_idx)) {
            lua_pushvalue(L, -2);
            lua_pushnil(L);
            lua_rawset(L, idx); /* clearing a field while traversing is allowed */
        } else if (lua_type(L, -1) == LUA_TTABLE) {
            strip_nulls(L, lua_gettop(L), null_idx, depth + 1);
        }
        lua_pop(L, 1);
    }
}

void kl_json_strip_nulls(lua_State *L, int idx, int null_idx)
{
    strip_nulls(L, idx, null_idx, 1);
}
