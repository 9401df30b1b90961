/* libFuzzer target: the CLI's argument parser on arbitrary argv vectors (the
 * input split at NUL bytes, at most 64 arguments). */
#include <stdlib.h>
#include <string.h>

#include "cli_args.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *buf = malloc(size + 1);
  if (!buf) return 0;
  memcpy(buf, data, size);
  buf[size] = '\0';
  char *argv[66];
  int argc = 0;
  argv[argc++] = (char *)"deepnet";
  for (size_t i = 0; i <= size && argc < 65;) {
    argv[argc++] = buf + i;
    i += strlen(buf + i) + 1;
  }
  argv[argc] = NULL;
  cli_config cfg;
  char err[256];
  const cli_result r = cli_parse(argc, argv, &cfg, err, sizeof err);
  if (r == CLI_ERROR && strlen(err) == 0) abort(); /* every error has a message */
  free(buf);
  return 0;
}
