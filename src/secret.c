#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <lauxlib.h>

/* /dev/urandom is the portable way to the OS's CSPRNG (getrandom(2) is
 * Linux-only); a read may return short, so loop. */
int kl_random_bytes(unsigned char *buf, size_t n)
{
    int fd;
    do {
        fd = open("/dev/urandom", O_RDONLY);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return -1;
    while (n > 0) {
        ssize_t got = read(fd, buf, n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            close(fd);
            if (got == 0)
                errno = EIO;
            return -1;
        }
        buf += got;
        n -= (size_t)got;
    }
    close(fd);
    return 0;
}

int kl_random_hex(char *out, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char bytes[64];
    size_t i;
    if (n > sizeof bytes || kl_random_bytes(bytes, n) != 0)
        return -1;
    for (i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = '\0';
    return 0;
}

/* random_token([bytes = 16]) -> hex string | nil, message */
static int secret_random_token(lua_State *L)
{
    char hex[129];
    lua_Integer n = luaL_optinteger(L, 1, 16);
    luaL_argcheck(L, n >= 1 && n <= 64, 1, "between 1 and 64 bytes");
    if (kl_random_hex(hex, (size_t)n) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, "cannot read the system's random source");
        return 2;
    }
    lua_pushstring(L, hex);
    return 1;
}

/* secret_equal(a, b) -> boolean, in time that depends only on the lengths */
static int secret_equal(lua_State *L)
{
    size_t la, lb, i;
    const char *a = luaL_checklstring(L, 1, &la);
    const char *b = luaL_checklstring(L, 2, &lb);
    unsigned char diff = la != lb;
    for (i = 0; i < la && i < lb; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    lua_pushboolean(L, diff == 0);
    return 1;
}

void kl_secret_open(lua_State *L)
{
    lua_pushcfunction(L, secret_random_token);
    lua_setfield(L, -2, "random_token");
    lua_pushcfunction(L, secret_equal);
    lua_setfield(L, -2, "secret_equal");
}
