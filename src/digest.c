#include "digest.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <lauxlib.h>
#include <openssl/evp.h>

#include "compat.h"
#include "files.h"

/* Bytes read per read(2). */
#define KL_DIGEST_CHUNK (64 * 1024)

typedef struct kl_digest {
    int fd;              /* -1 once finished or closed */
    EVP_MD_CTX *ctx;
    long long size, done;
    char hex[2 * 32 + 1];
} kl_digest;

static void close_digest(kl_digest *d)
{
    if (d->fd >= 0)
        close(d->fd);
    d->fd = -1;
    if (d->ctx != NULL)
        EVP_MD_CTX_free(d->ctx);
    d->ctx = NULL;
}

/* digest_file(path) -> digest | nil, message: path must be a regular file */
static int digest_new(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char err[512];
    kl_digest *d = lua_newuserdata(L, sizeof *d);
    memset(d, 0, sizeof *d);
    d->fd = -1;
    luaL_getmetatable(L, KL_DIGEST_MT);
    lua_setmetatable(L, -2);
    d->fd = kl_open_regular(path, &d->size, err, sizeof err);
    if (d->fd < 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    d->ctx = EVP_MD_CTX_new();
    if (d->ctx == NULL || EVP_DigestInit_ex(d->ctx, EVP_sha256(), NULL) != 1) {
        close_digest(d);
        lua_pushnil(L);
        lua_pushstring(L, "cannot start a SHA-256 digest");
        return 2;
    }
    return 1;
}

/* d:step(max_bytes) -> false (more to read) | hex, size (done) | nil, message.
 * A file that ends early or grows while it is read is an error: it changed. */
static int digest_step(lua_State *L)
{
    kl_digest *d = luaL_checkudata(L, 1, KL_DIGEST_MT);
    lua_Integer budget = luaL_optinteger(L, 2, 4 * 1024 * 1024);
    unsigned char buf[KL_DIGEST_CHUNK];
    if (d->hex[0] != '\0') {
        lua_pushstring(L, d->hex);
        lua_pushnumber(L, (lua_Number)d->size);
        return 2;
    }
    if (d->fd < 0)
        return luaL_error(L, "attempt to use a closed kling.digest");
    while (budget > 0 && d->done < d->size) {
        long long want = d->size - d->done;
        ssize_t got;
        if (want > (long long)sizeof buf)
            want = (long long)sizeof buf;
        do
            got = read(d->fd, buf, (size_t)want);
        while (got < 0 && errno == EINTR);
        if (got <= 0) {
            close_digest(d);
            lua_pushnil(L);
            lua_pushstring(L, got < 0 ? strerror(errno) : "the file got shorter while it was read");
            return 2;
        }
        EVP_DigestUpdate(d->ctx, buf, (size_t)got);
        d->done += got;
        budget -= got;
    }
    if (d->done < d->size) {
        lua_pushboolean(L, 0);
        return 1;
    }
    {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0, i;
        char extra;
        ssize_t more = read(d->fd, &extra, 1);
        if (more != 0 || EVP_DigestFinal_ex(d->ctx, md, &n) != 1) {
            close_digest(d);
            lua_pushnil(L);
            lua_pushstring(L, more > 0 ? "the file grew while it was read" : "cannot finish the digest");
            return 2;
        }
        for (i = 0; i < n && 2 * i + 2 < sizeof d->hex; i++)
            snprintf(d->hex + 2 * i, 3, "%02x", md[i]);
        close_digest(d);
    }
    lua_pushstring(L, d->hex);
    lua_pushnumber(L, (lua_Number)d->size);
    return 2;
}

/* close, __gc and __close: idempotent */
static int digest_close(lua_State *L)
{
    close_digest(luaL_checkudata(L, 1, KL_DIGEST_MT));
    return 0;
}

void kl_digest_open(lua_State *L)
{
    static const luaL_Reg methods[] = {{"step", digest_step}, {"close", digest_close}, {NULL, NULL}};
    static const luaL_Reg metamethods[] = {
        {"__gc", digest_close},
#if LUA_VERSION_NUM >= 504
        {"__close", digest_close},
#endif
        {NULL, NULL}
    };
    kling_newclass(L, KL_DIGEST_MT, metamethods, methods);
    lua_pushcfunction(L, digest_new);
}
