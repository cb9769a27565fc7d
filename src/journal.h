/* kling.journal: one SQLite database (the job journal) and this handle's
 * owner identity. The schema and every SQL statement live in
 * lua/kling/journal.lua; C only binds SQLite, keeps prepared statements, and
 * proves owners alive (a flock held for the handle's life). */
#ifndef KLING_JOURNAL_H
#define KLING_JOURNAL_H

#include <lua.h>

#define KL_JOURNAL_MT "kling.journal"

/* Pushes the constructor kling.core.journal. */
void kl_journal_open(lua_State *L);

#endif
