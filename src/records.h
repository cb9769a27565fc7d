/* kling.records: the list of a batched answer, decoded apart from the
 * caller's Lua heap and copied out one record at a time (records.c). */
#ifndef KLING_RECORDS_H
#define KLING_RECORDS_H

#include <stddef.h>
#include <lua.h>

#define KL_RECORDS_MT "kling.records"

/* A private Lua state with lua-cjson, shared by a client and the records it
 * decoded; freed when the last of them lets go. */
typedef struct kl_decoder kl_decoder;

/* A decoder that loads cjson with L's package.path and package.cpath; NULL
 * when it cannot (then the caller decodes in its own state, as before). */
kl_decoder *kl_decoder_new(lua_State *L);

void kl_decoder_release(kl_decoder *d);

/* Decodes text with d. Pushes the answer onto L as kl_json_decode would,
 * except that when it is an object whose field `list` is a table, that
 * field is a kling.records whose elements are found by their field `key`.
 * Returns 1; or 0 with the decoding error's message pushed. Raises only
 * for L's own failures (out of memory). */
int kl_decoder_push(lua_State *L, kl_decoder *d, const char *text, size_t len, const char *list,
                    const char *key);

/* Registers kling.records's metatable; pushes records(text, list, key),
 * the same decoding with a decoder of its own (for callers without a
 * client, and the specs). */
void kl_records_open(lua_State *L);

#endif
