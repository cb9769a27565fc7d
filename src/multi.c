/* kling.multi: one libcurl multi handle, its transfers in flight and those
 * finished but not yet handed to Lua. libcurl is driven by a thread of the
 * multi's own (io_main), so that its work (connections, sending, reading,
 * parsing) never runs inside a host's step: Lua adds transfers and collects
 * finished ones. Two locks share the state between the threads (see
 * kl_multi); the callbacks only fill C buffers, and no Lua API that may
 * raise is called with a lock held. */
#include "multi.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <curl/curl.h>
#include <lauxlib.h>

#include "background.h"
#include "buffer.h"
#include "clock.h"
#include "compat.h"
#include "files.h"
#include "keys.h"
#include "pollset.h"
#include "process.h"
#include "profile.h"
#include "credentials.h"
#include "sockets.h"
#include "transfer.h"

/* The caller's extra descriptors (journals' writers) perform() and pollfd() watch, at most. */
#define KL_MAX_EXTRA_FDS 8

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
    CURLMcode failure;     /* the first error of libcurl's multi interface, reported by perform */
    /* Two locks, always taken in this order when both are: `lock` for
     * libcurl and what its callbacks fill (the active list, the transfers'
     * flags, the verbose log); `news_lock` for the hand-over between the
     * threads (incoming, done, the news flags, the pipes' pending flags),
     * which the I/O thread holds only for a moment: so Lua's add and perform
     * never wait for libcurl's work. */
    pthread_mutex_t lock;
    pthread_mutex_t news_lock;
    kl_transfer *incoming; /* added by Lua, not yet handed to libcurl (newest first) */
    int holds_news;        /* a body began to wait for the journal (new_holds, told) */
    CURLMcode failure_news; /* failure, told */
    int outstanding;       /* Lua's own: added, not yet returned or cancelled (count) */
    int verbose;           /* Lua's own: a transfer asked for verbose output */
    int locks_destroyed;   /* __gc ran */
    pthread_t io;          /* drives libcurl (io_main), from the first transfer until close */
    int io_started, io_stop;
    pid_t io_pid;          /* the process that started it: a fork's child has no such thread */
    /* Lua to the I/O thread: look again (a transfer was added, released or
     * dropped; stop). Written and drained under news_lock. */
    int poke[2];
    int poke_pending;
    /* The I/O thread to Lua: a transfer finished, or a body waits for the
     * journal. Written and drained (by perform and run) under news_lock. */
    int ready[2];
    int ready_pending;
    /* A pollable client (pollfd): a pipe whose read end is in the pollable
     * set, written to when the Lua layer has work due (wake), drained by
     * the next perform. -1: not made yet. Lua's alone. */
    int wake[2];
    int wake_pending;
    kl_pollset pollset;    /* pollfd(): ready[0], wake[0], the caller's extra descriptors */
    /* decodes answers asked for apart (records.h); made for the first, NULL
     * when it could not be (they are then decoded whole). Lua's alone. */
    kl_decoder *decoder;
    int decoder_tried;
} kl_multi;

static void lock(kl_multi *m)
{
    pthread_mutex_lock(&m->lock);
}

static void unlock(kl_multi *m)
{
    pthread_mutex_unlock(&m->lock);
}

static void lock_news(kl_multi *m)
{
    pthread_mutex_lock(&m->news_lock);
}

static void unlock_news(kl_multi *m)
{
    pthread_mutex_unlock(&m->news_lock);
}

/* One byte into a pipe its reader has not drained yet (*pending says so). */
static void signal_pipe(int fd, int *pending)
{
    char one = 1;
    if (fd >= 0 && !*pending && write(fd, &one, 1) == 1)
        *pending = 1;
}

static void drain_pipe(int fd, int *pending)
{
    char buf[64];
    if (!*pending)
        return;
    while (read(fd, buf, sizeof buf) > 0)
        ;
    *pending = 0;
}

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
    m->wake[0] = m->wake[1] = m->poke[0] = m->poke[1] = m->ready[0] = m->ready[1] = -1;
    kl_pollset_init(&m->pollset);
    kl_transfer_pool_init(&m->pool);
    pthread_mutex_init(&m->lock, NULL);
    pthread_mutex_init(&m->news_lock, NULL);
    luaL_getmetatable(L, KL_MULTI_MT);
    lua_setmetatable(L, -2);
    if (kl_pipe(m->poke) != 0 || kl_pipe(m->ready) != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot make a pipe: %s", strerror(errno));
        return 2;
    }
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
    int slot = strcmp(which, "platform") == 0 ? KL_AUTH_PLATFORM : KL_AUTH_API, ok;
    luaL_argcheck(L, slot == KL_AUTH_PLATFORM || strcmp(which, "api") == 0, 3, "\"api\" or \"platform\"");
    /* profiles carry a copy of the header, and transfers in flight use it */
    if (m->profile_count > 0)
        return luaL_error(L, "set the tokens before making profiles");
    if (token != NULL && (len == 0 || strlen(token) != len || strpbrk(token, "\r\n") != NULL))
        return luaL_argerror(L, 2, "token must be one non-empty line of text");
    lock(m); /* the I/O thread's verbose output reads the secrets */
    kl_credentials_forget(&m->credentials, slot);
    ok = token == NULL || kl_credentials_set(&m->credentials, slot, token, len);
    unlock(m);
    if (!ok)
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

static void collect_finished(kl_multi *m);

/* The I/O thread, under the lock: tells Lua (perform, run, a host on
 * pollfd) what there is to take. */
static void announce(kl_multi *m)
{
    lock_news(m);
    m->holds_news = m->new_holds > 0;
    m->failure_news = m->failure;
    if (m->done != NULL || m->holds_news || m->failure != CURLM_OK)
        signal_pipe(m->ready[1], &m->ready_pending);
    unlock_news(m);
}

/* The I/O thread, under the lock: hands the transfers Lua added to
 * libcurl, oldest first. One libcurl refuses ends at once, as failed. */
static void admit(kl_multi *m)
{
    kl_transfer *list, *t;
    lock_news(m);
    list = m->incoming;
    m->incoming = NULL;
    unlock_news(m);
    for (t = list; t != NULL && t->next != NULL; t = t->next)
        ;
    while (t != NULL) {
        kl_transfer *older_first = t->prev;
        t->prev = t->next = NULL;
        if (curl_multi_add_handle(m->multi, t->easy) == CURLM_OK) {
            link_transfer(&m->active, t);
            m->active_count++;
        } else {
            kl_transfer_finish(t, CURLE_OUT_OF_MEMORY);
            lock_news(m);
            link_transfer(&m->done, t);
            unlock_news(m);
        }
        t = older_first;
    }
}

static int poll_ms(double seconds)
{
    double ms = seconds * 1000.0;
    if (ms <= 0)
        return 0;
    if (ms >= 3600000.0)
        return 3600000;
    return (int)ms + 1;
}

/* The I/O thread, under the lock, after libcurl acted: keeps its first
 * error, hands what finished over and tells Lua. */
static void after_acting(kl_multi *m, CURLMcode mc)
{
    if (mc != CURLM_OK && m->failure == CURLM_OK)
        m->failure = mc;
    collect_finished(m);
    announce(m);
}

/* The I/O thread: libcurl's timer and sockets, for as long as the multi
 * lives. It waits in poll(2) without the lock, on a copy of the sockets
 * libcurl watches and on the poke pipe (Lua changed something), and acts on
 * each ready socket with the lock taken for that socket alone, so that Lua
 * never waits long for it. */
static void *io_main(void *arg)
{
    kl_multi *m = arg;
    struct pollfd *fds = NULL;
    int cap = 0;
    kl_background_thread();
    lock(m);
    while (!m->io_stop) {
        int n, i, rc;
        lock_news(m);
        drain_pipe(m->poke[0], &m->poke_pending);
        unlock_news(m);
        admit(m);
        after_acting(m, kl_sockets_timeout(&m->sockets));
        n = kl_sockets_snapshot(&m->sockets, &fds, &cap, 1);
        if (n < 0) { /* out of memory: try again shortly */
            unlock(m);
            poll(NULL, 0, 10);
            lock(m);
            continue;
        }
        fds[n].fd = m->poke[0];
        fds[n].events = POLLIN;
        fds[n].revents = 0;
        {
            double left = kl_sockets_timer_in(&m->sockets);
            unlock(m);
            rc = poll(fds, (nfds_t)n + 1, left < 0 ? -1 : poll_ms(left));
            lock(m);
        }
        for (i = 0; rc > 0 && i < n && !m->io_stop; i++) {
            if (fds[i].revents == 0)
                continue;
            after_acting(m, kl_sockets_act(&m->sockets, &fds[i], 1));
            unlock(m); /* Lua may take its turn between two sockets */
            lock(m);
        }
    }
    unlock(m);
    free(fds);
    return NULL;
}

/* Starts the I/O thread: NULL, or why it could not. Signals stay the Lua
 * thread's (Ctrl-C ends its waits): the thread starts with all blocked. */
static const char *start_io(kl_multi *m)
{
    sigset_t all, old;
    int rc;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&m->io, NULL, io_main, m);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return strerror(rc);
    m->io_started = 1;
    m->io_pid = getpid();
    return NULL;
}

static void stop_io(kl_multi *m)
{
    if (!m->io_started || getpid() != m->io_pid) /* a fork's child: no thread to stop */
        return;
    lock(m);
    m->io_stop = 1;
    lock_news(m);
    signal_pipe(m->poke[1], &m->poke_pending);
    unlock_news(m);
    unlock(m);
    pthread_join(m->io, NULL);
    m->io_started = 0;
}

/* Hands the request table at index 2 to libcurl: the new transfer, or NULL
 * with nil and the message pushed. alone: the caller will wait for this
 * transfer only (run), so a body held for release() would never go. */
static kl_transfer *add_request(lua_State *L, kl_multi *m, int alone)
{
    kl_request req;
    kl_transfer *t;
    char err[256];
    const char *err_start;
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
    if (m->io_started && getpid() != m->io_pid) {
        /* fork copies the multi but not its thread: nothing would drive it */
        kl_transfer_free(t);
        lua_pushnil(L);
        lua_pushliteral(L, "this client was made before the process forked: make one in the child");
        return NULL;
    }
    if (!m->io_started && (err_start = start_io(m)) != NULL) {
        kl_transfer_free(t);
        lua_pushnil(L);
        lua_pushfstring(L, "cannot start libcurl's thread: %s", err_start);
        return NULL;
    }
    m->next_id++;
    m->outstanding++;
    if (req.verbose)
        m->verbose = 1;
    lock_news(m);
    link_transfer(&m->incoming, t);
    signal_pipe(m->poke[1], &m->poke_pending);
    unlock_news(m);
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
        lock_news(m);
        link_transfer(&m->done, t);
        unlock_news(m);
    }
}

static kl_transfer *find(kl_transfer *list, lua_Integer id)
{
    for (; list != NULL; list = list->next)
        if (list->id == id)
            return list;
    return NULL;
}

/* The verbose output gathered since the last call, or nil. The text is
 * taken out under the lock and pushed outside it (pushing may raise). */
static void push_log(lua_State *L, kl_multi *m)
{
    kl_buffer text;
    if (!m->verbose) {
        lua_pushnil(L);
        return;
    }
    lock(m);
    text = m->log.text;
    kl_buffer_init(&m->log.text, KL_MAX_LOG_BYTES);
    unlock(m);
    if (text.len > 0)
        lua_pushlstring(L, text.data, text.len);
    else
        lua_pushnil(L);
    kl_buffer_free(&text);
}

/* The oldest finished transfer, left in the done list; or NULL. */
static kl_transfer *oldest_finished(kl_multi *m)
{
    kl_transfer *t;
    lock_news(m);
    t = m->done;
    while (t != NULL && t->next != NULL)
        t = t->next;
    unlock_news(m);
    return t;
}

/* Pushes the result of finished transfer t, then takes it out of the done
 * list and frees it: a raise while pushing (out of memory) loses nothing.
 * It is out of libcurl's multi handle, and the I/O thread only adds to the
 * done list's head: t's own fields are Lua's. Returns the transfer that
 * finished next after t (the next oldest), or NULL. */
static kl_transfer *push_finished(lua_State *L, kl_multi *m, kl_transfer *t)
{
    kl_transfer *newer;
    if (t->apart[0] != '\0' && !m->decoder_tried) {
        m->decoder_tried = 1;
        m->decoder = kl_decoder_new(L);
    }
    kl_transfer_push_result(L, t, DECODE_IDX, KEYS_IDX, m->decoder);
    lock_news(m);
    newer = t->prev;
    unlink_transfer(&m->done, t);
    unlock_news(m);
    kl_transfer_free(t);
    m->outstanding--;
    return newer;
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

/* Is there anything for Lua to take: a finished transfer or a held body?
 * The ready pipe is drained: the I/O thread writes it again for what comes
 * next, and perform for what it leaves. */
static int has_news(kl_multi *m, CURLMcode *failure)
{
    int news;
    lock_news(m);
    news = m->done != NULL || m->holds_news;
    drain_pipe(m->ready[0], &m->ready_pending);
    *failure = m->failure_news;
    unlock_news(m);
    return news;
}

/* Waits up to `wait` seconds for the I/O thread's news or for one of the
 * extra descriptors to be readable. A signal ends it early (Ctrl-C) when
 * `signals` is set. */
static void wait_news(kl_multi *m, double wait, const int *fds, int n_fds, int signals)
{
    struct pollfd p[KL_MAX_EXTRA_FDS + 1];
    double until = kl_now() + wait;
    int i;
    p[0].fd = m->ready[0];
    p[0].events = POLLIN;
    for (i = 0; i < n_fds; i++) {
        p[i + 1].fd = fds[i];
        p[i + 1].events = POLLIN;
    }
    for (;;) {
        int rc;
        for (i = 0; i <= n_fds; i++)
            p[i].revents = 0;
        rc = poll(p, (nfds_t)n_fds + 1, poll_ms(until - kl_now()));
        if (rc >= 0 || errno != EINTR || (signals && kl_interrupted()) || kl_now() >= until)
            return;
    }
}

/* perform([wait [, fds [, budget]]]) -> { result, ... }, log | nil, message.
 * Returns the transfers finished by now, oldest first; with none, and no
 * body waiting for the journal, waits up to `wait` seconds for one, or for
 * one of the descriptors fds (a number or a list) to be readable, or a
 * signal. budget (seconds): once building results (decoding their JSON) has
 * taken this long, the other finished transfers wait for the next call,
 * which returns them at once. */
static int multi_perform(lua_State *L)
{
    kl_multi *m = check_multi(L);
    double wait = luaL_optnumber(L, 2, 0);
    int fds[KL_MAX_EXTRA_FDS];
    int n_fds = read_fds(L, 3, fds);
    double budget = luaL_optnumber(L, 4, -1);
    double until;
    lua_Integer i = 1;
    kl_transfer *t;
    CURLMcode mc;
    drain_pipe(m->wake[0], &m->wake_pending); /* the work it announced is this step's now */
    if (!has_news(m, &mc) && wait > 0 && mc == CURLM_OK && !kl_interrupted()) {
        wait_news(m, wait, fds, n_fds, 1);
        has_news(m, &mc);
    }
    if (mc != CURLM_OK) {
        lua_pushnil(L);
        lua_pushstring(L, curl_multi_strerror(mc));
        return 2;
    }
    until = budget >= 0 ? kl_now() + budget : 0;
    lua_newtable(L);
    t = oldest_finished(m);
    while (t != NULL && (i == 1 || budget < 0 || kl_now() < until)) {
        kl_transfer *newer = push_finished(L, m, t);
        lua_rawseti(L, -2, (int)i++);
        t = newer;
    }
    lock_news(m);
    if (m->done != NULL) /* those left for the next call: a host comes back for them */
        signal_pipe(m->ready[1], &m->ready_pending);
    unlock_news(m);
    push_log(L, m);
    return 2;
}

/* run(request) -> result, log | nil, message, "setup" | "multi"
 * add() and perform() in one call, for a caller that waits for this request
 * alone (the Lua layer's blocking call on an idle client): it waits for
 * this transfer's end, and its result comes back by itself. One call
 * instead of two and no results list: on LuaJIT each C function called from
 * compiled code ends a trace. Other transfers move meanwhile; those that
 * finish wait for perform(). A signal does not end the wait (the request's
 * timeout does). */
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
    for (;;) {
        lock_news(m);
        t = find(m->done, id);
        mc = m->failure_news;
        drain_pipe(m->ready[0], &m->ready_pending); /* the others' news: perform's, later */
        unlock_news(m);
        if (t != NULL || mc != CURLM_OK)
            break;
        wait_news(m, 3600, NULL, 0, 0);
    }
    if (t != NULL)
        push_finished(L, m, t);
    lock_news(m);
    if (m->done != NULL || m->holds_news) /* the others' news, told again */
        signal_pipe(m->ready[1], &m->ready_pending);
    unlock_news(m);
    if (t == NULL) {
        lua_pushnil(L);
        lua_pushstring(L, curl_multi_strerror(mc));
        lua_pushliteral(L, "multi");
        return 3;
    }
    push_log(L, m);
    return 2;
}

/* cancel(id) -> true if the transfer was still known */
static int multi_cancel(lua_State *L)
{
    kl_multi *m = check_multi(L);
    lua_Integer id = luaL_checkinteger(L, 2);
    kl_transfer *t;
    lock(m);
    lock_news(m);
    if ((t = find(m->incoming, id)) != NULL) {
        unlink_transfer(&m->incoming, t);
    } else if ((t = find(m->active, id)) != NULL) {
        curl_multi_remove_handle(m->multi, t->easy);
        unlink_transfer(&m->active, t);
        m->active_count--;
        signal_pipe(m->poke[1], &m->poke_pending); /* its sockets may be gone */
    } else if ((t = find(m->done, id)) != NULL) {
        unlink_transfer(&m->done, t);
    }
    unlock_news(m);
    unlock(m);
    if (t != NULL) {
        kl_transfer_free(t);
        m->outstanding--;
    }
    lua_pushboolean(L, t != NULL);
    return 1;
}

/* handed_over(id) -> true once libcurl began sending a request added with
 * handover = true (false before: it is queued or connecting, nothing went
 * out); nil when the transfer is not in flight. */
static int multi_handed_over(lua_State *L)
{
    kl_multi *m = check_multi(L);
    lua_Integer id = luaL_checkinteger(L, 2);
    kl_transfer *t;
    int handed = -1;
    lock(m);
    lock_news(m);
    if (find(m->incoming, id) != NULL)
        handed = 0; /* not in libcurl yet */
    unlock_news(m);
    if (handed < 0 && (t = find(m->active, id)) != NULL)
        handed = t->handed_over;
    unlock(m);
    if (handed < 0)
        return 0;
    lua_pushboolean(L, handed);
    return 1;
}

/* progress(id) -> sent, to_send, received, to_receive (bytes; 0 when unknown),
 * or nothing when the transfer is not in flight. For uploads and downloads. */
static int multi_progress(lua_State *L)
{
    kl_multi *m = check_multi(L);
    lua_Integer id = luaL_checkinteger(L, 2);
    kl_transfer *t;
    curl_off_t n[4] = {0, 0, 0, 0};
    int known;
    lock(m);
    lock_news(m);
    known = find(m->incoming, id) != NULL; /* not in libcurl yet: nothing moved */
    unlock_news(m);
    if (!known && (t = find(m->active, id)) != NULL) {
        known = 1;
        n[0] = t->up_now;
        n[1] = t->up_total;
        n[2] = t->down_now;
        n[3] = t->down_total;
    }
    unlock(m);
    if (!known)
        return 0;
    lua_pushnumber(L, (lua_Number)n[0]);
    lua_pushnumber(L, (lua_Number)n[1]);
    lua_pushnumber(L, (lua_Number)n[2]);
    lua_pushnumber(L, (lua_Number)n[3]);
    return 4;
}

/* held() -> { id, ... }: transfers whose body waits to be released */
static int multi_held(lua_State *L)
{
    kl_multi *m = check_multi(L);
    kl_transfer *t;
    lua_Integer *ids;
    int n = 0, cap, i;
    lock(m);
    cap = m->active_count;
    ids = malloc((size_t)(cap > 0 ? cap : 1) * sizeof *ids);
    if (ids != NULL) {
        for (t = m->active; t != NULL && n < cap; t = t->next)
            if (t->holding)
                ids[n++] = t->id;
        m->new_holds = 0;
        lock_news(m);
        m->holds_news = 0;
        unlock_news(m);
    }
    unlock(m);
    if (ids == NULL)
        return luaL_error(L, "out of memory");
    lua_createtable(L, n, 0);
    for (i = 0; i < n; i++) {
        lua_pushinteger(L, ids[i]);
        lua_rawseti(L, -2, i + 1);
    }
    free(ids);
    return 1;
}

/* release(id, ok) -> true if the transfer was holding: ok lets its body go;
 * otherwise it ends at once, nothing of its body sent (reason "journal"). */
static int multi_release(lua_State *L)
{
    kl_multi *m = check_multi(L);
    lua_Integer id = luaL_checkinteger(L, 2);
    int ok = lua_toboolean(L, 3), was;
    kl_transfer *t;
    lock(m);
    t = find(m->active, id);
    was = t != NULL && t->holding;
    if (was) {
        kl_transfer_release(t, ok);
        lock_news(m);
        signal_pipe(m->poke[1], &m->poke_pending); /* libcurl has a body to send, or a transfer to end */
        unlock_news(m);
    }
    unlock(m);
    lua_pushboolean(L, was);
    return 1;
}

/* count() -> transfers added and not yet returned by perform or run, nor cancelled */
static int multi_count(lua_State *L)
{
    kl_multi *m = check_multi(L);
    lua_pushinteger(L, m->outstanding);
    return 1;
}

static void close_pipe(int fds[2])
{
    if (fds[0] >= 0) {
        close(fds[0]);
        close(fds[1]);
    }
    fds[0] = fds[1] = -1;
}

/* close and __close: idempotent. The I/O thread is stopped first, so the
 * rest runs alone. The pollable descriptor (pollfd), the wake pipe and the
 * ready pipe outlive close, quiet, until __gc: a host loop may still be
 * watching the descriptor when the client closes, and it must never see
 * EBADF, or a reused descriptor number, before it stops. */
static int multi_close(lua_State *L)
{
    kl_multi *m = luaL_checkudata(L, 1, KL_MULTI_MT);
    if (m->multi == NULL)
        return 0;
    stop_io(m);
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
    while (m->incoming != NULL) {
        kl_transfer *t = m->incoming;
        unlink_transfer(&m->incoming, t);
        kl_transfer_free(t);
    }
    m->active_count = m->outstanding = 0;
    kl_transfer_pool_free(&m->pool);
    curl_multi_cleanup(m->multi);
    kl_sockets_free(&m->sockets);
    drain_pipe(m->wake[0], &m->wake_pending);
    drain_pipe(m->ready[0], &m->ready_pending);
    close_pipe(m->poke);
    m->multi = NULL;
    while (m->profile_count > 0)
        kl_profile_free(m->profiles[--m->profile_count]);
    kl_credentials_forget_all(&m->credentials);
    kl_buffer_free(&m->log.text);
    kl_decoder_release(m->decoder); /* records still read keep it */
    m->decoder = NULL;
    return 0;
}

/* __gc: close, then the pollable descriptor and the pipes it watches. */
static int multi_gc(lua_State *L)
{
    kl_multi *m = luaL_checkudata(L, 1, KL_MULTI_MT);
    multi_close(L);
    kl_pollset_close(&m->pollset);
    close_pipe(m->wake);
    close_pipe(m->ready);
    close_pipe(m->poke); /* when multi_new failed before curl_multi_init */
    if (!m->locks_destroyed) {
        pthread_mutex_destroy(&m->lock);
        pthread_mutex_destroy(&m->news_lock);
        m->locks_destroyed = 1;
    }
    return 0;
}

static int multi_tostring(lua_State *L)
{
    kl_multi *m = luaL_checkudata(L, 1, KL_MULTI_MT);
    if (m->multi == NULL)
        lua_pushfstring(L, "kling.multi (closed): %p", (void *)m);
    else
        lua_pushfstring(L, "kling.multi (%d in flight): %p", m->outstanding, (void *)m);
    return 1;
}

/* pollfd([fds]) -> descriptor | nil, message: readable whenever perform()
 * has work: a transfer finished, a body waits for the journal, one of the
 * extra descriptors fds (a number or a list: journals' writers) is
 * readable, or wake() was called. For a host's event loop (a pollable
 * client, docs/design.md). */
static int multi_pollfd(lua_State *L)
{
    kl_multi *m = check_multi(L);
    int fds[KL_MAX_EXTRA_FDS], n = read_fds(L, 2, fds), i;
    int pfd = kl_pollset_fd(&m->pollset);
    if (pfd < 0) {
        lua_pushnil(L);
        lua_pushstring(L, "no pollable descriptor on this system (kling makes one with epoll, on Linux)");
        return 2;
    }
    if (m->wake[0] < 0 && kl_pipe(m->wake) != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot make a pipe: %s", strerror(errno));
        return 2;
    }
    if (kl_pollset_watch(&m->pollset, m->ready[0]) != 0 || kl_pollset_watch(&m->pollset, m->wake[0]) != 0)
        return luaL_error(L, "cannot watch kling's own pipes: %s", strerror(errno));
    for (i = 0; i < n; i++)
        if (kl_pollset_watch(&m->pollset, fds[i]) != 0)
            return luaL_error(L, "too many descriptors to watch");
    lua_pushinteger(L, pfd);
    return 1;
}

/* wake(): makes pollfd() readable until the next perform (the Lua layer has
 * a job to run); once, however often it is called meanwhile. */
static int multi_wake(lua_State *L)
{
    kl_multi *m = check_multi(L);
    signal_pipe(m->wake[1], &m->wake_pending);
    return 0;
}

/* timer() -> 0 when a finished transfer waits for perform, or nil: libcurl's
 * own timer is the I/O thread's, and nothing else needs a step. */
static int multi_timer(lua_State *L)
{
    kl_multi *m = check_multi(L);
    int waiting;
    lock_news(m);
    waiting = m->done != NULL;
    unlock_news(m);
    if (waiting)
        lua_pushnumber(L, 0);
    else
        lua_pushnil(L);
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
