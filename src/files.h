/* Local files kling reads (uploads, media probes) and writes (downloads):
 * only regular files are read, opened so that a FIFO or a device can never
 * block or stream without end; what is written is created new, under a name
 * of its own per writer. */
#ifndef KLING_FILES_H
#define KLING_FILES_H

#include <stddef.h>
#include <lua.h>

/* Opens path for reading if it is a regular file (never blocking on a FIFO,
 * never following into a device); its size in *size. The descriptor is
 * blocking and close-on-exec. -1 with a message in err. */
int kl_open_regular(const char *path, long long *size, char *err, size_t errlen);

/* Creates path, which must not exist yet (O_EXCL), for writing; the mode is
 * 0666 less the umask. -1 with errno. */
int kl_create_new(const char *path);

/* A pipe whose ends are non-blocking and close-on-exec (pipe(2) and
 * fcntl: pipe2 is not on every system kling builds for). 0, or -1 with errno. */
int kl_pipe(int fds[2]);

/* Pushes kling.core's file functions into the table on top: stat,
 * writable_dir. */
void kl_files_open(lua_State *L);

#endif
