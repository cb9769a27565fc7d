/* kling's own threads (libcurl's, multi.c; the journal's writer,
 * journal_writer.c) work for the host's thread, never instead of it. */
#ifndef KLING_BACKGROUND_H
#define KLING_BACKGROUND_H

/* Called first thing by a thread of kling's own: on Linux, the thread
 * becomes SCHED_BATCH, so that waking it (a transfer added, a record to
 * commit) does not preempt the host's thread on its CPU; it runs on an
 * idle CPU at once, or when the host's thread waits (a game between two
 * frames). Its share of a busy CPU is unchanged. Elsewhere: nothing. */
void kl_background_thread(void);

#endif
