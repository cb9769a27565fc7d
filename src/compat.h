/* Bridges the Lua 5.1 / LuaJIT C API to the 5.2+ names this module uses.
 * Every shim has a kling_ prefix so that nothing collides with what LuaJIT's
 * own lauxlib may already export, and no 5.4-only symbol reaches a 5.1 build. */
#ifndef KLING_COMPAT_H
#define KLING_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM == 501
static inline void kling_setfuncs(lua_State *L, const luaL_Reg *l, int nup)
{
    luaL_checkstack(L, nup + 1, "too many upvalues");
    for (; l->name != NULL; l++) {
        int i;
        for (i = 0; i < nup; i++)
            lua_pushvalue(L, -nup);
        lua_pushcclosure(L, l->func, nup);
        lua_setfield(L, -(nup + 2), l->name);
    }
    lua_pop(L, nup);
}

#define kling_rawlen(L, i) lua_objlen((L), (i))
#else
#define kling_setfuncs(L, l, n) luaL_setfuncs((L), (l), (n))
#define kling_rawlen(L, i) lua_rawlen((L), (i))
#endif

#endif
