/* Keeps the tokens (the API's and the platform's) out of every text
 * kling.core hands out: libcurl's verbose trace and server text that the Lua
 * layer quotes in errors. A token is matched as bytes wherever it stands,
 * whatever the line around it looks like (HTTP/1.1 header, HTTP/2
 * pseudo-header log line, echoed body). */
#ifndef KLING_REDACT_H
#define KLING_REDACT_H

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

#endif
