/* Loading a numeric CSV file (one example per line, one integer label column) into a dn_dataset. */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"

/* When n_classes is inferred, labels above this are taken for a wrong label column
 * rather than allocating a huge one-hot matrix; an explicit n_classes lifts it. */
enum { CSV_MAX_INFERRED_LABEL = 65535 };

void dn_csv_opts_default(dn_csv_opts *opts) {
  if (!opts) return;
  *opts = (dn_csv_opts){.label_column = -1, .has_header = -1, .n_classes = 0, .scale = 1.0f,
                        .delimiter = ','};
}

typedef struct csv_parser {
  const char *path;
  dn_csv_opts o;
  locale_t c_locale;    /* numbers are '.'-decimal whatever setlocale() the caller made */
  size_t n_fields;      /* fixed by the first data line; 0 before it */
  size_t n_fields_line; /* that line, for messages */
  float *X;             /* (n_fields - 1, m), grown by doubling */
  uint32_t *labels;
  size_t m, cap;        /* examples read, room for cap of them */
} csv_parser;

static bool is_blank_char(char c, char delimiter) { return (c == ' ' || c == '\t') && c != delimiter; }

/* Parse the field [s, end) as a number: optional blanks, all of it one number, optional
 * blanks. strtof/strtod cannot run past end, as the delimiter is never part of a number.
 * Features are read as float (strtof rounds once); labels as double, whose 53 bits hold
 * every uint32_t label exactly (as a float, 16777217 read as 16777216). */
static bool parse_field(const csv_parser *p, const char *s, const char *end, const char **start,
                        bool as_float, double *v) {
  while (s < end && is_blank_char(*s, p->o.delimiter)) s++;
  *start = s;
  if (s == end) return false;
  char *e;
  errno = 0;
  const double x = as_float ? (double)strtof_l(s, &e, p->c_locale) : strtod_l(s, &e, p->c_locale);
  if (e == s) return false;
  while (e < end && is_blank_char(*e, p->o.delimiter)) e++;
  if (e != end) return false;
  /* Underflow to 0 or a subnormal is a fine approximation; overflow is not. */
  *v = errno == ERANGE && isinf(x) ? NAN : x;
  return true;
}

static bool parse_number(const csv_parser *p, const char *s, const char *end, const char **start,
                         float *v) {
  double d;
  if (!parse_field(p, s, end, start, true, &d)) return false;
  *v = (float)d; /* exact: d came from strtof */
  return true;
}

/* Field end: the next delimiter or the end of the line. */
static const char *field_end(const csv_parser *p, const char *s, const char *line_end) {
  const char *d = memchr(s, p->o.delimiter, (size_t)(line_end - s));
  return d ? d : line_end;
}

/* The header guess: a first line none of whose fields is a number ("x0,x1,label") is a
 * header. One with any number in it is data, so a typo in the first example ("1,2x,0")
 * is reported as one instead of being dropped as a header. */
static bool any_numeric(const csv_parser *p, const char *line, const char *line_end) {
  for (const char *s = line;; s++) {
    const char *e = field_end(p, s, line_end), *start;
    float v;
    if (parse_number(p, s, e, &start, &v)) return true;
    if (e == line_end) return false;
    s = e;
  }
}

static bool grow(csv_parser *p, size_t n_features) {
  size_t cap = p->cap ? 2 * p->cap : 1024, count, bytes;
  if (cap < p->cap || !dn_mul_ok(cap, n_features, &count) || !dn_floats_bytes(count, &bytes))
    return false;
  float *X = realloc(p->X, bytes);
  if (!X) return false;
  p->X = X;
  uint32_t *labels = realloc(p->labels, cap * sizeof *labels);
  if (!labels) return false;
  p->labels = labels;
  p->cap = cap;
  return true;
}

static dn_status csv_fail(const csv_parser *p, dn_status s, size_t line, size_t col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static dn_status csv_fail(const csv_parser *p, dn_status s, size_t line, size_t col, const char *fmt, ...) {
  char what[384];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return dn_fail(s, "%s:%zu:%zu: %s", p->path, line, col, what);
}

/* One data line [line, line_end) into column m of X and labels[m]. */
static dn_status parse_row(csv_parser *p, const char *line, const char *line_end, size_t lineno) {
  size_t k = 1;
  for (const char *s = line; (s = memchr(s, p->o.delimiter, (size_t)(line_end - s))); s++) k++;
  if (p->n_fields == 0) {
    if (k < 2)
      return csv_fail(p, DN_ERR_FORMAT, lineno, 1, "1 field; a line needs at least one feature and a label "
                      "(is the delimiter '%c'?)", p->o.delimiter);
    if (p->o.label_column >= 0 && (size_t)p->o.label_column >= k)
      return csv_fail(p, DN_ERR_FORMAT, lineno, 1, "label column %ld is out of range: the line has %zu fields",
                      p->o.label_column, k);
    p->n_fields = k;
    p->n_fields_line = lineno;
  } else if (k != p->n_fields) {
    /* Point at the first extra field, or at the end of a short line. */
    const char *at = k > p->n_fields ? line : line_end;
    for (size_t i = 0; k > p->n_fields && i < p->n_fields; i++)
      at = (const char *)memchr(at, p->o.delimiter, (size_t)(line_end - at)) + 1;
    return csv_fail(p, DN_ERR_FORMAT, lineno, (size_t)(at - line) + 1, "%zu fields, but line %zu has %zu",
                    k, p->n_fields_line, p->n_fields);
  }
  const size_t n_features = p->n_fields - 1;
  const size_t label_col = p->o.label_column < 0 ? n_features : (size_t)p->o.label_column;
  if (p->m == p->cap && !grow(p, n_features))
    return dn_fail(DN_ERR_NOMEM, "dn_dataset_load_csv: %s: out of memory at line %zu", p->path, lineno);

  float *x = p->X + p->m * n_features;
  const char *s = line;
  for (size_t i = 0; i < k; i++, s++) {
    const char *e = field_end(p, s, line_end), *start;
    double d;
    const bool ok = parse_field(p, s, e, &start, i != label_col, &d);
    const size_t col = (size_t)(start - line) + 1;
    if (!ok)
      return csv_fail(p, DN_ERR_FORMAT, lineno, col, "field %zu: '%.*s' is not a number", i + 1,
                      (int)(e - start > 40 ? 40 : e - start), start);
    const float v = (float)d; /* a feature: exact (strtof) */
    if (i == label_col) {
      /* strtod also reads hex ("0x3"), exponents ("3e0"), signs and "inf": a class label
       * is decimal digits, with a fraction of zeros allowed ("3.0", as pandas writes). */
      const char *digit = start;
      while (digit < e && *digit >= '0' && *digit <= '9') digit++;
      if (digit < e && *digit == '.')
        for (digit++; digit < e && *digit >= '0' && *digit <= '9';) digit++;
      while (digit < e && is_blank_char(*digit, p->o.delimiter)) digit++;
      if (digit != e || !isfinite(d) || d < 0.0 || d != floor(d))
        return csv_fail(p, DN_ERR_FORMAT, lineno, col, "label '%.*s' is not a non-negative integer",
                        (int)(e - start > 40 ? 40 : e - start), start);
      /* n_classes is at most 2^32 (checked up front), so a label below it fits uint32_t. */
      if (p->o.n_classes ? d >= (double)p->o.n_classes : d > (double)CSV_MAX_INFERRED_LABEL) {
        char label[32]; /* exact up to 2^53; "1e+300", not 301 digits, beyond */
        snprintf(label, sizeof label, d < 0x1p53 ? "%.0f" : "%.6g", d);
        return csv_fail(p, DN_ERR_FORMAT, lineno, col, p->o.n_classes
                        ? "label %s is not below n_classes = %zu"
                        : "label %s is above %zu; set n_classes in the options if it is meant",
                        label, p->o.n_classes ? p->o.n_classes : (size_t)CSV_MAX_INFERRED_LABEL);
      }
      p->labels[p->m] = (uint32_t)d;
    } else {
      const float scaled = v * p->o.scale;
      if (!isfinite(scaled))
        return csv_fail(p, DN_ERR_FORMAT, lineno, col, "field %zu: '%.*s' is not a finite number%s", i + 1,
                        (int)(e - start > 40 ? 40 : e - start), start,
                        isfinite(v) ? " once scaled" : "");
      *x++ = scaled;
    }
    s = e;
  }
  p->m++;
  return DN_OK;
}

static dn_status parse_file(csv_parser *p, FILE *f) {
  char *buf = NULL;
  size_t buf_cap = 0, lineno = 0, blank_line = 0;
  bool header_skipped = false;
  dn_status s = DN_OK;
  ssize_t len;
  while ((errno = 0, len = getline(&buf, &buf_cap, f)) >= 0) {
    lineno++;
    const char *line = buf, *end = buf + len;
    if (end > line && end[-1] == '\n') end--;
    if (end > line && end[-1] == '\r') end--;
    if (lineno == 1 && end - line >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) line += 3; /* UTF-8 BOM */
    const char *c = line;
    while (c < end && (*c == ' ' || *c == '\t')) c++;
    const bool blank = c == end;
    if (lineno == 1 && (p->o.has_header == 1 || (p->o.has_header == -1 && !blank &&
                                                  !any_numeric(p, line, end)))) {
      header_skipped = true;
      continue;
    }
    if (blank) {
      if (!blank_line) blank_line = lineno;
      continue;
    }
    if (memchr(line, '\r', (size_t)(end - line))) {
      s = csv_fail(p, DN_ERR_FORMAT, lineno, (size_t)((const char *)memchr(line, '\r', (size_t)(end - line)) - line) + 1,
                   "a carriage return inside the line: CR-only line endings (old Mac OS) are not "
                   "supported; convert them to LF or CRLF");
      break;
    }
    if (blank_line) {
      s = csv_fail(p, DN_ERR_FORMAT, blank_line, 1, "blank line before more data on line %zu (only trailing "
                   "blank lines are allowed)", lineno);
      break;
    }
    if ((s = parse_row(p, line, end, lineno))) break;
  }
  /* glibc's getline returns -1 with errno ENOMEM and no stream error when it
   * cannot grow its buffer: that is not the end of the file. */
  if (!s && len < 0 && errno == ENOMEM)
    s = dn_fail(DN_ERR_NOMEM, "dn_dataset_load_csv: out of memory reading line %zu of '%s'", lineno + 1,
                p->path);
  if (!s && ferror(f))
    s = dn_fail(DN_ERR_IO, "dn_dataset_load_csv: reading '%s' failed after line %zu: %s", p->path, lineno,
                strerror(errno));
  if (!s && p->m == 0)
    s = dn_fail(DN_ERR_FORMAT, "dn_dataset_load_csv: '%s' holds no examples (%s)", p->path,
                lineno == 0 ? "the file is empty" : header_skipped ? "only a header" : "only blank lines");
  free(buf);
  return s;
}

/* A delimiter that strtof could read as part of a number, or a line break, would make
 * the fields ambiguous. */
static bool delimiter_ok(char d) {
  return d != '\0' && d != '\n' && d != '\r' && !(d >= '0' && d <= '9') &&
         !((d | 0x20) >= 'a' && (d | 0x20) <= 'z') && !strchr(".+-_()", d);
}

static dn_status load_csv_in_fpenv(dn_dataset *out, const char *path, const dn_csv_opts *opts) {
  if (!out || !path) return dn_fail(DN_ERR_ARG, "dn_dataset_load_csv: out or path is NULL");
  if (!*path) return dn_fail(DN_ERR_ARG, "dn_dataset_load_csv: path is empty");
  csv_parser p = {.path = path};
  dn_csv_opts_default(&p.o);
  if (opts) p.o = *opts;
  if (p.o.label_column < -1)
    return dn_fail(DN_ERR_ARG, "dn_dataset_load_csv: label_column must be >= 0, or -1 for the last "
                   "(got %ld)", p.o.label_column);
  if (p.o.has_header < -1 || p.o.has_header > 1)
    return dn_fail(DN_ERR_ARG, "dn_dataset_load_csv: has_header must be 1, 0 or -1 (got %d)", p.o.has_header);
  if (p.o.n_classes == 1)
    return dn_fail(DN_ERR_ARG, "dn_dataset_load_csv: n_classes 1 cannot train a classifier: it "
                   "must be 0 (inferred) or at least 2");
  if ((uint64_t)p.o.n_classes > (uint64_t)UINT32_MAX + 1)
    return dn_fail(DN_ERR_ARG, "dn_dataset_load_csv: n_classes %zu is above 2^32 (labels are uint32_t)",
                   p.o.n_classes);
  if (!isfinite(p.o.scale))
    return dn_fail(DN_ERR_ARG, "dn_dataset_load_csv: scale must be finite (got %g)", (double)p.o.scale);
  if (!delimiter_ok(p.o.delimiter))
    return dn_fail(DN_ERR_ARG, "dn_dataset_load_csv: delimiter 0x%02x can be part of a number or a line "
                   "break", (unsigned char)p.o.delimiter);

  FILE *f = fopen(path, "re");
  if (!f) return dn_fail(DN_ERR_IO, "dn_dataset_load_csv: cannot open '%s': %s", path, strerror(errno));
  p.c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
  dn_status s = p.c_locale ? parse_file(&p, f)
                           : dn_fail(DN_ERR_NOMEM, "dn_dataset_load_csv: cannot create the C locale");
  fclose(f);
  if (p.c_locale) freelocale(p.c_locale);

  float *X = NULL;
  if (!s) {
    const size_t n_features = p.n_fields - 1;
    X = dn_alloc_floats(n_features * p.m); /* grow() checked the product */
    if (X)
      memcpy(X, p.X, n_features * p.m * sizeof *X);
    else
      s = dn_fail(DN_ERR_NOMEM, "dn_dataset_load_csv: out of memory for %zu x %zu features", n_features, p.m);
  }
  free(p.X);
  if (s) {
    free(p.labels);
    return s;
  }
  const size_t n_classes = p.o.n_classes ? p.o.n_classes : dn_labels_n_classes(p.labels, p.m);
  return dn_dataset_fill(out, X, p.labels, p.n_fields - 1, p.m, n_classes, "dn_dataset_load_csv");
}

/* strtof and the scaling round to nearest whatever the caller's rounding mode, and keep
 * subnormals (DN_IN_NEAREST). */
dn_status dn_dataset_load_csv(dn_dataset *out, const char *path, const dn_csv_opts *opts) {
  return DN_IN_NEAREST(load_csv_in_fpenv(out, path, opts));
}
