// libarchive (tar reading and writing, gzip/zstd filters) for the OCI layer commit and apply.
// Header only: the library is linked through pkg-config.
#ifndef UNIONFS_CARCHIVE_SHIM_H
#define UNIONFS_CARCHIVE_SHIM_H
#include <archive.h>
#include <archive_entry.h>
#endif
