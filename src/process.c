#include "process.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <lauxlib.h>

/* The signal that asked us to stop (SIGINT, SIGTERM, SIGHUP), 0 if none. */
static volatile sig_atomic_t interrupted = 0;

static void on_signal(int sig)
{
    interrupted = sig;
}

int kl_interrupted(void)
{
    return interrupted != 0;
}

/* catch_interrupt() -> true: from now on Ctrl-C (SIGINT), SIGTERM (kill,
 * timeout, systemd, docker stop) and SIGHUP (a closed terminal) set a flag
 * instead of ending the process, so that a submit on the wire is answered
 * and recorded first (no SA_RESTART: a wait in poll(2) returns at once). */
static int process_catch_interrupt(lua_State *L)
{
    static const int signals[] = {SIGINT, SIGTERM, SIGHUP};
    struct sigaction sa;
    size_t i;
    int ok = 1;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (i = 0; i < sizeof signals / sizeof signals[0]; i++)
        ok = sigaction(signals[i], &sa, NULL) == 0 && ok;
    lua_pushboolean(L, ok);
    return 1;
}

/* interrupted() -> signal number | false: once for each signal (the flag is
 * cleared) */
static int process_interrupted(lua_State *L)
{
    int sig = interrupted;
    interrupted = 0;
    if (sig != 0)
        lua_pushinteger(L, sig);
    else
        lua_pushboolean(L, 0);
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
