// A minimal io_uring over the raw syscalls, for FUSE over io_uring (UringLoop): only what a
// ring of 128-byte SQEs carrying IORING_OP_URING_CMD needs. Header only (static inline), so
// CLinux stays a system module that links nothing; Debian's liburing 2.3 lacks the uring_cmd
// helpers anyway.
#ifndef UNIONFS_CLINUX_URING_H
#define UNIONFS_CLINUX_URING_H
#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

struct unionfs_uring {
    int fd;
    unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
    unsigned *cq_head, *cq_tail, *cq_mask;
    struct io_uring_cqe *cqes;
    unsigned char *sqes;      /* 128 bytes each (IORING_SETUP_SQE128) */
    void *sq_ptr, *cq_ptr;
    size_t sq_len, cq_len, sqes_len;
    unsigned pending;         /* SQEs filled and not yet submitted */
    int deferred;             /* 1: set up with IORING_SETUP_DEFER_TASKRUN (see below) */
};

/// Sets up a ring of `entries` 128-byte SQEs; 0 or -errno.
///
/// The ring belongs to the one thread that sets it up and waits on it (a ring worker), so it
/// asks for SINGLE_ISSUER | DEFER_TASKRUN (Linux 6.1+): the kernel then hands a request to the
/// waiting worker as local task work run inside its `io_uring_enter`, instead of task work
/// that interrupts the thread wherever it is (TIF_NOTIFY_SIGNAL). Where the kernel refuses
/// the flags (EINVAL), a plain ring; `deferred` says which it got.
static inline int unionfs_uring_init(struct unionfs_uring *r, unsigned entries) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    memset(r, 0, sizeof *r);
    p.flags = IORING_SETUP_SQE128 | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    int fd = (int)syscall(__NR_io_uring_setup, entries, &p);
    r->deferred = fd >= 0;
    if (fd < 0 && errno == EINVAL) {
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_SQE128;
        fd = (int)syscall(__NR_io_uring_setup, entries, &p);
    }
    if (fd < 0) return -errno;
    r->fd = fd;
    r->sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    r->cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    r->sq_ptr = mmap(0, r->sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
    if (r->sq_ptr == MAP_FAILED) { int e = errno; close(fd); return -e; }
    r->cq_ptr = mmap(0, r->cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_CQ_RING);
    if (r->cq_ptr == MAP_FAILED) { int e = errno; munmap(r->sq_ptr, r->sq_len); close(fd); return -e; }
    r->sqes_len = p.sq_entries * 128;
    r->sqes = mmap(0, r->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
    if (r->sqes == MAP_FAILED) { int e = errno; munmap(r->sq_ptr, r->sq_len); munmap(r->cq_ptr, r->cq_len); close(fd); return -e; }
    char *sq = r->sq_ptr, *cq = r->cq_ptr;
    r->sq_head = (unsigned *)(sq + p.sq_off.head);
    r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
    r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    r->sq_array = (unsigned *)(sq + p.sq_off.array);
    r->cq_head = (unsigned *)(cq + p.cq_off.head);
    r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
    r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
    r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    return 0;
}

static inline void unionfs_uring_exit(struct unionfs_uring *r) {
    munmap(r->sqes, r->sqes_len);
    munmap(r->cq_ptr, r->cq_len);
    munmap(r->sq_ptr, r->sq_len);
    close(r->fd);
}

/// Whether this process may set up a ring like a worker's, asked by `uring=on` before it
/// mounts: `io_uring_setup` can be refused (EPERM) by `kernel.io_uring_disabled` or a seccomp
/// filter (Docker's default profile). (The mount itself asks for the ring at INIT only once
/// every CPU queue's worker has set up its ring.) 0 or -errno.
static inline int unionfs_uring_probe(void) {
    struct unionfs_uring r;
    int e = unionfs_uring_init(&r, 1);
    if (e == 0) unionfs_uring_exit(&r);
    return e;
}

/// Queues one FUSE uring command (cmd_op 1: REGISTER with the entry's two iovecs; 2:
/// COMMIT_AND_FETCH of `commit_id`) on /dev/fuse descriptor `fuse_fd`. The command data is
/// struct fuse_uring_cmd_req {u64 flags; u64 commit_id; u16 qid; u8 padding[6]} at the SQE's
/// cmd area (offset 48). 0, or -EBUSY when the submission queue is full.
static inline int unionfs_uring_fuse_cmd(struct unionfs_uring *r, int fuse_fd, unsigned cmd_op,
                                         uint16_t qid, uint64_t commit_id,
                                         const struct iovec *iov, uint64_t user_data) {
    unsigned tail = *r->sq_tail;
    unsigned head = __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);
    if (tail - head > *r->sq_mask) return -EBUSY;
    unsigned index = tail & *r->sq_mask;
    struct io_uring_sqe *sqe = (struct io_uring_sqe *)(r->sqes + (size_t)index * 128);
    memset(sqe, 0, 128);
    sqe->opcode = IORING_OP_URING_CMD;
    sqe->fd = fuse_fd;
    sqe->cmd_op = cmd_op;
    sqe->user_data = user_data;
    if (iov) { sqe->addr = (uint64_t)(uintptr_t)iov; sqe->len = 2; }
    unsigned char *cmd = (unsigned char *)sqe + 48;
    uint64_t flags = 0;
    memcpy(cmd, &flags, 8);
    memcpy(cmd + 8, &commit_id, 8);
    memcpy(cmd + 16, &qid, 2);
    r->sq_array[index] = index;
    __atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
    r->pending++;
    return 0;
}

/// Submits what was queued and waits for at least `wait` completions; >= 0 or -errno.
static inline int unionfs_uring_enter(struct unionfs_uring *r, unsigned wait) {
    unsigned submit = r->pending;
    int n = (int)syscall(__NR_io_uring_enter, r->fd, submit, wait, wait ? IORING_ENTER_GETEVENTS : 0, NULL, 0);
    if (n < 0) return -errno;
    r->pending -= (unsigned)n > submit ? submit : (unsigned)n;
    return n;
}

/// Takes one completion if there is one: 1 (with its user_data and result), else 0.
static inline int unionfs_uring_cqe(struct unionfs_uring *r, uint64_t *user_data, int32_t *res) {
    unsigned head = *r->cq_head;
    if (head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE)) return 0;
    struct io_uring_cqe *c = &r->cqes[head & *r->cq_mask];
    *user_data = c->user_data;
    *res = c->res;
    __atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
    return 1;
}

/// The calling thread's id (gettid(2); glibc declares it only with _GNU_SOURCE).
static inline int unionfs_gettid(void) { return (int)syscall(__NR_gettid); }
/// SCHED_IDLE (sched(7); GNU-only in glibc's headers).
static const int unionfs_SCHED_IDLE = 5;
/// ioprio_get(2) and ioprio_set(2) of one thread (IOPRIO_WHO_PROCESS with a thread id); glibc
/// has no wrappers.
static inline int unionfs_ioprio_get(int thread) { return (int)syscall(__NR_ioprio_get, 1, thread); }
static inline int unionfs_ioprio_set(int thread, int priority) {
    return (int)syscall(__NR_ioprio_set, 1, thread, priority);
}

/// Pins the calling thread to `cpu` (so its requests, queued by the caller's CPU, are local).
static inline int unionfs_pin_to_cpu(int cpu) {
    unsigned long mask[16];
    memset(mask, 0, sizeof mask);
    if (cpu < 0 || cpu >= (int)(sizeof mask * 8)) return -EINVAL;
    mask[cpu / (8 * sizeof(long))] |= 1UL << (cpu % (8 * sizeof(long)));
    return (int)syscall(__NR_sched_setaffinity, 0, sizeof mask, mask) < 0 ? -errno : 0;
}
/// A set of CPUs a thread may run on (the kernel's affinity mask, up to 1024 CPUs).
struct unionfs_cpu_set { unsigned long bits[16]; };
/// The calling thread's CPUs (sched_getaffinity(2)): 0 or -errno.
static inline int unionfs_affinity_get(struct unionfs_cpu_set *set) {
    memset(set, 0, sizeof *set);
    return (int)syscall(__NR_sched_getaffinity, 0, sizeof set->bits, set->bits) < 0 ? -errno : 0;
}
/// Lets the calling thread run on `set` (sched_setaffinity(2), e.g. to undo `unionfs_pin_to_cpu`).
static inline int unionfs_affinity_set(const struct unionfs_cpu_set *set) {
    return (int)syscall(__NR_sched_setaffinity, 0, sizeof set->bits, set->bits) < 0 ? -errno : 0;
}
/// Joins `thread`, waiting `seconds` at most (pthread_timedjoin_np, a GNU call the Glibc module
/// does not export): 0, or ETIMEDOUT when it still runs.
#include <pthread.h>
#include <time.h>
extern int pthread_timedjoin_np(pthread_t thread, void **retval, const struct timespec *abstime);
static inline int unionfs_join_within(pthread_t thread, int seconds) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += seconds;
    return pthread_timedjoin_np(thread, NULL, &deadline);
}
#endif
