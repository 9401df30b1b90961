/* libFuzzer target: the IDX loader on arbitrary image and label bytes. The
 * input is split at its first 4-byte "\xff\xfe\xfd\xfc" marker into the two files. */
#include <string.h>

#include "deepnet.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const uint8_t marker[4] = {0xff, 0xfe, 0xfd, 0xfc};
  size_t split = size;
  for (size_t i = 0; i + 4 <= size; i++)
    if (memcmp(data + i, marker, 4) == 0) {
      split = i;
      break;
    }
  char images[64], labels[64];
  const int fi = fuzz_input_file(data, split, images, sizeof images);
  const size_t rest = split + 4 <= size ? split + 4 : size;
  const int fl = fuzz_input_file(data + rest, size - rest, labels, sizeof labels);
  if (fi >= 0 && fl >= 0) {
    dn_dataset d;
    if (dn_dataset_load_idx(&d, images, labels) == DN_OK) dn_dataset_free(&d);
  }
  if (fi >= 0) close(fi);
  if (fl >= 0) close(fl);
  return 0;
}
