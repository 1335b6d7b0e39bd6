// Linux declarations the Swift Glibc module does not export: xattr calls, GNU open flags,
// renameat2 flags, SEEK_DATA/SEEK_HOLE, and a few GNU functions. Header only; nothing extra is
// linked. _GNU_SOURCE is deliberately NOT defined: a module compiled with it clashes with the
// Glibc module, so the GNU bits are declared here one by one (values from the kernel ABI).
#ifndef UNIONFS_CLINUX_SHIM_H
#define UNIONFS_CLINUX_SHIM_H
#include <sys/types.h>
#include <sys/xattr.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <linux/fs.h>
#include <malloc.h>  /* malloc_trim */
#include <sys/statfs.h>
#include <sys/sendfile.h>  /* sendfile: a copy-up between two filesystems */
#include <stdint.h>
#include <unistd.h>  /* syscall */
#include <sys/syscall.h>  /* SYS_statx */
#include "uring.h"  /* fstatfs: the upper's filesystem type */

static const int unionfs_O_PATH = 010000000;
static const int unionfs_O_DIRECT = 040000;
static const int unionfs_O_NOATIME = 01000000;
static const int unionfs_SEEK_DATA = 3;
static const int unionfs_SEEK_HOLE = 4;
static const unsigned unionfs_RENAME_NOREPLACE = 1;
static const unsigned unionfs_RENAME_EXCHANGE = 2;
static const unsigned unionfs_RENAME_WHITEOUT = 4;
static const int unionfs_FALLOC_FL_KEEP_SIZE = 1;

extern ssize_t getdents64(int fd, void *buffer, size_t length);
extern int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags);
extern int fallocate(int fd, int mode, off_t offset, off_t len);
extern ssize_t splice(int fd_in, long long *off_in, int fd_out, long long *off_out, size_t len, unsigned int flags);
extern int unshare(int flags);
static const int unionfs_CLONE_FS = 0x00000200;
extern ssize_t copy_file_range(int fd_in, off_t *off_in, int fd_out, off_t *off_out, size_t len, unsigned int flags);
extern int sync_file_range(int fd, off_t offset, off_t nbytes, unsigned int flags);
static const unsigned unionfs_SYNC_FILE_RANGE_WRITE = 2;

/// ioctl(dst, FICLONE, src): share the source's extents (reflink) where the filesystem can.
static inline int unionfs_ficlone(int dst, int src) { return ioctl(dst, FICLONE, src); }

/// getxattrat(2) and listxattrat(2) (Linux 6.13; glibc 2.36 has no wrapper, the numbers are
/// the same on every architecture): the xattrs of the entry `path` of `dfd`, never following a
/// symlink (AT_SYMLINK_NOFOLLOW). -1 with errno ENOSYS on older kernels.
struct unionfs_xattr_args { uint64_t value; uint32_t size; uint32_t flags; };
static inline long unionfs_getxattrat(int dfd, const char *path, const char *name, void *value, size_t size) {
    struct unionfs_xattr_args a = { (uint64_t)(uintptr_t)value, (uint32_t)size, 0 };
    return syscall(464, dfd, path, 0x100, name, &a, sizeof a);
}
static inline long unionfs_listxattrat(int dfd, const char *path, char *list, size_t size) {
    return syscall(465, dfd, path, 0x100, list, size);
}

/// The device (major, minor) of the filesystem `path` is on, as the kernel has it cached:
/// statx(2) with AT_STATX_DONT_SYNC and an empty mask, so on a FUSE mount whose daemon does not
/// serve yet no request is sent (the device is the superblock's, never asked for).
static inline int unionfs_cached_device(const char *path, unsigned int *major, unsigned int *minor) {
    unsigned int buffer[64] = {0};  /* struct statx: 256 bytes; stx_dev_major/minor at 136/140 */
    if (syscall(SYS_statx, -100 /* AT_FDCWD */, path, 0x4000 /* AT_STATX_DONT_SYNC */,
                0u, buffer) != 0) return -1;
    *major = buffer[34]; *minor = buffer[35];
    return 0;
}
static inline dev_t unionfs_makedev(unsigned int major, unsigned int minor) { return makedev(major, minor); }
#endif
