#include "process.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <lauxlib.h>

static volatile sig_atomic_t interrupted = 0;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

int kl_interrupted(void)
{
    return interrupted != 0;
}

/* catch_interrupt() -> true: from now on Ctrl-C sets a flag instead of ending
 * the process (no SA_RESTART: a wait in poll(2) returns at once). */
static int process_catch_interrupt(lua_State *L)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    lua_pushboolean(L, sigaction(SIGINT, &sa, NULL) == 0);
    return 1;
}

/* interrupted() -> boolean: true once for each Ctrl-C (the flag is cleared) */
static int process_interrupted(lua_State *L)
{
    lua_pushboolean(L, interrupted != 0);
    interrupted = 0;
    return 1;
}

/* isatty(fd) -> boolean (1 stdout, 2 stderr) */
static int process_isatty(lua_State *L)
{
    lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)) == 1);
    return 1;
}

/* digest(text) -> 16 hex digits: FNV-1a, 64 bits. A name for content (the
 * command's default job key), not a secret. */
static int process_digest(lua_State *L)
{
    size_t len, i;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
    uint64_t h = 14695981039346656037ULL;
    char hex[17];
    for (i = 0; i < len; i++) {
        h ^= s[i];
        h *= 1099511628211ULL;
    }
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
    lua_pushstring(L, hex);
    return 1;
}

void kl_process_open(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"isatty", process_isatty},
        {"catch_interrupt", process_catch_interrupt},
        {"interrupted", process_interrupted},
        {"digest", process_digest},
        {NULL, NULL}
    };
    const luaL_Reg *f;
    for (f = fns; f->name != NULL; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, -2, f->name);
    }
}
