#include "buffer.h"

#include <stdlib.h>
#include <string.h>

void kl_buffer_init(kl_buffer *b, size_t limit)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->limit = limit;
}

int kl_buffer_append(kl_buffer *b, const char *data, size_t len)
{
    size_t need;
    if (len == 0)
        return KL_BUFFER_OK;
    if (b->limit && (len > b->limit || b->len > b->limit - len))
        return KL_BUFFER_FULL;
    need = b->len + len;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        char *grown;
        while (cap < need)
            cap = cap > ((size_t)-1) / 2 ? need : cap * 2;
        if (b->limit && cap > b->limit)
            cap = b->limit;
        grown = realloc(b->data, cap);
        if (grown == NULL)
            return KL_BUFFER_NOMEM;
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len = need;
    return KL_BUFFER_OK;
}

void kl_buffer_reset(kl_buffer *b)
{
    b->len = 0;
}

void kl_buffer_free(kl_buffer *b)
{
    free(b->data);
    kl_buffer_init(b, b->limit);
}
