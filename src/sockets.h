/* The descriptors libcurl asks a multi handle's owner to watch
 * (CURLMOPT_SOCKETFUNCTION) and the moment it wants to be called back
 * (CURLMOPT_TIMERFUNCTION): libcurl's event-driven API. Driving libcurl
 * then costs what is active, not what was added: curl_multi_perform visits
 * every transfer on each call, and with 64 in flight a step spent 1 ms in it
 * during a burst of submits (docs/design.md). The callbacks only update C
 * arrays; they never touch the Lua state. */
#ifndef KLING_SOCKETS_H
#define KLING_SOCKETS_H

#include <poll.h>
#include <curl/curl.h>

/* Descriptors of the caller's (journals' writers) watched beside libcurl's, at most. */
#define KL_MAX_EXTRA_FDS 8

typedef struct kl_sockets {
    CURLM *multi;
    struct pollfd *fds;   /* watched, then KL_MAX_EXTRA_FDS slots for the caller's extra descriptors */
    struct pollfd *ready; /* what one poll found, acted on after it (callbacks change fds) */
    int count, cap;
    int next;             /* where acting on ready descriptors starts next time (round robin) */
    double timer_at;      /* when libcurl wants CURL_SOCKET_TIMEOUT (kl_now seconds); < 0: never */
    /* The pollable descriptor (kl_sockets_pollfd): an epoll set mirroring the
     * watched descriptors and the caller's extra ones; -1 until asked for. */
    int poll_fd;
    int extra[KL_MAX_EXTRA_FDS + 1]; /* extra descriptors in the pollable set */
    int extra_count;
} kl_sockets;

/* Installs the callbacks on multi; 0 when out of memory. */
int kl_sockets_init(kl_sockets *s, CURLM *multi);

/* After curl_multi_cleanup (which may still call back). The pollable
 * descriptor stays open (kl_sockets_close_pollfd). */
void kl_sockets_free(kl_sockets *s);

/* Closes the pollable descriptor, if one was made. */
void kl_sockets_close_pollfd(kl_sockets *s);

/* A descriptor that is readable whenever one of the watched descriptors
 * (libcurl's, with the events libcurl asks for) or of the extra ones added
 * with kl_sockets_watch is ready: what a host's event loop waits on (a
 * pollable client). Linux: an epoll set kept in step with libcurl's socket
 * callbacks. -1 where the system has no epoll (the BSDs and macOS would use
 * kqueue the same way: docs/design.md). */
int kl_sockets_pollfd(kl_sockets *s);

/* Adds fd (readable) to the pollable set, once. 0, or -1 when the set is
 * full (KL_MAX_EXTRA_FDS + 1) or cannot take it. */
int kl_sockets_watch(kl_sockets *s, int fd);

/* Seconds until libcurl wants its timer, or -1 when it wants none. */
double kl_sockets_timer_in(const kl_sockets *s);

/* Lets libcurl act on its timer if it is due. */
CURLMcode kl_sockets_timeout(kl_sockets *s);

/* Waits up to wait seconds (less if libcurl's timer falls due first) for a
 * watched descriptor, or for one of the n_extra descriptors extra (at most
 * KL_MAX_EXTRA_FDS) to be readable, which sets *extra_ready; then lets
 * libcurl act on the descriptors that are ready, until the clock passes
 * until (kl_now seconds; at least one is acted on). The others stay ready
 * for the next call, which starts after the last one acted on, so none
 * starves. A signal ends the wait early. *acted: how many were acted on. */
CURLMcode kl_sockets_wait(kl_sockets *s, double wait, const int *extra, int n_extra, int *extra_ready,
                          double until, int *acted);

#endif
