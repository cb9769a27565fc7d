/* Easy handles kept for reuse by one multi handle: a request takes one
 * (curl_easy_init only when none is free) and gives it back reset, so a
 * steady stream of requests allocates no handle at all. curl_easy_reset
 * clears every option (the Authorization header list included) and keeps
 * only caches (DNS, TLS sessions); connections belong to the multi handle. */
#ifndef KLING_EASY_POOL_H
#define KLING_EASY_POOL_H

#include <curl/curl.h>

/* Handles kept at most: more than the usual number in flight, few enough
 * that a burst of thousands does not stay allocated. */
#define KL_EASY_POOL_MAX 64

typedef struct kl_easy_pool {
    CURL *free[KL_EASY_POOL_MAX];
    int count;
} kl_easy_pool;

/* A handle with default options, or NULL when out of memory. */
CURL *kl_easy_take(kl_easy_pool *pool);

/* Gives e back (out of its multi handle); cleaned up when the pool is full
 * or pool is NULL. */
void kl_easy_give(kl_easy_pool *pool, CURL *e);

/* Cleans up every kept handle. */
void kl_easy_pool_free(kl_easy_pool *pool);

#endif
