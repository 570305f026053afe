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

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------- */
/* Errors: one message per thread (header: last_error is per thread), tagged with the        */
/* instance it belongs to (NULL for create).                                                 */
/* ---------------------------------------------------------------------------------------- */
static __thread char error_text[512];
static __thread const void *error_owner;
static __thread int error_set;

static void clear_error(void) { error_set = 0; }

static fhp_status fail(const void *owner, fhp_status status, const char *format, ...) {
  va_list args;
  va_start(args, format);
  vsnprintf(error_text, sizeof error_text, format, args);
  va_end(args);
  error_owner = owner;
  error_set = 1;
  return status;
}

/* ---------------------------------------------------------------------------------------- */
/* The instance                                                                              */
/* ---------------------------------------------------------------------------------------- */
enum robust_method { METHOD_MEDIAN, METHOD_TRIMMED_MEAN };

struct fhp_instance {
  const fhp_host *host;    /* valid until destroy: parallel_for lives here */
  enum robust_method method;
  double trim;
};

/* ---------------------------------------------------------------------------------------- */
/* A strict parser for a flat JSON object: string, number and integer values only.          */
/* ---------------------------------------------------------------------------------------- */
struct parser {
  const char *at;
};

static void skip_space(struct parser *p) {
  while (*p->at == ' ' || *p->at == '\t' || *p->at == '\n' || *p->at == '\r') p->at++;
}

/* Reads a string without escapes other than \" and \\ (config values need no more). */
static int read_string(struct parser *p, char *out, size_t capacity) {
  size_t length = 0;
  if (*p->at != '"') return 0;
  p->at++;
  while (*p->at != '"') {
    char c = *p->at;
    if (c == '\0' || (unsigned char)c < 0x20) return 0;
    if (c == '\\') {
      p->at++;
      if (*p->at != '"' && *p->at != '\\') return 0;
      c = *p->at;
    }
    if (length + 1 >= capacity) return 0;
    out[length++] = c;
    p->at++;
  }
  p->at++;
  out[length] = '\0';
  return 1;
}

/* A JSON number; *is_integer tells whether it had no fraction or exponent. */
static int read_number(struct parser *p, double *value, int *is_integer) {
  const char *start = p->at;
  char *end;
  if (*p->at == '-') p->at++;
  if (!isdigit((unsigned char)*p->at)) return 0;
  if (*p->at == '0' && isdigit((unsigned char)p->at[1])) return 0; /* no leading zeros */
  while (isdigit((unsigned char)*p->at)) p->at++;
  *is_integer = 1;
  if (*p->at == '.') {
    p->at++;
    if (!isdigit((unsigned char)*p->at)) return 0;
    while (isdigit((unsigned char)*p->at)) p->at++;
    *is_integer = 0;
  }
  if (*p->at == 'e' || *p->at == 'E') {
    p->at++;
    if (*p->at == '+' || *p->at == '-') p->at++;
    if (!isdigit((unsigned char)*p->at)) return 0;
    while (isdigit((unsigned char)*p->at)) p->at++;
    *is_integer = 0;
  }
  *value = strtod(start, &end); /* the host runs in the "C" numeric locale */
  return end == p->at && isfinite(*value);
}

#define ACCEPTED_KEYS "method, trim, seed"

static fhp_status parse_config(const char *json, struct fhp_instance *config) {
  struct parser p = {json ? json : "{}"};
  int seen_method = 0, seen_trim = 0, seen_seed = 0;
  config->method = METHOD_MEDIAN;
  config->trim = 0.2;
  skip_space(&p);
  if (*p.at++ != '{') return fail(NULL, FHP_E_INVALID, "config is not a JSON object");
  skip_space(&p);
  if (*p.at == '}') {
    p.at++;
  } else {
    for (;;) {
      char key[64], text[64];
      double number;
      int is_integer;
      skip_space(&p);
      if (!read_string(&p, key, sizeof key)) return fail(NULL, FHP_E_INVALID, "config: expected a key string");
      skip_space(&p);
      if (*p.at++ != ':') return fail(NULL, FHP_E_INVALID, "config: expected ':' after \"%s\"", key);
      skip_space(&p);
      if (strcmp(key, "method") == 0) {
        if (seen_method++) return fail(NULL, FHP_E_INVALID, "config key \"method\" appears twice");
        if (!read_string(&p, text, sizeof text))
          return fail(NULL, FHP_E_INVALID, "config key \"method\" must be a string (\"median\" or \"trimmed_mean\")");
        if (strcmp(text, "median") == 0) config->method = METHOD_MEDIAN;
        else if (strcmp(text, "trimmed_mean") == 0) config->method = METHOD_TRIMMED_MEAN;
        else return fail(NULL, FHP_E_INVALID, "config key \"method\" must be \"median\" or \"trimmed_mean\"; got \"%s\"", text);
      } else if (strcmp(key, "trim") == 0) {
        if (seen_trim++) return fail(NULL, FHP_E_INVALID, "config key \"trim\" appears twice");
        if (!read_number(&p, &number, &is_integer))
          return fail(NULL, FHP_E_INVALID, "config key \"trim\" must be a number");
        if (!(number >= 0 && number < 0.5))
          return fail(NULL, FHP_E_INVALID, "config key \"trim\" must be in [0, 0.5); got %g", number);
        config->trim = number;
      } else if (strcmp(key, "seed") == 0) {
        if (seen_seed++) return fail(NULL, FHP_E_INVALID, "config key \"seed\" appears twice");
        if (!read_number(&p, &number, &is_integer) || !is_integer || number < 0)
          return fail(NULL, FHP_E_INVALID, "config key \"seed\" must be a non-negative integer");
      } else {
        return fail(NULL, FHP_E_INVALID, "unknown config key \"%s\" (accepted: " ACCEPTED_KEYS ")", key);
      }
      skip_space(&p);
      if (*p.at == ',') { p.at++; continue; }
      if (*p.at == '}') { p.at++; break; }
      return fail(NULL, FHP_E_INVALID, "config: expected ',' or '}' after \"%s\"", key);
    }
  }
  skip_space(&p);
  if (*p.at != '\0') return fail(NULL, FHP_E_INVALID, "config: unexpected text after the object");
  return FHP_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* The statistics                                                                            */
/* ---------------------------------------------------------------------------------------- */
static int compare_floats(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

/* Median or trimmed mean of values[0..count-1] (count > 0, all finite); sorts values.
 * Median of an even count: the mean of the two middle values.  Trimmed mean: drop
 * floor(trim*count) values from each end (as scipy's trim_mean and Flower's FedTrimmedAvg),
 * average the rest; trim < 0.5 always leaves at least one value. */
static double robust_statistic(const struct fhp_instance *self, float *values, uint32_t count) {
  qsort(values, count, sizeof *values, compare_floats);
  if (self->method == METHOD_MEDIAN) {
    return count % 2 ? values[count / 2] : 0.5 * ((double)values[count / 2 - 1] + values[count / 2]);
  }
  uint32_t cut = (uint32_t)(self->trim * count);
  double sum = 0;
  for (uint32_t i = cut; i < count - cut; i++) sum += values[i];
  return sum / (count - 2 * cut);
}

/* ---------------------------------------------------------------------------------------- */
/* The vtable functions                                                                      */
/* ---------------------------------------------------------------------------------------- */
static fhp_status robust_create(const fhp_host *host, const char *config_json, fhp_instance **out) {
  struct fhp_instance config, *self;
  clear_error();
  if (!out) return fail(NULL, FHP_E_INVALID, "create: out is NULL");
  *out = NULL;
  fhp_status status = parse_config(config_json, &config);
  if (status != FHP_OK) return status;
  self = calloc(1, sizeof *self);
  if (!self) return fail(NULL, FHP_E_NOMEM, "create: out of memory");
  self->host = host;
  self->method = config.method;
  self->trim = config.trim;
  *out = self;
  return FHP_OK;
}

static void robust_destroy(fhp_instance *self) {
  clear_error();
  if (!self) return;
  free(self);
}

static const char *robust_last_error(const fhp_instance *self) {
  return error_set && error_owner == (const void *)self ? error_text : "";
}

/* Offset just past `member` of fhp_update: the reader's side of rule 2 (struct_size). */
#define UPDATE_END(member) (offsetof(fhp_update, member) + sizeof(((fhp_update *)0)->member))

/* Elements per task.  Fixed, so the split (and with it every result and every error
 * message) never depends on how many threads the host runs the tasks on. */
enum { ELEMENTS_PER_TASK = 4096 };

/* What the tasks of one aggregate call share.  Each task writes only its own elements of
 * out_global and its own entry of `failures`. */
struct aggregate_job {
  const struct fhp_instance *self;
  const unsigned char *updates; /* the fhp_update array, read with `stride` (rule 2) */
  size_t stride;
  uint32_t n_updates;
  uint64_t n_params;
  const float *global;
  float *out_global;
  struct task_failure {
    fhp_status status;          /* FHP_OK, or why the task stopped */
    uint64_t element;
    int bad_delta;              /* FHP_E_NUMERIC: 1 = client_id's delta, 0 = the result */
    uint32_t client_id;
  } *failures;
};

static const fhp_update *job_update(const struct aggregate_job *job, uint32_t k) {
  return (const fhp_update *)(job->updates + (size_t)k * job->stride);
}

/* One task: the statistic of elements [task * ELEMENTS_PER_TASK, ...) into out_global. */
static void aggregate_task(void *context, uint64_t task) {
  struct aggregate_job *job = context;
  struct task_failure *failure = &job->failures[task];
  uint64_t begin = task * ELEMENTS_PER_TASK;
  uint64_t end = begin + ELEMENTS_PER_TASK < job->n_params ? begin + ELEMENTS_PER_TASK : job->n_params;
  float *values = malloc((size_t)job->n_updates * sizeof *values);
  if (!values) {
    *failure = (struct task_failure){FHP_E_NOMEM, begin, 0, 0};
    return;
  }
  int has_coverage = job->stride >= UPDATE_END(coverage);
  for (uint64_t e = begin; e < end; e++) {
    uint32_t count = 0;
    for (uint32_t k = 0; k < job->n_updates; k++) {
      const fhp_update *u = job_update(job, k);
      if (has_coverage && u->coverage && !u->coverage[e]) continue; /* must not influence the result */
      float value = u->delta[e];
      if (!isfinite(value)) {
        *failure = (struct task_failure){FHP_E_NUMERIC, e, 1, u->client_id};
        free(values);
        return;
      }
      values[count++] = value;
    }
    double result = count ? job->global[e] + robust_statistic(job->self, values, count) : job->global[e];
    if (!isfinite((float)result)) {
      *failure = (struct task_failure){FHP_E_NUMERIC, e, 0, 0};
      free(values);
      return;
    }
    job->out_global[e] = (float)result;
  }
  free(values);
}

static fhp_status robust_aggregate(fhp_instance *self, uint32_t round, const float *global, uint64_t n_params,
                                   const fhp_update *updates, uint32_t n_updates, float *out_global,
                                   double *out_weights) {
  (void)round;
  clear_error();
  if (!self) return fail(NULL, FHP_E_INVALID, "aggregate: instance is NULL");
  if (n_updates == 0) return fail(self, FHP_E_INVALID, "aggregate: no updates (n_updates is 0)");
  if (!updates || !global || !out_global) return fail(self, FHP_E_INVALID, "aggregate: NULL argument");

  /* The array's stride is the host's sizeof(fhp_update), i.e. the first struct_size. */
  struct aggregate_job job = {self, (const unsigned char *)updates, updates[0].struct_size, n_updates, n_params,
                              global, out_global, NULL};
  if (job.stride < UPDATE_END(n_samples) || job.stride % 8 != 0)
    return fail(self, FHP_E_INVALID, "aggregate: fhp_update.struct_size %zu is invalid", job.stride);
  for (uint32_t k = 0; k < n_updates; k++) {
    const fhp_update *u = job_update(&job, k);
    if (u->n_params != n_params)
      return fail(self, FHP_E_INVALID, "aggregate: client %u has n_params %llu, expected %llu", u->client_id,
                  (unsigned long long)u->n_params, (unsigned long long)n_params);
    if (u->n_samples == 0) return fail(self, FHP_E_INVALID, "aggregate: client %u has n_samples 0", u->client_id);
    if (!u->delta && n_params > 0) return fail(self, FHP_E_INVALID, "aggregate: client %u has a NULL delta", u->client_id);
  }

  uint64_t n_tasks = (n_params + ELEMENTS_PER_TASK - 1) / ELEMENTS_PER_TASK;
  job.failures = calloc(n_tasks ? n_tasks : 1, sizeof *job.failures); /* calloc: every status FHP_OK */
  if (!job.failures) return fail(self, FHP_E_NOMEM, "aggregate: out of memory");
  /* The host's threads if it has them (ABI 1.1; rule 2 says how to ask), else this one. */
  const fhp_host *host = self->host;
  if (!(host && FHP_HAS_MEMBER(host, fhp_host, parallel_for) && host->parallel_for &&
        host->parallel_for(host->ctx, n_tasks, aggregate_task, &job) == FHP_OK)) {
    for (uint64_t task = 0; task < n_tasks; task++) {
      job.failures[task] = (struct task_failure){FHP_OK, 0, 0, 0};
      aggregate_task(&job, task);
    }
  }
  /* The first failure in element order, whichever thread met it. */
  for (uint64_t task = 0; task < n_tasks; task++) {
    struct task_failure failure = job.failures[task];
    if (failure.status == FHP_OK) continue;
    free(job.failures);
    unsigned long long element = (unsigned long long)failure.element;
    if (failure.status == FHP_E_NOMEM) return fail(self, FHP_E_NOMEM, "aggregate: out of memory");
    if (failure.bad_delta)
      return fail(self, FHP_E_NUMERIC, "client %u: delta[%llu] is not finite", failure.client_id, element);
    return fail(self, FHP_E_NUMERIC, "aggregate: element %llu would not be finite", element);
  }
  free(job.failures);
  /* A rank statistic gives no client a weight of its own: report the uniform 1/n. */
  if (out_weights)
    for (uint32_t k = 0; k < n_updates; k++) out_weights[k] = 1.0 / n_updates;
  return FHP_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Descriptor, vtable, entry                                                                 */
/* ---------------------------------------------------------------------------------------- */
static const fhp_config_key config_keys[] = {
  {sizeof(fhp_config_key), 0, "method", "string", "\"median\"",
   "coordinate-wise statistic: \"median\" or \"trimmed_mean\""},
  {sizeof(fhp_config_key), 0, "trim", "number", "0.2",
   "trimmed_mean only: fraction of values cut from each end, in [0, 0.5)"},
  {sizeof(fhp_config_key), 0, "seed", "integer", "0", "accepted for uniformity; this plugin uses no randomness"},
};

static const fhp_descriptor descriptor = {
  sizeof(fhp_descriptor), FHP_ABI_MAJOR, FHP_ABI_MINOR, FHP_KIND_AGGREGATOR,
  "org.fedhost.example.robust-aggregator", "Robust aggregator (C example)", "1.0.0",
  "Coordinate-wise median or trimmed mean of the client deltas over the clients covering each element.",
  config_keys, sizeof config_keys / sizeof config_keys[0], 0};

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
