/* The model file: dn_net_save writes a net crash-safely, dn_net_load reads one back
 * after checking every field against the file's real size; and the file plumbing
 * checkpoint.c shares (model_io.h).
 *
 * Format version 1, every integer little-endian, written byte by byte so a file
 * from an x86 machine loads on arm64 and back:
 *
 *   offset        size        field
 *   0             8           magic 89 'D' 'N' 'N' 0D 0A 1A 0A (PNG-style: a 7-bit or
 *                             newline-translating transfer breaks it visibly)
 *   8             4           u32 format version (1)
 *   12            4           u32 L, 1..4096
 *   16            8 (L+1)     u64 n[0..L], each >= 1
 *   24 + 8L       4 L         u32 g[1..L], the dn_act values (softmax on layer L only)
 *   24 + 12L      4           u32 loss, the dn_loss value
 *   28 + 12L      4 P         float32 parameters in the net's flat order W1 b1 W2 b2 ...,
 *                             W[l] column-major; every one finite
 *   28 + 12L + 4P 4           u32 CRC-32 (IEEE) of every byte before it
 *
 * where P = sum over l of n[l] (n[l-1] + 1); the file is exactly 32 + 12L + 4P bytes. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32.h"
#include "model_io.h"

const uint8_t dn_model_magic[8] = {0x89, 'D', 'N', 'N', 0x0D, 0x0A, 0x1A, 0x0A};
enum {
  MODEL_VERSION = 1,
  PREFIX_BYTES = 16,       /* magic, version, L: enough to size the rest of the header */
  CHUNK_FLOATS = 4096      /* parameters go through a 16 KiB buffer */
};

/* The file stores the enum values themselves, so they are part of the format. */
_Static_assert(DN_ACT_LINEAR == 0 && DN_ACT_RELU == 1 && DN_ACT_LEAKY_RELU == 2 &&
                   DN_ACT_SIGMOID == 3 && DN_ACT_TANH == 4 && DN_ACT_SOFTMAX == 5,
               "dn_act values are stored in model files");
_Static_assert(DN_LOSS_BCE == 0 && DN_LOSS_CCE == 1 && DN_LOSS_MSE == 2,
               "dn_loss values are stored in model files");
_Static_assert(sizeof(float) == 4, "the model file stores IEEE-754 binary32");

/* Header bytes of an L-layer net (everything before the parameters). */
static uint64_t header_bytes(uint64_t L) { return 28 + 12 * L; }

/* ---- writing (shared with checkpoint.c) ----------------------------------- */

static bool write_all(int fd, const uint8_t *p, size_t len) {
  while (len > 0) {
    const ssize_t w = write(fd, p, len);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      if (w == 0) errno = EIO;
      return false;
    }
    p += w;
    len -= (size_t)w;
  }
  return true;
}

static void writer_flush(dn_writer *w) {
  if (!w->err && w->len && !write_all(w->fd, w->buf, w->len)) w->err = errno ? errno : EIO;
  w->len = 0;
}

void dn_writer_bytes(dn_writer *w, const void *p, size_t n) {
  const uint8_t *b = p;
  w->crc = dn_crc32_update(w->crc, b, n);
  while (n > 0 && !w->err) {
    if (w->len == sizeof w->buf) writer_flush(w);
    const size_t k = n < sizeof w->buf - w->len ? n : sizeof w->buf - w->len;
    memcpy(w->buf + w->len, b, k);
    w->len += k;
    b += k;
    n -= k;
  }
}

void dn_writer_u32(dn_writer *w, uint32_t v) {
  uint8_t b[4];
  dn_put_u32(b, v);
  dn_writer_bytes(w, b, sizeof b);
}

void dn_writer_u64(dn_writer *w, uint64_t v) {
  uint8_t b[8];
  dn_put_u64(b, v);
  dn_writer_bytes(w, b, sizeof b);
}

void dn_writer_floats(dn_writer *w, const float *x, size_t n) {
  uint8_t buf[4 * 256];
  for (size_t done = 0; done < n;) {
    const size_t k = n - done < 256 ? n - done : 256;
    for (size_t i = 0; i < k; i++) dn_put_u32(buf + 4 * i, dn_float_bits(x[done + i]));
    dn_writer_bytes(w, buf, 4 * k);
    done += k;
  }
}

void dn_writer_net_desc(dn_writer *w, const dn_net *net) {
  dn_writer_u32(w, (uint32_t)net->L);
  for (size_t l = 0; l <= net->L; l++) dn_writer_u64(w, net->n[l]);
  for (size_t l = 1; l <= net->L; l++) dn_writer_u32(w, (uint32_t)net->act[l]);
  dn_writer_u32(w, (uint32_t)net->loss);
}

/* The process umask without changing it (umask(2) can only read it by setting it,
 * which races with other threads). Linux >= 4.7 reports it in /proc; elsewhere
 * assume the most private one, so a file is never more readable than intended. */
static mode_t current_umask(void) {
  mode_t mask = 077;
  FILE *f = fopen("/proc/self/status", "re");
  if (!f) return mask;
  char line[256];
  unsigned int v;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "Umask: %o", &v) == 1) {
      mask = (mode_t)(v & 0777);
      break;
    }
  fclose(f);
  return mask;
}

/* Make the rename durable. Best effort where the platform cannot (EINVAL: the file
 * system does not sync directories; EACCES: no read permission on it); a real I/O
 * error is reported. */
static dn_status sync_dir(const char *path, const char *dir, const char *who) {
  const int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  dn_status s = DN_OK;
  if (dfd < 0) {
    if (errno != EACCES)
      s = dn_fail(DN_ERR_IO, "%s: '%s' is in place, but its directory '%s' cannot be "
                  "opened to sync it: %s", who, path, dir, strerror(errno));
  } else {
    if (fsync(dfd) != 0 && errno != EINVAL)
      s = dn_fail(DN_ERR_IO, "%s: '%s' is in place, but syncing its directory '%s' "
                  "failed, so it may not survive a crash: %s", who, path, dir, strerror(errno));
    close(dfd);
  }
  return s;
}

/* The directory part of path: "/" for "/x", "." for "x", else what precedes the last
 * slash. *start gets where it begins (path itself, or a static "."); returns its length. */
static size_t dir_part(const char *path, const char **start) {
  const char *slash = strrchr(path, '/');
  *start = slash ? path : ".";
  return slash ? (slash == path ? 1 : (size_t)(slash - path)) : 1;
}

static const char *file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

/* Writes to target (path itself, or the file a symbolic link at path names); messages
 * name path, as the caller gave it. */
static dn_status save_atomic_to(const char *target, const char *path, const char *who,
                                dn_write_body_fn body, const void *ctx) {
  /* The temporary file sits next to the target (rename is atomic only within one
   * file system) and is named after it, so a leftover from a crash is recognisable.
   * Every allocation happens here, before anything is written. */
  static const char suffix[] = ".tmp-XXXXXX";
  const size_t len = strlen(target);
  const char *dir_start;
  const size_t dir_len = dir_part(target, &dir_start);
  char *tmp = malloc(len + sizeof suffix), *dir = malloc(dir_len + 1);
  dn_writer *w = malloc(sizeof *w);
  if (!tmp || !dir || !w) {
    free(tmp);
    free(dir);
    free(w);
    return dn_fail(DN_ERR_NOMEM, "%s: out of memory; '%s' is unchanged", who, path);
  }
  memcpy(tmp, target, len);
  memcpy(tmp + len, suffix, sizeof suffix);
  memcpy(dir, dir_start, dir_len);
  dir[dir_len] = '\0';

  dn_status s = DN_OK;
  const int fd = mkostemp(tmp, O_CLOEXEC);
  if (fd < 0) {
    s = dn_fail(DN_ERR_IO, "%s: cannot create a temporary file next to '%s': %s; '%s' is "
                "unchanged", who, path, strerror(errno), path);
    goto done;
  }
  /* mkstemp makes the file 0600; give it the mode the target has, or the mode a
   * new file would get from open(2). */
  struct stat st;
  const mode_t mode = stat(target, &st) == 0 && S_ISREG(st.st_mode)
                          ? st.st_mode & 07777
                          : (mode_t)(0666 & ~current_umask());
  const char *step = "setting the mode of";
  bool ok = fchmod(fd, mode) == 0;
  int err = errno;
  if (ok) {
    step = "writing";
    w->fd = fd;
    w->crc = 0;
    w->err = 0;
    w->len = 0;
    body(w, ctx);
    uint8_t crc[4];
    dn_put_u32(crc, w->crc);
    dn_writer_bytes(w, crc, sizeof crc);
    writer_flush(w);
    ok = w->err == 0;
    err = w->err;
  }
  if (ok) {
    step = "syncing";
    ok = fsync(fd) == 0;
    err = errno;
  }
  if (close(fd) != 0 && ok) {
    step = "closing";
    ok = false;
    err = errno;
  }
  if (ok && rename(tmp, target) != 0) {
    step = "renaming";
    ok = false;
    err = errno;
  }
  if (!ok) {
    unlink(tmp);
    s = dn_fail(DN_ERR_IO, "%s: %s the temporary file '%s' failed: %s; '%s' is unchanged", who,
                step, tmp, strerror(err), path);
    goto done;
  }
  s = sync_dir(path, dir, who);
done:
  free(tmp);
  free(dir);
  free(w);
  return s;
}

/* The file the symbolic links at path lead to, one level at a time (malloc'd; path itself
 * when it is no link). Each level must pass the kernel's fs.protected_symlinks rule, which
 * realpath() would skip, as it reads links in user space: a link in a sticky
 * world-writable directory (/tmp) is followed only if the caller or the directory's owner
 * owns it, so another user's link cannot aim this save at the caller's files. The
 * directories on the way are left to the kernel, which applies the rule itself. */
static dn_status resolve_links(const char *path, const char *who, char **out) {
  char *cur = strdup(path);
  if (!cur) return dn_fail(DN_ERR_NOMEM, "%s: out of memory; '%s' is unchanged", who, path);
  for (int depth = 0; depth < 40; depth++) { /* Linux's limit of links in a path */
    struct stat link;
    if (lstat(cur, &link) != 0 || !S_ISLNK(link.st_mode)) {
      *out = cur;
      return DN_OK;
    }
    const char *dir_start;
    const size_t dir_len = dir_part(cur, &dir_start);
    char dir[PATH_MAX], text[PATH_MAX];
    snprintf(dir, sizeof dir, "%.*s", (int)dir_len, dir_start);
    struct stat d;
    const ssize_t n = readlink(cur, text, sizeof text - 1);
    dn_status s = DN_OK;
    if (stat(dir, &d) == 0 && (d.st_mode & S_ISVTX) && (d.st_mode & S_IWOTH) &&
        link.st_uid != geteuid() && link.st_uid != d.st_uid)
      s = dn_fail(DN_ERR_IO, "%s: '%s' is a symbolic link of another user in the shared directory "
                  "'%s': not followed (as the kernel's protected_symlinks would not); nothing was "
                  "written", who, path, dir);
    else if (n < 0 || n >= (ssize_t)sizeof text - 1)
      s = dn_fail(DN_ERR_IO, "%s: cannot read the symbolic link '%s': %s; nothing was written", who,
                  cur, n < 0 ? strerror(errno) : "target too long");
    char *next = NULL;
    if (!s) {
      text[n] = '\0';
      const size_t len = text[0] == '/' ? (size_t)n + 1 : dir_len + 1 + (size_t)n + 1;
      if (!(next = malloc(len)))
        s = dn_fail(DN_ERR_NOMEM, "%s: out of memory; '%s' is unchanged", who, path);
      else if (text[0] == '/')
        memcpy(next, text, len);
      else
        snprintf(next, len, "%s/%s", dir, text);
    }
    free(cur);
    if (s) return s;
    cur = next;
  }
  free(cur);
  return dn_fail(DN_ERR_IO, "%s: '%s': too many levels of symbolic links; nothing was written", who, path);
}

dn_status dn_save_atomic(const char *path, const char *who, dn_write_body_fn body, const void *ctx) {
  /* The rename replaces whatever entry is at the target. So symbolic links are followed
   * (the file they lead to is replaced and the links stay links), and anything but a
   * regular file is refused: renaming over a FIFO or a device would put a regular file in
   * its place (saving to /dev/null as root would have made /dev/null a file). */
  struct stat st;
  char *resolved = NULL;
  const dn_status resolving = resolve_links(path, who, &resolved);
  if (resolving) return resolving;
  const char *target = resolved ? resolved : path;
  dn_status s;
  if (stat(target, &st) == 0 && !S_ISREG(st.st_mode))
    s = dn_fail(DN_ERR_IO, "%s: '%s' is %s, not a regular file; it was not replaced", who, path,
                file_kind(st.st_mode));
  else
    s = save_atomic_to(target, path, who, body, ctx);
  free(resolved);
  return s;
}

/* ---- saving a model -------------------------------------------------------- */

static void write_model(dn_writer *w, const void *ctx) {
  const dn_net *net = ctx;
  dn_writer_bytes(w, dn_model_magic, sizeof dn_model_magic);
  dn_writer_u32(w, MODEL_VERSION);
  dn_writer_net_desc(w, net);
  dn_writer_floats(w, net->params, net->n_params);
}

dn_status dn_net_save(const dn_net *net, const char *path) {
  if (!net || !path) return dn_fail(DN_ERR_ARG, "dn_net_save: net or path is NULL");
  if (!*path) return dn_fail(DN_ERR_ARG, "dn_net_save: path is empty");
  /* The loader rejects non-finite parameters, so such a net must not replace a good file. */
  for (size_t i = 0; i < net->n_params; i++)
    if (!isfinite(net->params[i]))
      return dn_fail(DN_ERR_NUMERIC, "dn_net_save: parameter %zu is not finite (%g); nothing written",
                     i, (double)net->params[i]);
  return dn_save_atomic(path, "dn_net_save", write_model, net);
}

/* ---- loading --------------------------------------------------------------- */

/* Read up to len bytes; returns the count read (short only at end of file), or -1. */
static ssize_t read_full(int fd, uint8_t *p, size_t len) {
  size_t got = 0;
  while (got < len) {
    const ssize_t r = read(fd, p + got, len - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;
    got += (size_t)r;
  }
  return (ssize_t)got;
}

dn_status dn_reader_open(dn_reader *r, const char *path, const char *who) {
  /* O_NONBLOCK: opening a FIFO with no writer would otherwise block forever before the
   * check below could refuse it; on a regular file the flag changes nothing, and it is
   * cleared once the file is known to be one. */
  *r = (dn_reader){.path = path, .who = who, .fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
  if (r->fd < 0) return dn_fail(DN_ERR_IO, "%s: cannot open '%s': %s", who, path, strerror(errno));
  struct stat st;
  dn_status s = DN_OK;
  int flags;
  if (fstat(r->fd, &st) != 0)
    s = dn_fail(DN_ERR_IO, "%s: cannot stat '%s': %s", who, path, strerror(errno));
  else if (!S_ISREG(st.st_mode))
    s = dn_fail(DN_ERR_IO, "%s: '%s' is not a regular file", who, path);
  else if (st.st_size == 0) /* also what /proc and /sys files report, whatever they hold */
    s = dn_fail(DN_ERR_FORMAT, "%s: '%s' is empty (0 bytes)", who, path);
  else if ((flags = fcntl(r->fd, F_GETFL)) < 0 || fcntl(r->fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
    s = dn_fail(DN_ERR_IO, "%s: cannot read '%s': %s", who, path, strerror(errno));
  if (s) {
    dn_reader_close(r);
    return s;
  }
  r->size = (uint64_t)st.st_size;
  return DN_OK;
}

void dn_reader_close(dn_reader *r) {
  if (r->fd >= 0) close(r->fd);
  r->fd = -1;
}

dn_status dn_reader_bytes(dn_reader *r, uint8_t *p, size_t len, const char *what) {
  const ssize_t got = read_full(r->fd, p, len);
  if (got < 0)
    return dn_fail(DN_ERR_IO, "%s: '%s': read failed at byte offset %llu: %s", r->who, r->path,
                   (unsigned long long)r->offset, strerror(errno));
  if ((size_t)got < len)
    return dn_fail(DN_ERR_FORMAT, "%s: '%s': truncated: the file ends at byte offset %llu, "
                   "inside the %s", r->who, r->path, (unsigned long long)(r->offset + (uint64_t)got),
                   what);
  r->crc = dn_crc32_update(r->crc, p, len);
  r->offset += len;
  return DN_OK;
}

dn_status dn_reader_u32(dn_reader *r, uint32_t *v, const char *what) {
  uint8_t b[4];
  const dn_status s = dn_reader_bytes(r, b, sizeof b, what);
  if (!s) *v = dn_get_u32(b);
  return s;
}

dn_status dn_reader_u64(dn_reader *r, uint64_t *v, const char *what) {
  uint8_t b[8];
  const dn_status s = dn_reader_bytes(r, b, sizeof b, what);
  if (!s) *v = dn_get_u64(b);
  return s;
}

dn_status dn_reader_floats(dn_reader *r, float *x, size_t n, const char *what) {
  uint8_t buf[4 * CHUNK_FLOATS];
  for (size_t done = 0; done < n;) {
    const size_t k = n - done < CHUNK_FLOATS ? n - done : CHUNK_FLOATS;
    const dn_status s = dn_reader_bytes(r, buf, 4 * k, what);
    if (s) return s;
    for (size_t i = 0; i < k; i++) x[done + i] = dn_bits_float(dn_get_u32(buf + 4 * i));
    done += k;
  }
  return DN_OK;
}

dn_status dn_reader_crc(dn_reader *r) {
  const uint32_t computed = r->crc;
  uint32_t stored;
  const dn_status s = dn_reader_u32(r, &stored, "checksum");
  if (s) return s;
  if (stored != computed)
    return dn_fail(DN_ERR_FORMAT, "%s: '%s': byte offset %llu: CRC-32 mismatch (stored 0x%08x, "
                   "computed 0x%08x): the file is corrupt", r->who, r->path,
                   (unsigned long long)(r->offset - 4), stored, computed);
  return DN_OK;
}

/* Check the header (all of it, against the file size) and create the net it describes. */
static dn_status load_header(dn_reader *ld, dn_net **out) {
  const char *path = ld->path;
  uint8_t pre[PREFIX_BYTES];
  const size_t avail = ld->size < PREFIX_BYTES ? (size_t)ld->size : PREFIX_BYTES;
  const ssize_t r = read_full(ld->fd, pre, avail);
  if (r < 0)
    return dn_fail(DN_ERR_IO, "dn_net_load: '%s': read failed: %s", path, strerror(errno));
  const size_t got = (size_t)r;
  if (memcmp(pre, dn_model_magic, got < sizeof dn_model_magic ? got : sizeof dn_model_magic) != 0)
    return dn_fail(DN_ERR_FORMAT, "dn_net_load: '%s': byte offset 0: bad magic, not a deepnet "
                   "model file", path);
  if (got < PREFIX_BYTES)
    return dn_fail(DN_ERR_FORMAT, "dn_net_load: '%s': truncated: the file ends at byte offset %zu, "
                   "inside the header", path, got);
  ld->crc = dn_crc32_update(0, pre, PREFIX_BYTES);
  ld->offset = PREFIX_BYTES;

  const uint32_t version = dn_get_u32(pre + 8);
  if (version != MODEL_VERSION)
    return dn_fail(DN_ERR_FORMAT, "dn_net_load: '%s': byte offset 8: format version %u, this "
                   "library reads version %d", path, version, MODEL_VERSION);
  const uint32_t L = dn_get_u32(pre + 12);
  if (L < 1 || L > DN_MAX_LAYERS)
    return dn_fail(DN_ERR_FORMAT, "dn_net_load: '%s': byte offset 12: L = %u is outside 1..%d",
                   path, L, DN_MAX_LAYERS);
  const uint64_t hdr = header_bytes(L);
  if (ld->size < hdr)
    return dn_fail(DN_ERR_FORMAT, "dn_net_load: '%s': truncated: the header of a %u-layer net is "
                   "%llu bytes, the file has %llu", path, L, (unsigned long long)hdr,
                   (unsigned long long)ld->size);

  /* At most 49 KiB (L <= 4096), and only now that the file is known to hold it. */
  const size_t rest = (size_t)hdr - PREFIX_BYTES;
  uint8_t *h = malloc(rest);
  size_t *dims = malloc(((size_t)L + 1) * sizeof *dims);
  dn_act *acts = malloc((size_t)L * sizeof *acts);
  dn_status s = DN_OK;
  if (!h || !dims || !acts) {
    s = dn_fail(DN_ERR_NOMEM, "dn_net_load: out of memory for the header");
    goto done;
  }
  if ((s = dn_reader_bytes(ld, h, rest, "header"))) goto done;

  uint64_t n_params = 0;
  bool overflow = false;
  for (uint32_t l = 0; l <= L; l++) {
    const uint64_t off = 16 + 8 * (uint64_t)l, v = dn_get_u64(h + off - PREFIX_BYTES);
    if (v == 0 || (uint64_t)(size_t)v != v) {
      s = v == 0 ? dn_fail(DN_ERR_FORMAT, "dn_net_load: '%s': byte offset %llu: n[%u] is 0", path,
                           (unsigned long long)off, l)
                 : dn_fail(DN_ERR_FORMAT, "dn_net_load: '%s': byte offset %llu: n[%u] = %llu is too "
                           "large for this machine", path, (unsigned long long)off, l,
                           (unsigned long long)v);
      goto done;
    }
    dims[l] = (size_t)v;
    uint64_t w, fan_in_plus_bias;
    if (l > 0 && (__builtin_add_overflow((uint64_t)dims[l - 1], (uint64_t)1, &fan_in_plus_bias) ||
                  __builtin_mul_overflow(v, fan_in_plus_bias, &w) ||
                  __builtin_add_overflow(n_params, w, &n_params)))
      overflow = true;
  }
  /* The parameters must fill the file exactly: this bounds every allocation below
   * by the size of the file itself. */
  uint64_t total;
  if (overflow || __builtin_mul_overflow(n_params, (uint64_t)4, &total) ||
      __builtin_add_overflow(total, hdr + 4, &total)) {
    s = dn_fail(DN_ERR_FORMAT, "dn_net_load: '%s': the dims n[0..%u] at byte offset 16 describe "
                "more than 2^64 bytes of parameters (corrupt dims)", path, L);
    goto done;
  }
  if (total != ld->size) {
    if (total > ld->size)
      s = dn_fail(DN_ERR_FORMAT, "dn_net_load: '%s': the dims n[0..%u] at byte offset 16 describe a "
                  "%llu-byte file, but it has %llu bytes (truncated, or corrupt dims)", path, L,
                  (unsigned long long)total, (unsigned long long)ld->size);
    else
      s = dn_fail(DN_ERR_FORMAT, "dn_net_load: '%s': %llu unexpected bytes after the checksum at "
                  "byte offset %llu", path, (unsigned long long)(ld->size - total),
                  (unsigned long long)(total - 4));
    goto done;
  }

  for (uint32_t l = 1; l <= L; l++) {
    const uint64_t off = 24 + 8 * (uint64_t)L + 4 * (uint64_t)(l - 1);
    const uint32_t a = dn_get_u32(h + off - PREFIX_BYTES);
    if (!dn_act_name((dn_act)a) || (a == DN_ACT_SOFTMAX && l != L)) {
      s = dn_fail(DN_ERR_FORMAT, "dn_net_load: '%s': byte offset %llu: activation code %u of layer "
                  "%u is %s", path, (unsigned long long)off, a, l,
                  dn_act_name((dn_act)a) ? "softmax, allowed on the last layer only" : "unknown");
      goto done;
    }
    acts[l - 1] = (dn_act)a;
  }
  const uint64_t loss_off = 24 + 12 * (uint64_t)L;
  const uint32_t loss = dn_get_u32(h + loss_off - PREFIX_BYTES);
  if (!dn_loss_name((dn_loss)loss)) {
    s = dn_fail(DN_ERR_FORMAT, "dn_net_load: '%s': byte offset %llu: loss code %u is unknown", path,
                (unsigned long long)loss_off, loss);
    goto done;
  }

  s = dn_net_create(out, L, dims, acts, (dn_loss)loss);
  if (s == DN_ERR_ARG || s == DN_ERR_SHAPE) {
    /* Left for dn_net_create to refuse: the loss/output pairing (at the loss code) and a
     * one-unit softmax output (its message names it; the offset is the loss code's). */
    char why[256];
    snprintf(why, sizeof why, "%s", dn_last_error());
    s = dn_fail(DN_ERR_FORMAT, "dn_net_load: '%s': byte offset %llu: %s", path,
                (unsigned long long)loss_off, why);
  }
done:
  free(h);
  free(dims);
  free(acts);
  return s;
}

/* Read the parameters into net, check the CRC, then that every value is finite. */
static dn_status load_params(dn_reader *ld, dn_net *net) {
  dn_status s;
  if ((s = dn_reader_floats(ld, net->params, net->n_params, "parameters")) || (s = dn_reader_crc(ld)))
    return s;

  /* A checksum only proves the bytes are what was written; a hand-made or foreign
   * file can still carry NaN/Inf, which training would spread everywhere. */
  const uint64_t base = header_bytes(net->L);
  for (size_t l = 1; l <= net->L; l++) {
    const size_t nW = net->n[l] * net->n[l - 1];
    for (size_t i = 0; i < nW + net->n[l]; i++) {
      const float *p = i < nW ? &net->W[l][i] : &net->b[l][i - nW];
      if (!isfinite(*p))
        return dn_fail(DN_ERR_FORMAT, "dn_net_load: '%s': byte offset %llu: %s[%zu][%zu] is %g, "
                       "parameters must be finite", ld->path,
                       (unsigned long long)(base + 4 * (uint64_t)(p - net->params)),
                       i < nW ? "W" : "b", l, i < nW ? i : i - nW, (double)*p);
    }
  }
  return DN_OK;
}

dn_status dn_net_load(dn_net **out, const char *path) {
  if (!out || !path) return dn_fail(DN_ERR_ARG, "dn_net_load: out or path is NULL");
  if (!*path) return dn_fail(DN_ERR_ARG, "dn_net_load: path is empty");
  dn_reader ld;
  dn_status s = dn_reader_open(&ld, path, "dn_net_load");
  if (s) return s;
  dn_net *net = NULL;
  s = load_header(&ld, &net);
  if (!s) s = load_params(&ld, net);
  if (s)
    dn_net_free(net);
  else
    *out = net;
  dn_reader_close(&ld);
  return s;
}
