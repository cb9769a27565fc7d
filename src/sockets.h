/* The descriptors libcurl asks a multi handle's owner to watch
 * (CURLMOPT_SOCKETFUNCTION) and the moment it wants to be called back
 * (CURLMOPT_TIMERFUNCTION): libcurl's event-driven API. Driving libcurl
 * then costs what is active, not what was added: curl_multi_perform visits
 * every transfer on each call, and with 64 in flight a step spent 1 ms in it
 * during a burst of submits (docs/design.md). The callbacks only update C
 * arrays; they never touch the Lua state.
 *
 * The multi's own thread (multi.c) drives them: it copies the set under the
 * multi's lock (kl_sockets_snapshot), waits in poll(2) without the lock, and
 * acts on what was ready with the lock again (kl_sockets_act). */
#ifndef KLING_SOCKETS_H
#define KLING_SOCKETS_H

#include <poll.h>
#include <curl/curl.h>

typedef struct kl_sockets {
    CURLM *multi;
    struct pollfd *fds;   /* watched */
    int count, cap;
    double timer_at;      /* when libcurl wants CURL_SOCKET_TIMEOUT (kl_now seconds); < 0: never */
} kl_sockets;

/* Installs the callbacks on multi; 0 when out of memory. */
int kl_sockets_init(kl_sockets *s, CURLM *multi);

/* After curl_multi_cleanup (which may still call back). */
void kl_sockets_free(kl_sockets *s);

/* Seconds until libcurl wants its timer, or -1 when it wants none. */
double kl_sockets_timer_in(const kl_sockets *s);

/* Lets libcurl act on its timer if it is due. */
CURLMcode kl_sockets_timeout(kl_sockets *s);

/* Copies the watched descriptors into *buf (grown as needed, *cap its
 * size), leaving `spare` more slots after them for the caller's own.
 * Returns how many were copied, or -1 when out of memory. */
int kl_sockets_snapshot(const kl_sockets *s, struct pollfd **buf, int *cap, int spare);

/* Lets libcurl act on the n descriptors of a snapshot that poll(2) found
 * ready (a descriptor libcurl has let go of meanwhile is ignored by it). */
CURLMcode kl_sockets_act(kl_sockets *s, const struct pollfd *fds, int n);

#endif
