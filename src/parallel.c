/* Threading settings and the per-thread floating-point environment (FTZ/DAZ). */
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <omp.h>
#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

#include "internal.h"

static atomic_int num_threads;        /* 0: OpenMP's default */
static atomic_int flush_denormals = 1;

dn_status dn_set_num_threads(int n) {
  if (n < 0) return dn_fail(DN_ERR_ARG, "dn_set_num_threads: %d is negative", n);
  atomic_store(&num_threads, n);
  return DN_OK;
}

int dn_get_num_threads(void) {
  int n = atomic_load(&num_threads);
  if (n <= 0) n = omp_get_max_threads();
  const int limit = omp_get_thread_limit(); /* OMP_THREAD_LIMIT, as OpenMP teams honour it */
  if (limit > 0 && n > limit) n = limit;
  return n < DN_MAX_PLAN_THREADS ? n : DN_MAX_PLAN_THREADS; /* the pool's size */
}

void dn_set_flush_denormals(int on) { atomic_store(&flush_denormals, on != 0); }
int dn_get_flush_denormals(void) { return atomic_load(&flush_denormals); }

/* deepnet computes in one floating-point environment whatever the calling thread's: round
 * to nearest, no exception traps, and FTZ/DAZ when flushing is on. Every thread that works
 * on a job sets it (the pool's workers too: a thread starts with its creator's state, so
 * they would otherwise keep whatever rounding or flushing the first caller had), and a
 * job run inline sets it as well, so a caller in another rounding mode, or flushing off,
 * still gets bitwise the same results at any thread count. */
#if defined(__x86_64__)
#define FP_STATE_BASE 0x1F80u /* MXCSR: round to nearest, all six exceptions masked */
#define FTZ_DAZ_BITS 0x8040u  /* MXCSR: FTZ (bit 15) | DAZ (bit 6) */
static unsigned fp_state_get(void) { return _mm_getcsr(); }
static void fp_state_set(unsigned s) { _mm_setcsr(s); }
#define FP_STATE_KNOWN 1
#elif defined(__aarch64__)
#define FP_STATE_BASE 0u        /* FPCR: round to nearest, no traps, IEEE NaNs */
#define FTZ_DAZ_BITS (1u << 24) /* FPCR.FZ flushes inputs and outputs */
static unsigned fp_state_get(void) {
  uint64_t v;
  __asm__ volatile("mrs %0, fpcr" : "=r"(v));
  return (unsigned)v;
}
static void fp_state_set(unsigned s) {
  uint64_t v = s;
  __asm__ volatile("msr fpcr, %0" : : "r"(v));
}
#define FP_STATE_KNOWN 1
#else
#define FP_STATE_BASE 0u
#define FTZ_DAZ_BITS 0u
static unsigned fp_state_get(void) { return 0; }
static void fp_state_set(unsigned s) { (void)s; }
#define FP_STATE_KNOWN 0
#endif

static void fpenv_enter_with(dn_fpenv *env, bool flush) {
  env->active = FP_STATE_KNOWN;
  env->x87_changed = false;
  if (!env->active) return;
  env->saved = fp_state_get();
  const unsigned want = FP_STATE_BASE | (flush ? FTZ_DAZ_BITS : 0u);
  if (env->saved != want) fp_state_set(want);
#if defined(__x86_64__)
  unsigned short cw;
  __asm__ volatile("fnstcw %0" : "=m"(cw));
  if (cw & 0x0C00u) { /* RC bits: not round-to-nearest */
    const unsigned short nearest = (unsigned short)(cw & ~0x0C00u);
    env->x87_saved = cw;
    env->x87_changed = true;
    __asm__ volatile("fldcw %0" : : "m"(nearest));
  }
#endif
}

void dn_fpenv_enter(dn_fpenv *env) { fpenv_enter_with(env, atomic_load(&flush_denormals) != 0); }
void dn_fpenv_enter_nearest(dn_fpenv *env) { fpenv_enter_with(env, false); }

void dn_fpenv_leave(const dn_fpenv *env) {
  if (env->active && fp_state_get() != env->saved) fp_state_set(env->saved);
#if defined(__x86_64__)
  if (env->x87_changed) __asm__ volatile("fldcw %0" : : "m"(env->x87_saved));
#endif
}

static atomic_bool split_everything;

void dn_set_split_everything(bool on) { atomic_store(&split_everything, on); }

int dn_threads_for(size_t units, size_t min_units_per_thread) {
  if (omp_in_parallel()) return 1; /* inside the caller's own parallel region: never oversubscribe */
  const int want = dn_get_num_threads();
  const bool by_units = min_units_per_thread == 0 || atomic_load(&split_everything);
  const size_t by_work = by_units ? units : units / min_units_per_thread;
  if (by_work < 2 || want < 2) return 1;
  return by_work < (size_t)want ? (int)by_work : want;
}

/* ---- the worker pool ----
 * Why not `#pragma omp parallel`: its closing barrier waits for every thread to
 * arrive, so on a machine where another process holds a core, each region waits
 * for the starved worker's next time slice (measured here: 2 threads ran 6x
 * slower than 1 with the other core busy). Here the region ends when its chunks
 * are done: each thread first works through its own contiguous share (the
 * NUMA-friendly layout), then takes chunks nobody has started, so a worker that
 * wakes late finds nothing left and leaves at once: the caller waits for chunks that
 * are running, never for a thread that has not started one. Idle workers
 * sleep: nothing spins once no deepnet call is open (in any thread), unless the user sets
 * OMP_WAIT_POLICY=active (then they spin up to 2 ms for the next job first); while one
 * is, workers of jobs of 8 threads or more spin up to 300 us for its next job
 * (dn_call_spin_ns). The
 * caller, once its own chunks are done, spins up to 50 us for the others' last chunks
 * (inside the call) before it sleeps. Results cannot depend on who ran a chunk: callers
 * guarantee chunk-independent bits. Measured, small net at batch 128, 2 threads on this
 * 2-core VM: the caller's join spin took a step from 1.67-1.77 to 1.54-1.56 ms (a futex
 * wake-up costs tens of microseconds here) and did not hurt with the other core busy
 * (2.05-2.15 vs 2.13-2.27 ms); the active policy another 5-8% idle, but with the other
 * core busy 3.4-3.8 ms against passive's 2.1 (a worker that spent its share of the core
 * spinning is preempted in the middle of a chunk), so it stays opt-in.
 *
 * How a job reaches the workers without a lock: each worker sleeps on a word of its own
 * (a futex on Linux), which the caller sets to the job's number and wakes only if the
 * worker is asleep; a woken worker goes straight to its chunks. The first pool woke them
 * with one condition-variable broadcast, after which the 15 workers of a 16-core machine
 * queued for the pool's mutex one by one before starting (docs/benchmarks.md, "Session
 * 9 on the 16-core machine"). The protocol, all atomics sequentially consistent:
 * - the caller fills the job, publishes job_number then job_live = true, then sets each
 *   needed worker's word (and wakes it if its `sleeping` flag is up);
 * - a worker announces itself in pool_active before it checks that job_live is up and
 *   job_number is the one it was woken for, so a worker woken for a job that has already
 *   ended (the others did its chunks) never touches the job struct the caller is
 *   refilling;
 * - the caller, once every chunk is done, lowers job_live and then waits for pool_active
 *   to reach 0: any worker it did not count will see job_live down and leave.
 * Each wait ("sleeping" against the word, "caller_waiting" against the counts) raises its
 * flag before its last check, and each waker changes the word before it reads the flag,
 * so one of the two always sees the other. */

enum { CHUNKS_PER_THREAD = 2, MAX_CHUNKS_PER_THREAD = 64, MAX_POOL_THREADS = DN_MAX_PLAN_THREADS };
/* How long the caller spins for the other threads' last chunks before sleeping (the
 * chunks are a few microseconds from done; a sleep costs a futex wake-up). */
#define JOIN_SPIN_NS 50000

static inline void dn_cpu_relax(void) {
#if defined(__x86_64__)
  _mm_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* Sleeping on a word until it changes: futex on Linux; elsewhere one mutex and condition
 * variable for all words (correct, slower: every wake-up wakes every sleeper). */
#if defined(__linux__)
static void word_wait(atomic_uint *word, unsigned expected) {
  syscall(SYS_futex, (unsigned *)word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}
static void word_wake(atomic_uint *word) {
  syscall(SYS_futex, (unsigned *)word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}
static void word_reset_after_fork(void) {}
#define WORD_WAKE_IS_PER_WORD 1
#else
#define WORD_WAKE_IS_PER_WORD 0 /* word_wake wakes every sleeper */
static pthread_mutex_t word_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t word_cv = PTHREAD_COND_INITIALIZER;
static void word_wait(atomic_uint *word, unsigned expected) {
  pthread_mutex_lock(&word_mu);
  while (atomic_load(word) == expected) pthread_cond_wait(&word_cv, &word_mu);
  pthread_mutex_unlock(&word_mu);
}
static void word_wake(atomic_uint *word) {
  (void)word;
  pthread_mutex_lock(&word_mu);
  pthread_cond_broadcast(&word_cv);
  pthread_mutex_unlock(&word_mu);
}
static void word_reset_after_fork(void) {
  pthread_mutex_init(&word_mu, NULL);
  pthread_cond_init(&word_cv, NULL);
}
#endif

/* How long an idle worker spins for the next job before it sleeps: 0 unless the user asks
 * for OpenMP's active wait policy (OMP_WAIT_POLICY=active), since by default nothing may
 * keep a core busy after a call returns. With active, the next call finds its workers
 * awake instead of paying a futex wake-up (tens of microseconds on a VM, longer than a
 * small GEMM); the spin is bounded so a program that stops calling deepnet gets its
 * cores back. */
#define ACTIVE_SPIN_NS 2000000
long long dn_worker_spin_ns(void) {
  static atomic_llong cached = -1;
  long long ns = atomic_load(&cached);
  if (ns >= 0) return ns;
  const char *policy = getenv("OMP_WAIT_POLICY");
  ns = policy && strcasecmp(policy, "active") == 0 ? ACTIVE_SPIN_NS : 0;
  atomic_store(&cached, ns);
  return ns;
}

/* How long an idle worker spins for the next job while a deepnet call that runs several
 * jobs in a row is in progress (a training pass: one or two GEMMs per layer and the
 * elementwise passes between them), in ns, after a job of `threads` threads. The call's
 * next job then finds its workers awake instead of paying a futex wake-up per job (tens of
 * microseconds on a VM, and the caller wakes the workers one by one); once the call
 * returns (dn_call_leave) they sleep at once, unless another thread's call is still open.
 * DEEPNET_CALL_SPIN_US sets it for any thread count (0 turns it off); else
 * OMP_WAIT_POLICY=passive means 0, and otherwise it is DEFAULT_CALL_SPIN_US from
 * CALL_SPIN_MIN_THREADS threads and 0 below. Read once. Measured (docs/benchmarks.md,
 * session 10; training step at batch 256, 300 us against none, alternating): 16 threads
 * on a lent 16-vCPU machine +3-25% idle and +6-60% (mostly 20-35%) with 4 or 8 of its
 * CPUs busy, 8 threads +19%, two threads pinned to two of its CPUs unchanged; but 2
 * threads on the 2-core VM with another process busy 16-20% slower (a spinning worker
 * takes turns with the caller's serial work), +2-5% idle. A worker that stopped spinning
 * for 50 ms after being switched out while it spun cut that loss to 3-9% but lost most of
 * the 16-thread gain, so the default is by thread count instead. */
#define DEFAULT_CALL_SPIN_US 300
#define CALL_SPIN_MIN_THREADS 8
#define MAX_CALL_SPIN_US 100000 /* longer settings are clamped to a tenth of a second */
long long dn_call_spin_ns(int threads) {
  static atomic_llong cached = -2; /* -2: not read yet; -1: no explicit setting */
  static atomic_bool passive;
  long long explicit_us = atomic_load(&cached);
  if (explicit_us == -2) {
    const char *policy = getenv("OMP_WAIT_POLICY");
    atomic_store(&passive, policy && strcasecmp(policy, "passive") == 0);
    explicit_us = -1;
    const char *env = getenv("DEEPNET_CALL_SPIN_US");
    if (env && *env) {
      char *end;
      const long long v = strtoll(env, &end, 10);
      if (*end == '\0' && v >= 0)
        explicit_us = v < MAX_CALL_SPIN_US ? v : MAX_CALL_SPIN_US;
      else
        fprintf(stderr, "deepnet: DEEPNET_CALL_SPIN_US=%s is not a number of microseconds; using "
                "the default\n", env);
    }
    atomic_store(&cached, explicit_us);
  }
  if (explicit_us >= 0) return explicit_us * 1000;
  if (atomic_load(&passive) || threads < CALL_SPIN_MIN_THREADS) return 0;
  return (long long)DEFAULT_CALL_SPIN_US * 1000;
}

const char *dn_wait_describe(void) { /* one static line: for the CLI, not thread-safe */
  static char line[160];
  const long long active_ns = dn_worker_spin_ns(), small = dn_call_spin_ns(1), many = dn_call_spin_ns(64);
  if (active_ns > 0)
    snprintf(line, sizeof line, "spin up to %lld us for the next job, then sleep (OMP_WAIT_POLICY=active); "
             "GEMMs take a second thread from 2^18 multiply-adds", active_ns / 1000);
  else if (small > 0)
    snprintf(line, sizeof line, "spin up to %lld us between the jobs of a call, sleep when no call is open "
             "(DEEPNET_CALL_SPIN_US)", small / 1000);
  else if (many > 0)
    snprintf(line, sizeof line, "spin up to %lld us between the jobs of a call on %d+ threads, "
             "sleep when no call is open", many / 1000, CALL_SPIN_MIN_THREADS);
  else
    snprintf(line, sizeof line, "sleep as soon as their job is done");
  return line;
}

/* Calls in progress (any thread's): workers spin between jobs while this is above 0.
 * Each thread also counts its own, so that a child of fork() keeps exactly the calls of
 * the thread that forked (the only one it has). */
static atomic_int pool_calls_open;
static _Thread_local int calls_open_here;
static atomic_ulong pool_call_spins; /* call-scoped spins started (tests) */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void register_atfork(void);
void dn_call_enter(void) {
  pthread_once(&atfork_once, register_atfork);
  calls_open_here++;
  atomic_fetch_add(&pool_calls_open, 1);
}
void dn_call_leave(void) {
  calls_open_here--;
  atomic_fetch_sub(&pool_calls_open, 1);
}
int dn_calls_open(void) { return atomic_load(&pool_calls_open); }
unsigned long dn_call_spins(void) { return atomic_load(&pool_call_spins); }

typedef struct share {
  atomic_size_t next; /* next chunk of this share to start */
  size_t end;         /* one past its last chunk */
} share;

/* One phase of a job: fn over [0, n) in chunks, each thread's contiguous share first. */
typedef struct pool_phase {
  dn_range_fn fn;
  void *ctx;
  size_t n, grain, units, chunks; /* [0, n) is units grains, dealt out as evenly as
                                   * possible over chunks chunks (chunk_begin) */
  share shares[MAX_POOL_THREADS];
  atomic_size_t chunks_left;
} pool_phase;

/* A job is one or two phases; every chunk of the first is done before any of the
 * second starts (the second reads what the first wrote), without a second dispatch. */
typedef struct pool_job {
  pool_phase phase[2];
  int phases;
  int threads;
  int flush; /* the caller's FTZ/DAZ setting */
  dn_pool_trace *trace; /* where this job's threads add their times, or NULL */
  double t0;            /* when it was published (traced jobs) */
} pool_job;

/* One per worker, each on its own cache line: the caller writes a worker's word when it
 * hands it a job, and nothing else shares the line. */
typedef struct worker_slot {
  _Alignas(64) atomic_uint word; /* the number of the last job this worker was handed */
  atomic_int sleeping;           /* 1 while it waits (or is about to) on word */
} worker_slot;

static pthread_mutex_t pool_submit = PTHREAD_MUTEX_INITIALIZER; /* one job at a time; a busy
                                                                  * pool means "run inline" */
static int pool_workers;               /* started so far (guarded by pool_submit) */
static pool_job pool_the_job;          /* the job; written by the pool_submit holder */
static worker_slot pool_slots[MAX_POOL_THREADS];
static atomic_uint pool_job_number;    /* the number of the job in pool_the_job */
static atomic_bool pool_job_live;      /* up from publication until its chunks are done */
static atomic_int pool_active;         /* workers between announcing and leaving a job */
static _Alignas(64) atomic_uint pool_join_word; /* bumped to wake a sleeping caller */
static atomic_int pool_caller_waiting; /* 1 while the caller waits (or is about to) */

static _Thread_local bool in_pool_worker;

/* Wake the caller if it sleeps in wait_for_workers (whose condition just became true). */
static void notify_caller(void) {
  if (atomic_load(&pool_caller_waiting)) {
    atomic_fetch_add(&pool_join_word, 1);
    word_wake(&pool_join_word);
  }
}

/* Where chunk c of a phase begins: chunks differ by at most one grain, so the threads'
 * shares do too (uniform chunks rounded up to the grain left the last share short: 22
 * micro-panels of 12 columns went 12 + 10 over two threads instead of 11 + 11). */
static size_t chunk_begin(const pool_phase *ph, size_t c) {
  const size_t q = ph->units / ph->chunks, r = ph->units % ph->chunks; /* r chunks of q + 1 */
  const size_t at = ph->grain * (c * q + (c < r ? c : r));
  return at < ph->n ? at : ph->n;
}

static void run_chunk(pool_phase *ph, size_t c) {
  ph->fn(ph->ctx, chunk_begin(ph, c), chunk_begin(ph, c + 1));
}

/* The tracer (dn_pool_trace_begin): read by the caller when it fills a job. */
static dn_pool_trace *_Atomic pool_trace;
void dn_pool_trace_begin(dn_pool_trace *trace) {
  memset(trace, 0, sizeof *trace);
  atomic_store(&pool_trace, trace);
}
void dn_pool_trace_end(void) { atomic_store(&pool_trace, NULL); }

/* run_chunk, timed into thread t's slot of a traced job (each thread writes only its own;
 * the caller reads them once every worker has left the job). */
static void run_chunk_traced(pool_job *job, pool_phase *ph, size_t c, int t, bool *first) {
  const double a = dn_now_s();
  run_chunk(ph, c);
  const double b = dn_now_s();
  if (*first) {
    job->trace->thread[t].delay_s += a - job->t0;
    job->trace->thread[t].jobs++;
    *first = false;
  }
  job->trace->thread[t].busy_s += b - a;
  job->trace->thread[t].chunks++;
}

/* Between the phases: every chunk of the first is claimed (this thread took what was
 * left), so wait only for the ones running on other threads, spinning (inside the call),
 * then yielding the core if one of them is slow (its thread preempted). */
static void wait_for_phase(pool_phase *ph) {
  for (unsigned k = 1; atomic_load(&ph->chunks_left) > 0; k++) {
    dn_cpu_relax();
    if (k % 4096 == 0) sched_yield();
  }
}

/* Own share first, then any share's unstarted chunks, phase by phase; returns when none
 * are left. */
static void work_on(pool_job *job, int t) {
  dn_fpenv env = {0};
  fpenv_enter_with(&env, job->flush); /* the caller's flush setting, deepnet's state */
  /* Which NUMA node's copy of shared read-only data (the packed weights) this thread
   * reads: the node it works for, where dn_bind_worker pins it. */
  const size_t node_before = dn_thread_node();
  dn_set_thread_node(dn_node_of_thread((size_t)t, (size_t)job->threads, dn_topology()->numa_nodes));
  bool first_chunk = true;
  for (int p = 0; p < job->phases; p++) {
    pool_phase *ph = &job->phase[p];
    if (p > 0) wait_for_phase(&job->phase[p - 1]);
    const bool last_phase = p == job->phases - 1;
    for (int k = 0; k < job->threads; k++) {
      share *s = &ph->shares[(t + k) % job->threads];
      for (size_t c; (c = atomic_fetch_add(&s->next, 1)) < s->end;) {
        if (job->trace)
          run_chunk_traced(job, ph, c, t, &first_chunk);
        else
          run_chunk(ph, c);
        if (atomic_fetch_sub(&ph->chunks_left, 1) == 1 && last_phase) notify_caller();
      }
    }
  }
  dn_set_thread_node(node_before);
  dn_fpenv_leave(&env);
}

static void *worker_main(void *arg) {
  const int t = (int)(intptr_t)arg; /* 1.. (the caller is thread 0) */
  worker_slot *me = &pool_slots[t];
  in_pool_worker = true;
  pthread_setname_np(pthread_self(), "dn-worker"); /* for top, perf and gdb; may fail */
  unsigned seen = 0; /* job numbers start at 1 (and skip 0 when they wrap) */
  int last_threads = 1; /* the thread count of the last job this worker took part in */
  for (;;) {
    unsigned number = atomic_load(&me->word);
    if (number == seen) {
      /* The user's active policy spins whether or not a call is open; else spin only
       * while a call (of any thread) is open, and stop as soon as none is. */
      long long spin_ns = dn_worker_spin_ns();
      const bool call_scoped = spin_ns == 0;
      if (call_scoped) spin_ns = atomic_load(&pool_calls_open) > 0 ? dn_call_spin_ns(last_threads) : 0;
      if (spin_ns > 0) {
        if (call_scoped) atomic_fetch_add_explicit(&pool_call_spins, 1, memory_order_relaxed);
        const double until = dn_now_s() + (double)spin_ns * 1e-9;
        for (unsigned k = 1; (number = atomic_load(&me->word)) == seen; k++) {
          dn_cpu_relax();
          if (call_scoped && k % 16 == 0 && atomic_load(&pool_calls_open) <= 0) break;
          if (k % 256 == 0) {
            if (dn_now_s() > until) break;
            sched_yield(); /* more threads than cores: let the one that has work run */
          }
        }
      }
      if (number == seen) {
        atomic_store(&me->sleeping, 1);
        while ((number = atomic_load(&me->word)) == seen) word_wait(&me->word, seen);
        atomic_store(&me->sleeping, 0);
      }
    }
    seen = number;
    atomic_fetch_add(&pool_active, 1);
    /* Still the job this worker was handed? If not (it ended before this worker got
     * here), the struct may already hold the next one, which this worker was not handed. */
    if (atomic_load(&pool_job_live) && atomic_load(&pool_job_number) == number) {
      last_threads = pool_the_job.threads; /* read while counted in pool_active */
      dn_bind_worker((size_t)t, (size_t)pool_the_job.threads);
      work_on(&pool_the_job, t);
    }
    if (atomic_fetch_sub(&pool_active, 1) == 1) notify_caller();
  }
  return NULL;
}

/* Start workers up to `wanted` (the caller is one of the threads). Returns how
 * many threads can take part, the caller included. Called with pool_submit held. */
static int ensure_workers(int wanted) {
  /* Read OMP_WAIT_POLICY and DEEPNET_CALL_SPIN_US here, on the caller's thread, not in a
   * worker (getenv is not safe against a setenv on another thread). */
  (void)dn_worker_spin_ns();
  (void)dn_call_spin_ns(1);
  while (pool_workers + 1 < wanted) {
    pthread_t tid;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* Workers block every signal (a thread starts with its creator's mask): a signal sent
     * to the process, SIGINT say, goes to one of the host's own threads, never to a
     * worker in the middle of a chunk. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    const int rc = pthread_create(&tid, &attr, worker_main, (void *)(intptr_t)(pool_workers + 1));
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) break; /* out of threads: run with what there is */
    pool_workers++;
  }
  return pool_workers + 1 < wanted ? pool_workers + 1 : wanted;
}

/* After fork() only the calling thread exists in the child: forget the workers. */
static void forget_workers_in_child(void) {
  pthread_mutex_init(&pool_submit, NULL);
  word_reset_after_fork();
  pool_workers = 0;
  for (int t = 0; t < MAX_POOL_THREADS; t++) {
    atomic_store(&pool_slots[t].word, 0);
    atomic_store(&pool_slots[t].sleeping, 0);
  }
  atomic_store(&pool_job_live, false);
  atomic_store(&pool_active, 0);
  atomic_store(&pool_caller_waiting, 0);
  /* The parent's other threads, and their open calls, do not exist here. */
  atomic_store(&pool_calls_open, calls_open_here);
}
static void register_atfork(void) { pthread_atfork(NULL, NULL, forget_workers_in_child); }

/* The phase in about CHUNKS_PER_THREAD chunks per thread (or the phase's own
 * chunks_per_thread), each whole grains (the last may end short at n), split into threads
 * contiguous shares. */
static void share_out(pool_phase *ph, const dn_phase *spec, int threads) {
  ph->fn = spec->fn;
  ph->ctx = spec->ctx;
  ph->n = spec->n;
  ph->grain = spec->grain ? spec->grain : 1;
  ph->units = (spec->n + ph->grain - 1) / ph->grain;
  size_t per_thread = spec->chunks_per_thread ? spec->chunks_per_thread : CHUNKS_PER_THREAD;
  if (per_thread > MAX_CHUNKS_PER_THREAD) per_thread = MAX_CHUNKS_PER_THREAD;
  const size_t most = (size_t)threads * per_thread;
  ph->chunks = ph->units < most ? ph->units : most;
  for (int t = 0; t < threads; t++) {
    size_t b, e;
    dn_block_range(ph->chunks, 1, (size_t)t, (size_t)threads, &b, &e);
    atomic_store(&ph->shares[t].next, b);
    ph->shares[t].end = e;
  }
  atomic_store(&ph->chunks_left, ph->chunks);
}

static bool last_chunk_done(const pool_phase *last) { return atomic_load(&last->chunks_left) == 0; }

/* The caller's wait for the workers: until every chunk of the last phase is done (last
 * != NULL), or until no worker is inside the job (last == NULL). Spins up to JOIN_SPIN_NS
 * (the last chunks are usually a few microseconds from done, less than a futex wake-up
 * on a VM), then sleeps until a worker's notify_caller. */
static void wait_for_workers(const pool_phase *last) {
#define JOIN_DONE() (last ? last_chunk_done(last) : atomic_load(&pool_active) == 0)
  const double spin_until = dn_now_s() + JOIN_SPIN_NS * 1e-9;
  for (unsigned k = 1; !JOIN_DONE(); k++) {
    dn_cpu_relax();
    if (k % 64 == 0 && dn_now_s() > spin_until) break;
  }
  while (!JOIN_DONE()) {
    const unsigned seen = atomic_load(&pool_join_word);
    atomic_store(&pool_caller_waiting, 1);
    if (JOIN_DONE()) break;
    word_wait(&pool_join_word, seen);
  }
  atomic_store(&pool_caller_waiting, 0);
#undef JOIN_DONE
}

void dn_parallel_phases(int threads, const dn_phase *first, const dn_phase *second) {
  const dn_phase *specs[2];
  int phases = 0;
  if (first && first->n) specs[phases++] = first;
  if (second && second->n) specs[phases++] = second;
  if (phases == 0) return;
  if (threads > MAX_POOL_THREADS) threads = MAX_POOL_THREADS;
  if (threads < 1) threads = 1;
  size_t most = 0; /* no more threads than the most grains in a phase */
  for (int p = 0; p < phases; p++) {
    const size_t grain = specs[p]->grain ? specs[p]->grain : 1;
    const size_t units = (specs[p]->n + grain - 1) / grain;
    if (units > most) most = units;
  }
  if ((size_t)threads > most) threads = (int)most;
  if (threads <= 1 || in_pool_worker || pthread_mutex_trylock(&pool_submit) != 0) {
    /* One thread, or nested, or another caller holds the pool: in order, inline, in the
     * same floating-point state as pool threads would use. */
    dn_fpenv env;
    dn_fpenv_enter(&env);
    for (int p = 0; p < phases; p++) specs[p]->fn(specs[p]->ctx, 0, specs[p]->n);
    dn_fpenv_leave(&env);
    return;
  }
  pthread_once(&atfork_once, register_atfork);
  threads = ensure_workers(threads);

  pool_job *job = &pool_the_job;
  job->phases = phases;
  job->threads = threads;
  job->flush = dn_get_flush_denormals();
  job->trace = atomic_load(&pool_trace);
  for (int p = 0; p < phases; p++) share_out(&job->phase[p], specs[p], threads);
  if (job->trace) job->t0 = dn_now_s();
  pool_phase *last = &job->phase[phases - 1];

  unsigned number = atomic_load(&pool_job_number) + 1;
  if (number == 0) number = 1; /* 0 is what a new worker has seen */
  atomic_store(&pool_job_number, number);
  atomic_store(&pool_job_live, true);
  bool asleep = false;
  for (int t = 1; t < threads; t++) {
    worker_slot *w = &pool_slots[t];
    atomic_store(&w->word, number);
    if (atomic_load(&w->sleeping)) {
      asleep = true;
      if (WORD_WAKE_IS_PER_WORD) word_wake(&w->word);
    }
  }
  if (asleep && !WORD_WAKE_IS_PER_WORD) word_wake(&pool_slots[1].word); /* one broadcast */

  work_on(job, 0); /* the caller works too (it is not pinned: it is the user's thread) */

  wait_for_workers(last);               /* every chunk done */
  const double done = job->trace ? dn_now_s() : 0.0;
  atomic_store(&pool_job_live, false);  /* no worker joins from here on... */
  wait_for_workers(NULL);               /* ...and the ones inside leave */
  if (job->trace) {
    job->trace->jobs++;
    job->trace->wall_s += done - job->t0;
  }
  pthread_mutex_unlock(&pool_submit);
}

void dn_parallel_for(size_t n, size_t grain, int threads, dn_range_fn fn, void *ctx) {
  const dn_phase only = {.n = n, .grain = grain, .fn = fn, .ctx = ctx};
  dn_parallel_phases(threads, &only, NULL);
}
