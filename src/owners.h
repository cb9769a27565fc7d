/* Owners of a journal: which open handle works on an entry, and whether it
 * is still alive. A handle is alive while it holds an exclusive flock on a
 * lock file of its own; the kernel drops the lock the moment its process
 * dies, however it dies, and a stalled process keeps it. The lock file's
 * absolute path, the process id and the machine's boot id are recorded in
 * the journal (the owners table, lua/kling/journal.lua), so that a client
 * that reached the same journal by another path (a symlink, a hard link, a
 * relative path after a chdir) asks the same file; the pid is the fallback
 * when that file is gone (its directory was deleted). See docs/design.md,
 * "Owners". */
#ifndef KLING_OWNERS_H
#define KLING_OWNERS_H

#include <stddef.h>

#define KL_OWNER_BYTES 16

typedef struct kl_owner {
    char id[2 * KL_OWNER_BYTES + 1];
    char *dir;       /* <the journal's real path>-owners */
    char *lock_path; /* dir/id */
    int lock_fd;     /* -1: no ownership taken */
} kl_owner;

/* Makes a new owner id and takes its lock file next to the journal at
 * journal_path (which must exist: its real path is used). 0, or -1 with a
 * message in err. */
int kl_owner_take(kl_owner *o, const char *journal_path, char *err, size_t errlen);

/* Lets go of the lock (and removes the lock file when remove_file: the
 * caller removed its record first). Idempotent. */
void kl_owner_release(kl_owner *o, int remove_file);

/* Is the owner id alive? lock_path, pid and boot_id are what it recorded
 * (NULL, 0, NULL for an owner with no record, from a journal written before
 * records existed: its file is looked for where that version put it).
 * 1 alive, 0 dead (its lock file is removed then). Whatever cannot be told
 * counts as alive, which never risks a second submit. */
int kl_owner_alive(const kl_owner *self, const char *id, const char *lock_path, long pid, const char *boot_id);

/* This boot of the machine (Linux: /proc/sys/kernel/random/boot_id), or ""
 * where the system does not tell. */
const char *kl_boot_id(void);

#endif
