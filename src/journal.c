#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <sqlite3.h>
#include <lauxlib.h>

#include "compat.h"
#include "journal_writer.h"
#include "owners.h"
#include "statements.h"

/* How long a statement waits for another process's write lock. */
#define KL_BUSY_TIMEOUT_MS 10000
/* Outcomes handed to Lua per completed() call, at most. */
#define KL_MAX_OUTCOMES 256
/* Values per staged statement, at most. */
#define KL_MAX_VALUES 16

typedef struct kl_journal {
    sqlite3 *db;           /* the Lua thread's connection: reads, and the writes of callers outside jobs */
    kl_statements cache;   /* its prepared statements */
    kl_writer *writer;     /* the writes of jobs: committed on the writer's thread (from start() on) */
    kl_owner owner;        /* this handle's identity and its lock (from start() on) */
    char *path;
} kl_journal;

/* ---- statements ---- */

/* remove_lock: the owner's record is gone, so its lock file may go too;
 * otherwise the file stays, unlocked, for the next prober to find dead. */
static int close_journal(kl_journal *j, int remove_lock)
{
    int rc = SQLITE_OK;
    if (j->writer != NULL) {
        kl_writer_stop(j->writer); /* commits what was staged first */
        j->writer = NULL;
    }
    kl_owner_release(&j->owner, remove_lock);
    free(j->path);
    j->path = NULL;
    if (j->db == NULL)
        return rc;
    kl_statements_free(&j->cache);
    rc = sqlite3_close(j->db);
    j->db = NULL;
    return rc;
}

static kl_journal *check_journal(lua_State *L)
{
    kl_journal *j = luaL_checkudata(L, 1, KL_JOURNAL_MT);
    if (j->db == NULL)
        luaL_error(L, "attempt to use a closed kling.journal");
    return j;
}

/* A journal whose writer and owner run (see journal_start). */
static kl_journal *check_started(lua_State *L)
{
    kl_journal *j = check_journal(L);
    if (j->writer == NULL)
        luaL_error(L, "kling.journal: start() first");
    return j;
}

static int push_db_error(lua_State *L, sqlite3 *db, const char *what)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", what, db ? sqlite3_errmsg(db) : "out of memory");
    return 2;
}

/* Before the Lua thread's connection runs anything outside a transaction
 * of its own, the writer finishes what jobs staged: a read sees every write
 * made before it, and a write of its own never waits on the writer's lock. */
static void let_writer_finish(kl_journal *j)
{
    if (j->writer != NULL && sqlite3_get_autocommit(j->db))
        kl_writer_barrier(j->writer);
}

/* The Lua thread's statement for sql. */
static sqlite3_stmt *statement(kl_journal *j, const char *sql)
{
    let_writer_finish(j);
    return kl_statement(&j->cache, sql);
}

/* The Lua value at idx as a journal value (nil: NULL; a boolean: 0 or 1; a
 * number with an exact integer value: INTEGER). Raises for other types.
 * Text points into the Lua string: copy it before the value is popped. */
static void to_value(lua_State *L, int idx, kl_value *v)
{
    memset(v, 0, sizeof *v);
    switch (lua_type(L, idx)) {
    case LUA_TNIL: v->type = SQLITE_NULL; break;
    case LUA_TBOOLEAN:
        v->type = SQLITE_INTEGER;
        v->i = lua_toboolean(L, idx);
        break;
    case LUA_TNUMBER: {
        lua_Number n = lua_tonumber(L, idx);
        if (n >= -9007199254740992.0 && n <= 9007199254740992.0 && n == (lua_Number)(sqlite3_int64)n) {
            v->type = SQLITE_INTEGER;
            v->i = (sqlite3_int64)n;
        } else {
            v->type = SQLITE_FLOAT;
            v->d = (double)n;
        }
        break;
    }
    case LUA_TSTRING:
        v->type = SQLITE_TEXT;
        v->text = lua_tolstring(L, idx, &v->len);
        break;
    default:
        luaL_error(L, "cannot store a %s in the journal", luaL_typename(L, idx));
    }
}

/* Binds the Lua values from index first on; nil binds NULL. */
static int bind_args(lua_State *L, sqlite3_stmt *stmt, int first)
{
    int i, n = lua_gettop(L) - first + 1, rc = SQLITE_OK;
    if (n > sqlite3_bind_parameter_count(stmt))
        return luaL_error(L, "%d values for %d parameters", n, sqlite3_bind_parameter_count(stmt));
    for (i = 1; i <= n && rc == SQLITE_OK; i++) {
        kl_value v;
        to_value(L, first + i - 1, &v);
        switch (v.type) {
        case SQLITE_INTEGER: rc = sqlite3_bind_int64(stmt, i, v.i); break;
        case SQLITE_FLOAT: rc = sqlite3_bind_double(stmt, i, v.d); break;
        case SQLITE_TEXT: rc = sqlite3_bind_text(stmt, i, v.text, (int)v.len, SQLITE_TRANSIENT); break;
        default: rc = sqlite3_bind_null(stmt, i);
        }
    }
    return rc;
}

static void push_column(lua_State *L, sqlite3_stmt *stmt, int c)
{
    switch (sqlite3_column_type(stmt, c)) {
    case SQLITE_INTEGER: lua_pushinteger(L, (lua_Integer)sqlite3_column_int64(stmt, c)); break;
    case SQLITE_FLOAT: lua_pushnumber(L, sqlite3_column_double(stmt, c)); break;
    case SQLITE_NULL: lua_pushnil(L); break;
    default:
        lua_pushlstring(L, (const char *)sqlite3_column_text(stmt, c), (size_t)sqlite3_column_bytes(stmt, c));
    }
}

/* query(sql, ...) -> { row, ... } | nil, message. Each row maps column names
 * to values; NULL columns are absent. */
static int journal_query(lua_State *L)
{
    kl_journal *j = check_journal(L);
    sqlite3_stmt *stmt = statement(j, luaL_checkstring(L, 2));
    int rc, row = 0;
    if (stmt == NULL)
        return push_db_error(L, j->db, "cannot prepare a journal statement");
    if (bind_args(L, stmt, 3) != SQLITE_OK)
        return push_db_error(L, j->db, "cannot bind a journal value");
    lua_newtable(L);
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        int c, n = sqlite3_column_count(stmt);
        lua_createtable(L, 0, n);
        for (c = 0; c < n; c++) {
            push_column(L, stmt, c);
            lua_setfield(L, -2, sqlite3_column_name(stmt, c));
        }
        lua_rawseti(L, -2, ++row);
    }
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE)
        return push_db_error(L, j->db, "journal read failed");
    return 1;
}

/* run(sql, ...) -> changes | nil, message (statements that return no rows) */
static int journal_run(lua_State *L)
{
    kl_journal *j = check_journal(L);
    sqlite3_stmt *stmt = statement(j, luaL_checkstring(L, 2));
    int rc;
    if (stmt == NULL)
        return push_db_error(L, j->db, "cannot prepare a journal statement");
    if (bind_args(L, stmt, 3) != SQLITE_OK)
        return push_db_error(L, j->db, "cannot bind a journal value");
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
        ;
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE)
        return push_db_error(L, j->db, "journal write failed");
    lua_pushinteger(L, sqlite3_changes(j->db));
    return 1;
}

/* exec(sql) -> true | nil, message: several statements, no values (the schema) */
static int journal_exec(lua_State *L)
{
    kl_journal *j = check_journal(L);
    char *msg = NULL;
    let_writer_finish(j);
    if (sqlite3_exec(j->db, luaL_checkstring(L, 2), NULL, NULL, &msg) != SQLITE_OK) {
        lua_pushnil(L);
        lua_pushfstring(L, "journal: %s", msg ? msg : sqlite3_errmsg(j->db));
        sqlite3_free(msg);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* ---- the writer's statements (see journal_writer.h) ---- */

/* stage(sql, ...) -> seq: a write handed to the writer at the next publish() */
static int journal_stage(lua_State *L)
{
    kl_journal *j = check_started(L);
    const char *sql = luaL_checkstring(L, 2);
    kl_value values[KL_MAX_VALUES];
    int i, n = lua_gettop(L) - 2;
    long long seq;
    if (n > KL_MAX_VALUES)
        return luaL_error(L, "%d values for one journal statement (at most %d)", n, KL_MAX_VALUES);
    for (i = 0; i < n; i++)
        to_value(L, i + 3, &values[i]);
    seq = kl_writer_stage(j->writer, sql, values, n);
    if (seq == 0)
        return luaL_error(L, "out of memory");
    lua_pushinteger(L, (lua_Integer)seq);
    return 1;
}

static int journal_publish(lua_State *L)
{
    kl_writer_publish(check_started(L)->writer);
    return 0;
}

/* completed([max]) -> { seq, outcome, seq, outcome, ... }, oldest first:
 * outcome is the count of rows changed (committed) or an error message. */
static int journal_completed(lua_State *L)
{
    kl_journal *j = check_started(L);
    lua_Integer max = luaL_optinteger(L, 2, KL_MAX_OUTCOMES);
    kl_outcome out[KL_MAX_OUTCOMES];
    int i, n = kl_writer_take(j->writer, out, max < 1 ? 1 : max > KL_MAX_OUTCOMES ? KL_MAX_OUTCOMES : (int)max);
    lua_createtable(L, 2 * n, 0);
    for (i = 0; i < n; i++) {
        lua_pushinteger(L, (lua_Integer)out[i].seq);
        lua_rawseti(L, -2, 2 * i + 1);
        if (out[i].ok)
            lua_pushinteger(L, out[i].changes);
        else
            lua_pushstring(L, out[i].error);
        lua_rawseti(L, -2, 2 * i + 2);
    }
    return 1;
}

/* barrier(): publishes, and returns once the writer has committed it all */
static int journal_barrier(lua_State *L)
{
    kl_writer_barrier(check_started(L)->writer);
    return 0;
}

/* fd() -> a descriptor that is readable while outcomes wait (for poll) */
static int journal_fd(lua_State *L)
{
    lua_pushinteger(L, kl_writer_fd(check_started(L)->writer));
    return 1;
}

/* identity() -> { owner =, lock_path =, pid =, boot_id = }: what this
 * handle records of itself in the owners table (owners.h) */
static int journal_identity(lua_State *L)
{
    kl_journal *j = check_started(L);
    lua_createtable(L, 0, 4);
    lua_pushstring(L, j->owner.id);
    lua_setfield(L, -2, "owner");
    lua_pushstring(L, j->owner.lock_path);
    lua_setfield(L, -2, "lock_path");
    lua_pushinteger(L, (lua_Integer)getpid());
    lua_setfield(L, -2, "pid");
    lua_pushstring(L, kl_boot_id());
    lua_setfield(L, -2, "boot_id");
    return 1;
}

static int journal_owner(lua_State *L)
{
    kl_journal *j = check_started(L);
    lua_pushstring(L, j->owner.id);
    return 1;
}

static int valid_owner(const char *id, size_t len)
{
    size_t i;
    if (len != 2 * KL_OWNER_BYTES)
        return 0;
    for (i = 0; i < len; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return 0;
    return 1;
}

/* owner_alive(id [, lock_path, pid, boot_id]) -> boolean: the last three as
 * the owner recorded them; without them, its lock file is looked for where
 * a journal without owner records put it. */
static int journal_owner_alive(lua_State *L)
{
    kl_journal *j = check_started(L);
    size_t len;
    const char *id = luaL_checklstring(L, 2, &len);
    const char *lock_path = luaL_optstring(L, 3, NULL);
    long pid = (long)luaL_optinteger(L, 4, 0);
    const char *boot_id = luaL_optstring(L, 5, NULL);
    lua_pushboolean(L, valid_owner(id, len) && kl_owner_alive(&j->owner, id, lock_path, pid, boot_id));
    return 1;
}

/* close([remove_lock]), __gc and __close: idempotent. remove_lock: the
 * owner's record was deleted, so its lock file goes too (a handle closed by
 * the collector leaves it, unlocked: the next prober finds it dead). */
static int journal_close(lua_State *L)
{
    kl_journal *j = luaL_checkudata(L, 1, KL_JOURNAL_MT);
    close_journal(j, lua_type(L, 2) == LUA_TBOOLEAN && lua_toboolean(L, 2));
    return 0;
}

static int journal_tostring(lua_State *L)
{
    kl_journal *j = luaL_checkudata(L, 1, KL_JOURNAL_MT);
    lua_pushfstring(L, "kling.journal (%s): %p", j->db ? "open" : "closed", (void *)j);
    return 1;
}

/* WAL: readers never wait for the writer. FULL: a commit is on disk when it
 * returns; NORMAL: it is in the OS's hands (safe from a process crash, not
 * from power loss), without an fsync per commit. */
static const char *const SETUP_FULL = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;";
static const char *const SETUP_NORMAL = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;";
/* The writer's connection: the file is already in WAL mode. */
static const char *const WRITER_FULL = "PRAGMA synchronous = FULL;";
static const char *const WRITER_NORMAL = "PRAGMA synchronous = NORMAL;";

/* Switching to WAL needs a lock that SQLite does not wait for with the busy
 * handler (two processes opening a new journal at once): retry it here. */
static int setup(sqlite3 *db, const char *sql)
{
    struct timespec pause = {0, 10 * 1000 * 1000};
    int rc, tries;
    for (tries = 0; tries < KL_BUSY_TIMEOUT_MS / 10; tries++) {
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
        if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
            return rc;
        nanosleep(&pause, NULL);
    }
    return rc;
}

/* The file the journal will be, made 0600 when it does not exist yet: it
 * holds callback secrets and request URLs, and SQLite gives its -wal and
 * -shm files the database's own permissions. 0, or -1 with errno. */
static int create_private(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno == EEXIST ? 0 : -1;
    close(fd);
    return 0;
}

/* journal(path) -> handle | nil, message: the connection alone. Nothing is
 * written until start(): journal.lua first makes sure the file is a
 * journal (a database of another application is left untouched). */
static int journal_new(lua_State *L)
{
    size_t len;
    const char *path = luaL_checklstring(L, 1, &len);
    struct stat st;
    kl_journal *j = lua_newuserdata(L, sizeof *j);
    memset(j, 0, sizeof *j);
    j->owner.lock_fd = -1;
    luaL_getmetatable(L, KL_JOURNAL_MT);
    lua_setmetatable(L, -2);
    if (strlen(path) != len) {
        lua_pushnil(L);
        lua_pushstring(L, "a journal path cannot contain a NUL byte");
        return 2;
    }
    if (create_private(path) != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot create %s: %s", path, strerror(errno));
        return 2;
    }
    if (sqlite3_open_v2(path, &j->db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot open %s: %s", path, j->db ? sqlite3_errmsg(j->db) : "out of memory");
        close_journal(j, 0);
        return 2;
    }
    j->cache.db = j->db;
    sqlite3_busy_timeout(j->db, KL_BUSY_TIMEOUT_MS);
    if (stat(path, &st) == 0 && st.st_nlink > 1) {
        /* SQLite keeps the write-ahead log beside the name a file was
         * opened by: two names would be two logs, and one client would not
         * see the other's entries (a key billed twice) */
        lua_pushnil(L);
        lua_pushfstring(L, "%s has %d names (hard links); a journal must have one, since SQLite keeps its "
                        "write-ahead log beside the name it is opened by (a symbolic link is fine)", path,
                        (int)st.st_nlink);
        close_journal(j, 0);
        return 2;
    }
    j->path = malloc(len + 1);
    if (j->path == NULL) {
        close_journal(j, 0);
        return luaL_error(L, "out of memory");
    }
    memcpy(j->path, path, len + 1);
    return 1;
}

/* start(["full" | "normal"]) -> true | nil, message: WAL mode, the writer
 * thread and this handle's owner lock. */
static int journal_start(lua_State *L)
{
    kl_journal *j = check_journal(L);
    static const char *const syncs[] = {"full", "normal", NULL};
    int sync = luaL_checkoption(L, 2, "full", syncs);
    char err[512];
    if (j->writer != NULL)
        return luaL_error(L, "kling.journal: started already");
    if (setup(j->db, sync == 0 ? SETUP_FULL : SETUP_NORMAL) != SQLITE_OK) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot use %s as a journal: %s", j->path, sqlite3_errmsg(j->db));
        return 2;
    }
    if (kl_owner_take(&j->owner, j->path, err, sizeof err) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    j->writer = kl_writer_start(j->path, sync == 0 ? WRITER_FULL : WRITER_NORMAL, KL_BUSY_TIMEOUT_MS, err,
                                sizeof err);
    if (j->writer == NULL) {
        kl_owner_release(&j->owner, 1);
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static const luaL_Reg methods[] = {
    {"query", journal_query},
    {"run", journal_run},
    {"exec", journal_exec},
    {"stage", journal_stage},
    {"publish", journal_publish},
    {"completed", journal_completed},
    {"barrier", journal_barrier},
    {"fd", journal_fd},
    {"start", journal_start},
    {"owner", journal_owner},
    {"identity", journal_identity},
    {"owner_alive", journal_owner_alive},
    {"close", journal_close},
    {NULL, NULL}
};

static const luaL_Reg metamethods[] = {
    {"__gc", journal_close},
#if LUA_VERSION_NUM >= 504
    {"__close", journal_close},
#endif
    {"__tostring", journal_tostring},
    {NULL, NULL}
};

void kl_journal_open(lua_State *L)
{
    (void)kl_boot_id(); /* read once, before any thread could race for it */
    kling_newclass(L, KL_JOURNAL_MT, metamethods, methods);
    lua_pushcfunction(L, journal_new);
}
