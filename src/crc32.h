/* CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320) for the model file's checksum. */
#ifndef DN_CRC32_H
#define DN_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* Continue a CRC-32 over len more bytes; start with crc = 0. The check value of
 * "123456789" is 0xCBF43926. */
uint32_t dn_crc32_update(uint32_t crc, const void *buf, size_t len);

#endif /* DN_CRC32_H */
