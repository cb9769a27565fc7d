#include "sockets.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"

static int find(const kl_sockets *s, curl_socket_t fd)
{
    int i;
    for (i = 0; i < s->count; i++)
        if (s->fds[i].fd == fd)
            return i;
    return -1;
}

/* Room for one more watched descriptor. */
static int reserve(kl_sockets *s)
{
    int cap;
    struct pollfd *fds;
    if (s->count + 1 <= s->cap)
        return 1;
    cap = s->cap ? s->cap * 2 : 16;
    fds = realloc(s->fds, (size_t)cap * sizeof *fds);
    if (fds == NULL)
        return 0;
    s->fds = fds;
    s->cap = cap;
    return 1;
}

static short poll_events(int what)
{
    return (short)(((what & CURL_POLL_IN) ? POLLIN : 0) | ((what & CURL_POLL_OUT) ? POLLOUT : 0));
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    kl_sockets *s = userp;
    int i = find(s, fd);
    (void)easy;
    (void)socketp;
    if (what == CURL_POLL_REMOVE) {
        if (i >= 0)
            s->fds[i] = s->fds[--s->count];
        return 0;
    }
    if (i < 0) {
        if (!reserve(s))
            return -1; /* libcurl fails the transfer that asked */
        i = s->count++;
        s->fds[i].fd = fd;
    }
    s->fds[i].events = poll_events(what);
    s->fds[i].revents = 0;
    return 0;
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    kl_sockets *s = userp;
    (void)multi;
    s->timer_at = timeout_ms < 0 ? -1 : kl_now() + (double)timeout_ms / 1000.0;
    return 0;
}

int kl_sockets_init(kl_sockets *s, CURLM *multi)
{
    s->multi = multi;
    s->fds = NULL;
    s->count = s->cap = 0;
    s->timer_at = -1;
    if (!reserve(s))
        return 0;
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, (void *)s);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, (void *)s);
    return 1;
}

void kl_sockets_free(kl_sockets *s)
{
    free(s->fds);
    s->fds = NULL;
    s->count = s->cap = 0;
}

double kl_sockets_timer_in(const kl_sockets *s)
{
    double left;
    if (s->timer_at < 0)
        return -1;
    left = s->timer_at - kl_now();
    return left > 0 ? left : 0;
}

CURLMcode kl_sockets_timeout(kl_sockets *s)
{
    int running;
    if (s->timer_at < 0 || s->timer_at > kl_now())
        return CURLM_OK;
    s->timer_at = -1; /* libcurl sets the next one while acting */
    return curl_multi_socket_action(s->multi, CURL_SOCKET_TIMEOUT, 0, &running);
}

int kl_sockets_snapshot(const kl_sockets *s, struct pollfd **buf, int *cap, int spare)
{
    int i;
    if (s->count + spare > *cap) {
        int want = (s->count + spare) * 2;
        struct pollfd *grown = realloc(*buf, (size_t)want * sizeof *grown);
        if (grown == NULL)
            return -1;
        *buf = grown;
        *cap = want;
    }
    if (s->count > 0)
        memcpy(*buf, s->fds, (size_t)s->count * sizeof **buf);
    for (i = 0; i < s->count; i++)
        (*buf)[i].revents = 0;
    return s->count;
}

CURLMcode kl_sockets_act(kl_sockets *s, const struct pollfd *fds, int n)
{
    int i, running;
    for (i = 0; i < n; i++) {
        short re = fds[i].revents;
        int ev = 0;
        CURLMcode mc;
        if (re == 0)
            continue;
        if (re & (POLLIN | POLLHUP))
            ev |= CURL_CSELECT_IN;
        if (re & POLLOUT)
            ev |= CURL_CSELECT_OUT;
        if (re & (POLLERR | POLLNVAL))
            ev |= CURL_CSELECT_ERR;
        mc = curl_multi_socket_action(s->multi, fds[i].fd, ev, &running);
        if (mc != CURLM_OK)
            return mc;
    }
    return CURLM_OK;
}
