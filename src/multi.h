#ifndef KLING_MULTI_H
#define KLING_MULTI_H

#include <lua.h>

#define KL_MULTI_MT "kling.multi"

/* Expects cjson's encode and decode on the stack top; pops them and pushes the
 * constructor kling.core.multi. */
void kl_multi_open(lua_State *L);

#endif
