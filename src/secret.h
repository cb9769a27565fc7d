/* Secrets made and compared by kling.core: random tokens from the operating
 * system's CSPRNG, and comparisons that take the same time wherever the
 * inputs differ (a webhook token must not be guessable byte by byte). */
#ifndef KLING_SECRET_H
#define KLING_SECRET_H

#include <stddef.h>
#include <lua.h>

/* Fills buf with n random bytes from the OS; returns 0, or -1 (errno set). */
int kl_random_bytes(unsigned char *buf, size_t n);

/* Writes 2n hex digits and a NUL for n random bytes into out (2n+1 bytes). */
int kl_random_hex(char *out, size_t n);

/* Pushes kling.core.random_token and kling.core.secret_equal into the table on top. */
void kl_secret_open(lua_State *L);

#endif
