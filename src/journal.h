/* kling.journal: one SQLite database (the job journal) and this handle's
 * owner identity. The schema and every SQL statement live in
 * lua/kling/journal.lua; C only binds SQLite, keeps prepared statements,
 * proves owners alive (a flock held for the handle's life), and runs the one
 * statement a libcurl pre-request hook needs, without touching Lua. */
#ifndef KLING_JOURNAL_H
#define KLING_JOURNAL_H

#include <lua.h>

#define KL_JOURNAL_MT "kling.journal"

typedef struct kl_journal kl_journal;

/* The journal of the userdata at idx, or NULL if it is not one (or closed). */
kl_journal *kl_journal_test(lua_State *L, int idx);

/* Runs the hook statement set by journal:set_hook(sql) for key, as this
 * handle's owner: the request for key is about to leave. Returns 1 when it
 * changed exactly one row (durably), 0 otherwise. Never raises. */
int kl_journal_mark_sending(kl_journal *j, const char *key);

/* Pushes the constructor kling.core.journal. */
void kl_journal_open(lua_State *L);

#endif
