#include "profile.h"

#include <stdlib.h>
#include <string.h>

static int copy_string(kl_profile *p, int slot, const char **field)
{
    size_t n;
    if (*field == NULL)
        return 1;
    n = strlen(*field) + 1;
    p->strings[slot] = malloc(n);
    if (p->strings[slot] == NULL)
        return 0;
    memcpy(p->strings[slot], *field, n);
    *field = p->strings[slot];
    return 1;
}

kl_profile *kl_profile_new(const kl_request *req, const char *auth_header)
{
    kl_profile *p = calloc(1, sizeof *p);
    int ok;
    if (p == NULL)
        return NULL;
    p->shared = *req;
    p->shared.profile = p;
    ok = copy_string(p, 0, &p->shared.user_agent) && copy_string(p, 1, &p->shared.cainfo)
         && copy_string(p, 2, &p->shared.capath) && copy_string(p, 3, &p->shared.proxy)
         && kl_headers_build(&p->headers, req, auth_header);
    /* the header lines now live in p->headers; the Lua strings may go */
    p->shared.header_count = 0;
    if (!ok) {
        kl_profile_free(p);
        return NULL;
    }
    return p;
}

void kl_profile_free(kl_profile *p)
{
    struct curl_slist *l;
    int i;
    if (p == NULL)
        return;
    for (l = p->headers; l != NULL; l = l->next) {
        volatile char *c = l->data;
        while (*c)
            *c++ = 0;
    }
    curl_slist_free_all(p->headers);
    for (i = 0; i < 4; i++)
        free(p->strings[i]);
    free(p);
}
