/* JSON through lua-cjson. kling.core takes a private instance (cjson.new) so its
 * settings for untrusted input never change the caller's own require "cjson". */
#ifndef KLING_JSON_H
#define KLING_JSON_H

#include <stddef.h>
#include <lua.h>

/* Pushes the private instance's encode, decode and null, in that order. */
void kl_json_open(lua_State *L);

/* Encodes the value at value_idx with the encoder at encode_idx. Pushes the JSON
 * text and returns 1, or pushes cjson's message and returns 0. */
int kl_json_encode(lua_State *L, int encode_idx, int value_idx);

/* Decodes text with the decoder at decode_idx. Pushes the value and returns 1,
 * or pushes cjson's message (it names the position) and returns 0. */
int kl_json_decode(lua_State *L, int decode_idx, const char *text, size_t len);

/* Removes in place every field whose value is JSON null (the value at
 * null_idx) from the table at idx and from the tables in it (both indexes
 * absolute stack positions), down to
 * KL_JSON_MAX_DEPTH levels (deeper ones, or a cycle, are left as they are). */
void kl_json_strip_nulls(lua_State *L, int idx, int null_idx);

#endif
