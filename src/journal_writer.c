#include "journal_writer.h"
#include "background.h"
#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "statements.h"

/* One statement, from staging to its outcome. Its values' text and its SQL
 * live in the same allocation, after values[]. */
typedef struct kl_op {
    struct kl_op *next;
    long long seq;
    const char *sql;
    int nvalues;
    int ok;
    int changes;
    char *error;
    kl_value values[];
} kl_op;

typedef struct kl_list {
    kl_op *head, *tail;
} kl_list;

struct kl_writer {
    /* the Lua thread's alone */
    kl_list staged;
    kl_op *taken;          /* the last outcomes handed over (their error texts) */
    long long issued;      /* the last sequence number given out */
    /* shared, under mutex */
    pthread_mutex_t mutex;
    pthread_cond_t work;   /* published statements, or stopping */
    pthread_cond_t idle;   /* the writer finished a transaction */
    kl_list queue;         /* published, not yet begun */
    kl_list done;          /* committed or failed, not yet taken */
    int busy, stopping, signalled;
    /* the writer thread's alone */
    kl_statements statements;
    pthread_t thread;
    int wake[2];           /* a byte in wake[0] while outcomes wait */
};

static void append(kl_list *to, kl_list *from)
{
    if (from->head == NULL)
        return;
    if (to->tail != NULL)
        to->tail->next = from->head;
    else
        to->head = from->head;
    to->tail = from->tail;
    from->head = from->tail = NULL;
}

static void free_ops(kl_op *op)
{
    while (op != NULL) {
        kl_op *next = op->next;
        free(op->error);
        free(op);
        op = next;
    }
}

/* ---- the writer thread ---- */

static void fail(kl_op *op, const char *what, const char *why)
{
    size_t n = strlen(what) + strlen(why) + 3;
    free(op->error);
    op->ok = 0;
    op->error = malloc(n);
    if (op->error != NULL)
        snprintf(op->error, n, "%s: %s", what, why);
}

static void fail_all(kl_op *ops, const char *what, const char *why)
{
    for (; ops != NULL; ops = ops->next)
        fail(ops, what, why);
}

static int bind_values(sqlite3_stmt *stmt, const kl_op *op)
{
    int i, rc = SQLITE_OK;
    for (i = 0; i < op->nvalues && rc == SQLITE_OK; i++) {
        const kl_value *v = &op->values[i];
        switch (v->type) {
        case SQLITE_INTEGER: rc = sqlite3_bind_int64(stmt, i + 1, v->i); break;
        case SQLITE_FLOAT: rc = sqlite3_bind_double(stmt, i + 1, v->d); break;
        case SQLITE_TEXT: rc = sqlite3_bind_text(stmt, i + 1, v->text, (int)v->len, SQLITE_STATIC); break;
        default: rc = sqlite3_bind_null(stmt, i + 1);
        }
    }
    return rc;
}

/* Runs one statement inside the transaction; 0, or -1 when the transaction
 * itself is gone (SQLite rolls back on I/O errors, a full disk, no memory). */
static int run_one(kl_writer *w, kl_op *op)
{
    sqlite3 *db = w->statements.db;
    sqlite3_stmt *stmt = kl_statement(&w->statements, op->sql);
    int rc;
    if (stmt == NULL) {
        fail(op, "cannot prepare a journal statement", sqlite3_errmsg(db));
        return 0;
    }
    if (bind_values(stmt, op) != SQLITE_OK) {
        fail(op, "cannot bind a journal value", sqlite3_errmsg(db));
        sqlite3_clear_bindings(stmt);
        return 0;
    }
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
        ;
    if (rc == SQLITE_DONE) {
        op->ok = 1;
        op->changes = sqlite3_changes(db);
    } else {
        fail(op, "journal write failed", sqlite3_errmsg(db));
    }
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt); /* the values' memory is freed with the op */
    return sqlite3_get_autocommit(db) ? -1 : 0;
}

/* One transaction for every statement in ops: all are committed, or none. A
 * statement that fails alone (a constraint) fails alone. */
static void commit_group(kl_writer *w, kl_op *ops)
{
    sqlite3 *db = w->statements.db;
    kl_op *op;
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        fail_all(ops, "journal write failed", sqlite3_errmsg(db));
        return;
    }
    for (op = ops; op != NULL; op = op->next)
        if (run_one(w, op) != 0) {
            fail_all(ops, "journal write failed", sqlite3_errmsg(db));
            return;
        }
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        fail_all(ops, "journal commit failed", sqlite3_errmsg(db));
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    }
}

static void *writer_main(void *arg)
{
    kl_writer *w = arg;
    kl_background_thread();
    pthread_mutex_lock(&w->mutex);
    for (;;) {
        kl_list group = {NULL, NULL};
        while (w->queue.head == NULL && !w->stopping)
            pthread_cond_wait(&w->work, &w->mutex);
        if (w->queue.head == NULL)
            break; /* stopping, and nothing left */
        append(&group, &w->queue);
        w->busy = 1;
        pthread_mutex_unlock(&w->mutex);
        commit_group(w, group.head);
        pthread_mutex_lock(&w->mutex);
        append(&w->done, &group);
        w->busy = 0;
        if (!w->signalled) {
            ssize_t n = write(w->wake[1], "", 1);
            w->signalled = n == 1;
        }
        pthread_cond_broadcast(&w->idle);
    }
    pthread_mutex_unlock(&w->mutex);
    return NULL;
}

/* ---- the Lua thread's side ---- */

kl_writer *kl_writer_start(const char *path, const char *setup_sql, int busy_timeout_ms, char *err,
                           size_t errlen)
{
    kl_writer *w = calloc(1, sizeof *w);
    sqlite3 *db = NULL;
    sigset_t all, old;
    int rc;
    if (w == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->wake[0] = w->wake[1] = -1;
    rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(db, busy_timeout_ms);
        rc = sqlite3_exec(db, setup_sql, NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s for writing: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
        goto fail;
    }
    if (kl_pipe(w->wake) != 0) {
        snprintf(err, errlen, "cannot make a pipe: %s", strerror(errno));
        goto fail;
    }
    w->statements.db = db;
    pthread_mutex_init(&w->mutex, NULL);
    pthread_cond_init(&w->work, NULL);
    pthread_cond_init(&w->idle, NULL);
    /* signals (Ctrl-C for the command) stay the Lua thread's */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&w->thread, NULL, writer_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the journal's writer: %s", strerror(rc));
        pthread_mutex_destroy(&w->mutex);
        pthread_cond_destroy(&w->work);
        pthread_cond_destroy(&w->idle);
        w->statements.db = NULL;
        goto fail;
    }
    return w;
fail:
    sqlite3_close(db);
    if (w->wake[0] >= 0) {
        close(w->wake[0]);
        close(w->wake[1]);
    }
    free(w);
    return NULL;
}

long long kl_writer_stage(kl_writer *w, const char *sql, const kl_value *values, int n)
{
    size_t bytes = sizeof(kl_op) + (size_t)n * sizeof(kl_value) + strlen(sql) + 1;
    kl_op *op;
    char *text;
    int i;
    for (i = 0; i < n; i++)
        if (values[i].type == SQLITE_TEXT)
            bytes += values[i].len;
    op = malloc(bytes);
    if (op == NULL)
        return 0;
    memset(op, 0, sizeof *op);
    op->seq = ++w->issued;
    op->nvalues = n;
    text = (char *)&op->values[n];
    for (i = 0; i < n; i++) {
        op->values[i] = values[i];
        if (values[i].type == SQLITE_TEXT) {
            memcpy(text, values[i].text, values[i].len);
            op->values[i].text = text;
            text += values[i].len;
        }
    }
    strcpy(text, sql);
    op->sql = text;
    if (w->staged.tail != NULL)
        w->staged.tail->next = op;
    else
        w->staged.head = op;
    w->staged.tail = op;
    return op->seq;
}

void kl_writer_publish(kl_writer *w)
{
    if (w->staged.head == NULL)
        return;
    pthread_mutex_lock(&w->mutex);
    append(&w->queue, &w->staged);
    pthread_cond_signal(&w->work);
    pthread_mutex_unlock(&w->mutex);
}

int kl_writer_take(kl_writer *w, kl_outcome *out, int max)
{
    kl_op *first, *last = NULL, *op;
    int n = 0;
    free_ops(w->taken);
    w->taken = NULL;
    pthread_mutex_lock(&w->mutex);
    first = w->done.head;
    for (op = first; op != NULL && n < max; op = op->next) {
        last = op;
        n++;
    }
    if (last != NULL) {
        w->done.head = last->next;
        if (w->done.head == NULL)
            w->done.tail = NULL;
        last->next = NULL;
    }
    if (w->done.head == NULL && w->signalled) {
        char drain[16];
        while (read(w->wake[0], drain, sizeof drain) > 0)
            ;
        w->signalled = 0;
    }
    pthread_mutex_unlock(&w->mutex);
    w->taken = n > 0 ? first : NULL;
    n = 0;
    for (op = w->taken; op != NULL; op = op->next, n++) {
        out[n].seq = op->seq;
        out[n].ok = op->ok;
        out[n].changes = op->changes;
        out[n].error = op->error != NULL ? op->error : "journal write failed: out of memory";
    }
    return n;
}

void kl_writer_barrier(kl_writer *w)
{
    kl_writer_publish(w);
    pthread_mutex_lock(&w->mutex);
    while (w->queue.head != NULL || w->busy)
        pthread_cond_wait(&w->idle, &w->mutex);
    pthread_mutex_unlock(&w->mutex);
}

int kl_writer_fd(const kl_writer *w)
{
    return w->wake[0];
}

void kl_writer_stop(kl_writer *w)
{
    kl_writer_publish(w);
    pthread_mutex_lock(&w->mutex);
    w->stopping = 1;
    pthread_cond_signal(&w->work);
    pthread_mutex_unlock(&w->mutex);
    pthread_join(w->thread, NULL);
    kl_statements_free(&w->statements);
    sqlite3_close(w->statements.db);
    free_ops(w->taken);
    free_ops(w->done.head);
    close(w->wake[0]);
    close(w->wake[1]);
    pthread_mutex_destroy(&w->mutex);
    pthread_cond_destroy(&w->work);
    pthread_cond_destroy(&w->idle);
    free(w);
}
