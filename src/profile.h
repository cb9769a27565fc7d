/* A request profile: the options that every request of one kind shares
 * (headers, which credential, TLS files, proxy, limits, decoding), read from
 * Lua once and kept in C. A request made with a profile carries only what
 * changes per call (URL, body, timeout, a few flags), and a pooled easy
 * handle that already holds the profile's options is reused without being
 * configured again (see kl_transfer_new). */
#ifndef KLING_PROFILE_H
#define KLING_PROFILE_H

#include <curl/curl.h>

#include "transfer.h"

/* Profiles one multi handle keeps (a client makes one). */
#define KL_MAX_PROFILES 16

struct kl_profile {
    kl_request shared;          /* url, body and the per-call flags unset */
    char *strings[4];           /* owned copies behind shared's user_agent, cainfo, capath, proxy */
    struct curl_slist *headers; /* "Expect:", the profile's headers, its Authorization header */
};

/* A profile from the shared fields of req (its strings are copied) and the
 * Authorization header line of its credential (NULL: none). NULL when out
 * of memory. */
kl_profile *kl_profile_new(const kl_request *req, const char *auth_header);

/* Frees a profile that no transfer uses any more; its header lines (the
 * token among them) are overwritten first. */
void kl_profile_free(kl_profile *p);

#endif
