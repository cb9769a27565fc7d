/* A growable byte buffer with a hard size limit, filled from libcurl
 * callbacks. It never touches the Lua state, so a callback cannot raise. */
#ifndef KLING_BUFFER_H
#define KLING_BUFFER_H

#include <stddef.h>

typedef struct kl_buffer {
    char *data;
    size_t len;
    size_t cap;
    size_t limit; /* 0: no limit */
} kl_buffer;

enum { KL_BUFFER_OK = 0, KL_BUFFER_NOMEM = -1, KL_BUFFER_FULL = -2 };

void kl_buffer_init(kl_buffer *b, size_t limit);
int kl_buffer_append(kl_buffer *b, const char *data, size_t len);
void kl_buffer_reset(kl_buffer *b);
void kl_buffer_free(kl_buffer *b);

#endif
