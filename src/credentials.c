#include "credentials.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

size_t kl_find(const char *hay, size_t n, const char *needle, size_t m)
{
    size_t i;
    if (m == 0 || m > n)
        return n;
    for (i = 0; i + m <= n; i++) {
        const char *p = memchr(hay + i, needle[0], n - m + 1 - i);
        if (p == NULL)
            return n;
        i = (size_t)(p - hay);
        if (memcmp(p, needle, m) == 0)
            return i;
    }
    return n;
}

size_t kl_find_secret(const char *text, size_t len, const kl_secrets *s, size_t *match_len)
{
    size_t best = len;
    int i;
    *match_len = 0;
    for (i = 0; s != NULL && i < KL_MAX_SECRETS; i++) {
        size_t at;
        if (s->data[i] == NULL || s->len[i] == 0)
            continue;
        at = kl_find(text, len, s->data[i], s->len[i]);
        if (at < best || (at == best && best < len && s->len[i] > *match_len)) {
            best = at;
            *match_len = s->len[i];
        }
    }
    return best;
}

int kl_redact_append(kl_buffer *out, const char *text, size_t len, const kl_secrets *s)
{
    while (len > 0) {
        size_t n, at = kl_find_secret(text, len, s, &n);
        int rc = kl_buffer_append(out, text, at);
        if (rc != KL_BUFFER_OK || at == len)
            return rc;
        rc = kl_buffer_append(out, KL_REDACTED, sizeof KL_REDACTED - 1);
        if (rc != KL_BUFFER_OK)
            return rc;
        text += at + n;
        len -= at + n;
    }
    return KL_BUFFER_OK;
}

size_t kl_authorization_value(const char *line, size_t len)
{
    static const char word[] = "authorization";
    const size_t n = sizeof word - 1;
    size_t i, j;
    for (i = 0; i + n <= len; i++) {
        for (j = 0; j < n && tolower((unsigned char)line[i + j]) == word[j]; j++)
            ;
        if (j < n)
            continue;
        for (j = i + n; j < len && (line[j] == ' ' || line[j] == '\t'); j++)
            ;
        if (j < len && line[j] == ':')
            return j + 1;
    }
    return 0;
}

/* ---- the tokens ---- */

static const char AUTH_PREFIX[] = "Authorization: Bearer ";

void kl_credentials_forget(kl_credentials *c, int which)
{
    c->secrets.data[which - 1] = NULL;
    c->secrets.len[which - 1] = 0;
    if (c->headers[which] != NULL) {
        volatile char *p = c->headers[which];
        while (*p)
            *p++ = 0;
        free(c->headers[which]);
        c->headers[which] = NULL;
    }
}

void kl_credentials_forget_all(kl_credentials *c)
{
    kl_credentials_forget(c, KL_AUTH_API);
    kl_credentials_forget(c, KL_AUTH_PLATFORM);
}

int kl_credentials_set(kl_credentials *c, int which, const char *token, size_t len)
{
    char *header;
    kl_credentials_forget(c, which);
    header = malloc(sizeof AUTH_PREFIX + len);
    if (header == NULL)
        return 0;
    memcpy(header, AUTH_PREFIX, sizeof AUTH_PREFIX - 1);
    memcpy(header + sizeof AUTH_PREFIX - 1, token, len);
    header[sizeof AUTH_PREFIX - 1 + len] = '\0';
    c->headers[which] = header;
    c->secrets.data[which - 1] = header + sizeof AUTH_PREFIX - 1;
    c->secrets.len[which - 1] = len;
    return 1;
}
