/* Specification of the model file: exact round trips, a fixed byte layout, and loads that
 * reject every damaged file cleanly; saves that replace a file atomically or not at all. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "crc32.h"
#include "internal.h"
#include "test_util.h"
#include "tmpdir.h"

TestSuite(model_io, .init = tt_setup, .fini = tt_teardown);

/* A bitwise CRC-32 (IEEE), independent of the library's, to check it and to forge files. */
static uint32_t ref_crc32(const unsigned char *p, size_t len) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < len; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = c >> 1 ^ (0xEDB88320u & (0u - (c & 1)));
  }
  return ~c;
}

static void put_le(unsigned char *p, uint64_t v, size_t width) {
  for (size_t i = 0; i < width; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* Recompute the trailing CRC so a test reaches the check behind it. */
static void fix_crc(unsigned char *file, size_t len) { put_le(file + len - 4, ref_crc32(file, len - 4), 4); }

/* A net with every parameter set from seed, including values that a lossy format would
 * change: -0, a subnormal, the largest float. */
static dn_net *make_net(size_t L, const size_t *dims, const dn_act *acts, dn_loss loss, uint64_t seed) {
  dn_net *net = NULL;
  cr_assert_eq(dn_net_create(&net, L, dims, acts, loss), DN_OK, "%s", dn_last_error());
  tu_fill_uniform(net->params, net->n_params, -3.0f, 3.0f, seed);
  const float special[] = {-0.0f, 1e-45f, FLT_MAX, -FLT_MIN};
  for (size_t i = 0; i < 4 && i < net->n_params; i++) net->params[(i * 7919) % net->n_params] = special[i];
  return net;
}

/* The net used by the corruption tests: L = 2, dims {3, 2, 2}, relu then softmax, cce. */
static const size_t SMALL_DIMS[] = {3, 2, 2};
static const dn_act SMALL_ACTS[] = {DN_ACT_RELU, DN_ACT_SOFTMAX};
enum { SMALL_L = 2, SMALL_PARAMS = 2 * 3 + 2 + 2 * 2 + 2, SMALL_HDR = 28 + 12 * SMALL_L,
       SMALL_BYTES = SMALL_HDR + 4 * SMALL_PARAMS + 4 };

/* The small net's file, as saved by the library (malloc'd, SMALL_BYTES long). */
static unsigned char *small_file(void) {
  dn_net *net = make_net(SMALL_L, SMALL_DIMS, SMALL_ACTS, DN_LOSS_CCE, 42);
  const char *path = tt_path("small.dnn");
  cr_assert_eq(dn_net_save(net, path), DN_OK, "%s", dn_last_error());
  dn_net_free(net);
  size_t len;
  unsigned char *file = tt_read(path, &len);
  cr_assert_eq(len, SMALL_BYTES);
  return file;
}

/* Loading file must fail with status, a message containing needle, and *out untouched. */
static void expect_load_fails(const unsigned char *file, size_t len, dn_status status, const char *needle) {
  const char *path = tt_write("bad.dnn", file, len, 0);
  dn_net *sentinel = (dn_net *)(uintptr_t)0x1234, *net = sentinel;
  const dn_status s = dn_net_load(&net, path);
  cr_assert_eq(s, status, "len %zu: got %s (%s)", len, dn_status_str(s), dn_last_error());
  cr_assert_eq(net, sentinel, "*out changed on failure");
  if (needle) cr_assert_not_null(strstr(dn_last_error(), needle), "message '%s' lacks '%s'", dn_last_error(), needle);
}

/* Patch a little-endian field of the small file, fix the CRC, and expect FORMAT naming it. */
static void expect_field_rejected(size_t offset, size_t width, uint64_t value, const char *needle) {
  unsigned char *file = small_file();
  put_le(file + offset, value, width);
  fix_crc(file, SMALL_BYTES);
  expect_load_fails(file, SMALL_BYTES, DN_ERR_FORMAT, needle);
  free(file);
}

static void assert_same_net(const dn_net *a, const dn_net *b) {
  cr_assert_eq(dn_net_num_layers(a), dn_net_num_layers(b));
  for (size_t l = 0; l <= a->L; l++) cr_assert_eq(dn_net_dim(a, l), dn_net_dim(b, l), "n[%zu]", l);
  for (size_t l = 1; l <= a->L; l++) cr_assert_eq(dn_net_act(a, l), dn_net_act(b, l), "g[%zu]", l);
  cr_assert_eq(dn_net_loss(a), dn_net_loss(b));
  cr_assert_eq(a->n_params, b->n_params);
  cr_assert_eq(memcmp(a->params, b->params, a->n_params * sizeof(float)), 0, "parameters differ");
}

Test(model_io, crc32_gives_the_ieee_check_value_in_one_piece_or_in_chunks) {
  cr_assert_eq(dn_crc32_update(0, "123456789", 9), 0xCBF43926u);
  unsigned char buf[1000];
  for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)(i * 131 + 7);
  uint32_t c = 0;
  for (size_t i = 0; i < sizeof buf; i += 37) c = dn_crc32_update(c, buf + i, sizeof buf - i < 37 ? sizeof buf - i : 37);
  cr_assert_eq(c, ref_crc32(buf, sizeof buf));
}

Test(model_io, the_file_is_the_documented_little_endian_layout_byte_for_byte) {
  const size_t dims[] = {2, 1};
  const dn_act acts[] = {DN_ACT_SIGMOID};
  dn_net *net = NULL;
  cr_assert_eq(dn_net_create(&net, 1, dims, acts, DN_LOSS_BCE), DN_OK);
  const float W[] = {1.0f, -2.0f}, b[] = {0.5f};
  cr_assert_eq(dn_net_set_layer(net, 1, W, b), DN_OK);
  unsigned char want[56] = {0x89, 'D', 'N', 'N', 0x0D, 0x0A, 0x1A, 0x0A,
                            1, 0, 0, 0,                  /* version */
                            1, 0, 0, 0,                  /* L */
                            2, 0, 0, 0, 0, 0, 0, 0,      /* n[0] */
                            1, 0, 0, 0, 0, 0, 0, 0,      /* n[1] */
                            3, 0, 0, 0,                  /* sigmoid */
                            0, 0, 0, 0,                  /* bce */
                            0, 0, 0x80, 0x3F,            /* W = 1 */
                            0, 0, 0, 0xC0,               /* W = -2 */
                            0, 0, 0, 0x3F};              /* b = 0.5 */
  fix_crc(want, sizeof want);
  const char *path = tt_path("golden.dnn");
  cr_assert_eq(dn_net_save(net, path), DN_OK, "%s", dn_last_error());
  size_t len;
  unsigned char *got = tt_read(path, &len);
  cr_assert_eq(len, sizeof want);
  cr_assert_arr_eq(got, want, sizeof want);
  dn_net *back = NULL;
  cr_assert_eq(dn_net_load(&back, tt_write("written-by-hand.dnn", want, sizeof want, 0)), DN_OK, "%s",
               dn_last_error());
  assert_same_net(net, back);
  free(got);
  dn_net_free(net);
  dn_net_free(back);
}

Test(model_io, round_trip_is_bitwise_exact_for_every_activation_and_loss) {
  static const struct {
    size_t L, dims[5];
    dn_act acts[4];
    dn_loss loss;
  } cases[] = {
      {1, {3, 1}, {DN_ACT_SIGMOID}, DN_LOSS_BCE},
      {3, {5, 4, 3, 2}, {DN_ACT_RELU, DN_ACT_LEAKY_RELU, DN_ACT_SOFTMAX}, DN_LOSS_CCE},
      {4, {2, 7, 1, 6, 3}, {DN_ACT_TANH, DN_ACT_SIGMOID, DN_ACT_LINEAR, DN_ACT_LINEAR}, DN_LOSS_MSE},
      {2, {33, 17, 1}, {DN_ACT_LEAKY_RELU, DN_ACT_TANH}, DN_LOSS_MSE},
      {2, {300, 40, 10}, {DN_ACT_RELU, DN_ACT_SOFTMAX}, DN_LOSS_CCE}, /* > one 16 KiB I/O chunk */
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    dn_net *net = make_net(cases[c].L, cases[c].dims, cases[c].acts, cases[c].loss, 100 + c);
    const float *params_before = net->params;
    float *copy = malloc(net->n_params * sizeof(float));
    memcpy(copy, net->params, net->n_params * sizeof(float));
    const char *path = tt_path("net.dnn");
    cr_assert_eq(dn_net_save(net, path), DN_OK, "case %zu: %s", c, dn_last_error());
    cr_assert(net->params == params_before && !memcmp(copy, net->params, net->n_params * sizeof(float)),
              "save modified the net");
    dn_net *back = NULL;
    cr_assert_eq(dn_net_load(&back, path), DN_OK, "case %zu: %s", c, dn_last_error());
    assert_same_net(net, back);
    free(copy);
    dn_net_free(net);
    dn_net_free(back);
  }
}

Test(model_io, a_loaded_net_saves_to_the_identical_bytes) {
  unsigned char *file = small_file();
  dn_net *net = NULL;
  cr_assert_eq(dn_net_load(&net, tt_path("small.dnn")), DN_OK, "%s", dn_last_error());
  const char *again = tt_path("again.dnn");
  cr_assert_eq(dn_net_save(net, again), DN_OK, "%s", dn_last_error());
  size_t len;
  unsigned char *file2 = tt_read(again, &len);
  cr_assert_eq(len, SMALL_BYTES);
  cr_assert_arr_eq(file, file2, SMALL_BYTES);
  free(file);
  free(file2);
  dn_net_free(net);
}

Test(model_io, a_missing_file_or_a_directory_is_an_io_error) {
  dn_net *net = NULL;
  cr_assert_eq(dn_net_load(&net, tt_path("no-such-file.dnn")), DN_ERR_IO);
  cr_assert_not_null(strstr(dn_last_error(), "no-such-file.dnn"), "%s", dn_last_error());
  cr_assert_eq(dn_net_load(&net, tt_root), DN_ERR_IO);
  cr_assert_null(net);
}

/* A FIFO with no writer: open(2) without O_NONBLOCK waited for one forever, before the
 * regular-file check could refuse it (the timeout turns a hang into a failure). */
Test(model_io, a_fifo_is_refused_at_once_for_loading_and_resuming, .timeout = 20) {
  const char *fifo = tt_path("model.fifo");
  cr_assert_eq(mkfifo(fifo, 0600), 0);
  dn_net *net = NULL;
  cr_assert_eq(dn_net_load(&net, fifo), DN_ERR_IO);
  cr_assert_not_null(strstr(dn_last_error(), "not a regular file"), "%s", dn_last_error());
  cr_assert_null(net);
  net = make_net(SMALL_L, SMALL_DIMS, SMALL_ACTS, DN_LOSS_CCE, 1);
  const size_t n0 = SMALL_DIMS[0], nL = SMALL_DIMS[SMALL_L];
  float X[4 * 16] = {0}, Y[4 * 16] = {0};
  cr_assert(n0 <= 4 && nL <= 4);
  for (size_t j = 0; j < 4; j++) Y[j * nL] = 1.0f;
  dn_train_opts o;
  dn_train_opts_default(&o);
  o.epochs = 1;
  o.checkpoint_path = fifo;
  o.resume = 1;
  cr_assert_eq(dn_net_train(net, X, Y, 4, &o), DN_ERR_IO, "%s", dn_last_error());
  dn_net_free(net);
}

Test(model_io, null_arguments_are_rejected_without_touching_anything) {
  dn_net *net = NULL;
  cr_assert_eq(dn_net_load(NULL, "x"), DN_ERR_ARG);
  cr_assert_eq(dn_net_load(&net, NULL), DN_ERR_ARG);
  cr_assert_eq(dn_net_save(NULL, tt_path("x")), DN_ERR_ARG);
  net = make_net(SMALL_L, SMALL_DIMS, SMALL_ACTS, DN_LOSS_CCE, 1);
  cr_assert_eq(dn_net_save(net, NULL), DN_ERR_ARG);
  cr_assert_eq(dn_net_save(net, ""), DN_ERR_ARG);
  cr_assert_eq(tt_count_entries(NULL), 0);
  dn_net_free(net);
}

Test(model_io, a_file_truncated_at_any_byte_offset_is_a_format_error) {
  unsigned char *file = small_file();
  for (size_t len = 0; len < SMALL_BYTES; len++) expect_load_fails(file, len, DN_ERR_FORMAT, NULL);
  expect_load_fails(file, 10, DN_ERR_FORMAT, "truncated");
  expect_load_fails(file, SMALL_BYTES - 1, DN_ERR_FORMAT, "truncated");
  free(file);
}

Test(model_io, every_single_bit_flip_anywhere_in_the_file_is_a_format_error) {
  unsigned char *file = small_file();
  for (size_t bit = 0; bit < 8 * SMALL_BYTES; bit++) {
    file[bit / 8] ^= (unsigned char)(1u << bit % 8);
    expect_load_fails(file, SMALL_BYTES, DN_ERR_FORMAT, NULL);
    file[bit / 8] ^= (unsigned char)(1u << bit % 8);
  }
  file[SMALL_HDR + 5] ^= 0x10; /* inside the parameters: only the CRC can tell */
  expect_load_fails(file, SMALL_BYTES, DN_ERR_FORMAT, "CRC-32 mismatch");
  free(file);
}

Test(model_io, a_wrong_magic_is_rejected_as_not_a_model) { expect_field_rejected(1, 1, 'X', "bad magic"); }

Test(model_io, an_unknown_format_version_is_rejected) {
  expect_field_rejected(8, 4, 2, "format version 2");
  expect_field_rejected(8, 4, 0, "format version 0");
}

Test(model_io, a_layer_count_of_zero_or_beyond_4096_is_rejected) {
  expect_field_rejected(12, 4, 0, "L = 0");
  expect_field_rejected(12, 4, 4097, "L = 4097");
  expect_field_rejected(12, 4, 0xFFFFFFFFu, "L = 4294967295");
}

Test(model_io, a_zero_dimension_is_rejected_naming_its_offset) {
  expect_field_rejected(16 + 8, 8, 0, "byte offset 24: n[1] is 0");
}

Test(model_io, an_unknown_activation_or_softmax_on_a_hidden_layer_is_rejected) {
  const size_t acts_at = 24 + 8 * SMALL_L;
  expect_field_rejected(acts_at, 4, 6, "activation code 6 of layer 1 is unknown");
  expect_field_rejected(acts_at, 4, DN_ACT_SOFTMAX, "softmax");
}

Test(model_io, an_unknown_loss_or_one_that_does_not_fit_the_output_is_rejected) {
  const size_t loss_at = 24 + 12 * SMALL_L;
  expect_field_rejected(loss_at, 4, 3, "loss code 3 is unknown");
  expect_field_rejected(loss_at, 4, DN_LOSS_BCE, "byte offset 48"); /* bce on a softmax output */
}

Test(model_io, bytes_after_the_checksum_are_rejected) {
  unsigned char *file = small_file();
  file = realloc(file, SMALL_BYTES + 3);
  memset(file + SMALL_BYTES, 0, 3);
  expect_load_fails(file, SMALL_BYTES + 3, DN_ERR_FORMAT, "3 unexpected bytes");
  free(file);
}

/* A header claiming big dims in a file a few bytes long: the loader must compare them
 * with the file size before it allocates. */
static void forge_tiny_header(unsigned char *file, uint64_t n0, uint64_t n1) {
  memcpy(file, "\x89" "DNN\r\n\x1a\n", 8);
  put_le(file + 8, 1, 4);
  put_le(file + 12, 1, 4);
  put_le(file + 16, n0, 8);
  put_le(file + 24, n1, 8);
  put_le(file + 32, DN_ACT_LINEAR, 4);
  put_le(file + 36, DN_LOSS_MSE, 4);
  put_le(file + 40, 0, 4); /* one parameter */
  fix_crc(file, 48);
}

Test(model_io, huge_dims_in_a_tiny_file_are_rejected_before_any_allocation) {
  struct rusage before, after;
  getrusage(RUSAGE_SELF, &before);
  unsigned char file[48];
  forge_tiny_header(file, 8192, 8192); /* claims 256 MiB of parameters */
  expect_load_fails(file, sizeof file, DN_ERR_FORMAT, "truncated, or corrupt dims");
  forge_tiny_header(file, 1ull << 40, 1ull << 40); /* 2^80 parameters */
  expect_load_fails(file, sizeof file, DN_ERR_FORMAT, "more than 2^64");
  forge_tiny_header(file, UINT64_MAX, 2);
  expect_load_fails(file, sizeof file, DN_ERR_FORMAT, NULL);
  getrusage(RUSAGE_SELF, &after);
  cr_assert_lt(after.ru_maxrss - before.ru_maxrss, 64 * 1024, "peak memory grew by %ld KiB",
               after.ru_maxrss - before.ru_maxrss);
}

Test(model_io, nan_or_inf_parameters_are_rejected_even_with_a_valid_crc) {
  /* W[2] starts after W[1] (6 floats) and b[1] (2): its element 3 is float 11. */
  const size_t at = SMALL_HDR + 4 * 11;
  char needle[64];
  snprintf(needle, sizeof needle, "byte offset %zu: W[2][3] is nan", at);
  expect_field_rejected(at, 4, 0x7FC00000u, needle);
  expect_field_rejected(SMALL_HDR + 4 * 6, 4, 0xFF800000u, "b[1][0] is -inf");
}

Test(model_io, saving_a_net_with_nan_parameters_fails_and_writes_nothing) {
  dn_net *net = make_net(SMALL_L, SMALL_DIMS, SMALL_ACTS, DN_LOSS_CCE, 3);
  net->params[5] = NAN;
  cr_assert_eq(dn_net_save(net, tt_path("nan.dnn")), DN_ERR_NUMERIC);
  cr_assert_eq(tt_count_entries(NULL), 0);
  dn_net_free(net);
}

Test(model_io, saving_over_a_file_replaces_it_and_leaves_no_temporary_file) {
  dn_net *a = make_net(SMALL_L, SMALL_DIMS, SMALL_ACTS, DN_LOSS_CCE, 1);
  const size_t dims[] = {4, 3, 1};
  const dn_act acts[] = {DN_ACT_TANH, DN_ACT_SIGMOID};
  dn_net *b = make_net(2, dims, acts, DN_LOSS_BCE, 2);
  const char *path = tt_path("model.dnn");
  cr_assert_eq(dn_net_save(a, path), DN_OK, "%s", dn_last_error());
  cr_assert_eq(dn_net_save(b, path), DN_OK, "%s", dn_last_error());
  dn_net *back = NULL;
  cr_assert_eq(dn_net_load(&back, path), DN_OK, "%s", dn_last_error());
  assert_same_net(b, back);
  cr_assert_eq(tt_count_entries(NULL), 1, "a temporary file was left behind");
  dn_net_free(a);
  dn_net_free(b);
  dn_net_free(back);
}

Test(model_io, saving_over_a_file_keeps_its_permissions_and_a_new_file_follows_the_umask) {
  dn_net *net = make_net(SMALL_L, SMALL_DIMS, SMALL_ACTS, DN_LOSS_CCE, 1);
  const char *kept = tt_path("kept.dnn"), *fresh = tt_path("fresh.dnn");
  struct stat st;
  cr_assert_eq(dn_net_save(net, kept), DN_OK);
  cr_assert_eq(chmod(kept, 0604), 0);
  cr_assert_eq(dn_net_save(net, kept), DN_OK);
  cr_assert_eq(stat(kept, &st), 0);
  cr_assert_eq(st.st_mode & 07777, 0604, "mode %o", st.st_mode & 07777);
  umask(027);
  cr_assert_eq(dn_net_save(net, fresh), DN_OK);
  cr_assert_eq(stat(fresh, &st), 0);
  cr_assert_eq(st.st_mode & 07777, 0640, "mode %o", st.st_mode & 07777);
  dn_net_free(net);
}

Test(model_io, saving_into_an_unwritable_directory_fails_and_keeps_the_old_file_whole) {
  dn_net *old_net = make_net(SMALL_L, SMALL_DIMS, SMALL_ACTS, DN_LOSS_CCE, 1);
  dn_net *new_net = make_net(SMALL_L, SMALL_DIMS, SMALL_ACTS, DN_LOSS_CCE, 2);
  const char *dir = tt_path("ro"), *path = tt_path("ro/model.dnn");
  cr_assert_eq(mkdir(dir, 0755), 0);
  cr_assert_eq(dn_net_save(old_net, path), DN_OK, "%s", dn_last_error());
  cr_assert_eq(chmod(dir, 0555), 0);
  if (geteuid() == 0) { /* root writes anywhere: act as nobody (tt_teardown switches back) */
    cr_assert_eq(chmod(tt_root, 0755), 0);
    if (seteuid(65534) != 0) cr_skip_test("running as root and cannot drop privileges");
  }
  cr_assert_eq(dn_net_save(new_net, path), DN_ERR_IO);
  cr_assert_not_null(strstr(dn_last_error(), "unchanged"), "%s", dn_last_error());
  dn_net *back = NULL;
  cr_assert_eq(dn_net_load(&back, path), DN_OK, "%s", dn_last_error());
  assert_same_net(old_net, back);
  cr_assert_eq(tt_count_entries(dir), 1);
  dn_net_free(old_net);
  dn_net_free(new_net);
  dn_net_free(back);
}

Test(model_io, saving_into_a_missing_directory_or_over_a_directory_is_an_io_error) {
  dn_net *net = make_net(SMALL_L, SMALL_DIMS, SMALL_ACTS, DN_LOSS_CCE, 1);
  cr_assert_eq(dn_net_save(net, tt_path("missing/model.dnn")), DN_ERR_IO);
  const char *dir = tt_path("a-directory");
  cr_assert_eq(mkdir(dir, 0755), 0);
  cr_assert_eq(dn_net_save(net, dir), DN_ERR_IO);
  cr_assert_eq(tt_count_entries(NULL), 1, "a temporary file was left behind");
  cr_assert_eq(tt_count_entries(dir), 0);
  dn_net_free(net);
}

/* The save renames a new file over the target: over a FIFO or a device that would put a
 * regular file in its place (as root, --save /dev/null made /dev/null a file), so anything
 * but a regular file is refused, and a symbolic link is followed to the file it names. */
Test(model_io, saving_over_a_fifo_is_refused_and_leaves_the_fifo) {
  dn_net *net = make_net(SMALL_L, SMALL_DIMS, SMALL_ACTS, DN_LOSS_CCE, 1);
  const char *fifo = tt_path("pipe");
  cr_assert_eq(mkfifo(fifo, 0600), 0);
  cr_assert_eq(dn_net_save(net, fifo), DN_ERR_IO);
  cr_assert_not_null(strstr(dn_last_error(), "a FIFO, not a regular file"), "%s", dn_last_error());
  struct stat st;
  cr_assert_eq(lstat(fifo, &st), 0);
  cr_assert(S_ISFIFO(st.st_mode), "the FIFO was replaced");
  cr_assert_eq(tt_count_entries(NULL), 1, "a temporary file was left behind");
  dn_net_free(net);
}

Test(model_io, saving_through_a_symlink_replaces_its_target_and_keeps_the_link) {
  dn_net *a = make_net(SMALL_L, SMALL_DIMS, SMALL_ACTS, DN_LOSS_CCE, 1);
  dn_net *b = make_net(SMALL_L, SMALL_DIMS, SMALL_ACTS, DN_LOSS_CCE, 2);
  const char *target = tt_path("sub/target.dnn"), *link = tt_path("link.dnn");
  cr_assert_eq(mkdir(tt_path("sub"), 0755), 0);
  cr_assert_eq(dn_net_save(a, target), DN_OK, "%s", dn_last_error());
  cr_assert_eq(symlink("sub/target.dnn", link), 0);
  cr_assert_eq(dn_net_save(b, link), DN_OK, "%s", dn_last_error());
  struct stat st;
  cr_assert_eq(lstat(link, &st), 0);
  cr_assert(S_ISLNK(st.st_mode), "the link was replaced by a file");
  dn_net *back = NULL;
  cr_assert_eq(dn_net_load(&back, target), DN_OK, "%s", dn_last_error());
  assert_same_net(b, back);
  cr_assert_eq(tt_count_entries(tt_path("sub")), 1, "a temporary file was left behind");
  cr_assert_eq(tt_count_entries(NULL), 2);
  dn_net_free(a);
  dn_net_free(b);
  dn_net_free(back);
}

/* A link to a file that does not exist yet creates it where the link points (as cp does),
 * when that directory exists; the link stays. */
Test(model_io, saving_through_a_dangling_symlink_writes_where_it_points_or_fails_cleanly) {
  dn_net *net = make_net(SMALL_L, SMALL_DIMS, SMALL_ACTS, DN_LOSS_CCE, 1);
  const char *link = tt_path("dangling.dnn");
  cr_assert_eq(symlink("no-such-dir/model.dnn", link), 0);
  cr_assert_eq(dn_net_save(net, link), DN_ERR_IO);
  struct stat st;
  cr_assert_eq(lstat(link, &st), 0);
  cr_assert(S_ISLNK(st.st_mode));
  cr_assert_eq(tt_count_entries(NULL), 1);
  const char *fresh = tt_path("fresh.dnn");
  cr_assert_eq(symlink("made.dnn", fresh), 0);
  cr_assert_eq(dn_net_save(net, fresh), DN_OK, "%s", dn_last_error());
  cr_assert_eq(lstat(fresh, &st), 0);
  cr_assert(S_ISLNK(st.st_mode));
  dn_net *back = NULL;
  cr_assert_eq(dn_net_load(&back, tt_path("made.dnn")), DN_OK, "%s", dn_last_error());
  assert_same_net(net, back);
  dn_net_free(back);
  dn_net_free(net);
}

/* Links are resolved one level at a time under the kernel's protected_symlinks rule, which
 * realpath() would bypass: another user's link in a sticky world-writable directory (a
 * /tmp) is not followed, so it cannot aim the save at the caller's files. */
Test(model_io, another_users_link_in_a_sticky_shared_directory_is_not_followed) {
  if (geteuid() != 0) cr_skip_test("needs root to give a link another owner");
  dn_net *net = make_net(SMALL_L, SMALL_DIMS, SMALL_ACTS, DN_LOSS_CCE, 1);
  const char *shared = tt_path("shared"), *precious = tt_path("precious"), *link = tt_path("shared/model.dnn");
  cr_assert_eq(mkdir(shared, 0777), 0);
  cr_assert_eq(chmod(shared, 01777), 0);
  tt_write("precious", (const unsigned char *)"keep me", 7, 0);
  cr_assert_eq(symlink("../precious", link), 0);
  cr_assert_eq(lchown(link, 1234, 1234), 0);
  cr_assert_eq(dn_net_save(net, link), DN_ERR_IO);
  cr_assert_not_null(strstr(dn_last_error(), "not followed"), "%s", dn_last_error());
  size_t len;
  unsigned char *kept = tt_read(precious, &len);
  cr_assert(len == 7 && memcmp(kept, "keep me", 7) == 0, "the link's target was overwritten");
  free(kept);
  cr_assert_eq(lchown(link, 0, 0), 0); /* the caller's own link there is followed */
  cr_assert_eq(dn_net_save(net, link), DN_OK, "%s", dn_last_error());
  dn_net_free(net);
}

/* Review findings, session 21: an empty path is an argument error for every loader, as it
 * is for dn_net_save; an empty file (what /proc files report) says so rather than
 * "truncated at byte 0"; n[0] = 2^64 - 1 is corrupt dims, not "bytes after the checksum"
 * (n[0] + 1 wrapped to 0 in the size computation). */
Test(model_io, empty_paths_empty_files_and_a_wrapping_dim_are_named) {
  dn_net *sentinel = (dn_net *)(uintptr_t)0x1234, *net = sentinel;
  cr_expect_eq(dn_net_load(&net, ""), DN_ERR_ARG);
  cr_expect_not_null(strstr(dn_last_error(), "path is empty"), "%s", dn_last_error());
  dn_dataset d;
  cr_expect_eq(dn_dataset_load_idx(&d, "", NULL), DN_ERR_ARG);
  cr_expect_eq(dn_dataset_load_idx(&d, tt_path("x"), ""), DN_ERR_ARG);
  cr_expect_eq(dn_dataset_load_csv(&d, "", NULL), DN_ERR_ARG);
  expect_load_fails((const unsigned char *)"", 0, DN_ERR_FORMAT, "is empty (0 bytes)");
  cr_expect_eq(dn_net_load(&net, "/proc/self/status"), DN_ERR_FORMAT);
  cr_expect_not_null(strstr(dn_last_error(), "is empty"), "%s", dn_last_error());
  cr_expect_eq(net, sentinel);
  expect_field_rejected(16, 8, UINT64_MAX, "corrupt dims");
}
