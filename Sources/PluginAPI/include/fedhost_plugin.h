/*
 * fedhost_plugin.h — the FedHost strategy plugin ABI, version 1.2.
 *
 * History (MINOR versions only append):
 *   1.0  the first version.
 *   1.1  fhp_host.parallel_for: run a plugin's tasks on the host's worker threads.
 *   1.2  context for every call: vt->aggregate_round (round, federation size, sampled and
 *        failed clients, aggregated metrics into the report); fhp_client_context for
 *        train_local (fhp_client_ops.context) and vt->adjust_gradient_in_context (round,
 *        the host's learning rate, epochs, batch size, seed; global-shaped vectors in both);
 *        per-client auxiliary vectors down (vt->prepare_client) and up (fhp_client_context.
 *        aux_up → fhp_round_context.aux_up), declared in fhp_descriptor.n_aux_down/n_aux_up,
 *        so SCAFFOLD-like strategies work when aggregator and clients live apart;
 *        vt->select_clients (the round's clients from a loss oracle, e.g. Power-of-Choice);
 *        fhp_host.get_extension; out_weights defined for every strategy; fhp_update and
 *        fhp_config_key frozen (plain arrays, no stride rule); a thread tag on every callback.
 *
 * This header is the whole contract between the `host` program and a strategy plugin.
 * A plugin is a shared object (ELF .so) that exports exactly one symbol,
 * `fedhost_plugin_entry`, and is written in any language that can export a C function.
 * Nothing else is required: no link-time dependency on the host, no allocator, no runtime.
 *
 * ------------------------------------------------------------------------------------------
 * RULES THAT HOLD FOR EVERY FUNCTION (read these first)
 * ------------------------------------------------------------------------------------------
 * 1. Versioning.  The host calls `fedhost_plugin_entry(FHP_ABI_MAJOR, FHP_ABI_MINOR, ...)`
 *    before anything else.  A plugin built for another MAJOR must return FHP_E_VERSION (the
 *    host then refuses it and prints both versions).  MINOR versions only ever APPEND members
 *    to the END of structs and vtables; nothing is reordered, resized or removed.
 * 2. struct_size.  Every struct crossing the boundary starts with `uint32_t struct_size`, set
 *    by whoever fills the struct to `sizeof(struct)` as THEY were compiled.  A reader uses a
 *    member only if it lies entirely within struct_size (macro FHP_HAS_MEMBER below);
 *    members beyond it are treated as absent/zero/NULL.  This is how an old plugin runs in a
 *    new host and vice versa.
 * *    Structs that travel in ARRAYS are FROZEN instead (fhp_update, fhp_config_key,
 *    fhp_metric: their layout never changes, so updates[k] is always right).  New
 *    per-element information travels in parallel arrays of a context struct (e.g.
 *    fhp_round_context.aux_up[k]).  (Up to 1.1 the header told readers to step through such
 *    arrays by the first element's struct_size; that still works, since struct_size equals
 *    sizeof for a frozen struct.)
 * 3. Optional functions.  A NULL function pointer in the vtable means "not supported".
 * 4. Status codes.  Every fallible call returns fhp_status: FHP_OK (0) or a negative code.
 *    On failure the plugin stores a human-readable, one-line UTF-8 message that the host
 *    reads with `vt->last_error(instance)` (or `vt->last_error(NULL)` after a failed create).
 * 5. Memory.  Nothing is ever freed across the boundary.
 *    - Pointer ARGUMENTS are BORROWED FOR THE DURATION OF THE CALL unless stated otherwise:
 *      do not keep them after returning.
 *    - OUTPUT buffers are allocated by the host with the size stated per function; the plugin
 *      only writes into them.
 *    - Strings RETURNED by the plugin (descriptor strings, last_error) are plugin-owned with
 *      the lifetime stated at each function.
 * 6. No unwinding.  No C++ exception, Rust panic, Swift error/trap, longjmp or signal may
 *    leave a plugin function.  Catch everything in the plugin and return a status.
 * 7. No unloading.  The host never calls dlclose(): a plugin stays mapped until the process
 *    exits.  Releasing an instance is `destroy`.
 * 8. Threading (per function and per host callback, tags in brackets):
 *    [any-thread]     may be called from any thread, concurrently with anything.
 *    [serialized]     the host never runs two [serialized] calls on the same instance at
 *                     once; the OS thread may differ between calls.  Distinct instances may
 *                     be used concurrently, so keep no unguarded mutable globals.
 *    [concurrent]     may run concurrently with other [concurrent] calls on the SAME
 *                     instance (one per client being trained), never concurrently with a
 *                     [serialized] call on that instance.
 *    [call-thread]    (host callbacks) callable only during the plugin call that received
 *                     them, on that call's thread (never from a parallel_for task).
 * 9. Determinism.  All randomness in a plugin must come from its own generator seeded by the
 *    config key "seed" (never from time, addresses or process-global RNGs), and must be part
 *    of the saved state, so that a run is reproducible and resumable.
 * 10. Numbers.  Parameters are float32 in one flat array of n_params elements whose layout is
 *    the host's business; a plugin treats it as an opaque vector.  Non-finite outputs are an
 *    error: a plugin that would produce NaN/Inf must return FHP_E_NUMERIC instead.
 *
 * LIFECYCLE
 *   dlopen → dlsym("fedhost_plugin_entry") → entry(major, minor, &descriptor, &vtable)
 *   → create(host, config_json, &instance)
 *   → any number of aggregate / initialize / adjust_gradient / train_local / save / load
 *   → destroy(instance).   (Several instances of one plugin may exist at once.)
 *
 * A complete plugin in plain C is in Examples/robust-aggregator/; docs/writing-a-plugin.md
 * walks through it and through a Swift plugin.
 */
#ifndef FEDHOST_PLUGIN_H
#define FEDHOST_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Exports the entry symbol even from a library built with -fvisibility=hidden. */
#define FHP_EXPORT __attribute__((visibility("default")))

#define FHP_ABI_MAJOR 1u /* incompatible change: hosts refuse plugins of another major   */
#define FHP_ABI_MINOR 2u /* compatible change: members appended at the ends of structs   */

/* True when `member` of the struct pointed to by `ptr` lies within ptr->struct_size. */
#define FHP_HAS_MEMBER(ptr, type, member) \
  ((ptr)->struct_size >= offsetof(type, member) + sizeof(((type *)0)->member))

/* ---------------------------------------------------------------------------------------- */
/* Status codes                                                                              */
/* ---------------------------------------------------------------------------------------- */
typedef int32_t fhp_status;
enum {
  FHP_OK = 0,
  FHP_E_INVALID = -1,     /* bad argument or config (unknown key, wrong type, bad length) */
  FHP_E_UNSUPPORTED = -2, /* the call is not meaningful for this plugin/instance          */
  FHP_E_VERSION = -3,     /* ABI major mismatch (entry) or incompatible saved state       */
  FHP_E_NOMEM = -4,       /* allocation failed                                            */
  FHP_E_HOST = -5,        /* a host callback returned an error; pass its message on       */
  FHP_E_STATE = -6,       /* save/load: buffer too small, corrupt or foreign state        */
  FHP_E_NUMERIC = -7,     /* NaN/Inf in an input, or an output would not be finite        */
  FHP_E_INTERNAL = -99    /* anything else (a caught exception/panic)                     */
};

/* ---------------------------------------------------------------------------------------- */
/* Plugin kinds (bit set in fhp_descriptor.kinds)                                            */
/* ---------------------------------------------------------------------------------------- */
enum {
  /* Server side: combines client updates into the next global model (vt->aggregate). */
  FHP_KIND_AGGREGATOR = 1u << 0,
  /* Produces the starting global model by driving training itself through host callbacks
   * (vt->initialize), e.g. Fed-Meta-Align's serial meta-initialization. */
  FHP_KIND_INITIALIZER = 1u << 1,
  /* Client side: changes local training, either by editing the gradient of the local
   * objective (vt->adjust_gradient, e.g. FedProx's proximal term) and/or by running the
   * whole local procedure through host gradient oracles (vt->train_local, e.g. Meta-SGD). */
  FHP_KIND_CLIENT_HOOK = 1u << 2
};

/* Log levels for fhp_host.log. */
enum { FHP_LOG_DEBUG = 0, FHP_LOG_INFO = 1, FHP_LOG_WARN = 2, FHP_LOG_ERROR = 3 };

/* ---------------------------------------------------------------------------------------- */
/* Descriptor: what the plugin is.  Plugin-owned, static, valid while the library is loaded. */
/* ---------------------------------------------------------------------------------------- */

/* One accepted config key, for `host plugins describe` and for documentation.  Frozen (it
 * travels in an array): struct_size is always sizeof(fhp_config_key). */
typedef struct fhp_config_key {
  uint32_t struct_size;
  uint32_t reserved;           /* 0 */
  const char *key;             /* e.g. "mu"                                             */
  const char *type;            /* "number", "integer", "boolean" or "string"            */
  const char *default_json;    /* the default as a JSON literal, e.g. "0.01"            */
  const char *description;     /* one line                                              */
} fhp_config_key;

typedef struct fhp_descriptor {
  uint32_t struct_size;
  uint32_t abi_major;          /* the FHP_ABI_MAJOR the plugin was built against         */
  uint32_t abi_minor;          /* the FHP_ABI_MINOR the plugin was built against         */
  uint32_t kinds;              /* FHP_KIND_* bits                                        */
  const char *id;              /* reverse-DNS, stable: "org.fedhost.fedavg"              */
  const char *name;            /* human name: "FedAvg"                                   */
  const char *version;         /* the plugin's own version: "1.0.0"                      */
  const char *description;     /* one or two sentences                                   */
  const fhp_config_key *config_keys; /* array of n_config_keys; "seed" is always accepted */
  uint32_t n_config_keys;
  uint32_t reserved;           /* 0 */

  /* ---- ABI 1.2 (a host reads them only within struct_size; absent = 0) ---- */

  /* Auxiliary vectors, each n_params floats (the global model's length), that travel with
   * every client's round: n_aux_down from the aggregator to the client (vt->prepare_client
   * writes them, the client hook reads fhp_client_context.aux_down) and n_aux_up back (the
   * client hook writes fhp_client_context.aux_up, the aggregator reads
   * fhp_round_context.aux_up[k]).  E.g. SCAFFOLD: down = (c, c_i), up = Δc_i.  They are the
   * ONLY channel between a strategy's aggregator and its client hook: the host may run them
   * as different instances in different processes or machines (isolation, Flower), so
   * never share state between them through the instance or globals.  A plugin declaring
   * either must be both AGGREGATOR and CLIENT_HOOK; with n_aux_down > 0 it must implement
   * prepare_client. */
  uint32_t n_aux_down;
  uint32_t n_aux_up;
} fhp_descriptor;

/* ---------------------------------------------------------------------------------------- */
/* Data passed to the plugin                                                                 */
/* ---------------------------------------------------------------------------------------- */

/* A named scalar reported by a client, e.g. {"query_loss", 0.31}.  Frozen for good (no
 * struct_size): new information travels as new keys, never as new members. */
typedef struct fhp_metric {
  const char *key;             /* UTF-8, borrowed for the call                           */
  double value;
} fhp_metric;

/* Well-known metric keys the host reports with each update (others may be present too;
 * unknown keys must be ignored). */
#define FHP_METRIC_QUERY_LOSS "query_loss"         /* mean loss on the client's query split  */
#define FHP_METRIC_QUERY_ACCURACY "query_accuracy" /* accuracy on the query split, 0..1      */
#define FHP_METRIC_TRAIN_LOSS "train_loss"         /* mean training loss of the last epoch   */

/* One client's result for one round.  All pointers are borrowed for the call.  Frozen (it
 * travels in an array): struct_size is always sizeof(fhp_update); new per-update data
 * travels in fhp_round_context. */
typedef struct fhp_update {
  uint32_t struct_size;        /* = sizeof(fhp_update), always                           */
  uint32_t client_id;          /* stable across rounds: 0..n_clients-1                   */
  const float *delta;          /* n_params floats: w_client - w_global (0 where !coverage) */
  uint64_t n_params;           /* equals the n_params of the aggregate call              */
  uint64_t n_samples;          /* training samples behind this update (> 0)              */
  const uint8_t *coverage;     /* NULL: the client trained every element.  Otherwise
                                  n_params bytes, 1 = trained, 0 = not trained (a smaller
                                  sub-model): such elements must not influence the result,
                                  whatever their delta holds (even NaN) */
  const fhp_metric *metrics;   /* n_metrics entries, may be NULL when n_metrics == 0     */
  uint32_t n_metrics;
  uint32_t flags;              /* reserved, 0                                            */
} fhp_update;

/* ---------------------------------------------------------------------------------------- */
/* What the host offers                                                                      */
/* ---------------------------------------------------------------------------------------- */

/* Given to create(); host-owned, valid until destroy() of that instance returns. */
typedef struct fhp_host {
  uint32_t struct_size;
  uint32_t reserved;           /* 0 */
  void *ctx;                   /* opaque; pass back to callbacks                          */
  const char *host_name;       /* "fedhost"                                               */
  const char *host_version;    /* e.g. "0.1.0"                                            */
  /* [any-thread] Emit a diagnostic line (UTF-8, no newline needed).  May be NULL.  `host`
   * prints FHP_LOG_INFO and above on stderr, one line each, prefixed with the plugin's name
   * ("[FedAvgM] warning: ..."); DEBUG lines are dropped. */
  void (*log)(void *ctx, int32_t level, const char *message);

  /* ---- ABI 1.1 (absent from a 1.0 host: test FHP_HAS_MEMBER(host, fhp_host, parallel_for)) ---- */

  /* Runs task(task_ctx, i) exactly once for every i in [0, n_tasks) on the host's worker
   * threads (the calling thread among them) and returns when every task has returned.
   * Tasks run concurrently and in no particular order, at most as many at once as the user
   * gave the host threads (`host --threads`); with one thread, or n_tasks < 2, they run in
   * index order on the calling thread.  Everything written before the call is visible to
   * every task, and everything the tasks wrote is visible after the call returns.
   *
   * Each task starts in the calling thread's floating-point environment (rounding mode,
   * flush-to-zero), so results do not depend on which thread ran it; a task must leave that
   * environment as it found it.  Other per-thread state is the worker's own: errno, and
   * thread-local storage such as a plugin's per-thread last_error buffer, are not the
   * caller's.  Worker stacks can be smaller than the caller's: keep large arrays off the stack.
   *
   * Determinism is the plugin's job and is easy: cut the work into tasks by the data alone
   * (e.g. fixed chunks of elements), never by the thread count; let task i write only its
   * own outputs and partial results; combine partial results in index order afterwards.
   * Then a run gives the same bits with any number of threads.
   *
   * What a task may call: only [any-thread] host functions (log) and parallel_for itself.
   * The callbacks in fhp_initializer_ops and fhp_client_ops stay callable only from the
   * thread of the plugin call that received them, never from a task.  A nested parallel_for
   * (from a task), or a call while another thread's parallel_for is running on this
   * instance, runs its tasks on the calling thread in index order (never a deadlock).
   * Tasks return nothing and must not unwind (rule 6): record a failure in task_ctx and act
   * on it after parallel_for returns.
   *
   * Callable from inside any plugin call on the instance whose host this is, on the thread
   * of that call.  Returns FHP_OK, or FHP_E_INVALID (task is NULL) without running anything.
   * A 1.0 host has no such member: run the tasks yourself then (never read the member
   * without FHP_HAS_MEMBER: a 1.0 host's struct ends before it). */
  fhp_status (*parallel_for)(void *ctx, uint64_t n_tasks,
                             void (*task)(void *task_ctx, uint64_t index), void *task_ctx);

  /* ---- ABI 1.2 (test FHP_HAS_MEMBER(host, fhp_host, get_extension)) ---- */

  /* [any-thread] A host service by string id, e.g. "org.fedhost.server-model/1": a
   * host-owned table valid until destroy() of this instance, or NULL when this host does not
   * offer it (always check).  New host services arrive as extensions, so a plugin asks for
   * what it needs instead of probing members; an incompatible revision gets a new "/N".
   * Each extension's table is frozen once published and starts with uint32_t struct_size. */
  const void *(*get_extension)(void *ctx, const char *extension_id);
} fhp_host;

/* Given to initialize(); host-owned, valid only during that call, callable only from the
 * thread that called initialize.  "support" and "query" are the client's two splits of the
 * data reserved for initialization (e.g. Fed-Meta-Align's Phase 1 data). */
typedef struct fhp_initializer_ops {
  uint32_t struct_size;
  uint32_t n_clients;          /* client ids are 0..n_clients-1                          */
  void *ctx;
  /* [call-thread] Train `weights_inout` (n_params floats) on client `client_id`'s support split for
   * `epochs` passes with the host's local optimizer (a fresh optimizer state per call).
   * On return weights_inout holds the trained weights; *out_loss the mean training loss of
   * the last epoch. */
  fhp_status (*train_client)(void *ctx, uint32_t client_id, float *weights_inout,
                             uint64_t n_params, uint32_t epochs, double *out_loss);
  /* [call-thread] Evaluate `weights` on client `client_id`'s query split. */
  fhp_status (*evaluate_client)(void *ctx, uint32_t client_id, const float *weights,
                                uint64_t n_params, double *out_loss, double *out_accuracy);
  /* [call-thread] Message for the last failed callback; valid until the next callback. */
  const char *(*last_error)(void *ctx);
} fhp_initializer_ops;

/* Splits a client-side procedure can ask gradients for. */
enum { FHP_SPLIT_SUPPORT = 0, FHP_SPLIT_QUERY = 1 };

/* ABI 1.2: what the host knows about one client's round, for its client hook.  Host-owned,
 * valid during the call that received it (train_local through fhp_client_ops.context, or
 * adjust_gradient_in_context).  Every vector is the GLOBAL model's shape (n_params floats;
 * a sub-model client's elements outside `coverage` hold 0 and are ignored by the host). */
typedef struct fhp_client_context {
  uint32_t struct_size;
  uint32_t client_id;
  uint32_t round;              /* 0-based                                                */
  uint32_t local_epochs;       /* the host's local epochs for this client this round     */
  uint32_t batch_size;         /* the host's minibatch size                              */
  uint32_t reserved;           /* 0 */
  double learning_rate;        /* the host's local learning rate                         */
  uint64_t seed;               /* the host's seed for this client's round (shuffling)    */
  uint64_t n_samples;          /* rows the client trains on (its support split)          */
  uint64_t n_params;           /* the global model's length                              */
  const uint8_t *coverage;     /* NULL: the whole model; else n_params bytes, 1 = trained */
  /* n_aux_down × n_params floats from the aggregator's prepare_client for this client and
   * round, vector after vector; NULL when the strategy declares none. */
  const float *aux_down;
  uint64_t aux_down_len;       /* floats behind aux_down                                 */
  /* n_aux_up × n_params floats, host-owned and zeroed before the client's round; write the
   * vectors to send up (by the end of train_local, or in the last adjust_gradient_in_context
   * call); NULL when the strategy declares none.  Must be finite. */
  float *aux_up;
  uint64_t aux_up_len;
} fhp_client_context;

/* Given to train_local(); host-owned, valid only during that call, callable only from the
 * thread that called train_local.  A gradient oracle over one client's local data. */
typedef struct fhp_client_ops {
  uint32_t struct_size;
  uint32_t client_id;
  void *ctx;
  uint64_t n_support;          /* rows in the support split (the local training data)    */
  uint64_t n_query;            /* rows in the query split (may be 0)                     */
  /* [call-thread] Mean loss and its gradient (n_params floats into grad_out, host-owned) at `weights`
   * over rows `rows[0..n_rows-1]` of `split` (indices < n_support / n_query).  rows NULL
   * means the whole split.  Frozen parameters get a zero gradient. */
  fhp_status (*gradient)(void *ctx, uint32_t split, const uint64_t *rows, uint64_t n_rows,
                         const float *weights, float *grad_out, double *out_loss);
  /* [call-thread] Attach a named scalar to this client's update (e.g. a variance estimate).  The key is
   * copied.  Reported metrics reach aggregate() in fhp_update.metrics. */
  fhp_status (*report_metric)(void *ctx, const char *key, double value);
  /* [call-thread] Message for the last failed callback; valid until the next callback. */
  const char *(*last_error)(void *ctx);
  /* NULL: the client trains the whole model.  Otherwise n_params bytes, 1 = the client's
   * (smaller) sub-model trains this element: gradients are 0 elsewhere, and changes the plugin
   * makes to elements marked 0 are ignored by the host. */
  const uint8_t *coverage;

  /* ---- ABI 1.2 (test FHP_HAS_MEMBER(ops, fhp_client_ops, context)) ---- */
  const fhp_client_context *context; /* this client's round; never NULL in a 1.2 host       */
} fhp_client_ops;

/* ABI 1.2: the round an aggregator works on.  Host-owned, valid during the call that
 * received it (aggregate_round, prepare_client). */
typedef struct fhp_round_context {
  uint32_t struct_size;
  uint32_t round;              /* 0-based, as aggregate's `round`                        */
  uint32_t n_rounds;           /* rounds the run plans (0: not known)                    */
  uint32_t n_clients;          /* the federation's size: client ids are 0..n_clients-1   */
  const uint32_t *sampled;     /* n_sampled ids asked to train this round, ascending     */
  uint32_t n_sampled;
  uint32_t n_failed;
  const uint32_t *failed;      /* n_failed ids of `sampled` that sent no update, ascending
                                  (a dropped Flower node; `host` stops a run on a failed
                                  client instead, so there it is always empty)           */
  /* aggregate_round only (NULL in prepare_client): aux_up[k] is update k's n_aux_up ×
   * n_params floats (fhp_client_context.aux_up as its client wrote them); NULL when the
   * strategy declares n_aux_up == 0.  Parallel to the updates array. */
  const float *const *aux_up;
  uint64_t aux_up_len;         /* floats behind each aux_up[k]                           */
  void *ctx;
  /* [call-thread] Report an aggregated scalar for this round (Flower's
   * fit_metrics_aggregation_fn), e.g. {"train_loss", sample-weighted mean}: it appears in
   * the run's report beside the round.  The key is copied; the value must be finite.
   * aggregate_round only (prepare_client gets FHP_E_UNSUPPORTED). */
  fhp_status (*report_metric)(void *ctx, const char *key, double value);
  /* [call-thread] Message for the last failed callback; valid until the next callback. */
  const char *(*last_error)(void *ctx);

  /* select_clients only (NULL in the other calls): n_clients entries, the rows each client
   * trains on, and the loss oracle: *out_loss = the mean training loss of the round's global
   * model (the client's slice of it) on client_id's training rows.  [call-thread] */
  const uint64_t *sample_counts;
  fhp_status (*client_loss)(void *ctx, uint32_t client_id, double *out_loss);
} fhp_round_context;

/* ---------------------------------------------------------------------------------------- */
/* The plugin's function table.  Append-only; NULL member = not supported.                   */
/* ---------------------------------------------------------------------------------------- */
typedef struct fhp_instance fhp_instance; /* opaque, plugin-owned */

typedef struct fhp_vtable {
  uint32_t struct_size;
  uint32_t reserved;           /* 0 */

  /* [any-thread] Make an instance.  `config_json` is a UTF-8 JSON object (borrowed: copy
   * what you need), e.g. {"seed":42,"mu":0.01}; "{}" selects every default.  The plugin
   * must reject unknown keys and wrongly typed values with FHP_E_INVALID and a message
   * naming the key.  "seed" (a non-negative integer) is always accepted.  `host` stays
   * valid until destroy.  On failure *out is left NULL and last_error(NULL) called on the
   * same thread returns the message.  Required. */
  fhp_status (*create)(const fhp_host *host, const char *config_json, fhp_instance **out);

  /* [serialized] Release an instance.  NULL is a no-op.  Required. */
  void (*destroy)(fhp_instance *instance);

  /* [any-thread] The message of the last failed call on `instance` made ON THE CALLING
   * THREAD (for NULL: of the last failed create() on the calling thread).  The host reads
   * it on the thread of the failed call, right after that call returns; because
   * [concurrent] calls may fail on several threads at once, keep messages per thread
   * (thread-local storage, or a map keyed by thread id under a lock).  Plugin-owned; valid
   * until the next call on that instance from that thread.  Returns "" (never NULL) when
   * there is no error.  Required. */
  const char *(*last_error)(const fhp_instance *instance);

  /* [serialized] Optional capabilities by string id, e.g. "org.example.robust-stats/1".
   * Returns a plugin-owned pointer valid until destroy, or NULL if unknown.  A new
   * incompatible revision of an extension gets a new "/N" suffix.  May be NULL. */
  const void *(*get_extension)(fhp_instance *instance, const char *extension_id);

  /* [serialized] AGGREGATOR: compute the next global model.
   * round      0-based round number (for schedules and diagnostics).
   * global     n_params floats: the current global model (borrowed).
   * updates    n_updates client results; every update has n_params == n_params.
   * out_global n_params floats, host-owned, never aliasing `global` or any delta.  Every
   *            element must be written; elements no update covers keep global's value.
   * out_weights  NULL, or n_updates doubles, host-owned: each update's share of the result,
   *            for reports.  Write them when non-NULL: every share >= 0, summing to 1,
   *            or all 0 when the result takes nothing from any update (Bulyan with too
   *            few updates keeps the global model); a 1.2 host checks this for 1.2
   *            plugins.  What "share" means per family:
   *            - linear rules, out = global + s·Σ_k c_k·δ_k (FedAvg, FedProx, QFedAvg, the
   *              pseudo-gradient of FedAdam/FedAvgM/...): c_k / Σ_j c_j, whatever the
   *              server step s or optimizer state does afterwards;
   *            - rules that select updates (Krum, Multi-Krum, Bulyan's selection): each
   *              selected update's weight in the average of the selected, 0 for the rest;
   *            - coordinate-wise order statistics (median, trimmed mean): the fraction of
   *              the result's elements to which the update's value contributed, weighted
   *              by its share in each element, normalized over updates.
   *            Elements no update covers keep global's value and count for no update.
   * Errors: n_updates == 0, n_params mismatch, n_samples == 0, a non-finite delta
   * (FHP_E_NUMERIC, message names the client_id).  On error out_global is unspecified. */
  fhp_status (*aggregate)(fhp_instance *instance, uint32_t round, const float *global,
                          uint64_t n_params, const fhp_update *updates, uint32_t n_updates,
                          float *out_global, double *out_weights);

  /* [serialized] INITIALIZER: turn `weights_inout` (n_params floats, host-owned, holding
   * the starting model, e.g. pretrained) into the initial global model by calling `ops`.
   * Host callbacks may only be called from inside this call. */
  fhp_status (*initialize)(fhp_instance *instance, const fhp_initializer_ops *ops,
                           float *weights_inout, uint64_t n_params);

  /* [concurrent] CLIENT_HOOK: edit the gradient of the local objective in place.
   * Called by the host's local optimizer after every backward pass on client `client_id`,
   * before the optimizer step.  w_local: the weights being trained; w_global: the global
   * model the client started this round from; grad_inout: dLoss/dw, n_params floats
   * (host-owned; the host ignores entries of frozen parameters).  All borrowed for the
   * call.  All three have the length of the model the CLIENT trains: for a sub-model
   * client that is its smaller sub-model, not the global model (adjust_gradient_in_context,
   * ABI 1.2, gives global-shaped vectors instead).
   * Must be a pure function of its arguments and the config (it runs on many threads). */
  fhp_status (*adjust_gradient)(fhp_instance *instance, uint32_t client_id,
                                const float *w_local, const float *w_global,
                                float *grad_inout, uint64_t n_params);

  /* [concurrent] CLIENT_HOOK: run the whole local procedure of one client in place of the
   * host's local optimizer.  weights_inout (n_params floats, host-owned) holds the global
   * model on entry and the client's trained model on return; the host computes the delta.
   * n_params is always the GLOBAL model's length, also for a client that trains a smaller
   * sub-model (see ops->coverage), so per-parameter plugin state has one shape.
   * Use ops->gradient for losses and gradients.  NULL: the host trains as usual. */
  fhp_status (*train_local)(fhp_instance *instance, const fhp_client_ops *ops,
                            float *weights_inout, uint64_t n_params);

  /* [serialized] Serialize all state that influences future results (EMAs, RNG state,
   * round counters) for checkpoint/resume.  With buf == NULL, write the required length to
   * *out_len and return FHP_OK.  Otherwise write at most `capacity` bytes and the length
   * used to *out_len; if capacity is too small, write the required length to *out_len and
   * return FHP_E_STATE.  The format is the plugin's
   * own; include a version tag.  May be NULL for stateless plugins. */
  fhp_status (*save_state)(fhp_instance *instance, uint8_t *buf, uint64_t capacity,
                           uint64_t *out_len);

  /* [serialized] Restore state produced by save_state of the same plugin id (borrowed
   * bytes).  After load_state the instance must behave exactly as the saved one would.
   * FHP_E_STATE for corrupt or foreign data.  May be NULL only if save_state is NULL. */
  fhp_status (*load_state)(fhp_instance *instance, const uint8_t *buf, uint64_t len);

  /* ---- ABI 1.2 (a 1.1 host never reads these: keep aggregate and adjust_gradient too if
   *      the plugin should load in older hosts) ---- */

  /* [serialized] AGGREGATOR: aggregate with the round's context.  A 1.2 host calls this
   * instead of aggregate when it is non-NULL; arguments, outputs and errors are aggregate's.
   * Aggregated metrics go out through context->report_metric. */
  fhp_status (*aggregate_round)(fhp_instance *instance, const fhp_round_context *context,
                                const float *global, uint64_t n_params,
                                const fhp_update *updates, uint32_t n_updates,
                                float *out_global, double *out_weights);

  /* [serialized] AGGREGATOR with n_aux_down > 0 (required then): write the aux_down vectors
   * (n_aux_down × n_params floats, host-owned, zeroed) that client `client_id` receives this
   * round.  Called once per sampled client, in ascending id, before the round's training;
   * `global` is the model the clients start from.  Must be finite.  State the plugin changes
   * here must be saved by save_state like any other. */
  fhp_status (*prepare_client)(fhp_instance *instance, const fhp_round_context *context,
                               uint32_t client_id, const float *global, uint64_t n_params,
                               float *aux_down, uint64_t aux_down_len);

  /* [concurrent] CLIENT_HOOK: adjust_gradient with the client's context.  A 1.2 host calls
   * this instead of adjust_gradient when it is non-NULL.  Unlike adjust_gradient (whose
   * vectors have the length of the client's own, possibly smaller, sub-model), every vector
   * here is GLOBAL-shaped, like train_local's: n_params == client->n_params, and elements
   * outside client->coverage hold 0 and are ignored.  Pure in the sense of adjust_gradient,
   * except that it may write client->aux_up. */
  fhp_status (*adjust_gradient_in_context)(fhp_instance *instance, const fhp_client_context *client,
                                           const float *w_local, const float *w_global,
                                           float *grad_inout, uint64_t n_params);

  /* [serialized] AGGREGATOR, optional: choose the clients that train this round (e.g.
   * Power-of-Choice), in runs that sample n_select < n_clients of them.  Called before
   * prepare_client; context->sampled holds the host's own seeded sample of n_select ids (keep
   * it, or choose others), context->sample_counts and context->client_loss describe every
   * client.  Write n_select distinct ids below n_clients into out_ids (any order: the host
   * sorts them).  Must be deterministic given the config, the saved state and the inputs. */
  fhp_status (*select_clients)(fhp_instance *instance, const fhp_round_context *context,
                               const float *global, uint64_t n_params, uint32_t *out_ids, uint32_t n_select);
} fhp_vtable;

/* ---------------------------------------------------------------------------------------- */
/* The entry point: the only exported symbol                                                 */
/* ---------------------------------------------------------------------------------------- */

#define FHP_ENTRY_SYMBOL "fedhost_plugin_entry"

/* [any-thread] Negotiate the ABI and hand out the descriptor and vtable (both plugin-owned,
 * static, valid while the library is loaded).  Must not allocate per call, call the host,
 * or have side effects: the host may call it several times (scanning, describing).
 * Return FHP_E_VERSION if host_abi_major differs from the plugin's FHP_ABI_MAJOR (still
 * filling *out_descriptor if possible, so the host can print the plugin's version). */
FHP_EXPORT fhp_status fedhost_plugin_entry(uint32_t host_abi_major, uint32_t host_abi_minor,
                                           const fhp_descriptor **out_descriptor,
                                           const fhp_vtable **out_vtable);

typedef fhp_status (*fhp_entry_fn)(uint32_t host_abi_major, uint32_t host_abi_minor,
                                   const fhp_descriptor **out_descriptor,
                                   const fhp_vtable **out_vtable);

#ifdef __cplusplus
}
#endif
#endif /* FEDHOST_PLUGIN_H */
