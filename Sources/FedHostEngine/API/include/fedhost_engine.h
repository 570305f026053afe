/*
 * fedhost_engine.h — FedHost's federation engine as a C library (libFedHostEngine.so), for a
 * process that is not `host`: a Flower ClientApp/ServerApp (through ctypes), a C program, an
 * embedded runner. It exposes what a client does (train for a round with a client-hook plugin,
 * evaluate, Phase 1 visits, personalize, export) and what a server needs to stay FedHost's
 * protocol (starting model, sampled participants, baselines, the report). See docs/engine-abi.md.
 *
 * Rules:
 *  1. Only C types cross. Every buffer is the caller's; the library never keeps a pointer
 *     past the call and never frees the caller's memory.
 *  2. Every function but fhe_abi_version/fhe_close returns an fhe_status; on failure it
 *     writes one line into `error` (when non-NULL) naming the file, key, client or size at
 *     fault. Nothing unwinds out of the library and nothing traps on bad input.
 *  3. Versioned: FHE_VERSION_MAJOR changes break callers; minor versions only append.
 *     fhe_info has struct_size first and only grows at its end.
 *  4. Calls on one engine must not overlap (one thread at a time, or a lock); distinct
 *     engines are independent. Results are deterministic from the seed, independent of the
 *     thread count, and identical to `host`'s for the same client, round and weights.
 */
#ifndef FEDHOST_ENGINE_H
#define FEDHOST_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FHE_VERSION_MAJOR 1
#define FHE_VERSION_MINOR 1

typedef enum fhe_status {
  FHE_OK = 0,
  FHE_E_INPUT = 1,   /* a bad argument, file, key, client index or buffer size */
  FHE_E_FAILED = 2,  /* training, a plugin or data loading failed */
} fhe_status;

typedef enum fhe_protocol { FHE_PROTOCOL_FED_META_ALIGN = 0, FHE_PROTOCOL_FL = 1 } fhe_protocol;
typedef enum fhe_baseline_kind { FHE_BASELINE_LOCAL_ONLY = 0, FHE_BASELINE_CENTRALIZED = 1 } fhe_baseline_kind;

/* One line of error text, written by the library on failure. */
typedef struct fhe_error { char message[512]; } fhe_error;

typedef struct fhe_info {
  uint32_t struct_size;        /* set by the caller to sizeof(fhe_info) */
  uint32_t protocol;           /* fhe_protocol */
  uint32_t client_count;
  uint32_t rounds;             /* Phase 2 / FL rounds of the settings */
  uint64_t parameter_count;    /* of the global model */
  uint32_t personalizes;       /* 1: the protocol fine-tunes on each device at the end */
  uint32_t has_client_hook;    /* 1 after fhe_set_client_hook with a plugin */
} fhe_info;

/* A named scalar of a client's update (train_loss, query_loss, query_accuracy, plugin metrics). */
typedef struct fhe_metric { char key[64]; double value; } fhe_metric;

/* A model's score on a device's test split; threshold is NaN for multi-class tasks. */
typedef struct fhe_score { double accuracy; double f1; double threshold; } fhe_score;

typedef struct fhe_engine fhe_engine;

/* (FHE_VERSION_MAJOR << 16) | FHE_VERSION_MINOR of the library. */
uint32_t fhe_abi_version(void);

/*
 * Opens a federation: spec_path (NULL: the embedded two-device federation) with its data in
 * data_dir, and `settings`: newline-separated KEY=VALUE lines with the keys of host's option
 * table (rounds=3, learning_rate=0.001, …) plus protocol=fl|fed-meta-align, preset=tuned|paper,
 * threads=N, plugin_path=DIRS and plugin_config.KEY=JSON. Splits are made for `seed`.
 */
fhe_status fhe_open(const char *spec_path, const char *data_dir, const char *settings, uint64_t seed,
                    fhe_engine **out, fhe_error *error);
void fhe_close(fhe_engine *engine);

fhe_status fhe_get_info(const fhe_engine *engine, fhe_info *out, fhe_error *error);
/* The device's name (NUL-terminated) and the size of the (sub-)model it trains. */
fhe_status fhe_client_name(const fhe_engine *engine, uint32_t client, char *out, size_t size, fhe_error *error);
fhe_status fhe_client_parameter_count(const fhe_engine *engine, uint32_t client, uint64_t *out, fhe_error *error);

/* The config JSON host gives `plugin` under these settings and seed (seed, serial_rounds, …). */
fhe_status fhe_plugin_config(const fhe_engine *engine, const char *plugin, char *out, size_t size, size_t *needed,
                             fhe_error *error);
/* Loads the client-hook plugin that fhe_train runs (NULL: none). Refused unless it is one. */
fhe_status fhe_set_client_hook(fhe_engine *engine, const char *plugin, fhe_error *error);

/* Phase 0: the seeded initial global model, pretrained on the public set when the settings ask. */
fhe_status fhe_starting_model(const fhe_engine *engine, float *out, size_t count, fhe_error *error);
/* The clients that train in `round` (0-based), sorted; *count receives how many. */
fhe_status fhe_participants(const fhe_engine *engine, uint32_t round, uint32_t *out, size_t capacity, size_t *count,
                            fhe_error *error);

/*
 * A client's update for `round` from `global` (parameter_count floats): delta over the whole
 * global vector, the coverage mask (1 per element it trains; may be NULL), the sample count
 * and its metrics — exactly what host hands the aggregator.
 */
fhe_status fhe_train(fhe_engine *engine, uint32_t client, uint32_t round, const float *global, size_t count,
                     float *delta, uint8_t *coverage, uint64_t *samples, fhe_metric *metrics, size_t metric_capacity,
                     size_t *metric_count, fhe_error *error);
/*
 * Version 1.1: fhe_train for a client hook with auxiliary vectors (plugin ABI 1.2, e.g.
 * SCAFFOLD): aux_down (aux_down_count floats, what the aggregator's prepare_client wrote for
 * this client and round) goes in, aux_up (aux_up_count floats) comes back. The counts must be
 * the hook's n_aux_down and n_aux_up times `count` (0 and NULL for a hook without any).
 */
fhe_status fhe_train_aux(fhe_engine *engine, uint32_t client, uint32_t round, const float *global, size_t count,
                         const float *aux_down, size_t aux_down_count, float *aux_up, size_t aux_up_count,
                         float *delta, uint8_t *coverage, uint64_t *samples, fhe_metric *metrics,
                         size_t metric_capacity, size_t *metric_count, fhe_error *error);
/* The global model (the client's slice) on its test split: mean loss and accuracy at 0.5. */
fhe_status fhe_evaluate(const fhe_engine *engine, uint32_t client, const float *global, size_t count, double *loss,
                        double *accuracy, fhe_error *error);

/* Fed-Meta-Align Phase 1, one visit: weights trained in place on the client's Phase 1 support
 * split for `epochs` (≥ 1), seeded by the visit's number (1, 2, … in tour order). */
fhe_status fhe_serial_train(const fhe_engine *engine, uint32_t client, float *weights, size_t count, uint32_t epochs,
                            uint64_t visit, double *loss, fhe_error *error);
fhe_status fhe_serial_evaluate(const fhe_engine *engine, uint32_t client, const float *weights, size_t count,
                               double *loss, double *accuracy, fhe_error *error);

/* Phase 3 / personalization: the client's slice of `global` fine-tuned on its device and
 * scored; `model` receives the client's model (fhe_client_parameter_count floats; may be NULL). */
fhe_status fhe_personalize(const fhe_engine *engine, uint32_t client, const float *global, size_t count, float *model,
                           size_t model_count, fhe_score *score, fhe_error *error);
/* The global model scored on the client (threshold by the settings' rule). */
fhe_status fhe_score_global(const fhe_engine *engine, uint32_t client, const float *global, size_t count,
                            fhe_score *score, fhe_error *error);
/* A protocol baseline's score on every client (client_count entries); FHE_E_INPUT if the
 * protocol has no such baseline. */
fhe_status fhe_baseline(const fhe_engine *engine, uint32_t baseline /* fhe_baseline_kind */, fhe_score *scores, size_t count,
                        fhe_error *error);

/* Writes a model of the client's architecture as a .fhmodel file (what `host export` reads). */
fhe_status fhe_save_model(const fhe_engine *engine, uint32_t client, const float *model, size_t count,
                          const char *path, fhe_error *error);

/*
 * FedHost's report (host --json when markdown is 0, the Markdown table otherwise) from
 * results_json: {"strategies": [aggregator…], "baselines": [BaselineResult…],
 * "results": [StrategyRunResult…]} in the
 * Codable shapes of FedHostCore (see docs/engine-abi.md). Writes NUL-terminated text when it
 * fits in `size`; *needed always receives the size with the NUL.
 */
fhe_status fhe_report(const fhe_engine *engine, const char *title, const char *results_json, int markdown, char *out,
                      size_t size, size_t *needed, fhe_error *error);

#ifdef __cplusplus
}
#endif

#endif /* FEDHOST_ENGINE_H */
