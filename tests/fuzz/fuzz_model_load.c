/* libFuzzer target: dn_net_load on arbitrary bytes never crashes, leaks or
 * returns a net that then misbehaves. */
#include "deepnet.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[64];
  const int fd = fuzz_input_file(data, size, path, sizeof path);
  if (fd < 0) return 0;
  dn_net *net = NULL;
  if (dn_net_load(&net, path) == DN_OK) {
    /* A loaded net must be usable: one forward pass on zeros. */
    const size_t n0 = dn_net_dim(net, 0);
    if (n0 <= 4096) {
      static float X[4096];
      dn_net_predict(net, X, 1, NULL);
    }
    dn_net_free(net);
  }
  close(fd);
  return 0;
}
