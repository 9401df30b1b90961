/* CRC-32 over byte buffers of any length, for the model file's checksum. */
#include "crc32.h"

#include <limits.h>
#include <zlib.h>

/* zlib is linked anyway (the IDX loader reads gzip through it), its crc32() is
 * the reference implementation of exactly this CRC and is faster than a bytewise
 * table (it works on words), so there is no table of our own to get wrong. Its
 * length is a uInt, hence the chunks: a model can exceed 4 GiB. */
uint32_t dn_crc32_update(uint32_t crc, const void *buf, size_t len) {
  const unsigned char *p = buf;
  uLong c = crc;
  while (len > 0) {
    const uInt chunk = len > UINT_MAX ? UINT_MAX : (uInt)len;
    c = crc32(c, p, chunk);
    p += chunk;
    len -= chunk;
  }
  return (uint32_t)c;
}
