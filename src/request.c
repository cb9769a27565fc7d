/* Reading a request from Lua into a kl_request (see request.h). */
#include "request.h"

#include <string.h>
#include <lauxlib.h>

#include "compat.h"
#include "keys.h"
#include "profile.h"

/* The largest size limit a Lua number carries exactly (2^53). */
#define KL_MAX_SIZE_LIMIT 9007199254740992.0

/* Longer timeouts are clamped: a year is "no practical limit". */
#define KL_MAX_TIMEOUT_SECONDS (86400.0 * 365)

/* The top_* functions check and pop the value of field `key` on top of the
 * stack; the field_* ones get it first. */
static const char *top_string(lua_State *L, const char *key, size_t *len)
{
    const char *s;
    size_t n;
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "request field '%s' must be a string", key);
    s = lua_tolstring(L, -1, &n);
    /* the table keeps the string alive after the pop */
    lua_pop(L, 1);
    if (len != NULL)
        *len = n;
    else if (strlen(s) != n)
        luaL_error(L, "request field '%s' contains a NUL byte", key);
    return s;
}

static const char *field_string(lua_State *L, int idx, const char *key, size_t *len)
{
    lua_getfield(L, idx, key);
    return top_string(L, key, len);
}

/* A string that libcurl puts into a request line or a header: one line. */
static const char *top_line(lua_State *L, const char *key)
{
    const char *s = top_string(L, key, NULL);
    if (s != NULL && strpbrk(s, "\r\n") != NULL)
        luaL_error(L, "request field '%s' must be one line of text", key);
    return s;
}

static const char *field_line(lua_State *L, int idx, const char *key)
{
    lua_getfield(L, idx, key);
    return top_line(L, key);
}

/* A field name for records.h: short, and no NUL inside. */
static const char *top_name(lua_State *L, const char *key)
{
    size_t len = 0;
    const char *s = top_string(L, key, &len);
    if (s != NULL && (len == 0 || len >= KL_NAME_MAX || strlen(s) != len))
        luaL_error(L, "request field '%s' must be a field name of 1 to %d bytes", key, KL_NAME_MAX - 1);
    return s;
}

static int top_bool(lua_State *L)
{
    int b = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return b;
}

static int field_bool(lua_State *L, int idx, const char *key)
{
    lua_getfield(L, idx, key);
    return top_bool(L);
}

static double top_number(lua_State *L, const char *key, double dflt)
{
    double v = dflt;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "request field '%s' must be a number", key);
        v = lua_tonumber(L, -1);
        if (!(v >= 0))
            luaL_error(L, "request field '%s' must not be negative", key);
    }
    lua_pop(L, 1);
    return v;
}

static double field_number(lua_State *L, int idx, const char *key, double dflt)
{
    lua_getfield(L, idx, key);
    return top_number(L, key, dflt);
}

/* A byte limit; converting a double outside size_t's range is undefined. */
static size_t field_size(lua_State *L, int idx, const char *key)
{
    double v = field_number(L, idx, key, 0);
    if (v > KL_MAX_SIZE_LIMIT)
        luaL_error(L, "request field '%s' is out of range (at most 2^53)", key);
    return (size_t)v;
}

/* Rounds up: a positive timeout under half a millisecond must not become 0,
 * which libcurl reads as "no timeout at all". */
static long seconds_to_ms(double s)
{
    double ms;
    if (s <= 0)
        return 0;
    if (s > KL_MAX_TIMEOUT_SECONDS)
        s = KL_MAX_TIMEOUT_SECONDS;
    ms = s * 1000.0;
    return ms < 1.0 ? 1L : (long)(ms + 0.999);
}

static void read_headers(lua_State *L, int idx, kl_request *req)
{
    int i, n;
    lua_getfield(L, idx, "headers");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    luaL_checktype(L, -1, LUA_TTABLE);
    n = (int)kling_rawlen(L, -1);
    if (n > KL_MAX_EXTRA_HEADERS)
        luaL_error(L, "at most %d request headers", KL_MAX_EXTRA_HEADERS);
    for (i = 1; i <= n; i++) {
        size_t len;
        const char *h;
        lua_rawgeti(L, -1, i);
        h = lua_tolstring(L, -1, &len);
        if (h == NULL || strlen(h) != len || strpbrk(h, "\r\n") != NULL)
            luaL_error(L, "request header %d must be one line of text", i);
        lua_pop(L, 1);
        req->headers[req->header_count++] = h;
    }
    lua_pop(L, 1);
}

/* auth = true (the API token) or "platform" (the upload token) */
static int read_auth(lua_State *L, int idx)
{
    int auth = KL_AUTH_NONE;
    lua_getfield(L, idx, "auth");
    if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "platform") == 0)
        auth = KL_AUTH_PLATFORM;
    else if (lua_toboolean(L, -1))
        auth = KL_AUTH_API;
    lua_pop(L, 1);
    return auth;
}

/* A multipart upload: form = { file = path | data = bytes, name = file name } */
static void read_form(lua_State *L, int idx, kl_request *req)
{
    int form;
    lua_getfield(L, idx, "form");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    luaL_checktype(L, -1, LUA_TTABLE);
    form = lua_gettop(L);
    req->form_file = field_string(L, form, "file", NULL);
    req->form_data = field_string(L, form, "data", &req->form_data_len);
    req->form_name = field_line(L, form, "name");
    if ((req->form_file == NULL) == (req->form_data == NULL))
        luaL_error(L, "request field 'form' needs exactly one of 'file' and 'data'");
    lua_pop(L, 1); /* the request table keeps the strings alive */
}

/* What changes from one call to the next, with or without a profile: read
 * on every request, so with the interned keys (keys.h). */
static void read_call(lua_State *L, int idx, int keys_idx, kl_request *req)
{
    kl_key_get(L, keys_idx, idx, KL_KEY_URL);
    req->url = top_line(L, "url");
    if (req->url == NULL)
        luaL_error(L, "request field 'url' is required");
    kl_key_get(L, keys_idx, idx, KL_KEY_BODY);
    req->body = top_string(L, "body", &req->body_len);
    kl_key_get(L, keys_idx, idx, KL_KEY_TIMEOUT);
    req->timeout_ms = seconds_to_ms(top_number(L, "timeout", 0));
    kl_key_get(L, keys_idx, idx, KL_KEY_FRESH_CONNECT);
    req->fresh_connect = top_bool(L);
    kl_key_get(L, keys_idx, idx, KL_KEY_VERBOSE);
    req->verbose = top_bool(L);
    kl_key_get(L, keys_idx, idx, KL_KEY_HANDOVER);
    req->handover = top_bool(L);
    kl_key_get(L, keys_idx, idx, KL_KEY_HOLD);
    req->hold = top_bool(L);
    if (req->hold && req->body == NULL)
        luaL_error(L, "request field 'hold' needs a body");
    kl_key_get(L, keys_idx, idx, KL_KEY_APART);
    req->apart = top_name(L, "apart");
    kl_key_get(L, keys_idx, idx, KL_KEY_APART_KEY);
    req->apart_key = top_name(L, "apart_key");
    if ((req->apart == NULL) != (req->apart_key == NULL))
        luaL_error(L, "request fields 'apart' and 'apart_key' go together");
}

void kl_request_read_shared(lua_State *L, int idx, kl_request *req)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    memset(req, 0, sizeof *req);
    req->user_agent = field_line(L, idx, "user_agent");
    req->cainfo = field_line(L, idx, "cainfo");
    req->capath = field_line(L, idx, "capath");
    req->proxy = field_line(L, idx, "proxy");
    read_headers(L, idx, req);
    req->connect_timeout_ms = seconds_to_ms(field_number(L, idx, "connect_timeout", 0));
    req->max_body = field_size(L, idx, "max_body");
    req->auth = read_auth(L, idx);
    req->decode = field_bool(L, idx, "decode");
    req->want_headers = field_bool(L, idx, "want_headers");
}

void kl_request_read(lua_State *L, int idx, int keys_idx, const kl_profile *profile,
                     kl_request *req)
{
    if (profile != NULL) {
        luaL_checktype(L, idx, LUA_TTABLE);
        *req = profile->shared;
        read_call(L, idx, keys_idx, req);
        return;
    }
    kl_request_read_shared(L, idx, req);
    read_call(L, idx, keys_idx, req);
    req->output = field_string(L, idx, "output", NULL);
    read_form(L, idx, req);
    req->follow = field_bool(L, idx, "follow");
    req->allow_downgrade = field_bool(L, idx, "allow_downgrade");
}

