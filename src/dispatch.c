/* The dispatcher: kernel tables filled once from CPU features and DEEPNET_ISA;
 * dn_isa_set moves the cap between calls. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

static dn_kernel_table tables[DN_ISA_NEON + 1];
static bool table_built[DN_ISA_NEON + 1];
static dn_isa detected = DN_ISA_SCALAR;
static _Atomic(const dn_kernel_table *) active;
static bool verbose;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

const char *dn_isa_name(dn_isa isa) {
  switch (isa) {
    case DN_ISA_SCALAR: return "scalar";
    case DN_ISA_AVX2: return "avx2";
    case DN_ISA_AVX512: return "avx512";
    case DN_ISA_NEON: return "neon";
  }
  return NULL;
}

static void build_tables(void) {
  const dn_cpu_features *f = dn_cpu_features_get();
  dn_kernels_fill_scalar(&tables[DN_ISA_SCALAR]);
  table_built[DN_ISA_SCALAR] = true;
#ifdef DN_HAVE_X86_KERNELS
  if (f->avx2_fma) {
    dn_kernels_fill_avx2(&tables[DN_ISA_AVX2]);
    table_built[DN_ISA_AVX2] = true;
    detected = DN_ISA_AVX2;
  }
  if (f->avx512) {
    dn_kernels_fill_avx512(&tables[DN_ISA_AVX512]);
    table_built[DN_ISA_AVX512] = true;
    detected = DN_ISA_AVX512;
  }
  /* Zen's loads do not stall on stores 4 KiB apart as Intel's do: packing A inside the
   * micro-kernel paid at every lda there in session 13 (the AVX2 kernel on Zen 3; the
   * AVX-512 one follows the same loads and stores). Session 15, in a loaded phase of the
   * same host, measured the opposite at 4 KiB-multiple lda (docs/kernels.md, Session 15). */
  tables[DN_ISA_AVX2].ukr_pack_a_any_lda = tables[DN_ISA_AVX512].ukr_pack_a_any_lda = f->amd_zen;
#endif
#ifdef DN_HAVE_NEON_KERNELS
  if (f->neon) {
    dn_kernels_fill_neon(&tables[DN_ISA_NEON]);
    table_built[DN_ISA_NEON] = true;
    detected = DN_ISA_NEON;
  }
#endif
  (void)f;
}

/* The best built ISA not above cap; on x86 the levels are cumulative. */
static dn_isa best_under(dn_isa cap) {
  if (cap == DN_ISA_NEON) return table_built[DN_ISA_NEON] ? DN_ISA_NEON : DN_ISA_SCALAR;
  for (int isa = (int)cap; isa > DN_ISA_SCALAR; isa--)
    if (table_built[isa]) return (dn_isa)isa;
  return DN_ISA_SCALAR;
}

static void init(void) {
  build_tables();
  dn_isa choice = detected;
  const char *env = getenv("DEEPNET_ISA");
  if (env && *env) {
    int want = -1;
    for (int isa = DN_ISA_SCALAR; isa <= DN_ISA_NEON; isa++)
      if (strcmp(env, dn_isa_name((dn_isa)isa)) == 0) want = isa;
    if (want < 0) {
      fprintf(stderr, "deepnet: DEEPNET_ISA=%s is not one of scalar, avx2, avx512, neon; using %s\n",
              env, dn_isa_name(detected));
    } else {
      choice = best_under((dn_isa)want);
      if (choice != (dn_isa)want)
        fprintf(stderr, "deepnet: DEEPNET_ISA=%s is not supported by this CPU; using %s\n", env,
                dn_isa_name(choice));
    }
  }
  atomic_store(&active, &tables[choice]);
  const char *v = getenv("DEEPNET_VERBOSE");
  verbose = v && *v && strcmp(v, "0") != 0;
}

const dn_kernel_table *dn_kernels(void) {
  pthread_once(&init_once, init);
  return atomic_load_explicit(&active, memory_order_acquire);
}

dn_isa dn_isa_detected(void) {
  pthread_once(&init_once, init);
  return detected;
}

dn_isa dn_isa_active(void) { return dn_kernels()->isa; }

dn_status dn_isa_set(dn_isa isa) {
  pthread_once(&init_once, init);
  if (!dn_isa_name(isa)) return dn_fail(DN_ERR_ARG, "dn_isa_set: unknown ISA %d", (int)isa);
  if (!table_built[isa])
    return dn_fail(DN_ERR_UNSUPPORTED, "dn_isa_set: %s is not available on this CPU (best: %s)",
                   dn_isa_name(isa), dn_isa_name(detected));
  atomic_store_explicit(&active, &tables[isa], memory_order_release);
  return DN_OK;
}

bool dn_verbose(void) {
  pthread_once(&init_once, init);
  return verbose;
}

double dn_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Below this many multiply-adds per thread, a GEMM runs on one thread. Measured:
 * at 2^18 the 10-unit layer's GEMMs (256 x m x 10, m 256..512) ran 0.35-0.57x
 * their one-thread speed on 2 threads (waking a worker costs tens of us). */
#define GEMM_MIN_MACS_PER_THREAD ((size_t)1 << 20)

/* With OMP_WAIT_POLICY=active the workers spin for 2 ms after each job (dn_worker_spin_ns),
 * so back-to-back calls find them awake, and a product that would stay on one thread still
 * takes a second one from this many multiply-adds a thread. Measured on the 2-core Zen 3
 * guest (dn_sgemm paired at two threads, active policy, docs/benchmarks.md "Session 20"):
 * 2^17.3-2^18 a thread 1.21-1.41x (NT 10 x 256 x 128, NN 10 x 128 x 256, TN 256 x 128 x
 * 10, NN 64 x 128 x 64, NT 64 x 64 x 128), 2^17 a thread 1.16-1.25x (64^3, 32 x 128 x 64),
 * 2^16.3 a thread 0.74-0.86x (the 10-unit layer's m64 products). Passive (the default),
 * the wake-up costs more than such a product: 2 us of futex syscall in the caller, the
 * worker running 5.6 us after the job's publication; splitting the 10-unit layer's m256
 * products there ran 0.83-1.03x, its m512 ones 0.64-1.38x by the minute. Only the step
 * from one thread to two: how many threads mid-size products take on many cores is
 * unchanged. */
#define GEMM_MIN_MACS_PER_THREAD_AWAKE ((size_t)1 << 17)

int dn_gemm_threads(size_t M, size_t N, size_t K) {
  size_t macs;
  if (!dn_mul_ok(M, N, &macs) || !dn_mul_ok(macs, K, &macs)) macs = SIZE_MAX;
  const int threads = dn_threads_for(macs, GEMM_MIN_MACS_PER_THREAD);
  /* The policy is read only where it could change the answer. */
  const bool would_split_awake = dn_threads_for(macs, GEMM_MIN_MACS_PER_THREAD_AWAKE) > 1;
  if (threads == 1 && would_split_awake && dn_worker_spin_ns() > 0) return 2;
  return threads;
}

typedef struct gemm_job {
  const dn_kernel_table *kt;
  char transa, transb;
  size_t M, N, K, lda, ldb, ldc;
  float alpha, beta;
  const float *A, *B;
  const float *packedA;        /* op(A) pre-packed (dn_gemm_pack_a), or NULL: A, lda, transa */
  const float *const *copies;  /* or this, one byte-identical copy per NUMA node group */
  size_t n_copies;
  const float *packedB;        /* op(B) pre-packed (dn_gemm_pack_b_cols), or NULL */
  const dn_gemm_epilogue *ep;  /* run on each finished part of C, or NULL */
  float *C;
  bool split_rows; /* one dimension cut: M (rows of C) instead of N */
  /* Both cut: C in grid_rows x grid_cols blocks of whole micro-tiles, one per thread
   * (0 when one dimension is cut). */
  size_t grid_rows, grid_cols;
  size_t a_pack_units; /* a grid's packing phase: op(A)'s panels, then op(B)'s */
  bool a_packed_per_thread; /* a column cut whose chunks each pack op(A) themselves */
} gemm_job;

/* Rows [m0, m1) x columns [n0, n1) of C, on the calling thread. */
static void multiply_block(const gemm_job *j, size_t m0, size_t m1, size_t n0, size_t n1) {
  /* The copy on the node this thread works for: the bits are the same whichever it reads. */
  const float *packedA = j->packedA ? j->packedA : j->copies ? j->copies[dn_thread_copy(j->n_copies)] : NULL;
  dn_gemm_range_prepacked(j->kt, j->transa, j->transb, j->M, j->N, j->K, j->alpha, j->A, j->lda,
                          packedA, j->B, j->ldb, j->packedB, j->beta, j->C, j->ldc, m0, m1,
                          n0, n1, j->ep);
}

/* A 1-D cut's chunk [begin, end) of rows or columns. */
static void gemm_block(void *ctx, size_t begin, size_t end) {
  const gemm_job *j = ctx;
  if (j->split_rows)
    multiply_block(j, begin, end, 0, j->N);
  else
    multiply_block(j, 0, j->M, begin, end);
}

/* ---- the operand every thread would pack: packed once, shared ---- */

static void pack_b_block(void *ctx, size_t begin, size_t end) {
  const gemm_job *j = ctx;
  dn_gemm_pack_b_cols(j->kt, j->transb, j->N, j->K, j->B, j->ldb, (float *)j->packedB, begin, end,
                      j->ep ? j->ep->b_nonfinite : NULL);
}

static void pack_a_block(void *ctx, size_t begin, size_t end) {
  const gemm_job *j = ctx;
  dn_gemm_pack_a_rows(j->kt, j->transa, j->M, j->K, j->A, j->lda, (float *)j->packedA, begin, end);
}

/* A 2-D grid shares both operands: units [0, a_pack_units) are op(A)'s row panels (none
 * when A came pre-packed), the rest op(B)'s column panels (none on the small-M path). */
static void pack_both_block(void *ctx, size_t begin, size_t end) {
  const gemm_job *j = ctx;
  const size_t ap = j->a_pack_units, w = dn_gemm_packed_a_width(j->kt, j->M), nr = j->kt->nr;
  if (begin < ap)
    dn_gemm_pack_a_rows(j->kt, j->transa, j->M, j->K, j->A, j->lda, (float *)j->packedA,
                        begin * w, end < ap ? end * w : j->M);
  if (end > ap) {
    const size_t b0 = begin > ap ? begin - ap : 0, b1 = end - ap;
    dn_gemm_pack_b_cols(j->kt, j->transb, j->N, j->K, j->B, j->ldb, (float *)j->packedB, b0 * nr,
                        b1 * nr < j->N ? b1 * nr : j->N, j->ep ? j->ep->b_nonfinite : NULL);
  }
}

/* In a 2-D grid every row block of op(A) is read by grid_cols threads and every column
 * block of op(B) by grid_rows: pack both once, over all the threads, into one
 * DN_BUF_SHARED buffer (op(A) first, rounded to whole cache lines). An operand already
 * packed (the net's weights) or read in place (the small-M path's B) is skipped; without
 * a buffer each thread packs its own, as in the 1-D cuts. */
static dn_phase shared_operands_phase(gemm_job *j) {
  const dn_phase none = {0};
  const bool pack_a = !j->packedA && !j->copies, pack_b = dn_gemm_packs_b(j->kt, j->M);
  const size_t a_floats = pack_a ? dn_gemm_packed_a_floats(j->kt, j->M, j->K) : 0;
  const size_t b_floats = pack_b ? dn_gemm_packed_b_floats(j->kt, j->N, j->K) : 0;
  if (a_floats + b_floats == 0 || b_floats > SIZE_MAX / 2 || a_floats > SIZE_MAX / 2 - b_floats)
    return none; /* nothing to share, or sizes that overflow (SIZE_MAX) */
  const size_t a_room = (a_floats + 15) / 16 * 16;
  float *buf = dn_gemm_thread_buffer(DN_BUF_SHARED, a_room + b_floats);
  if (!buf) return none;
  if (pack_a) j->packedA = buf;
  if (pack_b) j->packedB = buf + a_room;
  const size_t w = dn_gemm_packed_a_width(j->kt, j->M);
  j->a_pack_units = pack_a ? (j->M + w - 1) / w : 0;
  const size_t b_units = pack_b ? (j->N + j->kt->nr - 1) / j->kt->nr : 0;
  return (dn_phase){.n = j->a_pack_units + b_units, .grain = 1, .fn = pack_both_block, .ctx = j};
}

/* A column cut whose chunks of C are at least this many columns wide leaves each chunk to
 * pack op(A) itself, as one thread does (NN: in the first column panel's micro-kernel where
 * the table has one that packs, sgemm_ukr_pack_a; otherwise a packing pass per block), instead
 * of a shared packing phase before the product; and deals one chunk a thread (unless the
 * blocks rule asks for more, from 4 threads), since each chunk packs all of op(A) again.
 * The pack is then spread over as many columns as one thread's m128 product, and the
 * product starts without waiting for a phase whose halves one core packed for the other.
 * Measured at 2 threads on the Zen 3 guest against the shared pack in two chunks a thread
 * (throwaway switch, dn_sgemm paired in one process, 16 pairs a shape, session 19), while
 * a cache line took 100-130 ns to the other vCPU and back: NN 512 x 512 x 784 1.039-1.056x,
 * 1024 x 512 x 1024 1.021-1.063x, sq512 1.030-1.039x, sq1024 1.021-1.031x, 256 x 512 x 512
 * 1.016-1.029x, 256 x 256 x 512 0.989-1.023x, sq256 0.998-1.007x (128-column chunks); TN
 * 1024 x 512 x 1024 1.021x, 784 x 512 x 512 1.012x, 512 x 512 x 256 1.020x; NT 256 x 512 x
 * 512 1.027x, 512 x 784 x 256-512 1.010x. Against the shared pack in one chunk a thread, the
 * same TN and NT shapes 1.004-1.015x: the own packs gain beyond the chunking. In the minutes
 * the round trip took 440-480 ns (vCPUs on cores that share no cache), own packs in two
 * chunks a thread already gained 1.03-1.14x on the NN shapes. */
#define OWN_A_PACK_MIN_COLUMNS 128

static bool own_a_packs_pay(const gemm_job *j, size_t cols, size_t chunks_per_thread,
                            int threads) {
  return cols > 1 && !j->grid_rows && !j->packedA && !j->copies &&
         dn_gemm_packs_b(j->kt, j->M) /* the general path, not the small-M one */ &&
         j->N / ((size_t)threads * chunks_per_thread) >= OWN_A_PACK_MIN_COLUMNS;
}

/* Threads splitting C by rows each need all of op(B), by columns all of op(A): pack that
 * operand once, over the threads, into the calling thread's DN_BUF_SHARED buffer, before
 * the product (not once per thread, which cost 2-thread runs up to a third of their speed
 * on MLP shapes). Both passes run in one dispatch (dn_parallel_phases: the product's
 * chunks start once every packing chunk is done), so the workers are woken once. The
 * packed driver's C is bitwise the unpacked one's, so this changes no result. No buffer:
 * each thread packs its own, as before. Returns the packing phase, or {0}. */
static dn_phase shared_operand_phase(gemm_job *j) {
  const dn_phase none = {0};
  if (j->grid_rows) return shared_operands_phase(j);
  if (!dn_gemm_packs_b(j->kt, j->M)) return none; /* the small-M path reads B in place */
  if (j->split_rows) {
    const size_t floats = dn_gemm_packed_b_floats(j->kt, j->N, j->K);
    float *buf = floats == SIZE_MAX ? NULL : dn_gemm_thread_buffer(DN_BUF_SHARED, floats);
    if (!buf) return none;
    j->packedB = buf;
    return (dn_phase){.n = j->N, .grain = j->kt->nr, .fn = pack_b_block, .ctx = j};
  }
  if (j->packedA || j->copies || j->a_packed_per_thread) return none;
  const size_t floats = dn_gemm_packed_a_floats(j->kt, j->M, j->K);
  float *buf = floats == SIZE_MAX ? NULL : dn_gemm_thread_buffer(DN_BUF_SHARED, floats);
  if (!buf) return none;
  j->packedA = buf;
  return (dn_phase){.n = j->M, .grain = dn_gemm_packed_a_width(j->kt, j->M), .fn = pack_a_block,
                    .ctx = j};
}

/* Block b of n over `tiles` micro-tiles of `tile` rows or columns, clipped to size. */
static size_t grid_edge(size_t b, size_t n, size_t tiles, size_t tile, size_t size) {
  const size_t q = tiles / n, r = tiles % n, at = tile * (b * q + (b < r ? b : r));
  return at < size ? at : size;
}

/* A grid's blocks [begin, end), row-major over the grid. */
static void gemm_grid_block(void *ctx, size_t begin, size_t end) {
  const gemm_job *j = ctx;
  const size_t mr = j->kt->mr, nr = j->kt->nr;
  const size_t row_tiles = (j->M + mr - 1) / mr, col_tiles = (j->N + nr - 1) / nr;
  for (size_t u = begin; u < end; u++) {
    const size_t bi = u / j->grid_cols, bj = u % j->grid_cols;
    multiply_block(j, grid_edge(bi, j->grid_rows, row_tiles, mr, j->M),
                   grid_edge(bi + 1, j->grid_rows, row_tiles, mr, j->M),
                   grid_edge(bj, j->grid_cols, col_tiles, nr, j->N),
                   grid_edge(bj + 1, j->grid_cols, col_tiles, nr, j->N));
  }
}

/* How a thread's block costs, in multiply-adds per step of K: its rows x columns, plus
 * GRID_FOOTPRINT_WEIGHT per row and column it reads (the rows of packed op(A) and the
 * columns of packed op(B) come from a shared L2/L3 copy that other threads packed, and
 * the narrower the block, the less each one is reused). The weight was fitted at 2
 * threads (dn_sgemm on the MLP shapes, row cut vs column cut, 2 runs each: 32-128 pick
 * the faster cut on the NN/TN shapes where the two differ by more than 10%). */
#define GRID_FOOTPRINT_WEIGHT 32.0

/* With op(A) pre-packed (the net's weights) a column cut runs in one phase, each thread
 * packing its own columns of B, while any cut of the rows first packs B over all the
 * threads and waits for it: that costs the grid this factor. Fitted at 2 threads
 * (bench-layer forward, W pre-packed, 3 alternating runs): the row cut the plain cost
 * prefers by 3-5% for 784-512 and 512-256 m256 ran 4-8% slower than the column cut. */
#define GRID_SHARED_B_PHASE 1.15

/* Without a pre-packed op(A) every cut packs one operand in a shared phase first: a column
 * cut op(A) (a plain copy), a cut of the rows op(B) (a transposing pack, which every thread
 * of a row then reads whole, half of it from where another core wrote it). Once that packed
 * op(B) outgrows half a core's L2, the rows cost this factor more. Fitted at 2 threads
 * (dn_sgemm NN and TN, rows against columns forced, alternating runs): the column cut was
 * 3-13% faster on 784-512 m512 (packed B 1.6 MB), sq1024 and sq2048, the row cut 8% faster
 * on 512-256 m256 (0.5 MB, where the plain costs differ by 2.5%) and faster wherever N is
 * under half of M (m128, m256, 4096 m512), about even on 1024-1024 m512. */
#define GRID_SHARED_B_PACK 1.04

static double grid_cost(const dn_kernel_table *kt, size_t M, size_t N, bool a_prepacked,
                        bool big_shared_b, size_t rows, size_t cols) {
  const size_t r = ((M + kt->mr - 1) / kt->mr + rows - 1) / rows * kt->mr;
  const size_t c = ((N + kt->nr - 1) / kt->nr + cols - 1) / cols * kt->nr;
  const double R = (double)(r < M ? r : M), C = (double)(c < N ? c : N);
  const double cost = R * C + GRID_FOOTPRINT_WEIGHT * (R + C);
  if (rows == 1) return cost;
  if (a_prepacked) return cost * GRID_SHARED_B_PHASE;
  return big_shared_b ? cost * GRID_SHARED_B_PACK : cost;
}

/* Threads cut C by whole micro-tiles, so no tile is shared and dn_gemm_range's
 * per-element results, and hence the bits, are those of a one-thread run, whatever the
 * cut. By default the cut is 1-D, along C's longer side in tiles. When op(B) is B itself
 * (transb 'N': the forward Z = W A_prev, and dn_sgemm NN and TN), the cut is instead the grid
 * rows x cols = threads whose slowest block costs least (grid_cost; ties keep the 1-D
 * cut): packing such a B transposes it, and a grid packs it once for all its rows of
 * blocks. With 16 threads on a 256-column C the 1-D cut left each thread 1 or 2 of the
 * 22 tile columns and the whole of op(A) to read; the grid made NN 784-512 m256 1.34-1.41x
 * and NN 512-256 m128 1.19-1.32x faster at 8 and 16 threads on a 16-core machine. With B
 * transposed (dW = dZ A_prev^T) each thread's own pack of its columns is cheap and stays
 * in its cache, and the grid made every NT shape there 0.8-0.9x: those keep the 1-D cut.
 * With 2 threads a grid is one of the two 1-D cuts (NN 512-256 m128 1.2x, 784-512 m256
 * 1.08x with rows instead of columns). Row blocks are multiples of MR, hence of a packed
 * op(A)'s panel width (small_mr panels only for M <= small_mr < MR: never cut). An
 * epilogue summing rows (row_acc) keeps each row's chain on one thread: only rows are cut. */
void dn_gemm_plan_cut(const dn_kernel_table *kt, char transb, size_t M, size_t N, size_t K,
                      bool rows_only, bool a_prepacked, int threads, size_t *grid_rows,
                      size_t *grid_cols) {
  const size_t t = threads > 1 ? (size_t)threads : 1;
  const size_t row_tiles = (M + kt->mr - 1) / kt->mr, col_tiles = (N + kt->nr - 1) / kt->nr;
  size_t best_rows = M / kt->mr > N / kt->nr || rows_only ? t : 1;
  if (t > 1 && !rows_only && transb == 'N') {
    size_t b_bytes = 0;
    const bool big_shared_b = !dn_mul_ok(N, K, &b_bytes) || !dn_mul_ok(b_bytes, sizeof(float), &b_bytes) ||
                              b_bytes > dn_gemm_l2_bytes() / 2;
    double best = grid_cost(kt, M, N, a_prepacked, big_shared_b, best_rows, t / best_rows);
    for (size_t rows = 1; rows <= t; rows++) {
      if (t % rows || rows > row_tiles || t / rows > col_tiles) continue;
      const double c = grid_cost(kt, M, N, a_prepacked, big_shared_b, rows, t / rows);
      if (c < best) best = c, best_rows = rows;
    }
  }
  *grid_rows = best_rows;
  *grid_cols = t / best_rows;
}

/* How many grid blocks a threaded GEMM's cut gives each thread: the most of 16, 8, 4, 2
 * for which every block still holds GEMM_MIN_MACS_PER_BLOCK multiply-adds, else 1. More
 * blocks than threads let the pool's chunk taking even out threads that run at different
 * speeds: on a lent 16-vCPU machine a few vCPUs ran the FMA loop at half speed at any
 * moment (other guests), and one block per thread made every GEMM wait for the slowest.
 * Four blocks per thread there (session 9): NN 4096-4096 m256 0.97-1.08k -> 1.17-1.26k
 * GFLOP/s, sq2048 0.80-1.08k -> 1.24-1.47k, NN 1024-1024 m256 0.64-0.84k -> 0.90-1.04k;
 * sixteen against four (session 10, three alternating rounds): the 4096 and square
 * products another 4-19% (TN 4096 m256 1.08k -> 1.23k, sq2048 1.16k -> 1.32k); but NN
 * 784-512 and 512-256 m256 (3-6 M multiply-adds a block at 16 threads) ran 5-25% slower
 * with smaller blocks, whose operand footprint grows against their work
 * (docs/benchmarks.md). A 1-D cut (the dW GEMMs) gets as many chunks a thread from the
 * pool. */
#define GEMM_MIN_MACS_PER_BLOCK ((size_t)1 << 22)
/* At 2 threads on the 2-core VM four blocks a thread made no difference beyond the noise
 * (dn_sgemm at 49 shapes, two alternating runs: geometric mean 0.97x with the shapes it
 * does not touch moving as much), so it starts where it was measured to help. */
#define GEMM_MIN_THREADS_FOR_BLOCKS 4
/* DEEPNET_GEMM_BLOCKS=k (1..16) replaces the rule at 2 threads and more: a knob for
 * measuring another machine's balance without a rebuild (docs/benchmarks.md). Read once;
 * 0 when unset or not a number in range. dn_gemm_plan still lowers k where the cut lacks
 * that many blocks. */
#define MAX_BLOCKS_PER_THREAD 16
static size_t blocks_per_thread_override(void) {
  static atomic_int cached = -1;
  int k = atomic_load(&cached);
  if (k >= 0) return (size_t)k;
  const char *env = getenv("DEEPNET_GEMM_BLOCKS");
  k = 0;
  if (env && *env) {
    char *end;
    const long v = strtol(env, &end, 10);
    if (*end == '\0' && v >= 1 && v <= MAX_BLOCKS_PER_THREAD)
      k = (int)v;
    else
      fprintf(stderr, "deepnet: DEEPNET_GEMM_BLOCKS=%s is not a number of blocks from 1 to %d; "
              "using the built-in rule\n", env, MAX_BLOCKS_PER_THREAD);
  }
  atomic_store(&cached, k);
  return (size_t)k;
}

size_t dn_gemm_blocks_per_thread(size_t macs, int threads) {
  if (threads < 2) return 1;
  const size_t forced = blocks_per_thread_override();
  if (forced) return forced;
  if (threads < GEMM_MIN_THREADS_FOR_BLOCKS) return 1;
  const size_t t = (size_t)(threads < DN_MAX_PLAN_THREADS ? threads : DN_MAX_PLAN_THREADS);
  /* No more blocks a thread than threads (4 at 4-7 threads, 8 at 8-15, 16 from 16): the
   * more threads, the likelier one of them is slow, while at 4 threads 16 blocks made the
   * 4096 m256 and m512 products 5-15% slower than 4 (a grid that shares op(A) instead of
   * a row cut that packs it in each core's L2). */
  size_t most = 4;
  while (most * 2 <= t && most * 2 <= MAX_BLOCKS_PER_THREAD) most *= 2;
  for (size_t k = most; k > 1; k /= 2)
    if (macs / (t * k) >= GEMM_MIN_MACS_PER_BLOCK) return k;
  return 1;
}

size_t dn_gemm_plan(const dn_kernel_table *kt, char transb, size_t M, size_t N, size_t K,
                    bool rows_only, bool a_prepacked, int threads, size_t *grid_rows,
                    size_t *grid_cols) {
  size_t macs = M * N;
  if (!dn_mul_ok(macs, K, &macs)) macs = SIZE_MAX;
  const size_t t = threads > 1 ? (size_t)(threads < DN_MAX_PLAN_THREADS ? threads : DN_MAX_PLAN_THREADS) : 1;
  const size_t row_tiles = (M + kt->mr - 1) / kt->mr, col_tiles = (N + kt->nr - 1) / kt->nr;
  for (size_t per_thread = dn_gemm_blocks_per_thread(macs, (int)t);; per_thread /= 2) {
    const size_t blocks = t * per_thread;
    dn_gemm_plan_cut(kt, transb, M, N, K, rows_only, a_prepacked, (int)blocks, grid_rows, grid_cols);
    /* More blocks a thread only where the cut really has them: a C few tiles wide or tall
     * may have no grid of that many blocks, and its 1-D fallback would leave threads idle
     * that the one-block plan kept busy (64 x 128 at 16 threads: a 2 x 8 grid, but 11
     * column tiles for 32 blocks). */
    const size_t units = *grid_rows > 1 && *grid_cols > 1 ? *grid_rows * *grid_cols
                         : *grid_cols == 1                 ? row_tiles
                                                           : col_tiles;
    if (per_thread <= 1 || units >= blocks) return per_thread;
  }
}

/* ---- the AMX path: fp32 products from bf16 pieces on the tile unit ----
 * (kernels/x86/sgemm_amx.c; docs/kernels.md "AMX"). Whether it runs is decided from the
 * table, the global shape and DEEPNET_AMX alone, and every thread count and cut computes
 * each element the same way, so results stay bitwise the same for any thread count. */

/* Off by default; DEEPNET_AMX=1 turns it on where the CPU, the OS and the build allow
 * tiles. Read once, an invalid value warns. dn_amx_set_enabled overrides it (tests, the
 * bench suites' kernel sets). Why off (session 17, a lent 16-vCPU Emerald Rapids,
 * bench-gemm-vs with the FMA kernels as a reference in the same rounds; docs/kernels.md
 * "AMX"): the tile path was 1.24x the FMA kernels at one thread (geometric mean, 49
 * shapes) but 0.90x at 2 threads, 0.76x at 4 and 0.78x at 16, where the FMA path is also
 * the one ahead of OpenBLAS (18 of 19 shapes at 16 threads against 7 with tiles); in one
 * phase of that shared host the tile path alone ran 2.3x slower. The choice cannot follow
 * the thread count (it sets the bits of C, which must not), and asking for the tile state
 * grows every signal frame of the host process by 8 KiB: so it is the user's to make. */
static atomic_int amx_switch = -1;

bool dn_amx_enabled(void) {
  int on = atomic_load(&amx_switch);
  if (on < 0) {
    const char *env = getenv("DEEPNET_AMX");
    on = 0;
    if (env && *env) {
      if (strcmp(env, "1") == 0) on = 1;
      else if (strcmp(env, "0") != 0)
        fprintf(stderr, "deepnet: DEEPNET_AMX=%s is neither 0 nor 1; using the default (off)\n", env);
    }
    atomic_store(&amx_switch, on);
  }
#ifdef DN_HAVE_AMX
  return on && dn_amx_available();
#else
  return false;
#endif
}

void dn_amx_set_enabled(bool on) { atomic_store(&amx_switch, on ? 1 : 0); }

bool dn_amx_can_run(void) {
#ifdef DN_HAVE_AMX
  return dn_amx_available();
#else
  return false;
#endif
}

bool dn_amx_in_use(void) { return dn_kernels()->isa == DN_ISA_AVX512 && dn_amx_enabled(); }

/* Where the tile path is faster than the FMA kernels (docs/kernels.md "AMX", one thread):
 * not for a K padded to 32 from a few (K = 10: 0.5x), nor for a C under 32 rows or
 * columns, nor where a large operand is split on every call for few columns of the other
 * (the forward of a 4096 x 4096 layer at batch 128, W 64 MiB: 0.68x at one thread, 0.65x
 * at two; at batch 256 1.22x; a 2048 x 2048 W at batch 128, 16 MiB, 1.07x). Fixed sizes,
 * never the cache sizes hwloc reports: the choice sets the bits of C (the kernel's own
 * blocking, which may follow the caches, does not). */
#define AMX_MIN_K 64
#define AMX_MIN_MN 32
#define AMX_NARROW 256                         /* columns (or rows) of C under this ... */
#define AMX_NARROW_MAX_OPERAND ((size_t)8 << 20) /* ... with an operand over this, in floats */

bool dn_gemm_uses_amx(const dn_kernel_table *kt, size_t M, size_t N, size_t K) {
  if (kt->isa != DN_ISA_AVX512 || M < AMX_MIN_MN || N < AMX_MIN_MN || K < AMX_MIN_K ||
      (kt->sgemm_small && M <= kt->small_mr) || !dn_amx_enabled())
    return false;
  const size_t narrow = M < N ? M : N, wide = M < N ? N : M; /* M x N x K passed dn_mul_ok */
  return narrow >= AMX_NARROW || wide * K <= AMX_NARROW_MAX_OPERAND;
}

typedef struct amx_job {
  const gemm_job *g;
  uint16_t *packedB;   /* op(B) packed once for all the threads (a row cut), or NULL */
  size_t b_units;      /* the first phase's units: op(B)'s 32-column blocks, then A's rows */
  float *T;            /* M x N, leading dimension M: the products; or C itself (direct) */
  bool direct;         /* T is C: the operands were checked first (they are smaller than
                        * C, or there is no room for T), alpha and beta applied as each
                        * block is stored */
  atomic_bool refused; /* an operand the split cannot take: the FMA path */
  bool split_rows;
} amx_job;

static void amx_range(const amx_job *a, size_t begin, size_t end, size_t *m0, size_t *m1,
                      size_t *n0, size_t *n1) {
  *m0 = a->split_rows ? begin : 0;
  *m1 = a->split_rows ? end : a->g->M;
  *n0 = a->split_rows ? 0 : begin;
  *n1 = a->split_rows ? a->g->N : end;
}

static void amx_compute_block(void *ctx, size_t begin, size_t end) {
  amx_job *a = ctx;
  const gemm_job *g = a->g;
  size_t m0, m1, n0, n1;
  amx_range(a, begin, end, &m0, &m1, &n0, &n1);
  if (atomic_load_explicit(&a->refused, memory_order_relaxed)) return;
#ifdef DN_HAVE_AMX
  /* No workspace: the kernel's stack path, the same bits. */
  const size_t work_floats = dn_sgemm_amx_workspace(g->K, m1 - m0, n1 - n0);
  float *work = work_floats == SIZE_MAX ? NULL : dn_gemm_thread_buffer(DN_BUF_PANELS, work_floats);
  const size_t ldt = a->direct ? g->ldc : g->M;
  if (dn_sgemm_amx_compute(g->transa, g->transb, g->K, g->A, g->lda, g->B, g->ldb, m0, m1, n0, n1,
                           a->direct ? g->alpha : 1.0f, a->direct ? g->beta : 0.0f,
                           a->T + m0 + n0 * ldt, ldt, work))
    return;
#endif
  atomic_store(&a->refused, true);
}

/* After every block was computed: C = alpha T + beta C (unless direct) and the epilogue,
 * or, if anything was refused, the FMA path over the whole of C (each thread its blocks). */
static void amx_finish_block(void *ctx, size_t begin, size_t end) {
  amx_job *a = ctx;
  const gemm_job *g = a->g;
  size_t m0, m1, n0, n1;
  amx_range(a, begin, end, &m0, &m1, &n0, &n1);
  if (atomic_load_explicit(&a->refused, memory_order_relaxed)) {
    multiply_block(g, m0, m1, n0, n1);
    return;
  }
#ifdef DN_HAVE_AMX
  const dn_gemm_epilogue *ep = g->ep;
  /* The forward layer's bias and activation in the store's pass (as the FMA kernels apply
   * them in registers): the same bits as the epilogue's own pass after it. */
  const bool fuse = !a->direct && ep && ep->bias && !ep->grad_of && !ep->row_acc &&
                    !ep->first_nonfinite &&
                    (!ep->out || (ep->out == g->C && (ep->act == DN_ACT_LINEAR ||
                                                      ep->act == DN_ACT_RELU ||
                                                      ep->act == DN_ACT_LEAKY_RELU)));
  if (fuse) {
    dn_sgemm_amx_store_bias_act(a->T + m0 + n0 * g->M, g->M, g->alpha, g->beta,
                                g->C + m0 + n0 * g->ldc, g->ldc, m1 - m0, n1 - n0, ep->bias + m0,
                                ep->out ? ep->act : DN_ACT_LINEAR);
    return;
  }
  if (!a->direct)
    dn_sgemm_amx_store(a->T + m0 + n0 * g->M, g->M, g->alpha, g->beta, g->C + m0 + n0 * g->ldc,
                       g->ldc, m1 - m0, n1 - n0);
#endif
  dn_gemm_epilogue_range(g->kt, g->ep, g->C, g->ldc, m0, m1, n0, n1);
}

/* A row cut with op(B) shared, first phase: units [0, b_units) pack op(B)'s 32-column
 * blocks into packedB, the others check 32-row blocks of op(A); either may refuse. */
static void amx_prepare_block(void *ctx, size_t begin, size_t end) {
  amx_job *a = ctx;
  const gemm_job *g = a->g;
#ifdef DN_HAVE_AMX
  bool ok = true;
  const size_t bu = a->b_units;
  if (begin < bu)
    ok = dn_sgemm_amx_pack_b(g->transb, g->K, g->B, g->ldb, g->N, begin * 32,
                             end < bu ? end * 32 : g->N, a->packedB);
  if (end > bu) {
    const size_t m0 = (begin > bu ? begin - bu : 0) * 32, m1 = (end - bu) * 32;
    ok = ok && dn_sgemm_amx_can_split(g->transa, g->transb, g->K, g->A, g->lda, g->B, g->ldb,
                                      m0, m1 < g->M ? m1 : g->M, 0, 0);
  }
  if (!ok) atomic_store(&a->refused, true);
#else
  (void)begin;
  (void)end;
  atomic_store(&a->refused, true);
#endif
}

/* Second phase: rows [begin, end) of C from the shared op(B), stored straight into C. */
static void amx_shared_b_block(void *ctx, size_t begin, size_t end) {
  amx_job *a = ctx;
  const gemm_job *g = a->g;
  if (!atomic_load_explicit(&a->refused, memory_order_relaxed)) {
#ifdef DN_HAVE_AMX
    const size_t work_floats = dn_sgemm_amx_workspace(g->K, end - begin, g->N);
    float *work = work_floats == SIZE_MAX ? NULL : dn_gemm_thread_buffer(DN_BUF_PANELS, work_floats);
    /* Cannot refuse: every operand was checked in the first phase (no work: the stack
     * path, the same bits). */
    if (dn_sgemm_amx_compute_packed_b(g->transa, g->transb, g->K, g->A, g->lda, g->B, g->ldb,
                                      a->packedB, g->N, begin, end, 0, g->N, g->alpha, g->beta,
                                      g->C + begin, g->ldc, work)) {
      dn_gemm_epilogue_range(g->kt, g->ep, g->C, g->ldc, begin, end, 0, g->N);
      return;
    }
#endif
  }
  multiply_block(g, begin, end, 0, g->N);
}

/* The product on the tile unit over `threads` threads: C cut along its larger dimension
 * (each thread then splits its share of the larger operand and the whole smaller one),
 * by rows when the epilogue sums rows. The products go to T (the calling thread's shared
 * buffer) so that a refusal anywhere leaves C untouched for the FMA path; without room
 * for T, the operands are checked first and the blocks go straight to C. Returns false
 * (nothing done) when the operands cannot be split: the FMA path. */
static bool amx_parallel(const gemm_job *g, int threads, bool *refused) {
  amx_job a = {.g = g, .split_rows = (g->ep && g->ep->row_acc) || g->M >= g->N};
  /* Operands smaller than C (dW = dZ A_prev^T, K = the batch): checking them first costs
   * less than the round trip of C through T. M x N x K passed dn_mul_ok. */
  const bool check_first = g->M * g->K + g->K * g->N <= 2 * g->M * g->N;
  a.T = check_first ? NULL : dn_gemm_thread_buffer(DN_BUF_SHARED, g->M * g->N);
#ifdef DN_HAVE_AMX
  /* Threads cutting rows all read the whole of op(B): pack it once, over the threads, with
   * op(A)'s check, then multiply (sq256 at two threads: each thread splitting all of op(B)
   * itself ran 0.95x OpenBLAS). */
  const size_t b_bf16 = dn_sgemm_amx_packed_b_bf16(g->K, g->N);
  if (check_first && threads > 1 && a.split_rows && !(g->transa == 'T' && g->transb == 'T') &&
      b_bf16 != SIZE_MAX &&
      (a.packedB = (uint16_t *)dn_gemm_thread_buffer(DN_BUF_AMX_B, b_bf16 / 2 + 1))) {
    atomic_init(&a.refused, false);
    a.b_units = (g->N + 31) / 32;
    const dn_phase prepare = {.n = a.b_units + (g->M + 31) / 32, .grain = 1,
                              .fn = amx_prepare_block, .ctx = &a};
    const dn_phase multiply = {.n = g->M, .grain = 32, .fn = amx_shared_b_block, .ctx = &a,
                               .chunks_per_thread = 1};
    dn_parallel_phases(threads, &prepare, &multiply);
    *refused = atomic_load(&a.refused);
    return true;
  }
  if (!a.T) {
    if (!dn_sgemm_amx_can_split(g->transa, g->transb, g->K, g->A, g->lda, g->B, g->ldb, 0, g->M,
                                0, g->N))
      return false;
    a.T = g->C;
    a.direct = true;
  }
#endif
  atomic_init(&a.refused, false);
  const size_t n = a.split_rows ? g->M : g->N;
  const dn_phase compute = {.n = n, .grain = 32, .fn = amx_compute_block, .ctx = &a,
                            .chunks_per_thread = 1};
  const dn_phase finish = {.n = n, .grain = 32, .fn = amx_finish_block, .ctx = &a,
                           .chunks_per_thread = 1};
  dn_parallel_phases(threads, &compute, &finish);
  *refused = atomic_load(&a.refused);
  return true;
}

/* Runs the product; returns the threads, and in *rows x *cols how C was cut (*own_packs:
 * a column cut whose chunks each packed op(A)); *kernel names what multiplied. */
static int gemm_parallel(const gemm_job *job, size_t *cut_rows, size_t *cut_cols,
                         bool *own_packs, const char **kernel) {
  *own_packs = false;
  const int threads = dn_gemm_threads(job->M, job->N, job->K);
  *kernel = dn_gemm_kernel_name(job->kt, job->transb, job->M);
  if (job->A && dn_gemm_uses_amx(job->kt, job->M, job->N, job->K)) {
    bool refused;
    if (amx_parallel(job, threads, &refused)) {
      *kernel = refused ? "dn_sgemm_amx_bf16x6 (refused: the FMA kernels)" : "dn_sgemm_amx_bf16x6";
      *cut_rows = *cut_cols = 1;
      return threads;
    }
    *kernel = "dn_sgemm_amx_bf16x6 (refused: the FMA kernels)";
  }
  gemm_job j = *job;
  size_t rows, cols;
  const size_t per_thread = dn_gemm_plan(j.kt, j.transb, j.M, j.N, j.K, j.ep && j.ep->row_acc,
                                         j.packedA || j.copies, threads, &rows, &cols);
  /* A 1-D cut goes through the pool's own balanced chunks of whole tiles. */
  j.split_rows = cols == 1;
  if (rows > 1 && cols > 1) {
    j.grid_rows = rows;
    j.grid_cols = cols;
  }
  /* 0: the pool's default */
  size_t chunks_per_thread = per_thread > 2 ? per_thread : 0;
  const size_t own_pack_chunks = per_thread > 2 ? per_thread : 1;
  if (threads > 1 && own_a_packs_pay(&j, cols, own_pack_chunks, threads)) {
    j.a_packed_per_thread = *own_packs = true;
    chunks_per_thread = own_pack_chunks;
  }
  dn_phase pack = threads > 1 ? shared_operand_phase(&j) : (dn_phase){0};
  /* The product waits for the last packing chunk: deal the packing as finely as the
   * product, so a thread on a slow vCPU holds up no more of it. */
  pack.chunks_per_thread = chunks_per_thread;
  const dn_phase product =
      j.grid_rows ? (dn_phase){.n = rows * cols, .grain = 1, .fn = gemm_grid_block, .ctx = &j,
                               .chunks_per_thread = per_thread}
                  : (dn_phase){.n = j.split_rows ? j.M : j.N,
                               .grain = j.split_rows ? j.kt->mr : j.kt->nr,
                               .fn = gemm_block, .ctx = &j,
                               .chunks_per_thread = chunks_per_thread};
  dn_parallel_phases(threads, &pack, &product);
  *cut_rows = rows;
  *cut_cols = cols;
  return threads;
}

static void gemm_logged(const char *what, size_t layer, const gemm_job *job) {
  size_t rows, cols;
  bool own_packs;
  const char *kernel;
  if (!verbose) {
    gemm_parallel(job, &rows, &cols, &own_packs, &kernel);
    return;
  }
  const double t0 = dn_now_s();
  const int threads = gemm_parallel(job, &rows, &cols, &own_packs, &kernel);
  const double dt = dn_now_s() - t0;
  char cut[64] = "";
  if (threads > 1)
    snprintf(cut, sizeof cut, " (cut %zux%zu%s)", rows, cols, own_packs ? ", A packed per chunk" : "");
  fprintf(stderr, "deepnet: layer %zu %-10s sgemm %c%c%s %s M=%zu N=%zu K=%zu threads=%d%s %.3f ms %.1f GFLOP/s\n",
          layer, what, job->transa, job->transb, job->packedA || job->copies ? " (A pre-packed)" : "",
          kernel, job->M, job->N, job->K, threads, cut, dt * 1e3,
          dt > 0 ? 2.0 * (double)job->M * (double)job->N * (double)job->K / dt * 1e-9 : 0.0);
}

void dn_gemm_run(const char *what, size_t layer, char transa, char transb, size_t M, size_t N,
                 size_t K, float alpha, const float *A, size_t lda, const float *B, size_t ldb,
                 float beta, float *C, size_t ldc, const dn_gemm_epilogue *ep) {
  const gemm_job job = {.kt = dn_kernels(), .transa = transa, .transb = transb, .M = M, .N = N,
                        .K = K, .lda = lda, .ldb = ldb, .ldc = ldc, .alpha = alpha, .beta = beta,
                        .A = A, .B = B, .C = C, .ep = ep};
  gemm_logged(what, layer, &job);
}

void dn_gemm_run_packed(const char *what, size_t layer, const dn_kernel_table *kt, char transa,
                        size_t M, size_t N, size_t K, float alpha, const float *const *packedA,
                        size_t copies, char transb, const float *B, size_t ldb, float beta,
                        float *C, size_t ldc, const dn_gemm_epilogue *ep) {
  const gemm_job job = {.kt = kt, .transa = transa, .transb = transb, .M = M, .N = N, .K = K,
                        .ldb = ldb, .ldc = ldc, .alpha = alpha, .beta = beta, .copies = packedA,
                        .n_copies = copies, .ep = ep, .B = B, .C = C};
  gemm_logged(what, layer, &job);
}

/* Below this many elements per thread, elementwise work stays on one thread. Measured
 * (deepnet-step-breakdown, DEEPNET_VERBOSE, means over 120 steps, 2 cores): the backward
 * pass's dZ and db at 2^17-2^18 elements ran 0.8-0.95x, db at 2^18 even 0.46x, their
 * one-thread time on two threads (waking a worker that slept through the one-thread
 * GEMMs before costs tens of us, and these passes are memory-bound); at 2^19 two threads
 * were 1.0-1.1x. At 2^16 per thread (the previous value), 131072-element passes split. */
#define MIN_ELEMS_PER_THREAD 262144

void dn_elementwise_run(const char *what, size_t layer, size_t elems, size_t n, size_t grain,
                        dn_range_fn fn, void *ctx) {
  const int threads = dn_threads_for(elems, MIN_ELEMS_PER_THREAD);
  if (!verbose) {
    dn_parallel_for(n, grain, threads, fn, ctx);
    return;
  }
  const double t0 = dn_now_s();
  dn_parallel_for(n, grain, threads, fn, ctx);
  const double dt = dn_now_s() - t0;
  fprintf(stderr, "deepnet: layer %zu %-8s %s elements=%zu threads=%d %.3f ms %.2f GB/s (one read + one write)\n",
          layer, what, dn_isa_name(dn_kernels()->isa), elems, threads, dt * 1e3,
          dt > 0 ? 8.0 * (double)elems / dt * 1e-9 : 0.0);
}
