#include "sockets.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/epoll.h>
#endif

#include "clock.h"

/* Mirrors one descriptor's interest into the pollable set (op: add, change
 * or remove; events: POLLIN and POLLOUT as poll(2) has them). */
static void mirror(kl_sockets *s, int fd, int op, short events)
{
#ifdef __linux__
    struct epoll_event ev;
    if (s->poll_fd < 0)
        return;
    ev.events = ((events & POLLIN) ? EPOLLIN : 0) | ((events & POLLOUT) ? EPOLLOUT : 0);
    ev.data.fd = fd;
    if (op == 2) {
        epoll_ctl(s->poll_fd, EPOLL_CTL_DEL, fd, &ev); /* a closed descriptor has left the set already */
        return;
    }
    /* A descriptor number closed and reused without a removal in between is
     * still (or no longer) in the set: add and change fall back on each other. */
    if (epoll_ctl(s->poll_fd, op == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev) != 0) {
        if (errno == EEXIST)
            epoll_ctl(s->poll_fd, EPOLL_CTL_MOD, fd, &ev);
        else if (errno == ENOENT)
            epoll_ctl(s->poll_fd, EPOLL_CTL_ADD, fd, &ev);
    }
#else
    (void)s;
    (void)fd;
    (void)op;
    (void)events;
#endif
}

static int find(const kl_sockets *s, curl_socket_t fd)
{
    int i;
    for (i = 0; i < s->count; i++)
        if (s->fds[i].fd == fd)
            return i;
    return -1;
}

/* Room for one more watched descriptor, plus the extra ones. */
static int reserve(kl_sockets *s)
{
    int cap;
    struct pollfd *fds, *ready;
    if (s->count + 1 + KL_MAX_EXTRA_FDS <= s->cap)
        return 1;
    cap = s->cap ? s->cap * 2 : 16;
    fds = realloc(s->fds, (size_t)cap * sizeof *fds);
    if (fds == NULL)
        return 0;
    s->fds = fds;
    ready = realloc(s->ready, (size_t)cap * sizeof *ready);
    if (ready == NULL)
        return 0;
    s->ready = ready;
    s->cap = cap;
    return 1;
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    kl_sockets *s = userp;
    int i = find(s, fd);
    (void)easy;
    (void)socketp;
    if (what == CURL_POLL_REMOVE) {
        if (i >= 0) {
            mirror(s, fd, 2, 0);
            s->fds[i] = s->fds[--s->count];
        }
        return 0;
    }
    if (i < 0) {
        if (!reserve(s))
            return -1; /* libcurl fails the transfer that asked */
        i = s->count++;
        s->fds[i].fd = fd;
        s->fds[i].events = (short)(((what & CURL_POLL_IN) ? POLLIN : 0) | ((what & CURL_POLL_OUT) ? POLLOUT : 0));
        mirror(s, fd, 0, s->fds[i].events);
    } else {
        s->fds[i].events = (short)(((what & CURL_POLL_IN) ? POLLIN : 0) | ((what & CURL_POLL_OUT) ? POLLOUT : 0));
        mirror(s, fd, 1, s->fds[i].events);
    }
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
    s->fds = s->ready = NULL;
    s->count = s->cap = s->next = 0;
    s->timer_at = -1;
    s->poll_fd = -1;
    s->extra_count = 0;
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
    free(s->ready);
    s->fds = s->ready = NULL;
    s->count = s->cap = 0;
}

void kl_sockets_close_pollfd(kl_sockets *s)
{
    if (s->poll_fd >= 0)
        close(s->poll_fd);
    s->poll_fd = -1;
}

int kl_sockets_pollfd(kl_sockets *s)
{
#ifdef __linux__
    int i;
    if (s->poll_fd >= 0)
        return s->poll_fd;
    s->poll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (s->poll_fd < 0)
        return -1;
    for (i = 0; i < s->count; i++)
        mirror(s, s->fds[i].fd, 0, s->fds[i].events);
    for (i = 0; i < s->extra_count; i++)
        mirror(s, s->extra[i], 0, POLLIN);
    return s->poll_fd;
#else
    (void)s;
    return -1;
#endif
}

int kl_sockets_watch(kl_sockets *s, int fd)
{
    int i;
    for (i = 0; i < s->extra_count; i++)
        if (s->extra[i] == fd)
            return 0;
    if (s->extra_count >= (int)(sizeof s->extra / sizeof s->extra[0]))
        return -1;
    s->extra[s->extra_count++] = fd;
    mirror(s, fd, 0, POLLIN);
    return 0;
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

static int poll_ms(double seconds)
{
    double ms = seconds * 1000.0;
    if (ms <= 0)
        return 0;
    if (ms >= INT_MAX)
        return INT_MAX;
    return (int)ms + 1;
}

CURLMcode kl_sockets_wait(kl_sockets *s, double wait, const int *extra, int n_extra, int *extra_ready,
                          double until, int *acted)
{
    int n = s->count, found = 0, i, rc, running, start;
    *acted = 0;
    if (s->timer_at >= 0) {
        double until_timer = s->timer_at - kl_now();
        if (until_timer < wait)
            wait = until_timer;
    }
    for (i = 0; i < n_extra && i < KL_MAX_EXTRA_FDS; i++) { /* reserve() keeps these slots free */
        s->fds[n].fd = extra[i];
        s->fds[n].events = POLLIN;
        s->fds[n].revents = 0;
        n++;
    }
    rc = poll(s->fds, (nfds_t)n, poll_ms(wait));
    if (rc < 0)
        return CURLM_OK; /* EINTR: the caller looks at why (Ctrl-C) and comes back */
    for (i = s->count; i < n; i++)
        if (s->fds[i].revents != 0)
            *extra_ready = 1;
    start = s->count > 0 ? s->next % s->count : 0;
    for (i = 0; i < s->count && rc > 0; i++) {
        const struct pollfd *p = &s->fds[(start + i) % s->count];
        if (p->revents != 0)
            s->ready[found++] = *p;
    }
    for (i = 0; i < found; i++) {
        short re = s->ready[i].revents;
        int ev = 0;
        CURLMcode mc;
        if (i > 0 && kl_now() >= until)
            break;
        if (re & (POLLIN | POLLHUP))
            ev |= CURL_CSELECT_IN;
        if (re & POLLOUT)
            ev |= CURL_CSELECT_OUT;
        if (re & (POLLERR | POLLNVAL))
            ev |= CURL_CSELECT_ERR;
        mc = curl_multi_socket_action(s->multi, s->ready[i].fd, ev, &running);
        if (mc != CURLM_OK)
            return mc;
        (*acted)++;
    }
    /* the positions shift as sockets come and go: close enough to fair */
    s->next = s->count > 0 ? (start + i) % s->count : 0;
    return CURLM_OK;
}
