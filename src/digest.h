/* kling.digest: the SHA-256 of a local file, computed a slice at a time so
 * that hashing a 100 MB video never holds a step for long. Names a file's
 * content, so that a file shared by many jobs is uploaded once (the
 * journal's uploads table, lua/kling/journal.lua). OpenSSL's libcrypto
 * does the hashing. */
#ifndef KLING_DIGEST_H
#define KLING_DIGEST_H

#include <lua.h>

#define KL_DIGEST_MT "kling.digest"

/* Pushes the constructor kling.core.digest_file. */
void kl_digest_open(lua_State *L);

#endif
