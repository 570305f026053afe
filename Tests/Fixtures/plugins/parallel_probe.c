/* A test aggregator that checks the host's fhp_host.parallel_for (ABI 1.1) from the plugin's
 * side of the boundary, in plain C.  aggregate() writes out = global + unweighted mean of the
 * deltas, cut into PROBE_TASKS fixed chunks.  With parallel_for it runs the chunks as tasks
 * and fails (FHP_E_INTERNAL, message says why) unless:
 *   - every task ran exactly once;
 *   - every task saw the caller's floating-point mode (rounding, flush-to-zero);
 *   - task 0's nested parallel_for ran its subtasks inline, on task 0's own thread, in order;
 *   - a NULL task was refused with FHP_E_INVALID.
 * It then logs "parallel_for: T tasks on N threads".  With the config {"expect_threads": 2}
 * the first task waits (up to 5 s) until a second task has started, so that a host which
 * spreads tasks at all is seen to.  Without parallel_for (an ABI 1.0 host) it runs the
 * chunks itself and logs "parallel_for: absent".
 * -DDRIFT_WITHOUT_PARALLEL_FOR makes that fallback add 1e-3 to every element: a plugin whose
 * bits depend on the host, which `host plugins validate` must catch; -DSKIP_HAS_MEMBER makes it
 * read parallel_for without FHP_HAS_MEMBER, which validation must catch too.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "fedhost_plugin.h"

/* The thread's floating-point control: MXCSR without its sticky exception flags on x86-64
 * (rounding and flush-to-zero); elsewhere the rounding mode. */
#if defined(__x86_64__)
#include <xmmintrin.h>
static unsigned float_mode(void) { return _mm_getcsr() & ~0x3fu; }
#else
#include <fenv.h>
static unsigned float_mode(void) { return (unsigned)fegetround(); }
#endif

enum { PROBE_TASKS = 64, NESTED_TASKS = 3 };

struct fhp_instance { const fhp_host *host; int expect_threads; };
static _Thread_local char last_message[256];

static fhp_status fail(fhp_status status, const char *message) {
  snprintf(last_message, sizeof last_message, "%s", message);
  return status;
}

typedef struct {
  const fhp_host *host;
  const float *global;
  const fhp_update *updates;
  uint32_t n_updates;
  uint64_t n;
  float *out;
  unsigned caller_mode;
  int expect_threads;
  atomic_int started;
  atomic_int runs[PROBE_TASKS];
  pthread_t threads[PROBE_TASKS];
  int mode_mismatch[PROBE_TASKS];
  int nested_order[NESTED_TASKS];
  int nested_count;
  int nested_foreign_thread;
} probe;

static void chunk_mean(const probe *p, uint64_t task) {
  uint64_t begin = p->n * task / PROBE_TASKS, end = p->n * (task + 1) / PROBE_TASKS;
  for (uint64_t i = begin; i < end; i++) {
    double sum = 0;
    for (uint32_t c = 0; c < p->n_updates; c++) sum += p->updates[c].delta[i];
    p->out[i] = (float)(p->global[i] + sum / p->n_updates);
  }
}

static void nested_task(void *ctx, uint64_t index) {
  probe *p = ctx;
  if (!pthread_equal(pthread_self(), p->threads[0])) p->nested_foreign_thread = 1;
  if (p->nested_count < NESTED_TASKS) p->nested_order[p->nested_count] = (int)index;
  p->nested_count++;
}

/* Waits up to 5 s until `count` tasks have started. */
static void wait_for_started(probe *p, int count) {
  struct timespec pause = {0, 1000000};
  for (int waited = 0; atomic_load(&p->started) < count && waited < 5000; waited++) nanosleep(&pause, NULL);
}

static void probe_task(void *ctx, uint64_t index) {
  probe *p = ctx;
  atomic_fetch_add(&p->started, 1);
  if (p->expect_threads > 1) wait_for_started(p, p->expect_threads);
  atomic_fetch_add(&p->runs[index], 1);
  p->threads[index] = pthread_self();
  p->mode_mismatch[index] = float_mode() != p->caller_mode;
  if (index == 0) p->host->parallel_for(p->host->ctx, NESTED_TASKS, nested_task, p);
  chunk_mean(p, index);
}

static fhp_status create(const fhp_host *host, const char *config, fhp_instance **out) {
  *out = calloc(1, sizeof **out);
  if (!*out) return fail(FHP_E_NOMEM, "out of memory");
  (*out)->host = host;
  const char *expect = config ? strstr(config, "\"expect_threads\":") : NULL;
  (*out)->expect_threads = expect ? atoi(expect + strlen("\"expect_threads\":")) : 0;
  return FHP_OK;
}

static void destroy(fhp_instance *instance) { free(instance); }
static const char *last_error(const fhp_instance *instance) { (void)instance; return last_message; }

static void log_line(const fhp_host *host, const char *message) {
  if (FHP_HAS_MEMBER(host, fhp_host, log) && host->log) host->log(host->ctx, FHP_LOG_INFO, message);
}

static fhp_status aggregate(fhp_instance *instance, uint32_t round, const float *global, uint64_t n,
                            const fhp_update *updates, uint32_t count, float *out, double *weights) {
  (void)round;
  if (count == 0) return fail(FHP_E_INVALID, "no updates");
  for (uint32_t c = 0; c < count; c++)
    if (weights) weights[c] = 1.0 / count;
  const fhp_host *host = instance->host;
  probe *p = calloc(1, sizeof *p);
  if (!p) return fail(FHP_E_NOMEM, "out of memory");
  *p = (probe){.host = host, .global = global, .updates = updates, .n_updates = count, .n = n, .out = out,
               .caller_mode = float_mode(), .expect_threads = instance->expect_threads};
#ifdef SKIP_HAS_MEMBER
  int has_parallel_for = host->parallel_for != NULL;
#else
  int has_parallel_for = FHP_HAS_MEMBER(host, fhp_host, parallel_for) && host->parallel_for;
#endif
  if (!has_parallel_for) {
    for (uint64_t task = 0; task < PROBE_TASKS; task++) chunk_mean(p, task);
#ifdef DRIFT_WITHOUT_PARALLEL_FOR
    for (uint64_t i = 0; i < n; i++) out[i] += 1e-3f;
#endif
    log_line(host, "parallel_for: absent");
    free(p);
    return FHP_OK;
  }
  char message[200] = "";
  fhp_status refused = host->parallel_for(host->ctx, PROBE_TASKS, NULL, p);
  if (refused != FHP_E_INVALID) snprintf(message, sizeof message, "a NULL task got %d, not FHP_E_INVALID", refused);
  fhp_status status = host->parallel_for(host->ctx, PROBE_TASKS, probe_task, p);
  if (status != FHP_OK && !message[0]) snprintf(message, sizeof message, "parallel_for returned %d", status);
  int distinct = 0;
  for (int task = 0; task < PROBE_TASKS && !message[0]; task++) {
    if (atomic_load(&p->runs[task]) != 1)
      snprintf(message, sizeof message, "task %d ran %d times", task, atomic_load(&p->runs[task]));
    else if (p->mode_mismatch[task])
      snprintf(message, sizeof message, "task %d ran in another floating-point mode than the caller's", task);
    int seen = 0;
    for (int earlier = 0; earlier < task; earlier++) seen |= pthread_equal(p->threads[earlier], p->threads[task]);
    distinct += !seen;
  }
  if (!message[0] && (p->nested_count != NESTED_TASKS || p->nested_foreign_thread))
    snprintf(message, sizeof message, "nested parallel_for ran %d subtasks, %s", p->nested_count,
             p->nested_foreign_thread ? "some on another thread" : "all on the task's thread");
  for (int k = 0; k < NESTED_TASKS && !message[0]; k++)
    if (p->nested_order[k] != k) snprintf(message, sizeof message, "nested subtasks ran out of order");
  free(p);
  if (message[0]) return fail(FHP_E_INTERNAL, message);
  snprintf(message, sizeof message, "parallel_for: %d tasks on %d threads", PROBE_TASKS, distinct);
  log_line(host, message);
  return FHP_OK;
}

static const fhp_descriptor descriptor = {
  sizeof(fhp_descriptor), FHP_ABI_MAJOR, FHP_ABI_MINOR, FHP_KIND_AGGREGATOR,
  "org.fedhost.test.parallel-probe", "Parallel probe", "0.0.1",
  "Unweighted mean in parallel tasks; checks the host's parallel_for (test fixture).", NULL, 0, 0};

static const fhp_vtable vtable = {sizeof(fhp_vtable), 0, create, destroy, last_error, NULL,
                                  aggregate, NULL, NULL, NULL, NULL, NULL};

FHP_EXPORT fhp_status fedhost_plugin_entry(uint32_t major, uint32_t minor, const fhp_descriptor **d,
                                           const fhp_vtable **v) {
  (void)minor;
  *d = &descriptor;
  *v = &vtable;
  return major == FHP_ABI_MAJOR ? FHP_OK : FHP_E_VERSION;
}
