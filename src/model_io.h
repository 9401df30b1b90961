/* What model files and checkpoints share (model_io.c): little-endian fields, CRC-32'd
 * streams, the net's description, and crash-safe replacement of a file. */
#ifndef DN_MODEL_IO_H
#define DN_MODEL_IO_H

#include <string.h>

#include "internal.h"

/* ---- little-endian fields, byte by byte, so files move between x86 and arm64 ---- */
static inline void dn_put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void dn_put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t dn_get_u32(const uint8_t *p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--) v = v << 8 | p[i];
  return v;
}
static inline uint64_t dn_get_u64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}
static inline uint32_t dn_float_bits(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  return u;
}
static inline float dn_bits_float(uint32_t u) {
  float x;
  memcpy(&x, &u, sizeof x);
  return x;
}

/* The model file's first 8 bytes (PNG-style: a 7-bit or newline-translating transfer
 * breaks them visibly). */
extern const uint8_t dn_model_magic[8];

/* ---- writing ---- */
/* A buffered writer: every byte goes into the running CRC-32; the first failed write
 * sticks (err), later puts do nothing. */
typedef struct dn_writer {
  int fd;
  uint32_t crc;
  int err; /* errno of the first failure, 0 while all is well */
  size_t len;
  uint8_t buf[16384];
} dn_writer;
void dn_writer_bytes(dn_writer *w, const void *p, size_t n);
void dn_writer_u32(dn_writer *w, uint32_t v);
void dn_writer_u64(dn_writer *w, uint64_t v);
void dn_writer_floats(dn_writer *w, const float *x, size_t n);
/* L (u32), n[0..L] (u64 each), g[1..L] (u32 each), the loss (u32): 8 + 12 L bytes. */
void dn_writer_net_desc(dn_writer *w, const dn_net *net);

/* Write body(w, ctx) and then the CRC-32 of all its bytes to a temporary file next to
 * path, fsync it, rename it over path and fsync the directory. Symbolic links at path
 * are followed (their target is replaced or created, the links stay) unless the kernel's
 * protected_symlinks rule would refuse one; a path that is anything but a regular file or
 * nothing (a FIFO, a device, a directory) is refused with DN_ERR_IO. On
 * failure path is as it was (the message says so; who names the caller). Nothing is
 * allocated after the rename, so the only failure once the new file is in place is a
 * failed directory sync (DN_ERR_IO, saying so). */
typedef void (*dn_write_body_fn)(dn_writer *w, const void *ctx);
dn_status dn_save_atomic(const char *path, const char *who, dn_write_body_fn body, const void *ctx);

/* ---- reading ---- */
typedef struct dn_reader {
  const char *path, *who;
  int fd;
  uint64_t size;   /* of the file, from fstat */
  uint64_t offset; /* bytes consumed so far */
  uint32_t crc;    /* over the bytes consumed so far */
} dn_reader;
/* Open a regular file for reading (DN_ERR_IO otherwise); close with dn_reader_close. */
dn_status dn_reader_open(dn_reader *r, const char *path, const char *who);
void dn_reader_close(dn_reader *r);
/* Exactly len bytes at the current offset into p, folded into the CRC; a short file is
 * DN_ERR_FORMAT naming what was cut. */
dn_status dn_reader_bytes(dn_reader *r, uint8_t *p, size_t len, const char *what);
dn_status dn_reader_u32(dn_reader *r, uint32_t *v, const char *what);
dn_status dn_reader_u64(dn_reader *r, uint64_t *v, const char *what);
/* n float32 values into x (finite or not: callers check after the CRC). */
dn_status dn_reader_floats(dn_reader *r, float *x, size_t n, const char *what);
/* Read the stored CRC-32 and compare it with the one computed so far. */
dn_status dn_reader_crc(dn_reader *r);

#endif /* DN_MODEL_IO_H */
