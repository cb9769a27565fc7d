/* The credentials (the API token and the platform token) and their
 * redaction, together: kling.core keeps kling's only copies of the tokens,
 * as prepared Authorization headers, and keeps them out of every text it
 * hands out: libcurl's verbose trace and server text that the Lua layer
 * quotes in errors. A token is matched as bytes wherever it stands, whatever
 * the line around it looks like (HTTP/1.1 header, HTTP/2 pseudo-header log
 * line, echoed body). See docs/design.md, "The token". */
#ifndef KLING_CREDENTIALS_H
#define KLING_CREDENTIALS_H

#include <stddef.h>

#include "buffer.h"

#define KL_REDACTED "[redacted]"
#define KL_MAX_SECRETS 2

/* The texts to blank out; an entry with data NULL is unused. */
typedef struct kl_secrets {
    const char *data[KL_MAX_SECRETS];
    size_t len[KL_MAX_SECRETS];
} kl_secrets;

/* Offset of the first occurrence of needle in hay, or n when there is none
 * (also when m is 0 or longer than n). */
size_t kl_find(const char *hay, size_t n, const char *needle, size_t m);

/* Offset of the first occurrence of any secret in text (len when none); its
 * length goes to *match_len. */
size_t kl_find_secret(const char *text, size_t len, const kl_secrets *s, size_t *match_len);

/* Appends text to out with every occurrence of a secret replaced by
 * KL_REDACTED. s may be NULL. */
int kl_redact_append(kl_buffer *out, const char *text, size_t len, const kl_secrets *s);

/* When the line names an authorization header ("Authorization:",
 * "Proxy-Authorization:", "[authorization: ..." in libcurl's HTTP/2 log),
 * the offset just past its colon; otherwise 0. */
size_t kl_authorization_value(const char *line, size_t len);

/* Which of its owner's Authorization headers a request carries. */
enum { KL_AUTH_NONE = 0, KL_AUTH_API = 1, KL_AUTH_PLATFORM = 2 };

typedef struct kl_credentials {
    char *headers[3];   /* by KL_AUTH_*: "Authorization: Bearer <token>" (NULL: none) */
    kl_secrets secrets; /* the tokens' bytes within headers: what redaction blanks out */
} kl_credentials;

/* Keeps token (len bytes: one line of text) as credential `which`
 * (KL_AUTH_API or KL_AUTH_PLATFORM), forgetting the one it replaces. 1, or
 * 0 when out of memory. */
int kl_credentials_set(kl_credentials *c, int which, const char *token, size_t len);

/* Overwrites credential `which` before freeing it. libcurl keeps copies of
 * its own (the request it built from the header is in buffers it frees
 * without clearing): see docs/design.md. */
void kl_credentials_forget(kl_credentials *c, int which);

void kl_credentials_forget_all(kl_credentials *c);

#endif
