#include "easy_pool.h"

CURL *kl_easy_take(kl_easy_pool *pool)
{
    if (pool != NULL && pool->count > 0)
        return pool->free[--pool->count];
    return curl_easy_init();
}

void kl_easy_give(kl_easy_pool *pool, CURL *e)
{
    if (e == NULL)
        return;
    if (pool == NULL || pool->count == KL_EASY_POOL_MAX) {
        curl_easy_cleanup(e);
        return;
    }
    curl_easy_reset(e);
    pool->free[pool->count++] = e;
}

void kl_easy_pool_free(kl_easy_pool *pool)
{
    while (pool->count > 0)
        curl_easy_cleanup(pool->free[--pool->count]);
}
