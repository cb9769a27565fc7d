/* The journal's writer: a thread with its own SQLite connection that commits
 * the statements a step staged, so that a step never waits for SQLite or for
 * the disk (the fsync of a commit). See docs/design.md, "The journal's writer".
 *
 * The Lua thread stages statements (each gets a sequence number), publishes
 * them at a flush point, and later takes their outcomes; the writer commits
 * everything published since its last commit in one transaction. An outcome
 * is reported only once its transaction is committed (durable, with
 * synchronous = FULL), or has failed. Only the Lua thread calls these. */
#ifndef KLING_JOURNAL_WRITER_H
#define KLING_JOURNAL_WRITER_H

#include <stddef.h>
#include <sqlite3.h>

typedef struct kl_writer kl_writer;

/* One value bound to a statement's parameter. */
typedef struct kl_value {
    int type;               /* SQLITE_NULL, SQLITE_INTEGER, SQLITE_FLOAT or SQLITE_TEXT */
    sqlite3_int64 i;
    double d;
    const char *text;       /* SQLITE_TEXT: copied by kl_writer_stage */
    size_t len;
} kl_value;

/* One finished statement, as kl_writer_take hands it over. */
typedef struct kl_outcome {
    long long seq;
    int ok;                 /* 1: committed, changes valid; 0: failed, error valid */
    int changes;
    const char *error;      /* valid until the next kl_writer_take */
} kl_outcome;

/* Opens a second connection to path (already a WAL database) and starts the
 * thread. NULL on failure, with a message in err. */
kl_writer *kl_writer_start(const char *path, const char *setup_sql, int busy_timeout_ms, char *err,
                           size_t errlen);

/* Copies sql and values into a new staged statement; its sequence number
 * (> 0), or 0 when out of memory. */
long long kl_writer_stage(kl_writer *w, const char *sql, const kl_value *values, int n);

/* Hands everything staged to the writer. */
void kl_writer_publish(kl_writer *w);

/* Up to max outcomes of committed (or failed) statements, oldest first, into
 * out; their count. Drains the wake-up descriptor. */
int kl_writer_take(kl_writer *w, kl_outcome *out, int max);

/* Publishes what is staged and waits until the writer has finished it all. */
void kl_writer_barrier(kl_writer *w);

/* Readable when outcomes wait to be taken (for poll(2)); -1 if none. */
int kl_writer_fd(const kl_writer *w);

/* Finishes everything, stops the thread, closes the connection, frees w. */
void kl_writer_stop(kl_writer *w);

#endif
