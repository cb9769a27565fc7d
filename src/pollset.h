/* The pollable descriptor a host's event loop waits on (client:pollfd):
 * readable whenever step() has work due. Linux: an epoll set over the
 * descriptors added here (the multi's "transfer finished" pipe, its wake
 * pipe, journals' writers). The BSDs and macOS would use kqueue the same
 * way (EVFILT_READ per descriptor: docs/design.md); elsewhere there is none. */
#ifndef KLING_POLLSET_H
#define KLING_POLLSET_H

/* The descriptors in a set, at most. */
#define KL_POLLSET_MAX 12

typedef struct kl_pollset {
    int fd;                      /* -1 until made */
    int watched[KL_POLLSET_MAX];
    int count;
} kl_pollset;

void kl_pollset_init(kl_pollset *p);

/* The set's descriptor, made on first use; -1 where the system has none. */
int kl_pollset_fd(kl_pollset *p);

/* Adds fd (readable), once. 0, or -1 when the set is full or cannot take it. */
int kl_pollset_watch(kl_pollset *p, int fd);

void kl_pollset_close(kl_pollset *p);

#endif
