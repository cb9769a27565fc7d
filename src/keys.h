/* The field names kling.core reads from every request table and writes into
 * every result, made Lua strings once. lua_getfield and lua_setfield take a
 * C string, which LuaJIT hashes and looks up in its string table on each
 * call (Lua 5.4 caches it by address); a key taken from this table costs an
 * array read. The table is an upvalue of kling.multi's methods. Request
 * tables are read raw: the Lua layer's are plain tables. */
#ifndef KLING_KEYS_H
#define KLING_KEYS_H

#include <lua.h>

enum {
    KL_KEY_PROFILE = 1,
    KL_KEY_URL,
    KL_KEY_BODY,
    KL_KEY_JSON,
    KL_KEY_TIMEOUT,
    KL_KEY_FRESH_CONNECT,
    KL_KEY_VERBOSE,
    KL_KEY_HANDOVER,
    KL_KEY_HOLD,
    KL_KEY_ID,
    KL_KEY_STATUS,
    KL_KEY_SENT,
    KL_KEY_BYTES,
    KL_KEY_APART,
    KL_KEY_APART_KEY,
    KL_KEY_COUNT = KL_KEY_APART_KEY
};

/* Pushes the table of keys: [KL_KEY_URL] = "url", and so on. */
static inline void kl_keys_push(lua_State *L)
{
    static const char *const names[KL_KEY_COUNT + 1] = {
        NULL, "profile", "url", "body", "json", "timeout", "fresh_connect", "verbose", "handover", "hold",
        "id", "status", "sent", "bytes", "apart", "apart_key",
    };
    int i;
    lua_createtable(L, KL_KEY_COUNT, 0);
    for (i = 1; i <= KL_KEY_COUNT; i++) {
        lua_pushstring(L, names[i]);
        lua_rawseti(L, -2, i);
    }
}

/* Pushes t[key] of the table t at (absolute or pseudo-) index idx. */
static inline void kl_key_get(lua_State *L, int keys_idx, int idx, int key)
{
    lua_rawgeti(L, keys_idx, key);
    lua_rawget(L, idx);
}

/* Pushes the key itself: then the value, then lua_rawset(L, -3). */
static inline void kl_key_push(lua_State *L, int keys_idx, int key)
{
    lua_rawgeti(L, keys_idx, key);
}

/* t[key] = v for the table t just below the value v on top; pops v. (For
 * a value pushed before its key was known.) */
static inline void kl_key_set(lua_State *L, int keys_idx, int key)
{
    lua_rawgeti(L, keys_idx, key);
    lua_insert(L, -2);
    lua_rawset(L, -3);
}

#endif
