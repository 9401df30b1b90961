/* libFuzzer target: the CSV loader on arbitrary bytes, with options taken from
 * the first input byte. */
#include "deepnet.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  dn_csv_opts o;
  dn_csv_opts_default(&o);
  o.label_column = (data[0] & 3) == 3 ? -1 : (long)(data[0] & 3);
  o.has_header = (int)((data[0] >> 2) & 3) - 1; /* -1, 0, 1 (2 is treated as 1) */
  if (o.has_header > 1) o.has_header = 1;
  o.delimiter = (data[0] & 0x10) ? ';' : ',';
  char path[64];
  const int fd = fuzz_input_file(data + 1, size - 1, path, sizeof path);
  if (fd < 0) return 0;
  dn_dataset d;
  if (dn_dataset_load_csv(&d, path, &o) == DN_OK) dn_dataset_free(&d);
  close(fd);
  return 0;
}
