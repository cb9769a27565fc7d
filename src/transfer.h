/* One HTTP exchange on a libcurl easy handle, built in plain C from a
 * kl_request (request.h: reading it from Lua may raise, and owns nothing),
 * so that no Lua error can leak a handle or a buffer. */
#ifndef KLING_TRANSFER_H
#define KLING_TRANSFER_H

#include <stdio.h>
#include <curl/curl.h>
#include <lua.h>

#include "buffer.h"
#include "credentials.h"
#include "records.h"
#include "request.h"

/* Finished transfers kept, with their easy handles and buffers, for the next
 * requests of their multi handle. */
#define KL_TRANSFER_POOL_MAX 64


/* Where verbose output goes: its owner's buffer, and the tokens that must
 * never reach it. */
typedef struct kl_log {
    kl_buffer text;
    const kl_secrets *secrets; /* the owner's credentials' (credentials.h) */
} kl_log;

typedef struct kl_transfer {
    struct kl_transfer *prev, *next;
    CURL *easy;
    struct kl_transfer_pool *pool; /* where this transfer goes once freed */
    const kl_profile *configured;  /* easy holds this profile's options as they are (NULL: reset it first) */
    lua_Integer id;
    struct curl_slist *headers;
    kl_buffer body;
    kl_buffer head;
    FILE *out;
    curl_mime *mime;
    /* a file upload: read from this descriptor (a regular file, its size
     * taken when opened); a file that changes size meanwhile is an error */
    int form_fd;
    long long form_size, form_pos;
    int file_changed;
    curl_off_t up_now, up_total, down_now, down_total; /* progress, for a caller's display */
    int to_file;
    curl_off_t written;
    int decode;
    char apart[KL_NAME_MAX], apart_key[KL_NAME_MAX]; /* see kl_request; "" when not apart */
    int want_headers;
    int follow;
    int too_large;
    int write_failed;
    int journal_refused; /* the journal could not record the hand-over: the body was never sent */
    int rewind_refused;  /* libcurl wanted to send a submit's body again (on_seek said no) */
    int handed_over;     /* libcurl is about to send (or has sent) the request */
    /* a held body (req->hold): sent by on_read once the owner releases it */
    char *upload;
    size_t upload_len, upload_pos;
    int holding;         /* the body waits for release */
    int released;
    int *new_holds;      /* the owner's count of transfers that began to hold */
    CURLcode result;
    char errbuf[CURL_ERROR_SIZE];
} kl_transfer;

typedef struct kl_transfer_pool {
    kl_transfer *free[KL_TRANSFER_POOL_MAX];
    int count;
    int single_use_handles; /* libcurl before 8.1.0: an easy handle serves one transfer (kl_transfer_pool_init) */
} kl_transfer_pool;

/* Sets up an empty pool for the libcurl the process runs with. */
void kl_transfer_pool_init(kl_transfer_pool *pool);

/* Appends to *list the header lines of a request: "Expect:" (no 100-continue
 * round trip), req's own headers, then auth_header (NULL: none). 0 when out
 * of memory; what was appended stays in *list for its owner to free. */
int kl_headers_build(struct curl_slist **list, const kl_request *req, const char *auth_header);

/* Builds a transfer, from pool when it has one (pool NULL: a new one), or
 * returns NULL with a message in err. auth_headers are
 * the owner's (indexed by KL_AUTH_*, entries may be NULL); log receives
 * redacted verbose output; new_holds is incremented when a held body starts
 * to wait for its release. */
kl_transfer *kl_transfer_new(const kl_request *req, lua_Integer id, kl_transfer_pool *pool,
                             const char *const *auth_headers, kl_log *log, int *new_holds, char *err,
                             size_t errlen);

/* Lets a held body go (ok), or aborts the transfer before it goes (!ok). */
void kl_transfer_release(kl_transfer *t, int ok);

/* Called once libcurl reports the transfer finished. */
void kl_transfer_finish(kl_transfer *t, CURLcode result);

/* Pushes the outcome as a table; decodes JSON with the decoder at decode_idx.
 * The headers (a table by lower-cased name) come only with an answer that
 * is not a 2xx whose body was read (and decoded, if asked), or if the
 * request wanted them: a successful call never pays for them. A 2xx answer
 * asked for apart is decoded by `apart` (records.h) when it is not NULL. */
void kl_transfer_push_result(lua_State *L, kl_transfer *t, int decode_idx, int keys_idx, kl_decoder *apart);

/* The easy handle must already be out of its multi handle. The transfer
 * goes back to its pool (when it has one with room), else it is freed. */
void kl_transfer_free(kl_transfer *t);

/* Frees the pooled transfers (before the profiles their handles use). */
void kl_transfer_pool_free(kl_transfer_pool *pool);

#endif
