/* The yardstick for bench/engine.lua: the request kling's client:task(id)
 * makes, byte for byte on the wire (a POST of {"action":"retrieve","id":...}
 * with the same headers: bearer token, JSON types, Accept-Encoding, a
 * User-Agent of the same length; CURLOPT_NOSIGNAL as kling sets it),
 * done N times in a row by plain libcurl on one reused easy handle, the
 * answer kept in a growing buffer. Prints one line:
 *   raw <requests> <client CPU seconds> <wall seconds>
 * Not a test: it prints. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <curl/curl.h>

typedef struct {
    char *data;
    size_t len, cap;
} buffer;

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userp)
{
    buffer *b = userp;
    size_t n = size * nmemb;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        char *p;
        while (cap < b->len + n)
            cap *= 2;
        p = realloc(b->data, cap);
        if (p == NULL)
            return 0;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    return n;
}

static double cpu_seconds(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + (double)u.ru_stime.tv_sec
           + u.ru_stime.tv_usec / 1e6;
}

static double wall_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    const char *base = argc > 1 ? argv[1] : "http://127.0.0.1:8080";
    long n = argc > 2 ? atol(argv[2]) : 10000, i, failed = 0;
    char url[512], body[128];
    struct curl_slist *headers = NULL;
    buffer answer = {NULL, 0, 0};
    double cpu, wall;
    CURL *easy;
    snprintf(url, sizeof url, "%s/kling/tasks", base);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    easy = curl_easy_init();
    headers = curl_slist_append(headers, "Authorization: Bearer bench-token");
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Accept: application/json");
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &answer);
    curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L); /* as kling: no SIGPIPE dance per request */
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "kling-raw/0.1.0");
    cpu = cpu_seconds();
    wall = wall_seconds();
    for (i = 0; i < n; i++) {
        long status = 0;
        snprintf(body, sizeof body, "{\"action\":\"retrieve\",\"id\":\"bench-task\"}");
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
        answer.len = 0;
        if (curl_easy_perform(easy) != CURLE_OK
            || curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK || status != 200)
            failed++;
    }
    cpu = cpu_seconds() - cpu;
    wall = wall_seconds() - wall;
    printf("raw %ld %.6f %.6f%s\n", n, cpu, wall, failed ? " (some requests failed)" : "");
    curl_slist_free_all(headers);
    curl_easy_cleanup(easy);
    curl_global_cleanup();
    free(answer.data);
    return failed != 0;
}
