// Linux declarations the Swift Glibc module does not export: xattr calls, syscall numbers,
// GNU open flags, renameat2 flags, fallocate modes. Header only; nothing extra is linked.
#ifndef UNIONFS_CLINUX_SHIM_H
#define UNIONFS_CLINUX_SHIM_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <fcntl.h>
#include <stdio.h>
#include <dirent.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/resource.h>
#include <linux/fs.h>
#include <linux/falloc.h>

static const int unionfs_O_PATH = O_PATH;
static const int unionfs_O_DIRECT = O_DIRECT;
static const int unionfs_O_NOATIME = O_NOATIME;
static const int unionfs_O_TMPFILE = O_TMPFILE;
static const long unionfs_SYS_getdents64 = SYS_getdents64;
static const long unionfs_SYS_renameat2 = SYS_renameat2;
static const unsigned unionfs_RENAME_NOREPLACE = RENAME_NOREPLACE;
static const unsigned unionfs_RENAME_EXCHANGE = RENAME_EXCHANGE;
static const unsigned unionfs_RENAME_WHITEOUT = RENAME_WHITEOUT;
static const unsigned long unionfs_FICLONE = FICLONE;

static inline dev_t unionfs_makedev(unsigned int major, unsigned int minor) { return makedev(major, minor); }
#endif
