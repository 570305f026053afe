/* An ABI 1.2 strategy that reports back what the host told it, so a test can check the 1.2
 * plumbing end to end (in process and isolated): aggregate_round's context and report_metric,
 * prepare_client's aux_down vectors reaching the client, adjust_gradient_in_context's
 * global-shaped vectors and client context, aux_up reaching the aggregator, and host->log.
 *
 *   prepare_client        aux_down = client_id + 1000·round, every element
 *   adjust_gradient_in_context  leaves the gradient alone; writes aux_up =
 *                         [aux_down[0], learning_rate, epochs, batch_size, round, n_params, 1 if
 *                          n_params equals client->n_params and every vector is that long, ...0]
 *   aggregate_round       unweighted coverage-aware mean of the deltas; fails unless every
 *                         update echoes its aux_down; reports the echoed values as metrics
 *                         client_lr, client_epochs, client_batch, client_round, client_n_params,
 *                         plus n_sampled and n_clients; logs one INFO line per round.
 *   -DAGGREGATOR_ONLY     declare the aux vectors without the client-hook kind (refused at load)
 * and, for the host's checks of what a plugin hands back:
 *   -DBAD_SHARES          out_weights of 1 each (not shares)
 *   -DNAN_AUX_DOWN        prepare_client writes a NaN
 *   -DNAN_AUX_UP          the client hook writes a NaN into aux_up
 *   -DSELECT_TWICE        select_clients chooses the host's first sampled client for every slot
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fedhost_plugin.h"

struct fhp_instance { const fhp_host *host; };
static _Thread_local char last_message[256];

static fhp_status fail(fhp_status status, const char *message) {
  snprintf(last_message, sizeof last_message, "%s", message);
  return status;
}

static fhp_status create(const fhp_host *host, const char *config, fhp_instance **out) {
  *out = NULL;
  const char *p = config;
  while (*p == ' ' || *p == '{') p++;
  if (*p != '}' && strncmp(p, "\"seed\"", 6) != 0) return fail(FHP_E_INVALID, "unknown config key");
  *out = calloc(1, sizeof **out);
  if (!*out) return fail(FHP_E_NOMEM, "out of memory");
  (*out)->host = host;
  return FHP_OK;
}

static void destroy(fhp_instance *instance) { free(instance); }
static const char *last_error(const fhp_instance *instance) { (void)instance; return last_message; }

static fhp_status prepare_client(fhp_instance *instance, const fhp_round_context *round, uint32_t client_id,
                                 const float *global, uint64_t n, float *aux_down, uint64_t aux_len) {
  (void)instance; (void)global;
  if (aux_len != n) return fail(FHP_E_INVALID, "aux_down is not one vector of n_params");
  if (client_id >= round->n_clients) return fail(FHP_E_INVALID, "client id beyond the federation");
  for (uint64_t i = 0; i < aux_len; i++) aux_down[i] = (float)(client_id + 1000u * round->round);
#ifdef NAN_AUX_DOWN
  aux_down[0] = NAN;
#endif
  return FHP_OK;
}

static fhp_status adjust_in_context(fhp_instance *instance, const fhp_client_context *client, const float *w_local,
                                    const float *w_global, float *grad, uint64_t n) {
  (void)instance; (void)w_local; (void)w_global; (void)grad;
  if (client->aux_up_len < 7 || client->aux_down_len < 1) return fail(FHP_E_INVALID, "missing aux vectors");
  client->aux_up[0] = client->aux_down[0];
  client->aux_up[1] = (float)client->learning_rate;
  client->aux_up[2] = (float)client->local_epochs;
  client->aux_up[3] = (float)client->batch_size;
  client->aux_up[4] = (float)client->round;
  client->aux_up[5] = (float)n;
  client->aux_up[6] = n == client->n_params && client->aux_up_len == n && client->aux_down_len == n ? 1.0f : 0.0f;
#ifdef NAN_AUX_UP
  client->aux_up[7] = NAN;
#endif
  return FHP_OK;
}

static fhp_status aggregate_round(fhp_instance *instance, const fhp_round_context *round, const float *global,
                                  uint64_t n, const fhp_update *updates, uint32_t count, float *out, double *weights) {
  if (count == 0) return fail(FHP_E_INVALID, "no updates");
  if (!round->aux_up || round->aux_up_len != n) return fail(FHP_E_INVALID, "no aux_up vectors");
  double echoed[7] = {0};
  for (uint32_t k = 0; k < count; k++) {
    const float *up = round->aux_up[k];
    if (!up) return fail(FHP_E_INVALID, "an update without aux_up");
    if (up[0] != (float)(updates[k].client_id + 1000u * round->round)) {
      snprintf(last_message, sizeof last_message, "client %u echoed %g, not its aux_down", updates[k].client_id, up[0]);
      return FHP_E_INVALID;
    }
    for (int j = 1; j < 7; j++) echoed[j] += up[j] / count;
#ifdef BAD_SHARES
    if (weights) weights[k] = 1.0;
#else
    if (weights) weights[k] = 1.0 / count;
#endif
  }
  for (uint64_t i = 0; i < n; i++) {
    double sum = 0;
    uint32_t covering = 0;
    for (uint32_t k = 0; k < count; k++) {
      if (updates[k].coverage && !updates[k].coverage[i]) continue;
      sum += updates[k].delta[i];
      covering++;
    }
    out[i] = covering ? (float)(global[i] + sum / covering) : global[i];
  }
  static const char *const keys[7] = {NULL, "client_lr", "client_epochs", "client_batch", "client_round",
                                      "client_n_params", "client_global_shaped"};
  for (int j = 1; j < 7; j++)
    if (round->report_metric(round->ctx, keys[j], echoed[j]) != FHP_OK) return fail(FHP_E_HOST, round->last_error(round->ctx));
  round->report_metric(round->ctx, "n_sampled", round->n_sampled);
  round->report_metric(round->ctx, "n_clients", round->n_clients);
  if (round->report_metric(round->ctx, "bad", NAN) == FHP_OK) return fail(FHP_E_INTERNAL, "the host accepted a NaN metric");
  const fhp_host *host = instance->host;
  if (FHP_HAS_MEMBER(host, fhp_host, get_extension) && host->get_extension(host->ctx, "org.example.none/1") != NULL)
    return fail(FHP_E_INTERNAL, "the host offered an unknown extension");
  if (host->log) {
    char line[128];
    snprintf(line, sizeof line, "round %u of %u: %u sampled of %u clients", round->round, round->n_rounds,
             round->n_sampled, round->n_clients);
    host->log(host->ctx, FHP_LOG_INFO, line);
    host->log(host->ctx, FHP_LOG_DEBUG, "a debug line the host drops");
  }
  return FHP_OK;
}

#ifdef AGGREGATOR_ONLY /* declares aux vectors without being a client hook: the host must refuse it */
#define PROBE_KINDS FHP_KIND_AGGREGATOR
#else
#define PROBE_KINDS (FHP_KIND_AGGREGATOR | FHP_KIND_CLIENT_HOOK)
#endif

#ifdef SELECT_TWICE
static fhp_status select_clients(fhp_instance *instance, const fhp_round_context *round, const float *global,
                                 uint64_t n, uint32_t *out_ids, uint32_t n_select) {
  (void)instance; (void)global; (void)n;
  for (uint32_t k = 0; k < n_select; k++) out_ids[k] = round->sampled[0];
  return FHP_OK;
}
#define PROBE_SELECT select_clients
#else
#define PROBE_SELECT NULL
#endif

static const fhp_descriptor descriptor = {
  sizeof(fhp_descriptor), FHP_ABI_MAJOR, FHP_ABI_MINOR, PROBE_KINDS,
  "org.fedhost.test.context-probe", "Context probe", "0.0.1", "Reports the ABI 1.2 contexts back (test fixture).",
  NULL, 0, 0, 1, 1};

static const fhp_vtable vtable = {
  .struct_size = sizeof(fhp_vtable), .create = create, .destroy = destroy, .last_error = last_error,
  .aggregate_round = aggregate_round, .prepare_client = prepare_client,
  .adjust_gradient_in_context = adjust_in_context, .select_clients = PROBE_SELECT};

FHP_EXPORT fhp_status fedhost_plugin_entry(uint32_t major, uint32_t minor, const fhp_descriptor **d,
                                           const fhp_vtable **v) {
  (void)minor;
  *d = &descriptor;
  *v = &vtable;
  return major == FHP_ABI_MAJOR ? FHP_OK : FHP_E_VERSION;
}
