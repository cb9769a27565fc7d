/* A request as kling.core reads it from a Lua table: a plain struct whose
 * strings point into the table (or a profile), read before anything is
 * allocated, so that a bad field raises without leaking. transfer.c builds
 * the easy handle from it; profile.c keeps the fields every API request
 * shares. */
#ifndef KLING_REQUEST_H
#define KLING_REQUEST_H

#include <stddef.h>
#include <lua.h>

#define KL_MAX_EXTRA_HEADERS 16
#define KL_NAME_MAX 32 /* apart and apart_key, with their NUL */

typedef struct kl_profile kl_profile; /* profile.h */

typedef struct kl_request {
    const char *url;
    const char *body; /* NULL: GET */
    size_t body_len;
    const char *user_agent, *cainfo, *capath, *proxy, *output;
    const char *form_file;   /* a multipart upload streamed from this file ... */
    const char *form_data;   /* ... or of these bytes */
    size_t form_data_len;
    const char *form_name;   /* the part's file name */
    const char *headers[KL_MAX_EXTRA_HEADERS];
    int header_count;
    long timeout_ms, connect_timeout_ms;
    size_t max_body;  /* 0: unlimited */
    int auth;         /* KL_AUTH_*: which of the owner's Authorization headers to attach */
    int fresh_connect;
    int follow;       /* follow redirects (downloads only) */
    int allow_downgrade; /* let a redirect lead from https to plain http */
    int decode;       /* decode the body as JSON */
    int want_headers; /* the answer's headers even for a 2xx (otherwise only when it failed) */
    int verbose;
    int handover;     /* note when the request is handed over (billed submits) */
    int hold;         /* hold the body back until released (the journal's hand-over) */
    /* decode the answer apart (records.h): this field's list becomes a
     * kling.records, its elements found by the field apart_key */
    const char *apart, *apart_key;
    const kl_profile *profile; /* where the shared fields above came from, or NULL */
} kl_request;

/* Reads the request table at idx (its names interned at keys_idx: keys.h).
 * A body is text: the Lua layer encodes JSON once (kling.core.encode), so
 * there is one encoding path. With a profile, only url, body, timeout,
 * fresh_connect, handover, hold, verbose, apart and apart_key are read; the rest comes from
 * the profile. */
void kl_request_read(lua_State *L, int idx, int keys_idx, const kl_profile *profile, kl_request *req);

/* Reads the fields a profile shares (see profile.h): headers, auth,
 * user_agent, cainfo, capath, proxy, connect_timeout, max_body, decode,
 * want_headers. Its strings belong to the table until the profile copies them. */
void kl_request_read_shared(lua_State *L, int idx, kl_request *req);

#endif
