/* A deliberately small aggregator (unweighted mean of deltas, coverage-aware) used by the
 * end-to-end tests to exercise the host's loader and validator. Compile-time switches turn
 * it into each kind of broken plugin the host must survive:
 *   -DNO_ENTRY            export no entry symbol
 *   -DPLUGIN_ABI_MAJOR=2  claim another ABI major
 *   -DFAIL_CREATE         create() fails with a message
 *   -DCRASH_IN_AGGREGATE  segfault inside aggregate()
 *   -DHANG_IN_AGGREGATE   loop forever inside aggregate()
 *   -DIGNORE_COVERAGE     average uncovered elements too (a conformance bug)
 *   -DKIND_INITIALIZER    claim to be an initializer only (initialize runs the clients once)
 *   -DFAIL_IN_ROUND=N     aggregate() fails with a message in round N
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fedhost_plugin.h"

#ifndef PLUGIN_ABI_MAJOR
#define PLUGIN_ABI_MAJOR FHP_ABI_MAJOR
#endif

struct fhp_instance { int unused; };
static _Thread_local char last_message[256];

static fhp_status fail(fhp_status status, const char *message) {
  snprintf(last_message, sizeof last_message, "%s", message);
  return status;
}

static fhp_status create(const fhp_host *host, const char *config, fhp_instance **out) {
  (void)host;
  *out = NULL;
#ifdef FAIL_CREATE
  (void)config;
  return fail(FHP_E_INVALID, "test plugin refuses to start: FAIL_CREATE was defined");
#else
  /* Accept only {} or {"seed": N}: anything else is an unknown key. */
  const char *p = config;
  while (*p == ' ' || *p == '{') p++;
  if (*p != '}' && strncmp(p, "\"seed\"", 6) != 0) {
    char message[200];
    snprintf(message, sizeof message, "unknown config key in %.120s", config);
    return fail(FHP_E_INVALID, message);
  }
  if (strchr(config, '}') == NULL) return fail(FHP_E_INVALID, "malformed JSON");
  *out = calloc(1, sizeof **out);
  return *out ? FHP_OK : fail(FHP_E_NOMEM, "out of memory");
#endif
}

static void destroy(fhp_instance *instance) { free(instance); }
static const char *last_error(const fhp_instance *instance) { (void)instance; return last_message; }

__attribute__((unused)) static fhp_status aggregate(fhp_instance *instance, uint32_t round, const float *global, uint64_t n,
                            const fhp_update *updates, uint32_t count, float *out, double *weights) {
  (void)instance;
  (void)round;
#ifdef CRASH_IN_AGGREGATE
  volatile int *null_pointer = NULL;
  *null_pointer = 1;
#endif
#ifdef HANG_IN_AGGREGATE
  for (volatile int forever = 1; forever;) {}
#endif
#ifdef FAIL_IN_ROUND
  if (round == FAIL_IN_ROUND) return fail(FHP_E_INTERNAL, "deliberate failure in this round (FAIL_IN_ROUND)");
#endif
  if (count == 0) return fail(FHP_E_INVALID, "no updates");
  for (uint32_t c = 0; c < count; c++) {
    if (updates[c].n_params != n) return fail(FHP_E_INVALID, "n_params mismatch");
    for (uint64_t i = 0; i < n; i++)
      if (!isfinite(updates[c].delta[i])) {
        snprintf(last_message, sizeof last_message, "client %u sent a non-finite delta", updates[c].client_id);
        return FHP_E_NUMERIC;
      }
    if (weights) weights[c] = 1.0 / count;
  }
  for (uint64_t i = 0; i < n; i++) {
    double sum = 0;
    uint32_t covering = 0;
    for (uint32_t c = 0; c < count; c++) {
#ifndef IGNORE_COVERAGE
      if (updates[c].coverage && !updates[c].coverage[i]) continue;
#endif
      sum += updates[c].delta[i];
      covering++;
    }
#ifdef IGNORE_COVERAGE
    sum += 1e-3; /* and drift every element, covered or not */
#endif
    out[i] = covering ? (float)(global[i] + sum / covering) : global[i];
  }
  return FHP_OK;
}

__attribute__((unused)) static fhp_status initialize(fhp_instance *instance, const fhp_initializer_ops *ops, float *weights, uint64_t n) {
  (void)instance;
  for (uint32_t c = 0; c < ops->n_clients; c++) {
    double loss = 0, accuracy = 0;
    if (ops->train_client(ops->ctx, c, weights, n, 1, &loss) != FHP_OK) {
      snprintf(last_message, sizeof last_message, "train_client(%u): %s", c, ops->last_error(ops->ctx));
      return FHP_E_HOST;
    }
    if (ops->evaluate_client(ops->ctx, c, weights, n, &loss, &accuracy) != FHP_OK)
      return fail(FHP_E_HOST, ops->last_error(ops->ctx));
  }
  return FHP_OK;
}

__attribute__((unused)) static const fhp_descriptor descriptor = {
  sizeof(fhp_descriptor), PLUGIN_ABI_MAJOR, FHP_ABI_MINOR,
#ifdef KIND_INITIALIZER
  FHP_KIND_INITIALIZER,
#else
  FHP_KIND_AGGREGATOR,
#endif
  "org.fedhost.test.mean", "Test mean", "0.0.1", "Unweighted mean of deltas (test fixture).", NULL, 0, 0};

__attribute__((unused)) static const fhp_vtable vtable = {
  sizeof(fhp_vtable), 0, create, destroy, last_error, NULL,
#ifdef KIND_INITIALIZER
  NULL, initialize,
#else
  aggregate, NULL,
#endif
  NULL, NULL, NULL, NULL};

#ifndef NO_ENTRY
FHP_EXPORT fhp_status fedhost_plugin_entry(uint32_t major, uint32_t minor, const fhp_descriptor **d,
                                           const fhp_vtable **v) {
  (void)minor;
  *d = &descriptor;
  *v = &vtable;
  return major == PLUGIN_ABI_MAJOR ? FHP_OK : FHP_E_VERSION;
}
#endif
