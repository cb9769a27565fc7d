/* A batched answer decoded apart from the caller's Lua heap.
 *
 * A retrieve_batch answer carries up to 50 task records (17 to 30 KB of
 * JSON). Decoded by cjson in the caller's state it allocated about 50 KB in
 * one call no step budget can divide, and a collector in its sweep makes
 * every byte allocated pay for freeing earlier garbage: on LuaJIT, each step
 * over 1 ms of a paced game loop held one such decode (docs/design.md, "A
 * batched answer is decoded apart"). Here cjson decodes it in a private Lua
 * state (a decoder, one per client) whose heap holds only the answers being
 * read, and the caller gets the answer's top level with its list replaced
 * by a kling.records: each waiting job copies out its own record when it
 * runs, a piece at a time, within the budget of the step that runs it.
 *
 * The private state is touched in two ways only. What changes it (set-up,
 * decoding, freeing answers) runs inside a protected call of its own, so
 * that no raise there escapes. What reads it (copying a record out) neither
 * allocates in it nor grows its stack, so that a raise in the caller's
 * state meanwhile (out of memory) leaves it as it was. Both work above the
 * stack top they find, so that a finalizer the caller's collector runs in
 * the middle of a copy may read or decode too. */
#include "records.h"

#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <lualib.h>

#include "compat.h"
#include "json.h"

/* Stack slots the private state keeps free for copying out: two per level
 * of nesting (a table's key and value), cjson's depth limit at most. */
#define KL_COPY_DEPTH 66
#define KL_COPY_SLOTS (2 * KL_COPY_DEPTH + 8)

#define KL_DECODE_FIELD "kling.decode"

struct kl_decoder {
    lua_State *P;
    int refs;     /* the client's (or records()'s), and one per kling.records */
    int scratch;  /* a registry slot: the answer being copied out */
    int *dead;    /* lists to unreference at the next decode (see records_close) */
    size_t dead_count, dead_cap;
};

typedef struct record_id {
    const char *id; /* a string of the private state, kept by its record */
    size_t len;
    int index;
} record_id;

typedef struct kl_records {
    kl_decoder *decoder; /* NULL: closed */
    int list;            /* the list in the private state's registry */
    int count;           /* its elements */
    record_id *ids;      /* sorted (compare_ids) */
    int id_count;
} kl_records;

/* ---- the private state ---- */

typedef struct setup_call {
    const char *path, *cpath; /* the caller's package.path and package.cpath, or NULL */
    int scratch;
} setup_call;

static int setup(lua_State *P)
{
    setup_call *c = lua_touserdata(P, 1);
    luaL_openlibs(P);
    lua_getglobal(P, "package");
    if (c->path != NULL) {
        lua_pushstring(P, c->path);
        lua_setfield(P, -2, "path");
    }
    if (c->cpath != NULL) {
        lua_pushstring(P, c->cpath);
        lua_setfield(P, -2, "cpath");
    }
    lua_pop(P, 1);
    kl_json_open(P); /* encode, decode, null: the same settings as the caller's */
    lua_pushvalue(P, -2);
    lua_setfield(P, LUA_REGISTRYINDEX, KL_DECODE_FIELD);
    lua_pushboolean(P, 0);
    c->scratch = luaL_ref(P, LUA_REGISTRYINDEX);
    return 0;
}

static const char *package_string(lua_State *L, const char *name)
{
    const char *s = NULL;
    lua_getfield(L, -1, name);
    if (lua_type(L, -1) == LUA_TSTRING)
        s = lua_tostring(L, -1);
    lua_pop(L, 1); /* the package table keeps it */
    return s;
}

kl_decoder *kl_decoder_new(lua_State *L)
{
    setup_call c = {NULL, NULL, LUA_NOREF};
    kl_decoder *d;
    lua_State *P;
    lua_getglobal(L, "package");
    if (lua_type(L, -1) == LUA_TTABLE) {
        c.path = package_string(L, "path");
        c.cpath = package_string(L, "cpath");
    }
    d = calloc(1, sizeof *d);
    P = d != NULL ? luaL_newstate() : NULL;
    if (P == NULL || kling_cpcall(P, setup, &c) != 0) {
        if (P != NULL)
            lua_close(P);
        free(d);
        lua_pop(L, 1);
        return NULL;
    }
    lua_pop(L, 1);
    lua_settop(P, 0);
    d->P = P;
    d->refs = 1;
    d->scratch = c.scratch;
    return d;
}

void kl_decoder_release(kl_decoder *d)
{
    if (d == NULL || --d->refs > 0)
        return;
    lua_close(d->P);
    free(d->dead);
    free(d);
}

/* ---- decoding ---- */

typedef struct decode_call {
    kl_decoder *d;
    const char *text;
    size_t len;
    const char *list, *key;
    int listed;       /* the answer has the list */
    int ref;          /* the list, in the registry */
    int count;
    record_id *ids;   /* malloc'd here; the caller's from then on */
    int id_count;
} decode_call;

static int compare_ids(const void *a, const void *b)
{
    const record_id *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->id, y->id, n);
    if (c != 0)
        return c;
    return (x->len > y->len) - (x->len < y->len);
}

/* The list at the top: its elements that are tables with a non-empty
 * string at key, by that string. */
static void index_list(lua_State *P, decode_call *c)
{
    int i, list = lua_gettop(P);
    c->count = (int)kling_rawlen(P, list);
    lua_pushstring(P, c->key);
    c->ids = malloc(sizeof *c->ids * (size_t)(c->count > 0 ? c->count : 1));
    if (c->ids == NULL)
        luaL_error(P, "out of memory");
    for (i = 1; i <= c->count; i++) {
        lua_rawgeti(P, list, i);
        if (lua_type(P, -1) == LUA_TTABLE) {
            lua_pushvalue(P, list + 1);
            lua_rawget(P, -2);
            if (lua_type(P, -1) == LUA_TSTRING) {
                record_id *r = &c->ids[c->id_count];
                r->id = lua_tolstring(P, -1, &r->len);
                r->index = i;
                if (r->len > 0)
                    c->id_count++;
            }
            lua_pop(P, 1);
        }
        lua_pop(P, 1);
    }
    lua_pop(P, 1);
    qsort(c->ids, (size_t)c->id_count, sizeof *c->ids, compare_ids);
}

static int decode_apart(lua_State *P)
{
    decode_call *c = lua_touserdata(P, 1);
    kl_decoder *d = c->d;
    lua_settop(P, 0);
    while (d->dead_count > 0)
        luaL_unref(P, LUA_REGISTRYINDEX, d->dead[--d->dead_count]);
    lua_pushboolean(P, 0);
    lua_rawseti(P, LUA_REGISTRYINDEX, d->scratch); /* the last answer goes */
    lua_getfield(P, LUA_REGISTRYINDEX, KL_DECODE_FIELD);
    lua_pushlstring(P, c->text, c->len);
    lua_call(P, 1, 1);
    if (lua_type(P, 1) == LUA_TTABLE) {
        lua_getfield(P, 1, c->list);
        if (lua_type(P, -1) == LUA_TTABLE) {
            index_list(P, c);
            c->ref = luaL_ref(P, LUA_REGISTRYINDEX);
            c->listed = 1;
        }
        lua_settop(P, 1);
    }
    lua_rawseti(P, LUA_REGISTRYINDEX, d->scratch);
    /* room for copying out, which must not grow the stack itself */
    if (!lua_checkstack(P, KL_COPY_SLOTS + 8))
        luaL_error(P, "out of memory");
    return 0;
}

/* ---- copying out ---- */

static void copy_value(lua_State *L, lua_State *P, int idx, int depth);

static void copy_table(lua_State *L, lua_State *P, int idx, int depth)
{
    int narr = (int)kling_rawlen(P, idx), nrec = 0;
    if (depth > KL_COPY_DEPTH) { /* cjson's own limit is lower: never here */
        lua_pushnil(L);
        return;
    }
    luaL_checkstack(L, 3, "copying a record");
    lua_pushnil(P);
    while (lua_next(P, idx) != 0) {
        nrec++;
        lua_pop(P, 1);
    }
    lua_createtable(L, narr, nrec > narr ? nrec - narr : 0);
    lua_pushnil(P);
    while (lua_next(P, idx) != 0) {
        int top = lua_gettop(P);
        copy_value(L, P, top - 1, depth);
        copy_value(L, P, top, depth + 1);
        lua_rawset(L, -3);
        lua_pop(P, 1);
    }
}

static void copy_value(lua_State *L, lua_State *P, int idx, int depth)
{
    size_t len;
    const char *s;
    switch (lua_type(P, idx)) {
    case LUA_TSTRING:
        s = lua_tolstring(P, idx, &len);
        lua_pushlstring(L, s, len);
        break;
    case LUA_TNUMBER:
#if LUA_VERSION_NUM >= 503
        if (lua_isinteger(P, idx)) {
            lua_pushinteger(L, lua_tointeger(P, idx));
            break;
        }
#endif
        lua_pushnumber(L, lua_tonumber(P, idx));
        break;
    case LUA_TBOOLEAN:
        lua_pushboolean(L, lua_toboolean(P, idx));
        break;
    case LUA_TLIGHTUSERDATA: /* cjson.null, which is the caller's too */
        lua_pushlightuserdata(L, lua_touserdata(P, idx));
        break;
    case LUA_TTABLE:
        copy_table(L, P, idx, depth);
        break;
    default:
        lua_pushnil(L);
    }
}

/* ---- kling.records ---- */

static kl_records *check_records(lua_State *L)
{
    return luaL_checkudata(L, 1, KL_RECORDS_MT);
}

/* close and __gc: the list's memory goes at the decoder's next decode (or
 * when it closes), since a collection may run this in the middle of
 * another records' copying out. */
static int records_close(lua_State *L)
{
    kl_records *r = check_records(L);
    kl_decoder *d = r->decoder;
    if (d == NULL)
        return 0;
    r->decoder = NULL;
    free(r->ids);
    r->ids = NULL;
    if (r->list != LUA_NOREF && d->refs > 1) {
        if (d->dead_count == d->dead_cap) {
            size_t cap = d->dead_cap ? 2 * d->dead_cap : 16;
            int *dead = realloc(d->dead, cap * sizeof *dead);
            if (dead != NULL) {
                d->dead = dead;
                d->dead_cap = cap;
            }
        }
        if (d->dead_count < d->dead_cap) /* else it stays until the decoder closes */
            d->dead[d->dead_count++] = r->list;
    }
    kl_decoder_release(d);
    return 0;
}

static int records_count(lua_State *L)
{
    kl_records *r = check_records(L);
    lua_pushinteger(L, r->decoder != NULL ? r->count : 0);
    return 1;
}

/* records:get(id) -> a copy of the record whose key is id, or nil. (Of
 * records repeating an id, any one.) */
static int records_get(lua_State *L)
{
    kl_records *r = check_records(L);
    record_id want, *found;
    lua_State *P;
    int base;
    want.id = luaL_checklstring(L, 2, &want.len);
    if (r->decoder == NULL)
        return luaL_error(L, "records are closed");
    found = bsearch(&want, r->ids, (size_t)r->id_count, sizeof *r->ids, compare_ids);
    if (found == NULL) {
        lua_pushnil(L);
        return 1;
    }
    P = r->decoder->P;
    base = lua_gettop(P); /* 0, unless a finalizer reads records in the middle of a copy */
    if (!lua_checkstack(P, KL_COPY_SLOTS)) /* room made at decode: allocates nothing */
        return luaL_error(L, "out of memory");
    lua_rawgeti(P, LUA_REGISTRYINDEX, r->list);
    lua_rawgeti(P, -1, found->index);
    copy_value(L, P, base + 2, 1);
    lua_settop(P, base);
    return 1;
}

static int records_tostring(lua_State *L)
{
    kl_records *r = check_records(L);
    if (r->decoder == NULL)
        lua_pushstring(L, "kling.records (closed)");
    else
        lua_pushfstring(L, "kling.records (%d)", r->count);
    return 1;
}

/* The private state's error message (on its top), onto L. */
static void push_error(lua_State *L, lua_State *P)
{
    size_t n;
    const char *msg = lua_tolstring(P, -1, &n);
    if (msg != NULL)
        lua_pushlstring(L, msg, n);
    else
        lua_pushstring(L, "could not decode the answer");
}

static int is_name(lua_State *P, int idx, const char *name)
{
    size_t n;
    const char *s;
    if (lua_type(P, idx) != LUA_TSTRING)
        return 0;
    s = lua_tolstring(P, idx, &n);
    return n == strlen(name) && memcmp(s, name, n) == 0;
}

int kl_decoder_push(lua_State *L, kl_decoder *d, const char *text, size_t len, const char *list,
                    const char *key)
{
    decode_call c;
    kl_records *r;
    lua_State *P = d->P;
    int base = lua_gettop(P), answer, top;
    memset(&c, 0, sizeof c);
    c.d = d;
    c.text = text;
    c.len = len;
    c.list = list;
    c.key = key;
    c.ref = LUA_NOREF;
    /* made first, so that the list always has an owner to free it */
    r = lua_newuserdata(L, sizeof *r);
    memset(r, 0, sizeof *r);
    r->list = LUA_NOREF;
    luaL_getmetatable(L, KL_RECORDS_MT);
    lua_setmetatable(L, -2);
    if (kling_cpcall(P, decode_apart, &c) != 0) {
        free(c.ids);
        lua_pop(L, 1);
        push_error(L, P);
        lua_settop(P, base);
        return 0;
    }
    if (c.listed) {
        r->decoder = d;
        d->refs++;
        r->list = c.ref;
        r->count = c.count;
        r->ids = c.ids;
        r->id_count = c.id_count;
    }
    if (!lua_checkstack(P, KL_COPY_SLOTS)) /* room made by decode_apart: allocates nothing */
        return luaL_error(L, "out of memory"); /* the records free the list */
    lua_rawgeti(P, LUA_REGISTRYINDEX, d->scratch);
    answer = lua_gettop(P);
    if (!c.listed) {
        lua_pop(L, 1);
        copy_value(L, P, answer, 1);
        lua_settop(P, base);
        return 1;
    }
    /* the top level, with the list's field the records */
    top = lua_gettop(L);
    lua_createtable(L, 0, 4);
    lua_pushnil(P);
    while (lua_next(P, answer) != 0) {
        int k = lua_gettop(P) - 1;
        copy_value(L, P, k, 1);
        if (is_name(P, k, list))
            lua_pushvalue(L, top);
        else
            copy_value(L, P, k + 1, 2);
        lua_rawset(L, -3);
        lua_pop(P, 1);
    }
    lua_remove(L, top);
    lua_settop(P, base);
    return 1;
}

/* The decoder records() uses: one per Lua state, kept in its registry by
 * a userdata whose __gc lets go of it. */
#define KL_DECODER_MT "kling.decoder"
#define KL_OWN_DECODER "kling.records.decoder" /* the registry's field holding it */

static int decoder_gc(lua_State *L)
{
    kl_decoder **held = luaL_checkudata(L, 1, KL_DECODER_MT);
    kl_decoder_release(*held);
    *held = NULL;
    return 0;
}

/* The userdata at idx if it is a decoder's holder, else NULL. */
static kl_decoder **held_decoder(lua_State *L, int idx)
{
    void *p = lua_touserdata(L, idx);
    int same = 0;
    if (p == NULL || !lua_getmetatable(L, idx))
        return NULL;
    luaL_getmetatable(L, KL_DECODER_MT);
    same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same ? p : NULL;
}

static kl_decoder *own_decoder(lua_State *L)
{
    kl_decoder **held;
    lua_getfield(L, LUA_REGISTRYINDEX, KL_OWN_DECODER);
    held = held_decoder(L, -1);
    lua_pop(L, 1);
    if (held != NULL && *held != NULL)
        return *held;
    held = lua_newuserdata(L, sizeof *held);
    *held = NULL;
    luaL_getmetatable(L, KL_DECODER_MT);
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, KL_OWN_DECODER);
    *held = kl_decoder_new(L);
    return *held;
}

/* records(text, list, key) -> the answer (see kl_decoder_push), or nil and
 * the decoding error. */
static int records_decode(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    const char *list = luaL_checkstring(L, 2), *key = luaL_checkstring(L, 3);
    kl_decoder *d = own_decoder(L);
    if (d == NULL)
        return luaL_error(L, "cannot make a decoder (lua-cjson in a new Lua state)");
    if (!kl_decoder_push(L, d, text, len, list, key)) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    return 1;
}

static const luaL_Reg methods[] = {
    {"count", records_count},
    {"get", records_get},
    {"close", records_close},
    {NULL, NULL}
};

static const luaL_Reg metamethods[] = {
    {"__gc", records_close},
#if LUA_VERSION_NUM >= 504
    {"__close", records_close},
#endif
    {"__len", records_count},
    {"__tostring", records_tostring},
    {NULL, NULL}
};

void kl_records_open(lua_State *L)
{
    luaL_newmetatable(L, KL_DECODER_MT);
    lua_pushcfunction(L, decoder_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    kling_newclass(L, KL_RECORDS_MT, metamethods, methods);
    lua_pushcfunction(L, records_decode);
}
