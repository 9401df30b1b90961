/* The model file: dn_net_save writes a net crash-safely, dn_net_load reads one back
 * after checking every field against the file's real size.
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
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32.h"
#include "internal.h"

static const uint8_t MODEL_MAGIC[8] = {0x89, 'D', 'N', 'N', 0x0D, 0x0A, 0x1A, 0x0A};
enum {
  MODEL_VERSION = 1,
  MODEL_MAX_LAYERS = 4096, /* dn_net_create's limit */
  PREFIX_BYTES = 16,       /* magic, version, L: enough to size the rest of the header */
  CHUNK_FLOATS = 4096      /* parameters go through a 16 KiB stack buffer */
};

/* The file stores the enum values themselves, so they are part of the format. */
_Static_assert(DN_ACT_LINEAR == 0 && DN_ACT_RELU == 1 && DN_ACT_LEAKY_RELU == 2 &&
                   DN_ACT_SIGMOID == 3 && DN_ACT_TANH == 4 && DN_ACT_SOFTMAX == 5,
               "dn_act values are stored in model files");
_Static_assert(DN_LOSS_BCE == 0 && DN_LOSS_CCE == 1 && DN_LOSS_MSE == 2,
               "dn_loss values are stored in model files");
_Static_assert(sizeof(float) == 4, "the model file stores IEEE-754 binary32");

static void put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32(const uint8_t *p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--) v = v << 8 | p[i];
  return v;
}
static uint64_t get_u64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}
static uint32_t float_bits(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  return u;
}
static float bits_float(uint32_t u) {
  float x;
  memcpy(&x, &u, sizeof x);
  return x;
}

/* Header bytes of an L-layer net (everything before the parameters). */
static uint64_t header_bytes(uint64_t L) { return 28 + 12 * L; }

/* ---- saving ---------------------------------------------------------------- */

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

/* The process umask without changing it (umask(2) can only read it by setting it,
 * which races with other threads). Linux >= 4.7 reports it in /proc; elsewhere
 * assume the most private one, so a model is never more readable than intended. */
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

/* The header bytes of net (malloc'd, *len set), NULL when out of memory. */
static uint8_t *encode_header(const dn_net *net, size_t *len) {
  const size_t L = net->L;
  *len = (size_t)header_bytes(L);
  uint8_t *h = malloc(*len);
  if (!h) return NULL;
  memcpy(h, MODEL_MAGIC, sizeof MODEL_MAGIC);
  put_u32(h + 8, MODEL_VERSION);
  put_u32(h + 12, (uint32_t)L);
  for (size_t l = 0; l <= L; l++) put_u64(h + 16 + 8 * l, net->n[l]);
  for (size_t l = 1; l <= L; l++) put_u32(h + 24 + 8 * L + 4 * (l - 1), (uint32_t)net->act[l]);
  put_u32(h + 24 + 12 * L, (uint32_t)net->loss);
  return h;
}

/* Write the header, the parameters and the CRC of both to fd. */
static bool write_model(int fd, const uint8_t *hdr, size_t hdr_len, const dn_net *net) {
  uint32_t crc = dn_crc32_update(0, hdr, hdr_len);
  bool ok = write_all(fd, hdr, hdr_len);
  uint8_t buf[4 * CHUNK_FLOATS];
  for (size_t done = 0; ok && done < net->n_params;) {
    const size_t k = net->n_params - done < CHUNK_FLOATS ? net->n_params - done : CHUNK_FLOATS;
    for (size_t i = 0; i < k; i++) put_u32(buf + 4 * i, float_bits(net->params[done + i]));
    crc = dn_crc32_update(crc, buf, 4 * k);
    ok = write_all(fd, buf, 4 * k);
    done += k;
  }
  put_u32(buf, crc);
  return ok && write_all(fd, buf, 4);
}

/* Make the rename durable. Best effort where the platform cannot (EINVAL: the file
 * system does not sync directories; EACCES: no read permission on it); a real I/O
 * error is reported. */
static dn_status sync_parent_dir(const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
  if (!dir) return dn_fail(DN_ERR_NOMEM, "dn_net_save: out of memory");
  const int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  dn_status s = DN_OK;
  if (dfd < 0) {
    if (errno != EACCES)
      s = dn_fail(DN_ERR_IO, "dn_net_save: '%s' is in place, but its directory '%s' cannot be "
                  "opened to sync it: %s", path, dir, strerror(errno));
  } else {
    if (fsync(dfd) != 0 && errno != EINVAL)
      s = dn_fail(DN_ERR_IO, "dn_net_save: '%s' is in place, but syncing its directory '%s' "
                  "failed, so it may not survive a crash: %s", path, dir, strerror(errno));
    close(dfd);
  }
  free(dir);
  return s;
}

dn_status dn_net_save(const dn_net *net, const char *path) {
  if (!net || !path) return dn_fail(DN_ERR_ARG, "dn_net_save: net or path is NULL");
  if (!*path) return dn_fail(DN_ERR_ARG, "dn_net_save: path is empty");
  /* The loader rejects non-finite parameters, so such a net must not replace a good file. */
  for (size_t i = 0; i < net->n_params; i++)
    if (!isfinite(net->params[i]))
      return dn_fail(DN_ERR_NUMERIC, "dn_net_save: parameter %zu is not finite (%g); nothing written",
                     i, (double)net->params[i]);

  size_t hdr_len;
  uint8_t *hdr = encode_header(net, &hdr_len);
  /* The temporary file sits next to the target (rename is atomic only within one
   * file system) and is named after it, so a leftover from a crash is recognisable. */
  static const char suffix[] = ".tmp-XXXXXX";
  const size_t len = strlen(path);
  char *tmp = malloc(len + sizeof suffix);
  if (!hdr || !tmp) {
    free(hdr);
    free(tmp);
    return dn_fail(DN_ERR_NOMEM, "dn_net_save: out of memory");
  }
  memcpy(tmp, path, len);
  memcpy(tmp + len, suffix, sizeof suffix);
  const int fd = mkostemp(tmp, O_CLOEXEC);
  if (fd < 0) {
    const dn_status s = dn_fail(DN_ERR_IO, "dn_net_save: cannot create a temporary file next to "
                                "'%s': %s; '%s' is unchanged", path, strerror(errno), path);
    free(hdr);
    free(tmp);
    return s;
  }

  /* mkstemp makes the file 0600; give it the mode the target has, or the mode a
   * new file would get from open(2). */
  struct stat st;
  const mode_t mode = stat(path, &st) == 0 && S_ISREG(st.st_mode)
                          ? st.st_mode & 07777
                          : (mode_t)(0666 & ~current_umask());
  const char *step = "setting the mode of";
  bool ok = fchmod(fd, mode) == 0;
  if (ok) {
    step = "writing";
    ok = write_model(fd, hdr, hdr_len, net);
  }
  if (ok) {
    step = "syncing";
    ok = fsync(fd) == 0;
  }
  int err = errno;
  if (close(fd) != 0 && ok) {
    step = "closing";
    ok = false;
    err = errno;
  }
  if (ok && rename(tmp, path) != 0) {
    step = "renaming";
    ok = false;
    err = errno;
  }
  free(hdr);
  if (!ok) {
    unlink(tmp);
    const dn_status s = dn_fail(DN_ERR_IO, "dn_net_save: %s the temporary file '%s' failed: %s; "
                                "'%s' is unchanged", step, tmp, strerror(err), path);
    free(tmp);
    return s;
  }
  free(tmp);
  return sync_parent_dir(path);
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

typedef struct loader {
  const char *path;
  int fd;
  uint64_t size;   /* of the file, from fstat */
  uint64_t offset; /* bytes consumed so far */
  uint32_t crc;    /* over the bytes consumed so far */
} loader;

/* Read exactly len bytes at the current offset into p, folding them into the CRC. */
static dn_status load_bytes(loader *ld, uint8_t *p, size_t len, const char *what) {
  const ssize_t r = read_full(ld->fd, p, len);
  if (r < 0)
    return dn_fail(DN_ERR_IO, "dn_net_load: '%s': read failed at byte offset %llu: %s", ld->path,
                   (unsigned long long)ld->offset, strerror(errno));
  if ((size_t)r < len)
    return dn_fail(DN_ERR_FORMAT, "dn_net_load: '%s': truncated: the file ends at byte offset %llu, "
                   "inside the %s", ld->path, (unsigned long long)(ld->offset + (uint64_t)r), what);
  ld->crc = dn_crc32_update(ld->crc, p, len);
  ld->offset += len;
  return DN_OK;
}

/* Check the header (all of it, against the file size) and create the net it describes. */
static dn_status load_header(loader *ld, dn_net **out) {
  const char *path = ld->path;
  uint8_t pre[PREFIX_BYTES];
  const size_t avail = ld->size < PREFIX_BYTES ? (size_t)ld->size : PREFIX_BYTES;
  const ssize_t r = read_full(ld->fd, pre, avail);
  if (r < 0)
    return dn_fail(DN_ERR_IO, "dn_net_load: '%s': read failed: %s", path, strerror(errno));
  const size_t got = (size_t)r;
  if (memcmp(pre, MODEL_MAGIC, got < sizeof MODEL_MAGIC ? got : sizeof MODEL_MAGIC) != 0)
    return dn_fail(DN_ERR_FORMAT, "dn_net_load: '%s': byte offset 0: bad magic, not a deepnet "
                   "model file", path);
  if (got < PREFIX_BYTES)
    return dn_fail(DN_ERR_FORMAT, "dn_net_load: '%s': truncated: the file ends at byte offset %zu, "
                   "inside the header", path, got);
  ld->crc = dn_crc32_update(0, pre, PREFIX_BYTES);
  ld->offset = PREFIX_BYTES;

  const uint32_t version = get_u32(pre + 8);
  if (version != MODEL_VERSION)
    return dn_fail(DN_ERR_FORMAT, "dn_net_load: '%s': byte offset 8: format version %u, this "
                   "library reads version %d", path, version, MODEL_VERSION);
  const uint32_t L = get_u32(pre + 12);
  if (L < 1 || L > MODEL_MAX_LAYERS)
    return dn_fail(DN_ERR_FORMAT, "dn_net_load: '%s': byte offset 12: L = %u is outside 1..%d",
                   path, L, MODEL_MAX_LAYERS);
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
  if ((s = load_bytes(ld, h, rest, "header"))) goto done;

  uint64_t n_params = 0;
  bool overflow = false;
  for (uint32_t l = 0; l <= L; l++) {
    const uint64_t off = 16 + 8 * (uint64_t)l, v = get_u64(h + off - PREFIX_BYTES);
    if (v == 0 || (uint64_t)(size_t)v != v) {
      s = v == 0 ? dn_fail(DN_ERR_FORMAT, "dn_net_load: '%s': byte offset %llu: n[%u] is 0", path,
                           (unsigned long long)off, l)
                 : dn_fail(DN_ERR_FORMAT, "dn_net_load: '%s': byte offset %llu: n[%u] = %llu is too "
                           "large for this machine", path, (unsigned long long)off, l,
                           (unsigned long long)v);
      goto done;
    }
    dims[l] = (size_t)v;
    uint64_t w;
    if (l > 0 && (__builtin_mul_overflow(v, (uint64_t)dims[l - 1] + 1, &w) ||
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
    const uint32_t a = get_u32(h + off - PREFIX_BYTES);
    if (!dn_act_name((dn_act)a) || (a == DN_ACT_SOFTMAX && l != L)) {
      s = dn_fail(DN_ERR_FORMAT, "dn_net_load: '%s': byte offset %llu: activation code %u of layer "
                  "%u is %s", path, (unsigned long long)off, a, l,
                  dn_act_name((dn_act)a) ? "softmax, allowed on the last layer only" : "unknown");
      goto done;
    }
    acts[l - 1] = (dn_act)a;
  }
  const uint64_t loss_off = 24 + 12 * (uint64_t)L;
  const uint32_t loss = get_u32(h + loss_off - PREFIX_BYTES);
  if (!dn_loss_name((dn_loss)loss)) {
    s = dn_fail(DN_ERR_FORMAT, "dn_net_load: '%s': byte offset %llu: loss code %u is unknown", path,
                (unsigned long long)loss_off, loss);
    goto done;
  }

  s = dn_net_create(out, L, dims, acts, (dn_loss)loss);
  if (s == DN_ERR_ARG || s == DN_ERR_SHAPE) {
    /* Only the loss/output pairing is left for dn_net_create to refuse. */
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
static dn_status load_params(loader *ld, dn_net *net) {
  uint8_t buf[4 * CHUNK_FLOATS];
  dn_status s;
  for (size_t done = 0; done < net->n_params;) {
    const size_t k = net->n_params - done < CHUNK_FLOATS ? net->n_params - done : CHUNK_FLOATS;
    if ((s = load_bytes(ld, buf, 4 * k, "parameters"))) return s;
    for (size_t i = 0; i < k; i++) net->params[done + i] = bits_float(get_u32(buf + 4 * i));
    done += k;
  }
  const uint32_t computed = ld->crc;
  if ((s = load_bytes(ld, buf, 4, "checksum"))) return s;
  const uint32_t stored = get_u32(buf);
  if (stored != computed)
    return dn_fail(DN_ERR_FORMAT, "dn_net_load: '%s': byte offset %llu: CRC-32 mismatch (stored "
                   "0x%08x, computed 0x%08x): the file is corrupt", ld->path,
                   (unsigned long long)(ld->offset - 4), stored, computed);

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
  loader ld = {.path = path, .fd = open(path, O_RDONLY | O_CLOEXEC)};
  if (ld.fd < 0)
    return dn_fail(DN_ERR_IO, "dn_net_load: cannot open '%s': %s", path, strerror(errno));
  struct stat st;
  dn_status s;
  if (fstat(ld.fd, &st) != 0) {
    s = dn_fail(DN_ERR_IO, "dn_net_load: cannot stat '%s': %s", path, strerror(errno));
  } else if (!S_ISREG(st.st_mode)) {
    s = dn_fail(DN_ERR_IO, "dn_net_load: '%s' is not a regular file", path);
  } else {
    ld.size = (uint64_t)st.st_size;
    dn_net *net = NULL;
    s = load_header(&ld, &net);
    if (!s) s = load_params(&ld, net);
    if (s)
      dn_net_free(net);
    else
      *out = net;
  }
  close(ld.fd);
  return s;
}
