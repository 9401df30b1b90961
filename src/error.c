/* Status strings, the thread-local last-error message, overflow-checked sizes. */
#include <stdio.h>

#include "internal.h"

static _Thread_local char last_error[512];

const char *dn_status_str(dn_status s) {
  switch (s) {
    case DN_OK: return "ok";
    case DN_ERR_ARG: return "invalid argument";
    case DN_ERR_SHAPE: return "invalid shape";
    case DN_ERR_NOMEM: return "out of memory";
    case DN_ERR_IO: return "I/O error";
    case DN_ERR_FORMAT: return "invalid file format";
    case DN_ERR_STATE: return "invalid state";
    case DN_ERR_UNSUPPORTED: return "unsupported";
    case DN_ERR_NUMERIC: return "numeric error";
  }
  return "unknown status";
}

const char *dn_last_error(void) { return last_error; }

dn_status dn_fail(dn_status s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error, sizeof last_error, fmt, ap);
  va_end(ap);
  return s;
}

bool dn_mul_ok(size_t a, size_t b, size_t *out) {
  size_t r;
  if (__builtin_mul_overflow(a, b, &r)) return false;
  *out = r;
  return true;
}

bool dn_floats_bytes(size_t count, size_t *bytes) { return dn_mul_ok(count, sizeof(float), bytes); }

const char *dn_version(void) { return DN_VERSION_STRING; }
