import Foundation
import Glibc
import XCTest

/// A launcher that makes the kernel refuse what unprivileged users could not do before Linux
/// 5.8 (and what some seccomp profiles still refuse): `mknod`/`mknodat` of a character or block
/// device, and `renameat2` with `RENAME_WHITEOUT`, each with `EPERM`. FIFOs and sockets are
/// still made. It installs a seccomp filter, then execs its arguments; the filter is inherited
/// and cannot be lifted, so the daemon it starts meets a real refusal.
enum MknodRefusal {
    /// The filter in classic BPF (x86_64 and aarch64 syscall numbers; other architectures pass
    /// everything, and `check()` then says so).
    static let source = #"""
    #include <errno.h>
    #include <linux/audit.h>
    #include <linux/filter.h>
    #include <linux/seccomp.h>
    #include <stddef.h>
    #include <stdio.h>
    #include <sys/prctl.h>
    #include <sys/syscall.h>
    #include <unistd.h>

    #if defined(__x86_64__)
    #define ARCH AUDIT_ARCH_X86_64
    #define MKNOD_NR __NR_mknod
    #elif defined(__aarch64__)
    #define ARCH AUDIT_ARCH_AARCH64
    #define MKNOD_NR 0xffffffff /* aarch64 has only mknodat */
    #endif
    #define ARG(n) (offsetof(struct seccomp_data, args[n])) /* low 32 bits: little endian */

    int main(int argc, char **argv) {
        if (argc < 2) { fprintf(stderr, "usage: %s PROGRAM [ARGS...]\n", argv[0]); return 2; }
        struct sock_filter f[] = {
            /* 0 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
            /* 1 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH, 0, 14),           /* -> 16 allow */
            /* 2 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
            /* 3 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MKNOD_NR, 0, 2),        /* -> 6 */
            /* 4 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG(1)),
            /* 5 */ BPF_JUMP(BPF_JMP | BPF_JA | BPF_K, 6, 0, 0),                /* -> 12 mode */
            /* 6 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mknodat, 0, 2),    /* -> 9 */
            /* 7 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG(2)),
            /* 8 */ BPF_JUMP(BPF_JMP | BPF_JA | BPF_K, 3, 0, 0),                /* -> 12 mode */
            /* 9 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_renameat2, 0, 6),  /* -> 16 allow */
            /* 10 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG(4)),
            /* 11 */ BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 4 /* RENAME_WHITEOUT */, 5, 4), /* 17 : 16 */
            /* 12 */ BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0170000),
            /* 13 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0020000 /* S_IFCHR */, 3, 0), /* -> 17 */
            /* 14 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0060000 /* S_IFBLK */, 2, 0), /* -> 17 */
            /* 15 */ BPF_JUMP(BPF_JMP | BPF_JA | BPF_K, 0, 0, 0),
            /* 16 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
            /* 17 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        };
        struct sock_fprog prog = { .len = sizeof f / sizeof f[0], .filter = f };
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) { perror("PR_SET_NO_NEW_PRIVS"); return 1; }
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) { perror("PR_SET_SECCOMP"); return 1; }
        execvp(argv[1], argv + 1);
        perror(argv[1]);
        return 127;
    }
    """#

    /// Builds the launcher in `dir` (with the system's `cc`); skips the test when there is none.
    static func build(in dir: String) throws -> String {
        let cc = ["/usr/bin/cc", "/usr/bin/gcc"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let cc else { throw XCTSkip("no C compiler to build the mknod-refusing launcher") }
        let src = dir + "/refuse-mknod.c", bin = dir + "/refuse-mknod"
        try source.write(toFile: src, atomically: true, encoding: .utf8)
        let r = try Run.program(cc, ["-O", "-o", bin, src], timeout: 60)
        guard r.status == 0 else {
            throw XCTSkip("cannot build the mknod-refusing launcher: \(r.stderr)")
        }
        return bin
    }

    /// Fails unless, under the launcher, a whiteout device is refused and a FIFO is not.
    static func check(_ launcher: String, scratch: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let dev = try Run.program(launcher, ["/bin/mknod", scratch + "/probe-c", "c", "0", "0"], timeout: 10)
        XCTAssertNotEqual(dev.status, 0, "mknod c 0 0 under the launcher should fail", file: file, line: line)
        XCTAssertTrue(dev.stderr.contains("Operation not permitted"), dev.stderr, file: file, line: line)
        let fifo = try Run.program(launcher, ["/bin/mknod", scratch + "/probe-p", "p"], timeout: 10)
        XCTAssertEqual(fifo.status, 0, "a FIFO under the launcher: \(fifo.stderr)", file: file, line: line)
        unlink(scratch + "/probe-p")
    }
}
