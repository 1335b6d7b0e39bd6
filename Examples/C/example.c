/*
 * Embedding UnionFS from C: mount two layers with an upper, change something through the
 * mount, unmount, list the changes, and commit them as an OCI layer tar.
 *
 *   cc example.c $(pkg-config --cflags --libs unionfs) -o example && sudo ./example
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unionfs.h>

static int print_change(char kind, const char *path, void *context) {
    int *count = context;
    printf("%c %s\n", kind, path);
    (*count)++;
    return 0;
}

static void put(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, text, strlen(text)) < 0) { perror(path); exit(1); }
    close(fd);
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)st; (void)type; (void)ftw;
    return remove(path);
}

static int check(int rc, const char *what) {
    if (rc != 0) {
        char message[512];
        unionfs_last_error(message, sizeof message);
        fprintf(stderr, "%s failed (%s): %s\n", what, strerror(rc), message);
        exit(1);
    }
    return rc;
}

int main(void) {
    char root[] = "/tmp/unionfs-c-example.XXXXXX";
    if (!mkdtemp(root)) { perror("mkdtemp"); return 1; }
    char base[256], upper[256], work[256], merged[256], file[300], tar[300];
    snprintf(base, sizeof base, "%s/base", root);
    snprintf(upper, sizeof upper, "%s/upper", root);
    snprintf(work, sizeof work, "%s/work", root);
    snprintf(merged, sizeof merged, "%s/merged", root);
    mkdir(base, 0755); mkdir(upper, 0755); mkdir(work, 0755); mkdir(merged, 0755);
    snprintf(file, sizeof file, "%s/motd", base);
    put(file, "hello\n");

    unionfs_mount *mount = NULL;
    check(unionfs_mount_start(base, upper, work, merged, NULL, &mount), "mount");
    snprintf(file, sizeof file, "%s/motd", merged);
    put(file, "changed\n");
    snprintf(file, sizeof file, "%s/new", merged);
    put(file, "new\n");
    check(unionfs_mount_stop(mount), "unmount");

    int count = 0;
    check(unionfs_changes(base, upper, print_change, &count), "changes");
    if (count != 2) { fprintf(stderr, "expected 2 changes, got %d\n", count); return 1; }

    char diff_id[72], digest[72];
    snprintf(tar, sizeof tar, "%s/layer.tar.gz", root);
    check(unionfs_commit(base, upper, tar, "gzip", diff_id, digest), "commit");
    printf("diffID %s\ndigest %s\n", diff_id, digest);

    /* Bad input is an error code and a message, never an abort. */
    if (unionfs_mount_start("/nonexistent", NULL, NULL, merged, NULL, &mount) == 0) return 1;
    char message[256];
    unionfs_last_error(message, sizeof message);
    printf("expected error: %s\n", message);

    if (nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) { perror("removing the example's files"); return 1; }
    printf("ok\n");
    return 0;
}
