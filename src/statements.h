/* Prepared statements of one SQLite connection, kept by SQL text: the
 * journal's few statements are prepared once per connection. */
#ifndef KLING_STATEMENTS_H
#define KLING_STATEMENTS_H

#include <sqlite3.h>

typedef struct kl_stmt kl_stmt;

typedef struct kl_statements {
    sqlite3 *db;
    kl_stmt *head;
} kl_statements;

/* The statement for sql, reset and with its bindings cleared; NULL when it
 * cannot be prepared (sqlite3_errmsg(cache->db) says why) or out of memory. */
sqlite3_stmt *kl_statement(kl_statements *cache, const char *sql);

/* Finalizes every statement (before the connection is closed). */
void kl_statements_free(kl_statements *cache);

#endif
