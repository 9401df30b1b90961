/* Loading IDX image and label files (MNIST, Fashion-MNIST), plain or gzipped, into a dn_dataset. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "dataset.h"

enum {
  IDX_IMAGES_MAGIC = 0x00000803, /* unsigned bytes, 3 dims: count, rows, cols */
  IDX_LABELS_MAGIC = 0x00000801, /* unsigned bytes, 1 dim: count */
  READ_CHUNK = 1 << 20,          /* bytes per gzread call (it takes an unsigned, returns an int) */
  FIRST_CAPACITY = 1 << 20       /* initial data buffer, grown by doubling */
};

typedef struct idx_file {
  const char *path;
  const char *kind;  /* "images" or "labels", for messages */
  gzFile gz;
  uint64_t offset;   /* uncompressed bytes read so far */
} idx_file;

static dn_status idx_open(idx_file *f, const char *path, const char *kind) {
  *f = (idx_file){.path = path, .kind = kind};
  errno = 0;
  /* gzopen reads plain files through unchanged, so one path serves both. */
  f->gz = gzopen(path, "rb");
  if (!f->gz) {
    if (errno == 0) return dn_fail(DN_ERR_NOMEM, "dn_dataset_load_idx: out of memory opening '%s'", path);
    return dn_fail(DN_ERR_IO, "dn_dataset_load_idx: cannot open %s file '%s': %s", kind, path,
                   strerror(errno));
  }
  gzbuffer(f->gz, 128 * 1024);
  return DN_OK;
}

static void idx_close(idx_file *f) {
  if (f->gz) gzclose(f->gz);
  f->gz = NULL;
}

/* Read up to len bytes into p; *got says how many (fewer only at the end of the data). */
static dn_status idx_read(idx_file *f, uint8_t *p, size_t len, size_t *got) {
  *got = 0;
  while (*got < len) {
    const size_t want = len - *got < READ_CHUNK ? len - *got : READ_CHUNK;
    const int r = gzread(f->gz, p + *got, (unsigned)want);
    int err;
    const char *msg = gzerror(f->gz, &err);
    if (r < 0 || err != Z_OK) {
      if (err == Z_ERRNO)
        return dn_fail(DN_ERR_IO, "dn_dataset_load_idx: reading %s file '%s' failed at byte offset "
                       "%llu: %s", f->kind, f->path, (unsigned long long)f->offset, strerror(errno));
      if (err == Z_MEM_ERROR) return dn_fail(DN_ERR_NOMEM, "dn_dataset_load_idx: out of memory in zlib");
      /* Z_BUF_ERROR: the gzip stream stops short, even if only its checksum is missing. */
      return dn_fail(DN_ERR_FORMAT, "dn_dataset_load_idx: %s file '%s': %s gzip data after byte "
                     "offset %llu: %s", f->kind, f->path, err == Z_BUF_ERROR ? "truncated" : "corrupt",
                     (unsigned long long)(f->offset + (uint64_t)(r > 0 ? r : 0)), msg);
    }
    *got += (size_t)r;
    f->offset += (uint64_t)r;
    if (r == 0) break; /* end of the data */
  }
  return DN_OK;
}

/* Read and check the header: magic, then dims big-endian u32 each, none 0. */
static dn_status idx_header(idx_file *f, uint32_t magic, uint32_t *dims, size_t n_dims) {
  uint8_t h[16];
  const size_t len = 4 * (1 + n_dims);
  size_t got;
  dn_status s = idx_read(f, h, len, &got);
  if (s) return s;
  uint32_t v[4] = {0};
  for (size_t i = 0; i < got / 4; i++)
    v[i] = (uint32_t)h[4 * i] << 24 | (uint32_t)h[4 * i + 1] << 16 | (uint32_t)h[4 * i + 2] << 8 | h[4 * i + 3];
  if (got >= 4 && v[0] != magic)
    return dn_fail(DN_ERR_FORMAT, "dn_dataset_load_idx: %s file '%s': byte offset 0: magic 0x%08x, "
                   "expected 0x%08x (IDX %s)%s", f->kind, f->path, v[0], magic,
                   magic == IDX_IMAGES_MAGIC ? "unsigned-byte images, 3 dims" : "unsigned-byte labels, 1 dim",
                   v[0] == (IDX_IMAGES_MAGIC ^ IDX_LABELS_MAGIC ^ magic) ? "; are the two paths swapped?" : "");
  if (got < len)
    return dn_fail(DN_ERR_FORMAT, "dn_dataset_load_idx: %s file '%s': truncated: it ends at byte "
                   "offset %zu, inside the %zu-byte header", f->kind, f->path, got, len);
  for (size_t i = 0; i < n_dims; i++) {
    if (v[i + 1] == 0)
      return dn_fail(DN_ERR_FORMAT, "dn_dataset_load_idx: %s file '%s': byte offset %zu: dimension "
                     "%zu is 0", f->kind, f->path, 4 * (i + 1), i);
    dims[i] = v[i + 1];
  }
  return DN_OK;
}

/* Read exactly count items of item_bytes each and nothing after them.
 *
 * A gzipped file's size says nothing about its content, and a plain file's header can
 * lie as easily, so no allocation trusts the header: the buffer starts at 1 MiB and
 * doubles as data actually arrives. A tiny file claiming 10^11 pixels costs 1 MiB and
 * a clear "truncated" error, not a huge allocation. Memory is bounded by twice the
 * data really present; the only hard limit is that the size must fit size_t. */
static dn_status idx_data(idx_file *f, size_t count, size_t item_bytes, const char *item,
                          uint8_t **out) {
  const size_t total = count * item_bytes; /* the caller checked the product */
  size_t cap = total < FIRST_CAPACITY ? total : FIRST_CAPACITY, have = 0;
  uint8_t *buf = malloc(cap);
  dn_status s = DN_OK;
  if (!buf) return dn_fail(DN_ERR_NOMEM, "dn_dataset_load_idx: out of memory");
  while (have < total) {
    if (have == cap) {
      const size_t grown = cap > total / 2 ? total : 2 * cap;
      uint8_t *p = realloc(buf, grown);
      if (!p) {
        s = dn_fail(DN_ERR_NOMEM, "dn_dataset_load_idx: out of memory for %zu bytes of %s", grown, f->kind);
        goto fail;
      }
      buf = p;
      cap = grown;
    }
    size_t got;
    if ((s = idx_read(f, buf + have, cap - have, &got))) goto fail;
    have += got;
    if (have < cap) break; /* the data ended early */
  }
  if (have < total) {
    s = dn_fail(DN_ERR_FORMAT, "dn_dataset_load_idx: %s file '%s': truncated: the data ends at byte "
                "offset %llu, after %zu complete %ss of the %zu the header promises", f->kind,
                f->path, (unsigned long long)f->offset, have / item_bytes, item, count);
    goto fail;
  }
  uint8_t extra;
  size_t got;
  if ((s = idx_read(f, &extra, 1, &got))) goto fail;
  if (got) {
    s = dn_fail(DN_ERR_FORMAT, "dn_dataset_load_idx: %s file '%s': unexpected data at byte offset "
                "%llu, where the %zu %ss the header promises end", f->kind, f->path,
                (unsigned long long)(f->offset - 1), count, item);
    goto fail;
  }
  *out = buf;
  return DN_OK;
fail:
  free(buf);
  return s;
}

static dn_status load(dn_dataset *out, idx_file *img, idx_file *lab) {
  uint32_t idims[3] = {0}, ldims[1] = {0};
  dn_status s;
  if ((s = idx_header(img, IDX_IMAGES_MAGIC, idims, 3)) ||
      (lab && (s = idx_header(lab, IDX_LABELS_MAGIC, ldims, 1))))
    return s;
  if (lab && idims[0] != ldims[0])
    return dn_fail(DN_ERR_FORMAT, "dn_dataset_load_idx: '%s' holds %u images but '%s' holds %u labels",
                   img->path, idims[0], lab->path, ldims[0]);
  const size_t m = idims[0];
  size_t n_features, pixels;
  if (!dn_mul_ok(idims[1], idims[2], &n_features) || !dn_mul_ok(n_features, m, &pixels) ||
      !dn_floats_bytes(pixels, &(size_t){0}))
    return dn_fail(DN_ERR_FORMAT, "dn_dataset_load_idx: images file '%s': %u images of %u x %u "
                   "pixels overflow this machine's sizes", img->path, idims[0], idims[1], idims[2]);

  uint8_t *lbytes = NULL, *pbytes = NULL;
  if (lab && (s = idx_data(lab, m, 1, "label", &lbytes))) return s;
  if ((s = idx_data(img, m, n_features, "image", &pbytes))) {
    free(lbytes);
    return s;
  }
  float *X = dn_alloc_floats(pixels);
  uint32_t *labels = lab ? malloc(m * sizeof *labels) : NULL;
  if (!X || (lab && !labels)) {
    dn_free_floats(X);
    free(labels);
    free(lbytes);
    free(pbytes);
    return dn_fail(DN_ERR_NOMEM, "dn_dataset_load_idx: out of memory for %zu x %zu pixels", n_features, m);
  }
  /* Image j is stored row by row, which is column j of X as it stands. */
  for (size_t i = 0; i < pixels; i++) X[i] = (float)pbytes[i] / 255.0f;
  free(pbytes);
  if (!lab) { /* images only, e.g. to predict */
    *out = (dn_dataset){.X = X, .n_features = n_features, .m = m};
    return DN_OK;
  }
  for (size_t j = 0; j < m; j++) labels[j] = lbytes[j];
  free(lbytes);
  return dn_dataset_fill(out, X, labels, n_features, m, dn_labels_n_classes(labels, m),
                         "dn_dataset_load_idx");
}

static dn_status load_idx_in_fpenv(dn_dataset *out, const char *images_path, const char *labels_path) {
  if (!out || !images_path)
    return dn_fail(DN_ERR_ARG, "dn_dataset_load_idx: out or images_path is NULL");
  if (!*images_path || (labels_path && !*labels_path))
    return dn_fail(DN_ERR_ARG, "dn_dataset_load_idx: %s is empty", *images_path ? "labels_path" : "images_path");
  idx_file img, lab = {0};
  dn_status s = idx_open(&img, images_path, "images");
  if (!s && labels_path) s = idx_open(&lab, labels_path, "labels");
  if (!s) s = load(out, &img, labels_path ? &lab : NULL);
  idx_close(&img);
  if (labels_path) idx_close(&lab);
  return s;
}

/* The pixel scaling rounds to nearest whatever the caller's mode (DN_IN_NEAREST). */
dn_status dn_dataset_load_idx(dn_dataset *out, const char *images_path, const char *labels_path) {
  return DN_IN_NEAREST(load_idx_in_fpenv(out, images_path, labels_path));
}
