// The one place libfuse3 is included. FUSE_USE_VERSION must be set before the header;
// function-like macros do not import into Swift, so the few we need are inline helpers here.
#ifndef UNIONFS_CFUSE3_SHIM_H
#define UNIONFS_CFUSE3_SHIM_H
#define FUSE_USE_VERSION 314
#include <stddef.h>
#include <sys/types.h>
#include <fuse_lowlevel.h>

/// A one-buffer bufvec that reads `size` bytes at `pos` straight from `fd`, so libfuse can splice
/// file data to the kernel without copying it through user space (FUSE_BUFVEC_INIT + fd flags).
static inline struct fuse_bufvec unionfs_fd_bufvec(int fd, size_t size, off_t pos) {
    struct fuse_bufvec v = FUSE_BUFVEC_INIT(size);
    v.buf[0].flags = (enum fuse_buf_flags)(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
    v.buf[0].fd = fd;
    v.buf[0].pos = pos;
    return v;
}

/// The same, writing to `fd` (destination of fuse_buf_copy for write_buf).
static inline struct fuse_bufvec unionfs_fd_out_bufvec(int fd, size_t size, off_t pos) {
    return unionfs_fd_bufvec(fd, size, pos);
}
#endif
