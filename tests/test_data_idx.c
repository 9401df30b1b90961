/* Specification of the IDX loader: MNIST-style image and label files, plain or gzipped,
 * into the engine's column-major layout; damaged files rejected with where they went wrong. */
#include <criterion/criterion.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "deepnet.h"
#include "tmpdir.h"

TestSuite(data_idx, .init = tt_setup, .fini = tt_teardown);

enum { ROWS = 3, COLS = 2, M = 5, PIXELS = ROWS * COLS * M };

static void put_be32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (24 - 8 * i));
}

/* A valid pair: image j has pixel k = (j * 37 + k * 11) % 256, labels {3, 0, 7, 3, 1}. */
typedef struct idx_pair {
  unsigned char images[16 + PIXELS];
  unsigned char labels[8 + M];
} idx_pair;

static idx_pair make_pair(void) {
  idx_pair p;
  put_be32(p.images, 0x00000803);
  put_be32(p.images + 4, M);
  put_be32(p.images + 8, ROWS);
  put_be32(p.images + 12, COLS);
  for (size_t j = 0; j < M; j++)
    for (size_t k = 0; k < ROWS * COLS; k++) p.images[16 + j * ROWS * COLS + k] = (unsigned char)((j * 37 + k * 11) % 256);
  p.images[16] = 0;
  p.images[17] = 255;
  p.images[18] = 51;
  put_be32(p.labels, 0x00000801);
  put_be32(p.labels + 4, M);
  const unsigned char labels[M] = {3, 0, 7, 3, 1};
  memcpy(p.labels + 8, labels, M);
  return p;
}

/* Loading must fail with status, a message containing needle, and *out untouched. */
static void expect_fails(const char *images, const char *labels, dn_status status, const char *needle) {
  dn_dataset sentinel = {.X = (float *)(uintptr_t)8, .m = 99}, d = sentinel;
  const dn_status s = dn_dataset_load_idx(&d, images, labels);
  cr_assert_eq(s, status, "got %s (%s)", dn_status_str(s), dn_last_error());
  cr_assert_eq(memcmp(&d, &sentinel, sizeof d), 0, "*out changed on failure");
  if (needle) cr_assert_not_null(strstr(dn_last_error(), needle), "message '%s' lacks '%s'", dn_last_error(), needle);
}

static void expect_pair_fails(const idx_pair *p, size_t images_len, size_t labels_len, const char *needle) {
  expect_fails(tt_write("img", p->images, images_len, 0), tt_write("lab", p->labels, labels_len, 0),
               DN_ERR_FORMAT, needle);
}

static void check_loaded(const dn_dataset *d, const idx_pair *p) {
  cr_assert_eq(d->m, M);
  cr_assert_eq(d->n_features, ROWS * COLS);
  cr_assert_eq(d->n_classes, 8, "n_classes is max label + 1");
  for (size_t i = 0; i < PIXELS; i++)
    cr_assert_eq(d->X[i], (float)p->images[16 + i] / 255.0f, "X[%zu]", i);
  for (size_t j = 0; j < M; j++) {
    cr_assert_eq(d->labels[j], p->labels[8 + j]);
    for (size_t c = 0; c < d->n_classes; c++)
      cr_assert_eq(d->Y[c + j * d->n_classes], c == d->labels[j] ? 1.0f : 0.0f, "Y(%zu, %zu)", c, j);
  }
}

Test(data_idx, plain_files_load_with_image_j_as_column_j_and_one_hot_labels) {
  idx_pair p = make_pair();
  dn_dataset d;
  cr_assert_eq(dn_dataset_load_idx(&d, tt_write("img", p.images, sizeof p.images, 0),
                                   tt_write("lab", p.labels, sizeof p.labels, 0)), DN_OK, "%s", dn_last_error());
  check_loaded(&d, &p);
  cr_assert_eq(((uintptr_t)d.X | (uintptr_t)d.Y) % 64, 0, "X and Y are 64-byte aligned");
  dn_dataset_free(&d);
}

Test(data_idx, images_without_labels_load_for_prediction) {
  idx_pair p = make_pair();
  dn_dataset d;
  cr_assert_eq(dn_dataset_load_idx(&d, tt_write("img", p.images, sizeof p.images, 0), NULL), DN_OK, "%s",
               dn_last_error());
  cr_assert_eq(d.m, M);
  cr_assert_eq(d.n_features, ROWS * COLS);
  cr_expect(d.Y == NULL && d.labels == NULL && d.n_classes == 0);
  for (size_t i = 0; i < PIXELS; i++) cr_assert_eq(d.X[i], (float)p.images[16 + i] / 255.0f, "X[%zu]", i);
  dn_dataset_free(&d);
  expect_fails(NULL, NULL, DN_ERR_ARG, "images_path");
}

Test(data_idx, gzipped_files_load_exactly_like_plain_ones) {
  idx_pair p = make_pair();
  dn_dataset d;
  cr_assert_eq(dn_dataset_load_idx(&d, tt_write("img.gz", p.images, sizeof p.images, 1),
                                   tt_write("lab.gz", p.labels, sizeof p.labels, 1)), DN_OK, "%s", dn_last_error());
  check_loaded(&d, &p);
  dn_dataset_free(&d);
}

Test(data_idx, pixels_are_scaled_to_the_unit_interval) {
  idx_pair p = make_pair();
  dn_dataset d;
  cr_assert_eq(dn_dataset_load_idx(&d, tt_write("img", p.images, sizeof p.images, 0),
                                   tt_write("lab", p.labels, sizeof p.labels, 0)), DN_OK);
  cr_assert_eq(d.X[0], 0.0f);
  cr_assert_eq(d.X[1], 1.0f);
  cr_assert_float_eq(d.X[2], 0.2f, 1e-7f);
  for (size_t i = 0; i < PIXELS; i++) cr_assert(d.X[i] >= 0.0f && d.X[i] <= 1.0f);
  dn_dataset_free(&d);
}

Test(data_idx, a_single_class_still_gives_two_classes) {
  idx_pair p = make_pair();
  memset(p.labels + 8, 0, M);
  dn_dataset d;
  cr_assert_eq(dn_dataset_load_idx(&d, tt_write("img", p.images, sizeof p.images, 0),
                                   tt_write("lab", p.labels, sizeof p.labels, 0)), DN_OK);
  cr_assert_eq(d.n_classes, 2);
  for (size_t j = 0; j < M; j++) cr_assert(d.Y[2 * j] == 1.0f && d.Y[2 * j + 1] == 0.0f);
  dn_dataset_free(&d);
}

Test(data_idx, missing_files_are_io_errors_naming_the_file) {
  idx_pair p = make_pair();
  const char *img = tt_write("img", p.images, sizeof p.images, 0);
  const char *lab = tt_write("lab", p.labels, sizeof p.labels, 0);
  expect_fails(tt_path("nope-images"), lab, DN_ERR_IO, "nope-images");
  expect_fails(img, tt_path("nope-labels"), DN_ERR_IO, "nope-labels");
  expect_fails(NULL, lab, DN_ERR_ARG, NULL);
  cr_assert_eq(dn_dataset_load_idx(NULL, img, lab), DN_ERR_ARG);
}

Test(data_idx, a_wrong_magic_is_rejected_and_swapped_paths_are_pointed_out) {
  idx_pair p = make_pair();
  expect_fails(tt_write("lab1", p.labels, sizeof p.labels, 0), tt_write("img1", p.images, sizeof p.images, 0),
               DN_ERR_FORMAT, "swapped");
  p.images[2] = 0x0D; /* floats, not unsigned bytes */
  expect_pair_fails(&p, sizeof p.images, sizeof p.labels, "magic 0x00000d03");
}

Test(data_idx, images_truncated_anywhere_are_rejected_naming_the_file_and_offset) {
  idx_pair p = make_pair();
  for (size_t len = 0; len < sizeof p.images; len++) expect_pair_fails(&p, len, sizeof p.labels, "images file");
  expect_pair_fails(&p, 16 + 2 * ROWS * COLS + 1, sizeof p.labels, "ends at byte offset 29, after 2 complete images");
}

Test(data_idx, labels_truncated_anywhere_are_rejected_naming_the_file_and_offset) {
  idx_pair p = make_pair();
  for (size_t len = 0; len < sizeof p.labels; len++) expect_pair_fails(&p, sizeof p.images, len, "labels file");
  expect_pair_fails(&p, sizeof p.images, 10, "ends at byte offset 10, after 2 complete labels");
}

Test(data_idx, a_cut_gzip_stream_is_a_format_error) {
  idx_pair p = make_pair();
  const char *img = tt_write("img.gz", p.images, sizeof p.images, 1);
  size_t len;
  unsigned char *gz = tt_read(img, &len);
  const char *lab = tt_write("lab", p.labels, sizeof p.labels, 0);
  for (size_t cut = 1; cut < len; cut++) expect_fails(tt_write("cut.gz", gz, cut, 0), lab, DN_ERR_FORMAT, NULL);
  expect_fails(tt_write("cut.gz", gz, len - 4, 0), lab, DN_ERR_FORMAT, "truncated gzip data"); /* no size field */
  gz[len / 2] ^= 0xFF; /* a corrupt deflate stream or gzip trailer */
  expect_fails(tt_write("bad.gz", gz, len, 0), lab, DN_ERR_FORMAT, NULL);
  free(gz);
}

Test(data_idx, image_and_label_counts_must_agree) {
  idx_pair p = make_pair();
  put_be32(p.labels + 4, M - 1);
  expect_pair_fails(&p, sizeof p.images, sizeof p.labels - 1, "holds 5 images but");
}

Test(data_idx, a_zero_dimension_is_rejected) {
  idx_pair p = make_pair();
  put_be32(p.images + 12, 0);
  expect_pair_fails(&p, sizeof p.images, sizeof p.labels, "dimension 2 is 0");
  p = make_pair();
  put_be32(p.labels + 4, 0);
  expect_pair_fails(&p, sizeof p.images, sizeof p.labels, "dimension 0 is 0");
}

Test(data_idx, absurd_dims_in_a_tiny_file_are_rejected_without_a_big_allocation) {
  struct rusage before, after;
  getrusage(RUSAGE_SELF, &before);
  idx_pair p = make_pair();
  put_be32(p.images + 4, 100000); /* 100000 images of 65535 x 65535: 1.7 PB of floats */
  put_be32(p.images + 8, 65535);
  put_be32(p.images + 12, 65535);
  put_be32(p.labels + 4, 100000);
  expect_pair_fails(&p, sizeof p.images, sizeof p.labels, "truncated");
  put_be32(p.images + 4, 0xFFFFFFFFu); /* the byte count overflows 64 bits */
  put_be32(p.images + 8, 0xFFFFFFFFu);
  put_be32(p.images + 12, 0xFFFFFFFFu);
  put_be32(p.labels + 4, 0xFFFFFFFFu);
  expect_pair_fails(&p, sizeof p.images, sizeof p.labels, "overflow");
  getrusage(RUSAGE_SELF, &after);
  cr_assert_lt(after.ru_maxrss - before.ru_maxrss, 64 * 1024, "peak memory grew by %ld KiB",
               after.ru_maxrss - before.ru_maxrss);
}

Test(data_idx, data_after_the_promised_items_is_rejected) {
  idx_pair p = make_pair();
  unsigned char longer[sizeof p.images + 1];
  memcpy(longer, p.images, sizeof p.images);
  longer[sizeof p.images] = 0;
  expect_fails(tt_write("img", longer, sizeof longer, 0), tt_write("lab", p.labels, sizeof p.labels, 0),
               DN_ERR_FORMAT, "unexpected data at byte offset 46");
}

Test(data_idx, freeing_a_set_zeroes_it_and_null_is_harmless) {
  idx_pair p = make_pair();
  dn_dataset d, zero = {0};
  cr_assert_eq(dn_dataset_load_idx(&d, tt_write("img", p.images, sizeof p.images, 0),
                                   tt_write("lab", p.labels, sizeof p.labels, 0)), DN_OK);
  dn_dataset_free(&d);
  cr_assert_eq(memcmp(&d, &zero, sizeof d), 0);
  dn_dataset_free(&d);
  dn_dataset_free(NULL);
}

/* The real data set, installed by Debian's dataset-fashion-mnist package. */
static void check_fashion_mnist(const char *set, size_t m) {
  char images[256], labels[256];
  snprintf(images, sizeof images, "/usr/share/datasets/fashion-mnist/%s-images-idx3-ubyte.gz", set);
  snprintf(labels, sizeof labels, "/usr/share/datasets/fashion-mnist/%s-labels-idx1-ubyte.gz", set);
  struct stat st;
  if (stat(images, &st) != 0 || stat(labels, &st) != 0) cr_skip_test("%s is not installed", images);
  dn_dataset d;
  cr_assert_eq(dn_dataset_load_idx(&d, images, labels), DN_OK, "%s", dn_last_error());
  cr_assert_eq(d.m, m);
  cr_assert_eq(d.n_features, 784);
  cr_assert_eq(d.n_classes, 10);
  size_t per_class[10] = {0};
  for (size_t j = 0; j < m; j++) {
    cr_assert_lt(d.labels[j], 10);
    per_class[d.labels[j]]++;
    cr_assert_eq(d.Y[d.labels[j] + 10 * j], 1.0f);
  }
  for (size_t c = 0; c < 10; c++) cr_assert_eq(per_class[c], m / 10, "class %zu has %zu examples", c, per_class[c]);
  float lo = 1.0f, hi = 0.0f;
  for (size_t i = 0; i < 784 * m; i++) {
    lo = d.X[i] < lo ? d.X[i] : lo;
    hi = d.X[i] > hi ? d.X[i] : hi;
  }
  cr_assert(lo == 0.0f && hi == 1.0f, "pixels span [%g, %g]", (double)lo, (double)hi);
  dn_dataset_free(&d);
}

Test(data_idx, fashion_mnist_test_set_loads_as_10000_balanced_examples) { check_fashion_mnist("t10k", 10000); }
Test(data_idx, fashion_mnist_training_set_loads_as_60000_balanced_examples) { check_fashion_mnist("train", 60000); }
