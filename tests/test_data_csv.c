/* Specification of the CSV loader: numeric lines into the engine's layout, header and label
 * column options, and every malformed file rejected as "path:line:column: what". */
#include <criterion/criterion.h>

#include "deepnet.h"
#include "tmpdir.h"

TestSuite(data_csv, .init = tt_setup, .fini = tt_teardown);

static dn_csv_opts defaults(void) {
  dn_csv_opts o;
  dn_csv_opts_default(&o);
  return o;
}

/* Load text as a CSV file with opts (NULL: defaults); must succeed. */
static dn_dataset load_ok(const char *text, const dn_csv_opts *opts) {
  dn_dataset d;
  cr_assert_eq(dn_dataset_load_csv(&d, tt_write_str("data.csv", text), opts), DN_OK, "%s", dn_last_error());
  return d;
}

/* Loading text must fail with status, a message containing needle ("data.csv:line:col: ..."
 * when it starts with ':'), and *out untouched. */
static void expect_fails(const char *text, const dn_csv_opts *opts, dn_status status, const char *needle) {
  const char *path = tt_write_str("data.csv", text);
  dn_dataset sentinel = {.labels = (uint32_t *)(uintptr_t)16, .m = 7}, d = sentinel;
  const dn_status s = dn_dataset_load_csv(&d, path, opts);
  cr_assert_eq(s, status, "got %s (%s)", dn_status_str(s), dn_last_error());
  cr_assert_eq(memcmp(&d, &sentinel, sizeof d), 0, "*out changed on failure");
  char want[600];
  snprintf(want, sizeof want, "%s%s", needle[0] == ':' ? path : "", needle);
  cr_assert_not_null(strstr(dn_last_error(), want), "message '%s' lacks '%s'", dn_last_error(), want);
}

static void assert_floats(const float *got, const float *want, size_t n) {
  for (size_t i = 0; i < n; i++) cr_assert_eq(got[i], want[i], "[%zu]: %g != %g", i, (double)got[i], (double)want[i]);
}

Test(data_csv, defaults_are_last_column_label_detected_header_comma_and_scale_1) {
  const dn_csv_opts o = defaults();
  cr_assert(o.label_column == -1 && o.has_header == -1 && o.n_classes == 0 && o.scale == 1.0f && o.delimiter == ',');
}

Test(data_csv, each_line_is_one_column_of_X_and_the_last_field_its_label) {
  dn_dataset d = load_ok("1,2,3,0\n4,5,6,2\n", NULL);
  cr_assert(d.m == 2 && d.n_features == 3 && d.n_classes == 3);
  assert_floats(d.X, (const float[]){1, 2, 3, 4, 5, 6}, 6);
  cr_assert(d.labels[0] == 0 && d.labels[1] == 2);
  assert_floats(d.Y, (const float[]){1, 0, 0, 0, 0, 1}, 6);
  cr_assert_eq(((uintptr_t)d.X | (uintptr_t)d.Y) % 64, 0, "X and Y are 64-byte aligned");
  dn_dataset_free(&d);
}

Test(data_csv, label_column_0_takes_the_first_field_and_a_middle_one_works_too) {
  dn_csv_opts o = defaults();
  o.label_column = 0;
  dn_dataset d = load_ok("1,0.5,-2\n0,1.5,3e2\n", &o);
  cr_assert(d.m == 2 && d.n_features == 2 && d.n_classes == 2);
  assert_floats(d.X, (const float[]){0.5f, -2, 1.5f, 300}, 4);
  cr_assert(d.labels[0] == 1 && d.labels[1] == 0);
  dn_dataset_free(&d);
  o.label_column = 1;
  d = load_ok("7,1,8\n9,0,10\n", &o);
  assert_floats(d.X, (const float[]){7, 8, 9, 10}, 4);
  cr_assert(d.labels[0] == 1 && d.labels[1] == 0);
  dn_dataset_free(&d);
}

Test(data_csv, a_first_line_with_a_name_is_detected_as_a_header_and_skipped) {
  dn_dataset d = load_ok("\xEF\xBB\xBFx1,x2,label\n1,2,1\n", NULL);
  cr_assert_eq(d.m, 1);
  assert_floats(d.X, (const float[]){1, 2}, 2);
  dn_dataset_free(&d);
}

Test(data_csv, an_all_numeric_first_line_is_data_unless_has_header_says_so) {
  dn_dataset d = load_ok(" 1 , 2 ,1\n3,4,0\n", NULL);
  cr_assert_eq(d.m, 2, "a numeric first line is data");
  dn_dataset_free(&d);
  dn_csv_opts o = defaults();
  o.has_header = 1;
  d = load_ok("1,2,1\n3,4,0\n", &o);
  cr_assert_eq(d.m, 1);
  assert_floats(d.X, (const float[]){3, 4}, 2);
  dn_dataset_free(&d);
  o.has_header = 0;
  expect_fails("a,b,label\n3,4,0\n", &o, DN_ERR_FORMAT, ":1:1: field 1: 'a' is not a number");
}

Test(data_csv, rows_with_a_different_field_count_are_rejected_with_line_and_column) {
  expect_fails("1,2,0\n3,4,5,1\n", NULL, DN_ERR_FORMAT, ":2:7: 4 fields, but line 1 has 3");
  expect_fails("1,2,0\n3,1\n", NULL, DN_ERR_FORMAT, ":2:4: 2 fields, but line 1 has 3");
}

Test(data_csv, a_non_numeric_or_empty_field_is_rejected_with_line_and_column) {
  expect_fails("1,2,0\n3,4x,1\n", NULL, DN_ERR_FORMAT, ":2:3: field 2: '4x' is not a number");
  expect_fails("1,2,0\n3,,1\n", NULL, DN_ERR_FORMAT, ":2:3: field 2: '' is not a number");
  expect_fails("1,2,0\n3,4 5,1\n", NULL, DN_ERR_FORMAT, ":2:3: field 2: '4 5' is not a number");
}

Test(data_csv, nan_inf_and_out_of_range_features_are_rejected) {
  expect_fails("1,nan,0\n", NULL, DN_ERR_FORMAT, ":1:3: field 2: 'nan' is not a finite number");
  expect_fails("1,2,0\n-inf,2,0\n", NULL, DN_ERR_FORMAT, ":2:1: field 1: '-inf' is not a finite number");
  expect_fails("1,1e39,0\n", NULL, DN_ERR_FORMAT, "'1e39' is not a finite number");
  dn_csv_opts o = defaults();
  o.scale = 1e30f;
  expect_fails("1,1e10,0\n", &o, DN_ERR_FORMAT, "'1e10' is not a finite number once scaled");
}

Test(data_csv, negative_or_fractional_labels_are_rejected) {
  expect_fails("1,2,0\n3,4,-1\n", NULL, DN_ERR_FORMAT, ":2:5: label '-1' is not a non-negative integer");
  expect_fails("1,2,0.5\n", NULL, DN_ERR_FORMAT, ":1:5: label '0.5' is not a non-negative integer");
  expect_fails("1,2,99999\n", NULL, DN_ERR_FORMAT, ":1:5: label 99999 is above 65535");
}

Test(data_csv, an_explicit_n_classes_sizes_Y_and_bounds_the_labels) {
  dn_csv_opts o = defaults();
  o.n_classes = 5;
  dn_dataset d = load_ok("1,1\n2,0\n", &o);
  cr_assert_eq(d.n_classes, 5);
  assert_floats(d.Y, (const float[]){0, 1, 0, 0, 0, 1, 0, 0, 0, 0}, 10);
  dn_dataset_free(&d);
  expect_fails("1,1\n2,5\n", &o, DN_ERR_FORMAT, ":2:3: label 5 is not below n_classes = 5");
}

/* Labels are integers read exactly: as a float, 16777217 (2^24 + 1) read as 16777216. */
Test(data_csv, labels_above_2_to_the_24_are_read_exactly) {
  dn_csv_opts o = defaults();
  o.n_classes = 16777218;
  dn_dataset d = load_ok("0.5,16777217\n", &o);
  cr_expect_eq(d.labels[0], 16777217u);
  cr_expect_eq(d.Y[16777217], 1.0f);
  dn_dataset_free(&d);
  o.n_classes = 16777217; /* the label must be below it */
  expect_fails("0.5,16777217\n", &o, DN_ERR_FORMAT, "not below n_classes");
  if (sizeof(size_t) > 4) { /* labels are uint32_t: at most 2^32 classes */
    o.n_classes = (size_t)((uint64_t)UINT32_MAX + 2);
    expect_fails("0.5,1\n", &o, DN_ERR_ARG, "above 2^32");
  }
}

Test(data_csv, inferred_n_classes_is_the_largest_label_plus_one_and_at_least_2) {
  dn_dataset d = load_ok("1,4\n2,1\n", NULL);
  cr_assert_eq(d.n_classes, 5);
  dn_dataset_free(&d);
  d = load_ok("1,0\n2,0\n", NULL);
  cr_assert_eq(d.n_classes, 2);
  dn_dataset_free(&d);
}

Test(data_csv, an_empty_or_header_only_file_has_no_examples) {
  expect_fails("", NULL, DN_ERR_FORMAT, "the file is empty");
  expect_fails("a,b,label\n", NULL, DN_ERR_FORMAT, "only a header");
  expect_fails("\n\n", NULL, DN_ERR_FORMAT, "only blank lines");
  expect_fails("5\n", NULL, DN_ERR_FORMAT, ":1:1: 1 field");
}

Test(data_csv, crlf_line_ends_a_missing_final_newline_and_trailing_blank_lines_are_accepted) {
  dn_dataset d = load_ok("1,2,1\r\n3,4,0\r\n\r\n  \n\n", NULL);
  cr_assert_eq(d.m, 2);
  assert_floats(d.X, (const float[]){1, 2, 3, 4}, 4);
  dn_dataset_free(&d);
  d = load_ok("1,2,1\n3,4,0", NULL);
  cr_assert_eq(d.m, 2);
  dn_dataset_free(&d);
}

Test(data_csv, a_blank_line_followed_by_more_data_is_rejected) {
  expect_fails("1,2,1\n\n3,4,0\n", NULL, DN_ERR_FORMAT, ":2:1: blank line before more data on line 3");
}

Test(data_csv, scale_multiplies_features_not_labels_and_other_delimiters_work) {
  dn_csv_opts o = defaults();
  o.scale = 1.0f / 255.0f;
  o.delimiter = ';';
  dn_dataset d = load_ok("255;51;1\n0;510;0\n", &o);
  assert_floats(d.X, (const float[]){255.0f * (1.0f / 255.0f), 51.0f * (1.0f / 255.0f), 0, 510.0f * (1.0f / 255.0f)}, 4);
  cr_assert(d.labels[0] == 1 && d.labels[1] == 0);
  dn_dataset_free(&d);
  o = defaults();
  o.delimiter = '\t';
  d = load_ok("1\t 2\t1\n", &o);
  assert_floats(d.X, (const float[]){1, 2}, 2);
  dn_dataset_free(&d);
}

Test(data_csv, bad_options_and_missing_files_are_rejected) {
  dn_csv_opts o = defaults();
  o.label_column = -2;
  expect_fails("1,0\n", &o, DN_ERR_ARG, "label_column");
  o = defaults();
  o.has_header = 2;
  expect_fails("1,0\n", &o, DN_ERR_ARG, "has_header");
  o = defaults();
  o.delimiter = '.';
  expect_fails("1,0\n", &o, DN_ERR_ARG, "delimiter");
  o = defaults();
  o.label_column = 3;
  expect_fails("1,2,0\n", &o, DN_ERR_FORMAT, ":1:1: label column 3 is out of range");
  dn_dataset d;
  cr_assert_eq(dn_dataset_load_csv(&d, tt_path("missing.csv"), NULL), DN_ERR_IO);
  cr_assert_not_null(strstr(dn_last_error(), "missing.csv"));
  cr_assert_eq(dn_dataset_load_csv(NULL, tt_path("missing.csv"), NULL), DN_ERR_ARG);
}

Test(data_csv, a_large_file_loads_every_row_in_order) {
  enum { ROWS = 5000, FEATURES = 7 };
  const char *path = tt_path("big.csv");
  FILE *f = fopen(path, "w");
  fprintf(f, "a,b,c,d,e,f,g,y\n");
  for (int j = 0; j < ROWS; j++) {
    for (int i = 0; i < FEATURES; i++) fprintf(f, "%d.25,", j * FEATURES + i);
    fprintf(f, "%d\n", j % 10);
  }
  fclose(f);
  dn_dataset d;
  cr_assert_eq(dn_dataset_load_csv(&d, path, NULL), DN_OK, "%s", dn_last_error());
  cr_assert(d.m == ROWS && d.n_features == FEATURES && d.n_classes == 10);
  for (size_t k = 0; k < (size_t)ROWS * FEATURES; k++) cr_assert_eq(d.X[k], (float)k + 0.25f, "X[%zu]", k);
  for (size_t j = 0; j < ROWS; j++) cr_assert_eq(d.labels[j], j % 10);
  dn_dataset_free(&d);
}

/* A first line with any number in it is data: a typo in the first example is reported,
 * not dropped as a header (it used to be, with DN_OK and one example fewer). */
Test(data_csv, a_first_line_with_a_number_and_a_typo_is_an_error_not_a_header) {
  expect_fails("1,2x,0\n3,4,1\n", NULL, DN_ERR_FORMAT, ":1:3: field 2: '2x' is not a number");
  expect_fails("1,,0\n3,4,1\n", NULL, DN_ERR_FORMAT, ":1:3: field 2: '' is not a number");
  expect_fails("1,2,0,\n3,4,1,\n", NULL, DN_ERR_FORMAT, ":1:7: field 4: '' is not a number");
  dn_dataset d = load_ok("pixel0,pixel1,label\n3,4,1\n", NULL);
  cr_assert_eq(d.m, 1);
  dn_dataset_free(&d);
}

/* A label is decimal digits (a fraction of zeros allowed, as pandas writes "3.0"): strtod
 * would also take hex, exponents and signs. */
Test(data_csv, labels_in_hex_exponent_or_signed_form_are_rejected) {
  expect_fails("1,2,0x3\n", NULL, DN_ERR_FORMAT, ":1:5: label '0x3' is not a non-negative integer");
  expect_fails("1,2,3e0\n", NULL, DN_ERR_FORMAT, "label '3e0' is not a non-negative integer");
  expect_fails("1,2,+1\n", NULL, DN_ERR_FORMAT, "label '+1' is not a non-negative integer");
  dn_dataset d = load_ok("1,2,3.0\n4,5, 1 \n", NULL);
  cr_assert_eq(d.labels[0], 3);
  cr_assert_eq(d.labels[1], 1);
  dn_dataset_free(&d);
}

Test(data_csv, a_huge_label_is_named_briefly_and_n_classes_1_is_refused) {
  char text[400] = "1,2,1";
  for (int i = 0; i < 300; i++) strcat(text, "0");
  strcat(text, "\n");
  expect_fails(text, NULL, DN_ERR_FORMAT, "label 1e+300 is above 65535");
  dn_csv_opts o = defaults();
  o.n_classes = 1;
  expect_fails("1,2,0\n", &o, DN_ERR_ARG, "n_classes 1");
}

/* Old Mac OS line ends (CR only) make the file one line: said so, instead of "only a
 * header" or a field error about a number with a CR inside. */
Test(data_csv, cr_only_line_ends_are_named) {
  expect_fails("1,2,0\r3,4,1\r", NULL, DN_ERR_FORMAT, "carriage return inside the line");
  expect_fails("a,b,label\r3,4,1\r", NULL, DN_ERR_FORMAT, "carriage return inside the line");
}

/* The loader parses in round-to-nearest whatever the caller's mode, but without deepnet's
 * FTZ/DAZ: a subnormal feature is stored as written (flushing is for the kernels). */
Test(data_csv, a_subnormal_feature_is_kept_with_flushing_on) {
  cr_assert(dn_get_flush_denormals());
  dn_dataset d = load_ok("1e-40,2,0\n", NULL);
  cr_expect(d.X[0] == 1e-40f && d.X[0] != 0.0f, "%g", (double)d.X[0]);
  dn_dataset_free(&d);
}
