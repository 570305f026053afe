/* A working sample-weighted mean aggregator (coverage-aware, like FedAvg) that breaks in one
 * way chosen at compile time with -DBROKEN_MODE=<mode>, for the isolation tests: the host
 * must survive each of these and report it in one line. Modes that break a client hook or an
 * initializer also declare that kind, so that a run calls it.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "fedhost_plugin.h"

#define WORKING 0
#define SEGV_IN_CREATE 1
#define ABORT_IN_CREATE 2
#define SEGV_IN_AGGREGATE 3
#define ABORT_IN_AGGREGATE 4
#define TRAP_IN_AGGREGATE 5      /* __builtin_trap: SIGILL */
#define FPE_IN_AGGREGATE 6
#define BUS_IN_AGGREGATE 7
#define EXIT_IN_AGGREGATE 8      /* exit(3) in the middle of a call */
#define HANG_IN_AGGREGATE 9
#define OVERRUN_OUT_GLOBAL 10    /* writes 4,096 floats past the end of out_global */
#define HEAP_CORRUPTION 11       /* overflows its own heap block, then frees it */
#define SKIP_ONE_OUTPUT 12       /* returns OK with out_global[17] unwritten */
#define SKIP_ALL_OUTPUT 13       /* returns OK without writing out_global */
#define NAN_OUT_GLOBAL 14
#define NAN_WEIGHTS 15
#define SEGV_IN_PARALLEL_TASK 16 /* on a worker thread of parallel_for */
#define SEGV_IN_ADJUST_GRADIENT 17
#define HANG_IN_ADJUST_GRADIENT 18
#define SEGV_IN_TRAIN_LOCAL 19   /* after one gradient callback */
#define SEGV_IN_INITIALIZE 20    /* after one train_client callback */
#define HANG_IN_INITIALIZE 21
#define SEGV_IN_SAVE_STATE 22
#define SEGV_IN_LOAD_STATE 23
#define SEGV_IN_ROUND_1 24       /* round 0 works */
#define SLOW_ADJUST_GRADIENT 25  /* works, 50 ms a call: alive, not hung */
#define FAIL_IN_ADJUST_GRADIENT 26 /* FHP_E_NUMERIC with a message on the third call */

#ifndef BROKEN_MODE
#define BROKEN_MODE WORKING
#endif
#define MODE BROKEN_MODE

#define HAS_ADJUST_GRADIENT (MODE == SEGV_IN_ADJUST_GRADIENT || MODE == HANG_IN_ADJUST_GRADIENT \
                             || MODE == SLOW_ADJUST_GRADIENT || MODE == FAIL_IN_ADJUST_GRADIENT)
#define HAS_TRAIN_LOCAL (MODE == SEGV_IN_TRAIN_LOCAL)
#define HAS_INITIALIZE (MODE == SEGV_IN_INITIALIZE || MODE == HANG_IN_INITIALIZE)

struct fhp_instance {
  const fhp_host *host;
  uint64_t calls;
};
static _Thread_local char last_message[256];

static void crash(void) {
  volatile int *volatile null_pointer = NULL; /* volatile: the compiler cannot prove it NULL and drop the path */
  *null_pointer = 1;
}

static void hang(void) {
  for (volatile int forever = 1; forever;) {}
}

static fhp_status create(const fhp_host *host, const char *config, fhp_instance **out) {
  (void)config;
  if (MODE == SEGV_IN_CREATE) crash();
  if (MODE == ABORT_IN_CREATE) abort();
  *out = calloc(1, sizeof **out);
  if (!*out) return FHP_E_NOMEM;
  (*out)->host = host;
  if (host->log) host->log(host->ctx, FHP_LOG_INFO, "broken plugin created");
  return FHP_OK;
}

static void destroy(fhp_instance *instance) { free(instance); }
static const char *last_error(const fhp_instance *instance) { (void)instance; return last_message; }

static void crash_task(void *context, uint64_t index) {
  (void)context;
  if (index == 1) crash();
}

static fhp_status aggregate(fhp_instance *instance, uint32_t round, const float *global, uint64_t n,
                            const fhp_update *updates, uint32_t count, float *out, double *weights) {
  instance->calls++;
  switch (MODE) {
  case SEGV_IN_AGGREGATE: crash(); break;
  case ABORT_IN_AGGREGATE: abort();
  case TRAP_IN_AGGREGATE: __builtin_trap();
  case FPE_IN_AGGREGATE: raise(SIGFPE); break;
  case BUS_IN_AGGREGATE: raise(SIGBUS); break;
  case EXIT_IN_AGGREGATE: exit(3);
  case HANG_IN_AGGREGATE: hang(); break;
  case SEGV_IN_ROUND_1: if (round == 1) crash(); break;
  case SEGV_IN_PARALLEL_TASK:
    if (FHP_HAS_MEMBER(instance->host, fhp_host, parallel_for))
      instance->host->parallel_for(instance->host->ctx, 4, crash_task, NULL);
    else
      crash();
    break;
  case HEAP_CORRUPTION: {
    /* volatile: the compiler may not elide the allocations. Overwrites b's chunk header. */
    char *volatile a = malloc(32);
    char *volatile b = malloc(32);
    memset(a, 0x5A, 64);
    free(b);
    free(a);
    break;
  }
  default: break;
  }
  if (count == 0) {
    snprintf(last_message, sizeof last_message, "no updates");
    return FHP_E_INVALID;
  }
  double total = 0;
  for (uint32_t c = 0; c < count; c++) total += (double)updates[c].n_samples;
  for (uint32_t c = 0; c < count; c++)
    if (weights) weights[c] = MODE == NAN_WEIGHTS && c == 1 ? NAN : (double)updates[c].n_samples / total;
  if (MODE == SKIP_ALL_OUTPUT) return FHP_OK;
  for (uint64_t i = 0; i < n; i++) {
    double sum = 0, covered = 0;
    for (uint32_t c = 0; c < count; c++) {
      if (updates[c].coverage && !updates[c].coverage[i]) continue;
      sum += (double)updates[c].n_samples * updates[c].delta[i];
      covered += (double)updates[c].n_samples;
    }
    if (MODE == SKIP_ONE_OUTPUT && i == 17) continue;
    out[i] = global[i] + (covered > 0 ? (float)(sum / covered) : 0.0f);
  }
  if (MODE == NAN_OUT_GLOBAL && n > 5) out[5] = NAN;
  if (MODE == OVERRUN_OUT_GLOBAL)
    for (uint64_t i = n; i < n + 4096; i++) ((volatile float *)out)[i] = 1.0f;
  return FHP_OK;
}

static fhp_status adjust_gradient(fhp_instance *instance, uint32_t client_id, const float *w_local,
                                  const float *w_global, float *grad, uint64_t n) {
  (void)client_id;
  if (MODE == SEGV_IN_ADJUST_GRADIENT) crash();
  if (MODE == HANG_IN_ADJUST_GRADIENT) hang();
  if (MODE == SLOW_ADJUST_GRADIENT) usleep(50 * 1000);
  if (MODE == FAIL_IN_ADJUST_GRADIENT && __atomic_add_fetch(&instance->calls, 1, __ATOMIC_RELAXED) == 3) {
    snprintf(last_message, sizeof last_message, "gradient exploded at client %u", client_id);
    return FHP_E_NUMERIC;
  }
  for (uint64_t i = 0; i < n; i++) grad[i] += 0.01f * (w_local[i] - w_global[i]);
  return FHP_OK;
}

static fhp_status train_local(fhp_instance *instance, const fhp_client_ops *ops, float *weights, uint64_t n) {
  (void)instance;
  float *gradient = malloc(n * sizeof *gradient);
  double loss = 0;
  fhp_status status = ops->gradient(ops->ctx, FHP_SPLIT_SUPPORT, NULL, 0, weights, gradient, &loss);
  free(gradient);
  if (status != FHP_OK) return status;
  crash();
  return FHP_OK;
}

static fhp_status initialize(fhp_instance *instance, const fhp_initializer_ops *ops, float *weights, uint64_t n) {
  (void)instance;
  if (MODE == HANG_IN_INITIALIZE) hang();
  double loss = 0;
  fhp_status status = ops->train_client(ops->ctx, 0, weights, n, 1, &loss);
  if (status != FHP_OK) return status;
  crash();
  return FHP_OK;
}

static fhp_status save_state(fhp_instance *instance, uint8_t *buf, uint64_t capacity, uint64_t *out_len) {
  if (MODE == SEGV_IN_SAVE_STATE) crash();
  *out_len = sizeof instance->calls;
  if (!buf) return FHP_OK;
  if (capacity < sizeof instance->calls) return FHP_E_STATE;
  memcpy(buf, &instance->calls, sizeof instance->calls);
  return FHP_OK;
}

static fhp_status load_state(fhp_instance *instance, const uint8_t *buf, uint64_t len) {
  if (MODE == SEGV_IN_LOAD_STATE) crash();
  if (len != sizeof instance->calls) {
    snprintf(last_message, sizeof last_message, "state of %llu bytes, expected 8", (unsigned long long)len);
    return FHP_E_STATE;
  }
  memcpy(&instance->calls, buf, len);
  return FHP_OK;
}

static const fhp_descriptor descriptor = {
  sizeof(fhp_descriptor), FHP_ABI_MAJOR, FHP_ABI_MINOR,
  FHP_KIND_AGGREGATOR | (HAS_INITIALIZE ? FHP_KIND_INITIALIZER : 0)
    | (HAS_ADJUST_GRADIENT || HAS_TRAIN_LOCAL ? FHP_KIND_CLIENT_HOOK : 0),
  "org.fedhost.test.broken", "Broken", "1.0.0", "an aggregator that breaks in one chosen way",
  NULL, 0, 0,
};

static const fhp_vtable vtable = {
  .struct_size = sizeof(fhp_vtable),
  .create = create,
  .destroy = destroy,
  .last_error = last_error,
  .aggregate = aggregate,
  .initialize = HAS_INITIALIZE ? initialize : NULL,
  .adjust_gradient = HAS_ADJUST_GRADIENT ? adjust_gradient : NULL,
  .train_local = HAS_TRAIN_LOCAL ? train_local : NULL,
  .save_state = save_state,
  .load_state = load_state,
};

FHP_EXPORT fhp_status fedhost_plugin_entry(uint32_t major, uint32_t minor, const fhp_descriptor **out_descriptor,
                                           const fhp_vtable **out_vtable) {
  (void)minor;
  *out_descriptor = &descriptor;
  *out_vtable = &vtable;
  return major == FHP_ABI_MAJOR ? FHP_OK : FHP_E_VERSION;
}
