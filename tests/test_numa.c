/* NUMA placement: per-node column splits on synthetic 1-, 2- and 4-node
 * topologies, quiet fallback when binding fails, and the same bits everywhere. */
#include <criterion/criterion.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "test_util.h"

static void two_nodes(void) { setenv("HWLOC_SYNTHETIC", "pack:2 numa:1 l3:1 core:4 pu:1", 1); }
static void four_nodes(void) { setenv("HWLOC_SYNTHETIC", "pack:2 numa:2 core:2 pu:1", 1); }

Test(numa, a_one_node_machine_gives_one_span_covering_every_column) {
  setenv("HWLOC_SYNTHETIC", "pack:1 numa:1 core:2 pu:1", 1);
  dn_node_span spans[8];
  cr_assert_eq(dn_topology()->numa_nodes, 1);
  cr_assert_eq(dn_placement_plan(128, 1, 4, spans), 1);
  cr_expect(spans[0].node == 0 && spans[0].col_begin == 0 && spans[0].col_end == 128);
}

Test(numa, two_nodes_split_the_columns_into_two_contiguous_halves, .init = two_nodes) {
  dn_node_span spans[8];
  cr_assert_eq(dn_topology()->numa_nodes, 2);
  cr_assert_eq(dn_topology()->cores, 8);
  cr_assert_eq(dn_placement_plan(100, 1, 4, spans), 2);
  cr_expect(spans[0].node == 0 && spans[0].col_begin == 0 && spans[0].col_end == 50);
  cr_expect(spans[1].node == 1 && spans[1].col_begin == 50 && spans[1].col_end == 100);
}

Test(numa, four_nodes_with_eight_threads_give_four_grain_aligned_spans, .init = four_nodes) {
  dn_node_span spans[8];
  cr_assert_eq(dn_topology()->numa_nodes, 4);
  cr_assert_eq(dn_placement_plan(256, 16, 8, spans), 4);
  for (size_t k = 0; k < 4; k++) {
    cr_expect_eq(spans[k].node, k);
    cr_expect_eq(spans[k].col_begin, 64 * k);
    cr_expect_eq(spans[k].col_end, 64 * (k + 1));
  }
}

Test(numa, fewer_threads_than_nodes_use_the_first_nodes_only, .init = four_nodes) {
  dn_node_span spans[8];
  cr_assert_eq(dn_placement_plan(90, 1, 2, spans), 2);
  cr_expect(spans[0].node == 0 && spans[1].node == 2, "threads are spread: nodes %zu and %zu",
            spans[0].node, spans[1].node);
  cr_expect_eq(spans[1].col_end, 90);
}

Test(numa, the_plan_matches_the_split_the_compute_threads_use, .init = two_nodes) {
  dn_node_span spans[8];
  const size_t n = dn_placement_plan(203, 1, 3, spans);
  size_t b, e;
  dn_block_range(203, 1, 0, 3, &b, &e);
  cr_expect_eq(spans[0].col_begin, b);
  dn_block_range(203, 1, 2, 3, &b, &e);
  cr_expect_eq(spans[n - 1].col_end, e);
}

Test(numa, placed_matrices_are_zeroed_and_page_aligned_on_a_multi_node_topology, .init = two_nodes) {
  float *p = dn_alloc_matrix_placed(300, 500, 4);
  cr_assert_not_null(p);
  cr_expect(((uintptr_t)p & 4095u) == 0);
  for (size_t i = 0; i < 300 * 500; i++) cr_assert(p[i] == 0.0f);
  size_t bound, failed;
  dn_placement_stats(&bound, &failed);
  cr_expect(bound + failed >= 1, "the two node blocks were bound (or tried)");
  dn_free_floats(p);
  cr_expect_null(dn_alloc_matrix_placed(SIZE_MAX / 2, 4, 4), "overflowing sizes are refused");
}

/* Forward + backward, a step, forward + backward again with `threads` threads; a hash of
 * both outputs and the last gradients. */
static uint64_t run_hash(int threads) {
  static const size_t dims[] = {200, 150, 10};
  static const dn_act acts[] = {DN_ACT_RELU, DN_ACT_SOFTMAX};
  enum { M = 160 };
  dn_set_num_threads(threads);
  dn_net *net;
  cr_assert_eq(dn_net_create(&net, 2, dims, acts, DN_LOSS_CCE), DN_OK);
  dn_net_init(net, 3);
  float *X = tu_random(200 * M, -1, 1, 1), *Y = malloc(10 * M * sizeof *Y), AL[10 * M];
  static float dW[150 * 200];
  tu_fill_one_hot(Y, 10, M, 2);
  cr_assert_eq(dn_net_forward(net, X, M, AL), DN_OK);
  cr_assert_eq(dn_net_backward(net, Y, NULL), DN_OK);
  uint64_t h = 1469598103934665603ull;
  const unsigned char *bytes = (const unsigned char *)AL;
  for (size_t i = 0; i < sizeof AL; i++) h = (h ^ bytes[i]) * 1099511628211ull;
  /* A step (which refreshes every per-node copy of the packed weights) and a forward that
   * reads them. */
  float AL2[10 * M];
  dn_train_opts opts;
  dn_train_opts_default(&opts);
  cr_assert_eq(dn_net_step(net, &opts), DN_OK);
  cr_assert_eq(dn_net_forward(net, X, M, AL2), DN_OK);
  bytes = (const unsigned char *)AL2;
  for (size_t i = 0; i < sizeof AL2; i++) h = (h ^ bytes[i]) * 1099511628211ull;
  cr_assert_eq(dn_net_backward(net, Y, NULL), DN_OK); /* the gradients below: of the new W */
  for (size_t l = 1; l <= 2; l++) {
    dn_net_get_grad(net, l, dW, NULL);
    bytes = (const unsigned char *)dW;
    for (size_t i = 0; i < dims[l] * dims[l - 1] * sizeof(float); i++) h = (h ^ bytes[i]) * 1099511628211ull;
  }
  free(X);
  free(Y);
  dn_net_free(net);
  return h;
}

/* The hash of a one-thread run never touches placement; it is computed here in a
 * process without a synthetic topology and compared with the placed runs below. */
Test(numa, results_on_synthetic_two_and_four_node_topologies_equal_the_real_ones) {
  const uint64_t real = run_hash(1);
  cr_expect_eq(run_hash(4), real, "real topology, 4 threads");
  char hex[32];
  snprintf(hex, sizeof hex, "%016llx", (unsigned long long)real);
  /* Re-run this binary's own placed test with the expected hash in the environment,
   * minus the variables that would make it act as a Criterion worker (the rest,
   * e.g. QEMU_LD_PREFIX under qemu, must stay). */
  char self[4096];
  const ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  cr_assert_gt(len, 0);
  self[len] = '\0';
  const char *topos[] = {"pack:2 numa:1 l3:1 core:4 pu:1", "pack:2 numa:2 core:2 pu:1"};
  for (int k = 0; k < 2; k++) {
    char cmd[5000];
    snprintf(cmd, sizeof cmd,
             "env -u BXFI_MAP -u GMON_OUT_PREFIX HWLOC_SYNTHETIC='%s' DN_EXPECT_HASH=%s '%s' --filter 'numa/placed_run_hash_*' >/dev/null 2>&1",
             topos[k], hex, self);
    cr_expect_eq(system(cmd), 0, "placed run on '%s' differs from the real topology", topos[k]);
  }
}

Test(numa, placed_run_hash_matches_the_expected_value) {
  const char *want = getenv("DN_EXPECT_HASH");
  if (!want) cr_skip_test("run by results_on_synthetic_... with DN_EXPECT_HASH set");
  char got[32];
  snprintf(got, sizeof got, "%016llx", (unsigned long long)run_hash(4));
  cr_expect_str_eq(got, want);
  cr_expect_gt(dn_topology()->numa_nodes, 1);
}

Test(numa, a_failing_thread_bind_falls_back_quietly_with_the_same_results) {
  const uint64_t free_run = run_hash(2);
  /* Confine the process to one CPU, then ask for pinning: binding the second
   * worker to another core fails and must be ignored. */
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(0, &one);
  cr_assert_eq(sched_setaffinity(0, sizeof one, &one), 0);
  setenv("DEEPNET_BIND", "1", 1);
  cr_expect_eq(run_hash(2), free_run);
}

/* ---- per-node copies of the packed weights ---- */

Test(numa, one_packed_copy_per_node_in_use_capped, .init = four_nodes) {
  cr_expect_eq(dn_pack_copies(1), 1);
  cr_expect_eq(dn_pack_copies(2), 2, "two threads work for nodes 0 and 2");
  cr_expect_eq(dn_pack_copies(3), 3);
  cr_expect_eq(dn_pack_copies(8), 4);
  /* Two copies: copy 1 lives on node 2 (thread 1 of 2 works there) and serves nodes 2, 3. */
  cr_expect_eq(dn_copy_node(0, 2), 0);
  cr_expect_eq(dn_copy_node(1, 2), 2);
  const size_t want[4] = {0, 0, 1, 1};
  for (size_t node = 0; node < 4; node++) {
    dn_set_thread_node(node);
    cr_expect_eq(dn_thread_copy(2), want[node], "node %zu", node);
    cr_expect_eq(dn_thread_copy(4), node);
    cr_expect_eq(dn_thread_copy(1), 0);
  }
  dn_set_thread_node(0);
}

static void sixteen_nodes(void) { setenv("HWLOC_SYNTHETIC", "pack:4 numa:4 core:1 pu:1", 1); }

Test(numa, more_nodes_than_copies_share_them_in_contiguous_groups, .init = sixteen_nodes) {
  cr_assert_eq(dn_topology()->numa_nodes, 16);
  cr_expect_eq(dn_pack_copies(16), DN_MAX_PACK_COPIES);
  for (size_t node = 0; node < 16; node++) {
    dn_set_thread_node(node);
    cr_expect_eq(dn_thread_copy(DN_MAX_PACK_COPIES), node / 2);
  }
  dn_set_thread_node(0);
  cr_expect_eq(dn_copy_node(3, DN_MAX_PACK_COPIES), 6);
}

static const size_t CDIMS[] = {70, 45, 10};
static const dn_act CACTS[] = {DN_ACT_TANH, DN_ACT_SOFTMAX};

/* Every copy of both packed layouts holds the same bytes. */
static void expect_copies_identical(const dn_net *net, size_t copies, const char *when) {
  const dn_kernel_table *kt = dn_kernels();
  for (int which = DN_PACK_FWD; which <= DN_PACK_BWD; which++) {
    const dn_packed_weights *pw = &net->Wp[which];
    cr_assert_eq(pw->copies, copies, "%s: %zu copies", when, pw->copies);
    for (size_t l = which == DN_PACK_FWD ? 1 : 2; l <= 2; l++) {
      const size_t M = which == DN_PACK_FWD ? CDIMS[l] : CDIMS[l - 1];
      const size_t K = which == DN_PACK_FWD ? CDIMS[l - 1] : CDIMS[l];
      const size_t bytes = dn_gemm_packed_a_floats(kt, M, K) * sizeof(float);
      for (size_t c = 1; c < copies; c++)
        cr_expect(memcmp(pw->W[0][l], pw->W[c][l], bytes) == 0, "%s: layout %d layer %zu copy %zu",
                  when, which, l, c);
    }
  }
}

/* On two nodes with three threads (more than dn_unpacked_w_max_threads(), so training reads
 * the copies), the net keeps two copies, identical after packing and after each optimizer
 * step's in-place refresh; a thread working for node 1 reads copy 1 (spoiling copy 1
 * changes what it computes, not what a node-0 thread computes); and a change of the thread
 * count re-plans the copies. Small batches keep each GEMM on the calling thread, so which
 * copy it reads is set by dn_set_thread_node alone. */
Test(numa, packed_weights_have_a_copy_per_node_and_each_thread_reads_its_own, .init = two_nodes) {
  enum { M = 8 };
  dn_amx_set_enabled(false); /* the AMX path reads W itself: no copies to check */
  dn_net *net;
  cr_assert_eq(dn_net_create(&net, 2, CDIMS, CACTS, DN_LOSS_CCE), DN_OK);
  dn_net_init(net, 5);
  float *X = tu_random(70 * M, -1, 1, 9), Y[10 * M], out0[10 * M], out1[10 * M];
  tu_fill_one_hot(Y, 10, M, 4);
  dn_set_num_threads(3);
  cr_assert_eq(dn_net_forward(net, X, M, out0), DN_OK);
  cr_assert_eq(dn_net_backward(net, Y, NULL), DN_OK);
  expect_copies_identical(net, 2, "after packing");
  dn_train_opts opts;
  dn_train_opts_default(&opts);
  for (int s = 0; s < 3; s++) {
    cr_assert_eq(dn_net_forward(net, X, M, out0), DN_OK);
    cr_assert_eq(dn_net_backward(net, Y, NULL), DN_OK);
    cr_assert_eq(dn_net_step(net, &opts), DN_OK);
    cr_assert_eq(dn_net_forward(net, X, M, out0), DN_OK); /* nothing left to re-pack */
    expect_copies_identical(net, 2, "after a step");
  }
  /* Spoil copy 1 of layer 1's forward packing: only a thread of node 1 sees it. */
  const size_t floats = dn_gemm_packed_a_floats(dn_kernels(), CDIMS[1], CDIMS[0]);
  for (size_t i = 0; i < floats; i++) net->Wp[DN_PACK_FWD].W[1][1][i] = 0.0f;
  dn_set_thread_node(0);
  cr_assert_eq(dn_net_forward(net, X, M, out1), DN_OK);
  cr_expect(memcmp(out0, out1, sizeof out0) == 0, "node 0 reads copy 0");
  dn_set_thread_node(1);
  cr_assert_eq(dn_net_forward(net, X, M, out1), DN_OK);
  cr_expect(memcmp(out0, out1, sizeof out0) != 0, "node 1 reads copy 1");
  dn_set_thread_node(0);
  /* One thread: one copy, re-planned and re-packed from W by the next pass that reads
   * copies (a prediction; one-thread training reads W itself and leaves them alone). */
  dn_set_num_threads(1);
  cr_assert_eq(dn_net_forward(net, X, M, out1), DN_OK);
  cr_expect_eq(net->Wp[DN_PACK_FWD].copies, 2, "one-thread training packs nothing");
  cr_expect(memcmp(out0, out1, sizeof out0) == 0, "one-thread training reads W itself");
  cr_assert_eq(dn_net_predict(net, X, M, out1), DN_OK);
  cr_expect_eq(net->Wp[DN_PACK_FWD].copies, 1);
  cr_expect(memcmp(out0, out1, sizeof out0) == 0, "re-packed from W, not from the spoiled copy");
  dn_set_num_threads(0);
  free(X);
  dn_net_free(net);
}
