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
/* f(L) with ud as its only argument, protected; 5.1 makes the closure
 * inside the protection, so nothing here allocates unprotected. */
#define kling_cpcall(L, f, ud) lua_cpcall((L), (f), (ud))
#else
/* A light C function and a light userdata allocate nothing. */
static inline int kling_cpcall(lua_State *L, lua_CFunction f, void *ud)
{
    lua_pushcfunction(L, f);
    lua_pushlightuserdata(L, ud);
    return lua_pcall(L, 1, 0, 0);
}

#define kling_setfuncs(L, l, n) luaL_setfuncs((L), (l), (n))
#define kling_rawlen(L, i) lua_rawlen((L), (i))
#endif

/* Registers the metatable `name` (luaL_newmetatable, with __name on 5.1 and
 * 5.2 too) holding metamethods and __index = a table of methods; leaves the
 * stack as it was. For the userdata types without upvalues. */
static inline void kling_newclass(lua_State *L, const char *name, const luaL_Reg *metamethods,
                                  const luaL_Reg *methods)
{
    luaL_newmetatable(L, name);
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__name");
    kling_setfuncs(L, metamethods, 0);
    lua_newtable(L);
    kling_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

#endif
