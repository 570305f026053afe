/*
 * robust_aggregator.c — a complete FedHost strategy plugin in plain C99.
 *
 * Coordinate-wise robust aggregation: for every parameter element, the median or the
 * trimmed mean of the deltas of the clients that cover it, added to the global model
 * (elements nobody covers keep the global value).  Unweighted, like Flower's FedMedian and
 * FedTrimmedAvg: a robust statistic must not let one client buy influence with a large
 * sample count.  Stateless, deterministic.  The elements are cut into fixed chunks that run
 * on the host's worker threads when the host offers them (fhp_host.parallel_for, ABI 1.1) and
 * one after another otherwise: the result is the same bits either way.
 *
 * The boilerplate (per-thread errors, strict config parsing, the update array's stride,
 * parallel_for) comes from fedhost_plugin_helpers.h, shipped beside the ABI header; what is
 * left is the math.
 *
 * Config (a flat JSON object):
 *   "method": "median" | "trimmed_mean"   default "median"
 *   "trim":   number in [0, 0.5)          default 0.2; fraction cut from EACH end
 *   "seed":   non-negative integer        accepted (header rule 9); unused, no randomness
 *
 * Build:
 *   cc -std=c99 -O2 -fPIC -shared -fvisibility=hidden -I Sources/PluginAPI/include \
 *      -o libRobustAggregator.so Examples/robust-aggregator/robust_aggregator.c
 * Only fedhost_plugin_entry is exported (FHP_EXPORT); everything else is static.
 */
#include "fedhost_plugin.h"
#include "fedhost_plugin_helpers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum robust_method { METHOD_MEDIAN, METHOD_TRIMMED_MEAN };

struct fhp_instance {
  const fhp_host *host; /* valid until destroy: parallel_for lives here */
  enum robust_method method;
  double trim;
};

/* The descriptor's key table is also what the config is parsed against. */
enum { KEY_METHOD, KEY_TRIM, KEY_SEED, KEY_COUNT };
static const fhp_config_key config_keys[KEY_COUNT] = {
  {sizeof(fhp_config_key), 0, "method", "string", "\"median\"",
   "coordinate-wise statistic: \"median\" or \"trimmed_mean\""},
  {sizeof(fhp_config_key), 0, "trim", "number", "0.2",
   "trimmed_mean only: fraction of values cut from each end, in [0, 0.5)"},
  {sizeof(fhp_config_key), 0, "seed", "integer", "0", "accepted for uniformity; this plugin uses no randomness"},
};

/* ---------------------------------------------------------------------------------------- */
/* The statistics                                                                            */
/* ---------------------------------------------------------------------------------------- */
/* One covered delta value and the update it came from. */
struct ranked {
  float value;
  uint32_t update;
};

/* By value; equal values by update index, so the window (and the shares) is deterministic. */
static int compare_ranked(const void *a, const void *b) {
  const struct ranked *x = a, *y = b;
  if (x->value != y->value) return (x->value > y->value) - (x->value < y->value);
  return (x->update > y->update) - (x->update < y->update);
}

/* Median or trimmed mean of values[0..count-1] (count > 0, all finite); sorts values. The
 * statistic is the mean of a window of the sorted values: the middle one (odd count), the two
 * middle ones (even count), or all but floor(trim*count) at each end (trimmed mean, as scipy's
 * trim_mean and Flower's FedTrimmedAvg; trim < 0.5 always leaves one). Each value in the
 * window adds 1/|window| to its update's entry of `shares` (the header's out_weights for an
 * order statistic). */
static double robust_statistic(const struct fhp_instance *self, struct ranked *values, uint32_t count, double *shares) {
  qsort(values, count, sizeof *values, compare_ranked);
  uint32_t cut = self->method == METHOD_MEDIAN ? (count - 1) / 2 : (uint32_t)(self->trim * count);
  double sum = 0;
  for (uint32_t i = cut; i < count - cut; i++) sum += values[i].value;
  for (uint32_t i = cut; i < count - cut; i++) shares[values[i].update] += 1.0 / (count - 2 * cut);
  return sum / (count - 2 * cut);
}

/* Elements per task.  Fixed, so the split (and with it every result and every error
 * message) never depends on how many threads the host runs the tasks on. */
enum { ELEMENTS_PER_TASK = 4096 };

/* What the tasks of one aggregate call share.  Each task writes only its own elements of
 * out_global and its own entry of `failures`. */
struct aggregate_job {
  const struct fhp_instance *self;
  const fhp_update *updates; /* read with fhph_update_at and the host's stride */
  size_t stride;
  uint32_t n_updates;
  uint64_t n_params;
  const float *global;
  float *out_global;
  double *shares;   /* n_tasks × n_updates: task t's share sums in row t */
  uint64_t *covered; /* per task: its elements some update covers */
  struct task_failure {
    fhp_status status;          /* FHP_OK, or why the task stopped */
    uint64_t element;
    int bad_delta;              /* FHP_E_NUMERIC: 1 = client_id's delta, 0 = the result */
    uint32_t client_id;
  } *failures;
};

/* One task: the statistic of elements [task * ELEMENTS_PER_TASK, ...) into out_global. */
static void aggregate_task(void *context, uint64_t task) {
  struct aggregate_job *job = context;
  struct task_failure *failure = &job->failures[task];
  uint64_t begin = task * ELEMENTS_PER_TASK;
  uint64_t end = begin + ELEMENTS_PER_TASK < job->n_params ? begin + ELEMENTS_PER_TASK : job->n_params;
  struct ranked *values = malloc((size_t)job->n_updates * sizeof *values);
  double *shares = job->shares + task * job->n_updates;
  if (!values) {
    *failure = (struct task_failure){FHP_E_NOMEM, begin, 0, 0};
    return;
  }
  for (uint64_t e = begin; e < end; e++) {
    uint32_t count = 0;
    for (uint32_t k = 0; k < job->n_updates; k++) {
      const fhp_update *u = fhph_update_at(job->updates, job->stride, k);
      const uint8_t *coverage = fhph_update_coverage(u, job->stride);
      if (coverage && !coverage[e]) continue; /* must not influence the result */
      float value = u->delta[e];
      if (!isfinite(value)) {
        *failure = (struct task_failure){FHP_E_NUMERIC, e, 1, u->client_id};
        free(values);
        return;
      }
      values[count++] = (struct ranked){value, k};
    }
    if (count) job->covered[task]++;
    double result = count ? job->global[e] + robust_statistic(job->self, values, count, shares) : job->global[e];
    if (!isfinite((float)result)) {
      *failure = (struct task_failure){FHP_E_NUMERIC, e, 0, 0};
      free(values);
      return;
    }
    job->out_global[e] = (float)result;
  }
  free(values);
}

/* ---------------------------------------------------------------------------------------- */
/* The vtable functions                                                                      */
/* ---------------------------------------------------------------------------------------- */
static fhp_status robust_create(const fhp_host *host, const char *config_json, fhp_instance **out) {
  fhph_value values[KEY_COUNT];
  fhph_clear_error();
  if (!out) return fhph_fail(NULL, FHP_E_INVALID, "create: out is NULL");
  *out = NULL;
  fhp_status status = fhph_parse_config(config_json, config_keys, KEY_COUNT, values);
  if (status != FHP_OK) return status;
  const char *method = values[KEY_METHOD].string;
  if (strcmp(method, "median") != 0 && strcmp(method, "trimmed_mean") != 0)
    return fhph_fail(NULL, FHP_E_INVALID, "config key \"method\" must be \"median\" or \"trimmed_mean\"; got \"%s\"",
                     method);
  double trim = values[KEY_TRIM].number;
  if (!(trim >= 0 && trim < 0.5))
    return fhph_fail(NULL, FHP_E_INVALID, "config key \"trim\" must be in [0, 0.5); got %g", trim);
  struct fhp_instance *self = calloc(1, sizeof *self);
  if (!self) return fhph_fail(NULL, FHP_E_NOMEM, "create: out of memory");
  self->host = host;
  self->method = strcmp(method, "median") == 0 ? METHOD_MEDIAN : METHOD_TRIMMED_MEAN;
  self->trim = trim;
  *out = self;
  return FHP_OK;
}

static void robust_destroy(fhp_instance *self) {
  fhph_clear_error();
  free(self);
}

static const char *robust_last_error(const fhp_instance *self) { return fhph_last_error(self); }

static fhp_status robust_aggregate(fhp_instance *self, uint32_t round, const float *global, uint64_t n_params,
                                   const fhp_update *updates, uint32_t n_updates, float *out_global,
                                   double *out_weights) {
  (void)round;
  fhph_clear_error();
  if (!self) return fhph_fail(NULL, FHP_E_INVALID, "aggregate: instance is NULL");
  struct aggregate_job job = {self, updates, 0, n_updates, n_params, global, out_global, NULL, NULL, NULL};
  fhp_status status = fhph_check_aggregate(self, global, n_params, updates, n_updates, out_global, &job.stride);
  if (status != FHP_OK) return status;

  uint64_t n_tasks = (n_params + ELEMENTS_PER_TASK - 1) / ELEMENTS_PER_TASK;
  uint64_t slots = n_tasks ? n_tasks : 1;
  job.failures = calloc(slots, sizeof *job.failures); /* calloc: every status FHP_OK */
  job.shares = calloc(slots * n_updates, sizeof *job.shares);
  job.covered = calloc(slots, sizeof *job.covered);
  if (!job.failures || !job.shares || !job.covered) {
    free(job.failures), free(job.shares), free(job.covered);
    return fhph_fail(self, FHP_E_NOMEM, "aggregate: out of memory");
  }
  fhph_parallel_for(self->host, n_tasks, aggregate_task, &job);
  /* The first failure in element order, whichever thread met it. */
  for (uint64_t task = 0; task < n_tasks; task++) {
    struct task_failure failure = job.failures[task];
    if (failure.status == FHP_OK) continue;
    free(job.failures), free(job.shares), free(job.covered);
    unsigned long long element = (unsigned long long)failure.element;
    if (failure.status == FHP_E_NOMEM) return fhph_fail(self, FHP_E_NOMEM, "aggregate: out of memory");
    if (failure.bad_delta)
      return fhph_fail(self, FHP_E_NUMERIC, "client %u: delta[%llu] is not finite", failure.client_id, element);
    return fhph_fail(self, FHP_E_NUMERIC, "aggregate: element %llu would not be finite", element);
  }
  /* Each covered element hands out a share of 1 over the values in its window: an update's
   * weight is its share summed in task order, over the covered elements (all 0 if none). */
  uint64_t covered = 0;
  for (uint64_t task = 0; task < n_tasks; task++) covered += job.covered[task];
  if (out_weights)
    for (uint32_t k = 0; k < n_updates; k++) {
      double total = 0;
      for (uint64_t task = 0; task < n_tasks; task++) total += job.shares[task * n_updates + k];
      out_weights[k] = covered ? total / covered : 0;
    }
  free(job.failures), free(job.shares), free(job.covered);
  return FHP_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Descriptor, vtable, entry                                                                 */
/* ---------------------------------------------------------------------------------------- */
static const fhp_descriptor descriptor = {
  sizeof(fhp_descriptor), FHP_ABI_MAJOR, FHP_ABI_MINOR, FHP_KIND_AGGREGATOR,
  "org.fedhost.example.robust-aggregator", "Robust aggregator (C example)", "1.0.0",
  "Coordinate-wise median or trimmed mean of the client deltas over the clients covering each element.",
  config_keys, KEY_COUNT, 0, 0, 0}; /* no auxiliary vectors (ABI 1.2) */

static const fhp_vtable vtable = {
  .struct_size = sizeof(fhp_vtable),
  .create = robust_create,
  .destroy = robust_destroy,
  .last_error = robust_last_error,
  .aggregate = robust_aggregate,
  /* get_extension, initialize, adjust_gradient, train_local, save_state, load_state: NULL */
};

FHP_EXPORT fhp_status fedhost_plugin_entry(uint32_t host_abi_major, uint32_t host_abi_minor,
                                           const fhp_descriptor **out_descriptor,
                                           const fhp_vtable **out_vtable) {
  (void)host_abi_minor; /* any 1.x host: minors only append */
  if (out_descriptor) *out_descriptor = &descriptor;
  if (host_abi_major != FHP_ABI_MAJOR) {
    if (out_vtable) *out_vtable = NULL;
    return FHP_E_VERSION;
  }
  if (out_vtable) *out_vtable = &vtable;
  return FHP_OK;
}
