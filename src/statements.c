#include "statements.h"

#include <stdlib.h>
#include <string.h>

struct kl_stmt {
    kl_stmt *next;
    char *sql;
    sqlite3_stmt *stmt;
};

sqlite3_stmt *kl_statement(kl_statements *cache, const char *sql)
{
    kl_stmt *s;
    size_t len;
    for (s = cache->head; s != NULL; s = s->next)
        if (strcmp(s->sql, sql) == 0) {
            sqlite3_reset(s->stmt);
            sqlite3_clear_bindings(s->stmt);
            return s->stmt;
        }
    s = calloc(1, sizeof *s);
    len = strlen(sql) + 1;
    if (s == NULL || (s->sql = malloc(len)) == NULL
        || sqlite3_prepare_v2(cache->db, sql, -1, &s->stmt, NULL) != SQLITE_OK) {
        if (s != NULL)
            free(s->sql);
        free(s);
        return NULL;
    }
    memcpy(s->sql, sql, len);
    s->next = cache->head;
    cache->head = s;
    return s->stmt;
}

void kl_statements_free(kl_statements *cache)
{
    while (cache->head != NULL) {
        kl_stmt *s = cache->head;
        cache->head = s->next;
        sqlite3_finalize(s->stmt);
        free(s->sql);
        free(s);
    }
}
