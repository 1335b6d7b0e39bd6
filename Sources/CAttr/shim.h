// libattr: attr_copy_fd copies extended attributes between descriptors with a filter callback.
#ifndef UNIONFS_CATTR_SHIM_H
#define UNIONFS_CATTR_SHIM_H
#include <sys/types.h>
#include <sys/xattr.h>
#include <attr/libattr.h>
#include <attr/error_context.h>
#endif
