/* Shared by the libFuzzer targets: hand the loaders the input as a file. */
#ifndef DN_FUZZ_COMMON_H
#define DN_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

/* The loaders take paths: the input goes into an anonymous in-memory file whose
 * /proc/self/fd path is written to path. Returns the fd (close it), -1 on failure. */
static inline int fuzz_input_file(const uint8_t *data, size_t size, char *path, size_t path_size) {
  const int fd = memfd_create("fuzz-input", 0);
  if (fd < 0) return -1;
  size_t done = 0;
  while (done < size) {
    const ssize_t w = write(fd, data + done, size - done);
    if (w <= 0) {
      close(fd);
      return -1;
    }
    done += (size_t)w;
  }
  snprintf(path, path_size, "/proc/self/fd/%d", fd);
  return fd;
}

#endif
