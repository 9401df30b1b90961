/* A private temporary directory per test, and small file helpers, for the loader and model-file tests. */
#ifndef DN_TEST_TMPDIR_H
#define DN_TEST_TMPDIR_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* Each Criterion test runs in its own process, so one directory per process. */
static char tt_root[64];

static inline void tt_setup(void) {
  strcpy(tt_root, "/tmp/deepnet-test-XXXXXX");
  cr_assert_not_null(mkdtemp(tt_root), "mkdtemp failed");
}

static inline int tt_remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

static inline void tt_teardown(void) {
  if (geteuid() != getuid()) (void)!seteuid(getuid()); /* a test may have dropped privileges */
  if (tt_root[0]) nftw(tt_root, tt_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* tt_root/name, in one of a few rotating buffers (valid for the next 7 calls). */
static inline const char *tt_path(const char *name) {
  static char bufs[8][512];
  static unsigned next;
  char *p = bufs[next++ % 8];
  snprintf(p, sizeof bufs[0], "%s/%s", tt_root, name);
  return p;
}

/* Write len bytes to tt_root/name (gzip-compressed if gz); returns the path. */
static inline const char *tt_write(const char *name, const void *data, size_t len, int gz) {
  const char *path = tt_path(name);
  if (gz) {
    gzFile f = gzopen(path, "wb");
    cr_assert_not_null(f, "gzopen %s", path);
    cr_assert_eq(gzwrite(f, data, (unsigned)len), (int)len);
    cr_assert_eq(gzclose(f), Z_OK);
  } else {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "fopen %s", path);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
  }
  return path;
}

static inline const char *tt_write_str(const char *name, const char *text) {
  return tt_write(name, text, strlen(text), 0);
}

/* The whole file, malloc'd; *len gets its size. */
static inline unsigned char *tt_read(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "fopen %s", path);
  size_t cap = 4096;
  unsigned char *buf = malloc(cap);
  *len = 0;
  for (size_t r; (r = fread(buf + *len, 1, cap - *len, f)) > 0;) {
    *len += r;
    if (*len == cap) buf = realloc(buf, cap *= 2);
    cr_assert_not_null(buf);
  }
  fclose(f);
  return buf;
}

/* Entries in directory dir (NULL: tt_root), "." and ".." not counted. */
static inline size_t tt_count_entries(const char *dir) {
  DIR *d = opendir(dir ? dir : tt_root);
  cr_assert_not_null(d);
  size_t n = 0;
  for (struct dirent *e; (e = readdir(d));) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
  closedir(d);
  return n;
}

#endif /* DN_TEST_TMPDIR_H */
