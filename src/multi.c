/* kling.multi: one libcurl multi handle, its transfers in flight and those
 * finished but not yet handed to Lua. Lua never waits inside libcurl except in
 * perform(), and every callback only fills C buffers. */
#include "multi.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <curl/curl.h>
#include <lauxlib.h>

#include "buffer.h"
#include "clock.h"
#include "compat.h"
#include "files.h"
#include "keys.h"
#include "process.h"
#include "profile.h"
#include "credentials.h"
#include "sockets.h"
#include "transfer.h"

/* Verbose output kept between two perform() calls, at most. */
#define KL_MAX_LOG_BYTES (256 * 1024)

#define DECODE_IDX lua_upvalueindex(1)
#define KEYS_IDX lua_upvalueindex(2) /* keys.h */
#define MT_IDX lua_upvalueindex(3)   /* kling.multi's metatable */

typedef struct kl_multi {
    CURLM *multi;
    kl_transfer *active;   /* added to libcurl, not finished */
    kl_transfer *done;     /* finished, not yet returned by perform() */
    int active_count;
    lua_Integer next_id;
    kl_credentials credentials; /* the tokens: kling's only copies (credentials.h) */
    kl_log log;            /* verbose output; its secrets are the credentials' */
    int new_holds;         /* held bodies that began to wait since held() was last asked */
    kl_transfer_pool pool; /* finished transfers, kept for the next requests */
    kl_sockets sockets;    /* what libcurl asks us to watch, and its timer */
    kl_profile *profiles[KL_MAX_PROFILES]; /* see profile(); freed at close, after the pool */
    int profile_count;
    /* A pollable client (pollfd): a pipe whose read end is in the pollable
     * set, written to when the Lua layer has work due (wake), drained by
     * the next perform. -1: not made yet. */
    int wake[2];
    int wake_pending;
} kl_multi;

static void unlink_transfer(kl_transfer **list, kl_transfer *t)
{
    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        *list = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
}

static void link_transfer(kl_transfer **list, kl_transfer *t)
{
    t->prev = NULL;
    t->next = *list;
    if (*list != NULL)
        (*list)->prev = t;
    *list = t;
}

/* luaL_checkudata, comparing with the metatable that every method holds as
 * an upvalue: finding it in the registry by name interns the name on each
 * call on LuaJIT (about 200 instructions per method call). */
static kl_multi *check_multi(lua_State *L)
{
    kl_multi *m = lua_touserdata(L, 1);
    int ours = 0;
    if (m != NULL && lua_getmetatable(L, 1)) {
        ours = lua_rawequal(L, -1, MT_IDX);
        lua_pop(L, 1);
    }
    if (!ours)
        m = luaL_checkudata(L, 1, KL_MULTI_MT); /* raises lauxlib's own message */
    if (m->multi == NULL)
        luaL_error(L, "attempt to use a closed kling.multi");
    return m;
}

/* The most connections per host a client may ask for. */
#define KL_MAX_CONNECTIONS 100000

/* multi([max_connections]) -> handle | nil, message */
static int multi_new(lua_State *L)
{
    double max_connections = luaL_optnumber(L, 1, 0);
    kl_multi *m;
    if (lua_gettop(L) >= 1 && !lua_isnil(L, 1)
        && !(max_connections >= 1 && max_connections <= KL_MAX_CONNECTIONS
             && max_connections == (double)(long)max_connections)) {
        lua_pushnil(L);
        lua_pushfstring(L, "max_connections must be a whole number from 1 to %d", KL_MAX_CONNECTIONS);
        return 2;
    }
    m = lua_newuserdata(L, sizeof *m);
    memset(m, 0, sizeof *m);
    kl_buffer_init(&m->log.text, KL_MAX_LOG_BYTES);
    m->log.secrets = &m->credentials.secrets;
    m->wake[0] = m->wake[1] = -1;
    kl_transfer_pool_init(&m->pool);
    luaL_getmetatable(L, KL_MULTI_MT);
    lua_setmetatable(L, -2);
    m->multi = curl_multi_init();
    if (m->multi == NULL) {
        lua_pushnil(L);
        lua_pushstring(L, "curl_multi_init failed");
        return 2;
    }
    if (!kl_sockets_init(&m->sockets, m->multi)) {
        curl_multi_cleanup(m->multi);
        m->multi = NULL;
        lua_pushnil(L);
        lua_pushstring(L, "out of memory");
        return 2;
    }
    if (max_connections > 0) {
        curl_multi_setopt(m->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)max_connections);
        /* Idle connections kept for reuse: libcurl's default is four per
         * transfer ever added at once, so a burst of 1,000 fresh-connection
         * submits would leave 1,000 idle sockets, each searched by every
         * later request to that host and each holding its buffers. Enough
         * for every host's share of reuse is kept. */
        curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, (long)(2 * max_connections));
    }
    return 1;
}

/* set_token(token|nil [, "platform"]): kept in C so that Lua-side dumps of a
 * client never show it; the platform (upload) token is a second credential. */
static int multi_set_token(lua_State *L)
{
    kl_multi *m = check_multi(L);
    size_t len;
    const char *token = luaL_optlstring(L, 2, NULL, &len);
    const char *which = luaL_optstring(L, 3, "api");
    int slot = strcmp(which, "platform") == 0 ? KL_AUTH_PLATFORM : KL_AUTH_API;
    luaL_argcheck(L, slot == KL_AUTH_PLATFORM || strcmp(which, "api") == 0, 3, "\"api\" or \"platform\"");
    /* profiles carry a copy of the header, and transfers in flight use it */
    if (m->profile_count > 0)
        return luaL_error(L, "set the tokens before making profiles");
    kl_credentials_forget(&m->credentials, slot);
    if (token == NULL)
        return 0;
    if (len == 0 || strlen(token) != len || strpbrk(token, "\r\n") != NULL)
        return luaL_argerror(L, 2, "token must be one non-empty line of text");
    if (!kl_credentials_set(&m->credentials, slot, token, len))
        return luaL_error(L, "out of memory");
    return 0;
}

/* redact(text) -> text with every occurrence of the token replaced by
 * "[redacted]". For server text the Lua layer quotes in an error; it works
 * on a closed handle too (there is no token left to find then). */
static int multi_redact(lua_State *L)
{
    kl_multi *m = luaL_checkudata(L, 1, KL_MULTI_MT);
    size_t len, at, n;
    const char *text = luaL_checklstring(L, 2, &len);
    luaL_Buffer b;
    if (kl_find_secret(text, len, &m->credentials.secrets, &n) == len) {
        lua_settop(L, 2);
        return 1;
    }
    luaL_buffinit(L, &b);
    while ((at = kl_find_secret(text, len, &m->credentials.secrets, &n)) < len) {
        luaL_addlstring(&b, text, at);
        luaL_addlstring(&b, KL_REDACTED, sizeof KL_REDACTED - 1);
        text += at + n;
        len -= at + n;
    }
    luaL_addlstring(&b, text, len);
    luaL_pushresult(&b);
    return 1;
}

/* profile(request) -> id: the shared fields of request (see profile.h), kept
 * in C with the Authorization header of its auth. add({ profile = id, ... })
 * then reads only the fields that change per call. */
static int multi_profile(lua_State *L)
{
    kl_multi *m = check_multi(L);
    kl_request req;
    kl_profile *p;
    kl_request_read_shared(L, 2, &req);
    if (m->profile_count == KL_MAX_PROFILES)
        return luaL_error(L, "at most %d profiles per kling.multi", KL_MAX_PROFILES);
    p = kl_profile_new(&req, req.auth != KL_AUTH_NONE ? m->credentials.headers[req.auth] : NULL);
    if (p == NULL)
        return luaL_error(L, "out of memory");
    m->profiles[m->profile_count++] = p;
    lua_pushinteger(L, m->profile_count);
    return 1;
}

/* The profile a request table names, or NULL. */
static const kl_profile *request_profile(lua_State *L, kl_multi *m)
{
    lua_Integer id;
    luaL_checktype(L, 2, LUA_TTABLE);
    kl_key_get(L, KEYS_IDX, 2, KL_KEY_PROFILE);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    id = lua_tointeger(L, -1);
    if (!lua_isnumber(L, -1) || id < 1 || id > m->profile_count)
        luaL_error(L, "request field 'profile' is not a profile of this kling.multi");
    lua_pop(L, 1);
    return m->profiles[id - 1];
}

/* Hands the request table at index 2 to libcurl: the new transfer, or NULL
 * with nil and the message pushed. alone: the caller will wait for this
 * transfer only (run), so a body held for release() would never go. */
static kl_transfer *add_request(lua_State *L, kl_multi *m, int alone)
{
    kl_request req;
    kl_transfer *t;
    char err[256];
    CURLMcode mc;
    kl_request_read(L, 2, KEYS_IDX, request_profile(L, m), &req);
    if (alone && req.hold) {
        lua_pushnil(L);
        lua_pushliteral(L, "run cannot wait for a held body (hold = true): use add, perform and release");
        return NULL;
    }
    t = kl_transfer_new(&req, m->next_id + 1, &m->pool, (const char *const *)m->credentials.headers, &m->log,
                        &m->new_holds, err, sizeof err);
    if (t == NULL) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return NULL;
    }
    mc = curl_multi_add_handle(m->multi, t->easy);
    if (mc != CURLM_OK) {
        kl_transfer_free(t);
        lua_pushnil(L);
        lua_pushstring(L, curl_multi_strerror(mc));
        return NULL;
    }
    m->next_id++;
    link_transfer(&m->active, t);
    m->active_count++;
    return t;
}

/* add(request) -> id | nil, message */
static int multi_add(lua_State *L)
{
    kl_transfer *t = add_request(L, check_multi(L), 0);
    if (t == NULL)
        return 2;
    lua_pushinteger(L, t->id);
    return 1;
}

static void collect_finished(kl_multi *m)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
        kl_transfer *t = NULL;
        CURLcode result;
        if (msg->msg != CURLMSG_DONE)
            continue;
        result = msg->data.result; /* msg is invalid once the handle is removed */
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        curl_multi_remove_handle(m->multi, t->easy);
        unlink_transfer(&m->active, t);
        m->active_count--;
        kl_transfer_finish(t, result);
        link_transfer(&m->done, t);
    }
}

static kl_transfer *find(kl_transfer *list, lua_Integer id)
{
    for (; list != NULL; list = list->next)
        if (list->id == id)
            return list;
    return NULL;
}

/* Why drive() returns before its wait is over: a finished transfer; Ctrl-C
 * (when the command caught it: the caller decides); a held body that waits
 * for the journal; the journal's outcomes. Driving for transfer `only`
 * (run()), its end alone. */
static int worth_returning(const kl_multi *m, int extra_ready, lua_Integer only)
{
    if (only != 0)
        return find(m->done, only) != NULL;
    return m->done != NULL || kl_interrupted() || m->new_holds > 0 || extra_ready;
}

/* The caller's extra descriptors to watch: none. */
static const int NO_FDS[1] = {-1};

/* Drives libcurl until a transfer finishes (transfer `only`, if not 0),
 * `wait` seconds pass, or one of the n_fds descriptors fds (journals'
 * writers with outcomes) is readable. With no transfer at all, it simply
 * sleeps: the Lua layer's timers rely on that. libcurl acts only on its due
 * timer and on the descriptors that are ready (sockets.c). */
/* What wake() wrote is read here: the work it announced is the step's now. */
static void drain_wake(kl_multi *m)
{
    char buf[64];
    if (!m->wake_pending)
        return;
    while (read(m->wake[0], buf, sizeof buf) > 0)
        ;
    m->wake_pending = 0;
}

/* Once its wait is over, drive() goes on acting on ready sockets while its
 * budget lasts: a transfer streaming to or from a host that steps rarely
 * (every 100 ms) moves as much per step as the budget allows, not one
 * buffer of libcurl's. */
static CURLMcode drive(kl_multi *m, double wait, const int *fds, int n_fds, double budget, lua_Integer only)
{
    double started = kl_now();
    double deadline = started + wait;
    int extra_ready = 0;
    drain_wake(m);
    for (;;) {
        double left;
        int acted;
        CURLMcode mc = kl_sockets_timeout(&m->sockets);
        if (mc != CURLM_OK)
            return mc;
        collect_finished(m);
        if (worth_returning(m, extra_ready, only))
            return CURLM_OK;
        left = deadline - kl_now();
        /* the descriptors found ready are acted on for budget seconds at most */
        mc = kl_sockets_wait(&m->sockets, left > 0 ? left : 0, fds, n_fds, &extra_ready,
                             budget >= 0 ? kl_now() + budget : deadline + 3600, &acted);
        if (mc != CURLM_OK)
            return mc;
        collect_finished(m);
        if (worth_returning(m, extra_ready, only))
            return CURLM_OK;
        if (left <= 0 && (budget < 0 || acted == 0 || kl_now() >= started + budget))
            return CURLM_OK;
    }
}

/* The verbose output gathered since the last call, or nil. */
static void push_log(lua_State *L, kl_multi *m)
{
    if (m->log.text.len > 0) {
        lua_pushlstring(L, m->log.text.data, m->log.text.len);
        kl_buffer_reset(&m->log.text);
    } else {
        lua_pushnil(L);
    }
}

/* Pushes the result of finished transfer t and frees it. */
static void push_finished(lua_State *L, kl_multi *m, kl_transfer *t)
{
    kl_transfer_push_result(L, t, DECODE_IDX, KEYS_IDX);
    unlink_transfer(&m->done, t);
    kl_transfer_free(t);
}

/* The descriptors at idx: a number, a list of them (at most
 * KL_MAX_EXTRA_FDS), or nil. Raises for anything else. */
static int read_fds(lua_State *L, int idx, int *fds)
{
    int n = 0, i, count;
    if (lua_isnoneornil(L, idx))
        return 0;
    if (lua_type(L, idx) == LUA_TNUMBER) {
        fds[0] = (int)lua_tointeger(L, idx);
        return fds[0] >= 0;
    }
    luaL_checktype(L, idx, LUA_TTABLE);
    count = (int)kling_rawlen(L, idx);
    if (count > KL_MAX_EXTRA_FDS)
        luaL_error(L, "at most %d descriptors to watch", KL_MAX_EXTRA_FDS);
    for (i = 1; i <= count; i++) {
        lua_rawgeti(L, idx, i);
        if (lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "descriptor %d is not a number", i);
        fds[n] = (int)lua_tointeger(L, -1);
        if (fds[n] >= 0)
            n++;
        lua_pop(L, 1);
    }
    return n;
}

/* perform([wait [, fds [, budget]]]) -> { result, ... }, log | nil, message.
 * fds: a descriptor or a list of them; one readable ends the wait too.
 * budget (seconds): libcurl acts on the descriptors found ready for this
 * long at most (the others wait for the next call), and once building
 * results (decoding their JSON) has taken this long, the other finished
 * transfers wait for the next call, which returns them at once. */
static int multi_perform(lua_State *L)
{
    kl_multi *m = check_multi(L);
    double wait = luaL_optnumber(L, 2, 0);
    int fds[KL_MAX_EXTRA_FDS];
    int n_fds = read_fds(L, 3, fds);
    double budget = luaL_optnumber(L, 4, -1);
    CURLMcode mc = drive(m, wait > 0 ? wait : 0, fds, n_fds, budget, 0);
    double until = budget >= 0 ? kl_now() + budget : 0;
    lua_Integer i = 1;
    kl_transfer *t;
    if (mc != CURLM_OK) {
        lua_pushnil(L);
        lua_pushstring(L, curl_multi_strerror(mc));
        return 2;
    }
    lua_newtable(L);
    /* oldest first (the list is newest first): what a budget leaves for
     * the next call is never overtaken by later transfers */
    t = m->done;
    while (t != NULL && t->next != NULL)
        t = t->next;
    while (t != NULL) {
        kl_transfer *newer = t->prev;
        if (i > 1 && budget >= 0 && kl_now() >= until)
            break;
        push_finished(L, m, t);
        lua_rawseti(L, -2, (int)i++);
        t = newer;
    }
    push_log(L, m);
    return 2;
}

/* run(request) -> result, log | nil, message, "setup" | "multi"
 * add() and perform() in one call, for a caller that waits for this request
 * alone (the Lua layer's blocking call on an idle client): libcurl is
 * driven until the transfer finishes, and its result comes back by itself.
 * One call instead of two and no results list: on LuaJIT each C function
 * called from compiled code ends a trace. Other transfers move meanwhile;
 * those that finish wait for perform(). A signal does not end the wait
 * (the request's timeout does). */
static int multi_run(lua_State *L)
{
    kl_multi *m = check_multi(L);
    kl_transfer *t = add_request(L, m, 1);
    lua_Integer id;
    CURLMcode mc = CURLM_OK;
    if (t == NULL) {
        lua_pushliteral(L, "setup");
        return 3;
    }
    id = t->id;
    while ((t = find(m->done, id)) == NULL && mc == CURLM_OK)
        mc = drive(m, 3600, NO_FDS, 0, -1, id);
    if (t == NULL) {
        lua_pushnil(L);
        lua_pushstring(L, curl_multi_strerror(mc));
        lua_pushliteral(L, "multi");
        return 3;
    }
    push_finished(L, m, t);
    push_log(L, m);
    return 2;
}

/* cancel(id) -> true if the transfer was still known */
static int multi_cancel(lua_State *L)
{
    kl_multi *m = check_multi(L);
    lua_Integer id = luaL_checkinteger(L, 2);
    kl_transfer *t = find(m->active, id);
    if (t != NULL) {
        curl_multi_remove_handle(m->multi, t->easy);
        unlink_transfer(&m->active, t);
        m->active_count--;
    } else if ((t = find(m->done, id)) != NULL) {
        unlink_transfer(&m->done, t);
    }
    kl_transfer_free(t);
    lua_pushboolean(L, t != NULL);
    return 1;
}

/* handed_over(id) -> true once libcurl began sending a request added with
 * handover = true (false before: it is queued or connecting, nothing went
 * out); nil when the transfer is not in flight. */
static int multi_handed_over(lua_State *L)
{
    kl_multi *m = check_multi(L);
    kl_transfer *t = find(m->active, luaL_checkinteger(L, 2));
    if (t == NULL)
        return 0;
    lua_pushboolean(L, t->handed_over);
    return 1;
}

/* progress(id) -> sent, to_send, received, to_receive (bytes; 0 when unknown),
 * or nothing when the transfer is not in flight. For uploads and downloads. */
static int multi_progress(lua_State *L)
{
    kl_multi *m = check_multi(L);
    kl_transfer *t = find(m->active, luaL_checkinteger(L, 2));
    if (t == NULL)
        return 0;
    lua_pushnumber(L, (lua_Number)t->up_now);
    lua_pushnumber(L, (lua_Number)t->up_total);
    lua_pushnumber(L, (lua_Number)t->down_now);
    lua_pushnumber(L, (lua_Number)t->down_total);
    return 4;
}

/* held() -> { id, ... }: transfers whose body waits to be released */
static int multi_held(lua_State *L)
{
    kl_multi *m = check_multi(L);
    kl_transfer *t;
    int n = 0;
    lua_newtable(L);
    for (t = m->active; t != NULL; t = t->next)
        if (t->holding) {
            lua_pushinteger(L, t->id);
            lua_rawseti(L, -2, ++n);
        }
    m->new_holds = 0;
    return 1;
}

/* release(id, ok) -> true if the transfer was holding: ok lets its body go;
 * otherwise it ends at once, nothing of its body sent (reason "journal"). */
static int multi_release(lua_State *L)
{
    kl_multi *m = check_multi(L);
    kl_transfer *t = find(m->active, luaL_checkinteger(L, 2));
    int was = t != NULL && t->holding;
    if (was)
        kl_transfer_release(t, lua_toboolean(L, 3));
    lua_pushboolean(L, was);
    return 1;
}

static int multi_count(lua_State *L)
{
    kl_multi *m = check_multi(L);
    int n = m->active_count;
    kl_transfer *t;
    for (t = m->done; t != NULL; t = t->next)
        n++;
    lua_pushinteger(L, n);
    return 1;
}

/* close and __close: idempotent. The pollable descriptor (pollfd) and the
 * wake pipe outlive close, quiet, until __gc: a host loop may still be
 * watching the descriptor when the client closes, and it must never see
 * EBADF, or a reused descriptor number, before it stops. */
static int multi_close(lua_State *L)
{
    kl_multi *m = luaL_checkudata(L, 1, KL_MULTI_MT);
    if (m->multi == NULL)
        return 0;
    while (m->active != NULL) {
        kl_transfer *t = m->active;
        curl_multi_remove_handle(m->multi, t->easy);
        unlink_transfer(&m->active, t);
        kl_transfer_free(t);
    }
    while (m->done != NULL) {
        kl_transfer *t = m->done;
        unlink_transfer(&m->done, t);
        kl_transfer_free(t);
    }
    m->active_count = 0;
    kl_transfer_pool_free(&m->pool);
    curl_multi_cleanup(m->multi);
    kl_sockets_free(&m->sockets);
    drain_wake(m);
    m->multi = NULL;
    while (m->profile_count > 0)
        kl_profile_free(m->profiles[--m->profile_count]);
    kl_credentials_forget_all(&m->credentials);
    kl_buffer_free(&m->log.text);
    return 0;
}

/* __gc: close, then the pollable descriptor and the wake pipe. */
static int multi_gc(lua_State *L)
{
    kl_multi *m = luaL_checkudata(L, 1, KL_MULTI_MT);
    multi_close(L);
    kl_sockets_close_pollfd(&m->sockets);
    if (m->wake[0] >= 0) {
        close(m->wake[0]);
        close(m->wake[1]);
        m->wake[0] = m->wake[1] = -1;
    }
    return 0;
}

static int multi_tostring(lua_State *L)
{
    kl_multi *m = luaL_checkudata(L, 1, KL_MULTI_MT);
    if (m->multi == NULL)
        lua_pushfstring(L, "kling.multi (closed): %p", (void *)m);
    else
        lua_pushfstring(L, "kling.multi (%d in flight): %p", m->active_count, (void *)m);
    return 1;
}

/* pollfd([fds]) -> descriptor | nil, message: readable whenever perform()
 * has work: a transfer's socket is ready, one of the extra descriptors fds
 * (a number or a list: journals' writers) is readable, or wake() was
 * called. For a host's event loop (a pollable client, docs/design.md). */
static int multi_pollfd(lua_State *L)
{
    kl_multi *m = check_multi(L);
    int fds[KL_MAX_EXTRA_FDS], n = read_fds(L, 2, fds), i;
    int pfd = kl_sockets_pollfd(&m->sockets);
    if (pfd < 0) {
        lua_pushnil(L);
        lua_pushstring(L, "no pollable descriptor on this system (kling makes one with epoll, on Linux)");
        return 2;
    }
    if (m->wake[0] < 0) {
        if (kl_pipe(m->wake) != 0) {
            lua_pushnil(L);
            lua_pushfstring(L, "cannot make a pipe: %s", strerror(errno));
            return 2;
        }
        kl_sockets_watch(&m->sockets, m->wake[0]);
    }
    for (i = 0; i < n; i++)
        if (kl_sockets_watch(&m->sockets, fds[i]) != 0)
            return luaL_error(L, "too many descriptors to watch");
    lua_pushinteger(L, pfd);
    return 1;
}

/* wake(): makes pollfd() readable until the next perform (the Lua layer has
 * a job to run); once, however often it is called meanwhile. */
static int multi_wake(lua_State *L)
{
    kl_multi *m = check_multi(L);
    if (m->wake[1] >= 0 && !m->wake_pending) {
        char one = 1;
        if (write(m->wake[1], &one, 1) == 1)
            m->wake_pending = 1;
    }
    return 0;
}

/* timer() -> seconds until libcurl must be driven even if no socket is
 * ready (0: now; a finished transfer waits too), or nil when it waits for
 * nothing but its sockets. */
static int multi_timer(lua_State *L)
{
    kl_multi *m = check_multi(L);
    double left = kl_sockets_timer_in(&m->sockets);
    if (m->done != NULL)
        left = 0;
    if (left < 0)
        lua_pushnil(L);
    else
        lua_pushnumber(L, left);
    return 1;
}

static const luaL_Reg methods[] = {
    {"pollfd", multi_pollfd},
    {"wake", multi_wake},
    {"timer", multi_timer},
    {"set_token", multi_set_token},
    {"redact", multi_redact},
    {"held", multi_held},
    {"release", multi_release},
    {"profile", multi_profile},
    {"add", multi_add},
    {"perform", multi_perform},
    {"run", multi_run},
    {"cancel", multi_cancel},
    {"count", multi_count},
    {"handed_over", multi_handed_over},
    {"progress", multi_progress},
    {"close", multi_close},
    {NULL, NULL}
};

static const luaL_Reg metamethods[] = {
    {"__gc", multi_gc},
#if LUA_VERSION_NUM >= 504
    {"__close", multi_close},
#endif
    {"__tostring", multi_tostring},
    {NULL, NULL}
};

void kl_multi_open(lua_State *L)
{
    /* stack: encode, decode (requests' bodies come encoded: only decode is kept) */
    luaL_newmetatable(L, KL_MULTI_MT);
    lua_pushstring(L, KL_MULTI_MT);
    lua_setfield(L, -2, "__name");
    kling_setfuncs(L, metamethods, 0);
    lua_newtable(L);
    lua_pushvalue(L, -3); /* decode */
    kl_keys_push(L);
    lua_pushvalue(L, -4); /* the metatable */
    kling_setfuncs(L, methods, 3);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 3);
    lua_pushcfunction(L, multi_new);
}
