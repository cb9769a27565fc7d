/* SCHED_BATCH is Linux's (sched(7)): glibc shows it with _GNU_SOURCE. */
#define _GNU_SOURCE 1

#include "background.h"

#include <pthread.h>
#include <sched.h>

void kl_background_thread(void)
{
#ifdef SCHED_BATCH
    /* sched(7): a SCHED_BATCH thread does not preempt on wakeup. Without
     * it, the Lua thread lost its CPU inside multi:add to the I/O thread
     * it had just poked (perf sched: twice per add, for 13 and 110 us) and
     * then to whatever else was runnable there. make bench MODE=paced with
     * the client free to use both CPUs: step p50 0.40-0.51 ms before,
     * 0.28-0.35 ms after. Unprivileged threads may choose it; a refusal
     * only keeps the default policy. */
    struct sched_param param = {0};
    (void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &param);
#endif
}
