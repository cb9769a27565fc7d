/* What the kling command needs from the operating system that Lua lacks:
 * whether a stream is a terminal, and Ctrl-C (SIGINT) caught as a flag, so
 * that a wait inside libcurl returns promptly and the command can stop
 * cleanly (print the task id, let a submit on the wire finish). */
#ifndef KLING_PROCESS_H
#define KLING_PROCESS_H

#include <lua.h>

/* True once SIGINT arrived after kling.core.catch_interrupt(). */
int kl_interrupted(void);

/* Pushes isatty, catch_interrupt, interrupted and digest into the table on top. */
void kl_process_open(lua_State *L);

#endif
