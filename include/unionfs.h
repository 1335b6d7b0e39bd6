/*
 * UnionFS C API: mount layer stacks, list changes, commit and apply OCI layer tars.
 *
 * Every call returns 0 on success or a positive errno value; none aborts the host. When a call
 * fails, unionfs_last_error() gives a one-line message for the calling thread. The value says
 * what kind of failure it was: EINVAL for bad input (an option, a path of the wrong kind, a
 * malformed tar), ENOENT for something missing, and for a failed system call its own errno (a
 * full disk during unionfs_apply is ENOSPC, a read-only target EROFS).
 * Link with -lunionfs (pkg-config --cflags --libs unionfs).
 */
#ifndef UNIONFS_H
#define UNIONFS_H
#include <stddef.h>
#ifdef __cplusplus
extern "C" {
#endif

/* A mounted layer stack, served by threads of the calling process. */
typedef struct unionfs_mount unionfs_mount;

/*
 * Mounts lowerdirs ("top:...:bottom", "\:" escapes a colon) with an optional upperdir and
 * workdir (both NULL for a read-only mount) at mountpoint. options: NULL or extra mount options
 * as for the unionfs-swift command ("volatile,userxattr"). Returns once the mount is ready.
 */
int unionfs_mount_start(const char *lowerdirs, const char *upperdir, const char *workdir,
                        const char *mountpoint, const char *options, unionfs_mount **out);

/* Unmounts, waits for the request threads and frees the handle. */
int unionfs_mount_stop(unionfs_mount *mount);

/* Called once per change in sorted order; kind is 'A', 'C' or 'D'. Return non-zero to stop. */
typedef int (*unionfs_change_fn)(char kind, const char *path, void *context);

/* The changes (docker diff) of upperdir over lowerdirs. */
int unionfs_changes(const char *lowerdirs, const char *upperdir, unionfs_change_fn callback,
                    void *context);

/*
 * Writes upperdir's changes as an OCI layer tar to output. compression: NULL or "" for none,
 * "gzip" or "zstd". diff_id and digest (may be NULL) receive "sha256:<hex>" (72 bytes with NUL).
 */
int unionfs_commit(const char *lowerdirs, const char *upperdir, const char *output,
                   const char *compression, char diff_id[72], char digest[72]);

/* Unpacks an OCI layer tar into target: flatten=0 as an overlay lower layer dir (target absent
 * or empty), flatten=1 onto an existing tree. A rejected tar leaves target unchanged. */
int unionfs_apply(const char *tar, const char *target, int flatten);

/* Copies the calling thread's last error message into buffer (NUL-terminated, truncated to
 * size). Returns the message length. */
size_t unionfs_last_error(char *buffer, size_t size);

#ifdef __cplusplus
}
#endif
#endif
