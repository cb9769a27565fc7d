#include "pollset.h"

#include <unistd.h>
#ifdef __linux__
#include <sys/epoll.h>
#endif

void kl_pollset_init(kl_pollset *p)
{
    p->fd = -1;
    p->count = 0;
}

static int add(kl_pollset *p, int fd)
{
#ifdef __linux__
    struct epoll_event ev;
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    return epoll_ctl(p->fd, EPOLL_CTL_ADD, fd, &ev);
#else
    (void)p;
    (void)fd;
    return -1;
#endif
}

int kl_pollset_fd(kl_pollset *p)
{
#ifdef __linux__
    int i;
    if (p->fd >= 0)
        return p->fd;
    p->fd = epoll_create1(EPOLL_CLOEXEC);
    if (p->fd < 0)
        return -1;
    for (i = 0; i < p->count; i++)
        add(p, p->watched[i]);
    return p->fd;
#else
    (void)p;
    return -1;
#endif
}

int kl_pollset_watch(kl_pollset *p, int fd)
{
    int i;
    for (i = 0; i < p->count; i++)
        if (p->watched[i] == fd)
            return 0;
    if (p->count >= KL_POLLSET_MAX)
        return -1;
    if (p->fd >= 0 && add(p, fd) != 0)
        return -1;
    p->watched[p->count++] = fd;
    return 0;
}

void kl_pollset_close(kl_pollset *p)
{
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    p->count = 0;
}
