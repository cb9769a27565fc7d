/* Keeps the API token out of every text kling.core hands out: libcurl's
 * verbose trace and server text that the Lua layer quotes in errors. The
 * token is matched as bytes wherever it stands, whatever the line around it
 * looks like (HTTP/1.1 header, HTTP/2 pseudo-header log line, echoed body). */
#ifndef KLING_REDACT_H
#define KLING_REDACT_H

#include <stddef.h>

#include "buffer.h"

#define KL_REDACTED "[redacted]"

/* Offset of the first occurrence of needle in hay, or n when there is none
 * (also when m is 0 or longer than n). */
size_t kl_find(const char *hay, size_t n, const char *needle, size_t m);

/* Appends text to out with every occurrence of secret replaced by
 * KL_REDACTED. A NULL or empty secret appends text as it is. */
int kl_redact_append(kl_buffer *out, const char *text, size_t len, const char *secret, size_t secret_len);

/* When the line names an authorization header ("Authorization:",
 * "Proxy-Authorization:", "[authorization: ..." in libcurl's HTTP/2 log),
 * the offset just past its colon; otherwise 0. */
size_t kl_authorization_value(const char *line, size_t len);

#endif
