/*
 * fedhost_plugin_helpers.h — optional helpers for FedHost plugins written in C (C99 or later).
 *
 * Everything here is `static inline` and uses only libc: include it after fedhost_plugin.h
 * and a C strategy is its math plus a descriptor.  It carries what every C plugin otherwise
 * writes by hand, following the header's rules:
 *
 *   errors   fhph_fail / fhph_clear_error / fhph_last_error: one message per thread, tagged
 *            with the instance it belongs to (rule 4 and vt->last_error's contract).
 *   config   fhph_parse_config: the strict flat-JSON parser, against the descriptor's own
 *            fhp_config_key table (names, types, defaults); unknown keys, duplicates, wrong
 *            types and a negative "seed" are FHP_E_INVALID with a message naming the key.
 *   updates  fhph_check_aggregate / fhph_update_at / FHPH_UPDATE_HAS: the aggregate
 *            arguments checked as the header lists them, and the update array read with the
 *            stride of the host's struct_size, never with this file's sizeof (rule 2).
 *   threads  fhph_parallel_for: the host's worker threads when it has them (ABI 1.1,
 *            FHP_HAS_MEMBER checked), the calling thread otherwise.
 *   state    fhph_writer_* / fhph_reader_*: save_state's two-call protocol, a header (magic,
 *            plugin id, format version) and little-endian fields; truncated, trailing or
 *            foreign bytes are FHP_E_STATE, another format version FHP_E_VERSION.
 *
 * Names starting with fhph_ (and FHPH_) are this file's.  Examples/robust-aggregator uses it.
 */
#ifndef FEDHOST_PLUGIN_HELPERS_H
#define FEDHOST_PLUGIN_HELPERS_H

#include "fedhost_plugin.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define FHPH_THREAD_LOCAL _Thread_local
#else
#define FHPH_THREAD_LOCAL __thread /* GCC and Clang in C99 mode */
#endif

/* ---------------------------------------------------------------------------------------- */
/* Errors                                                                                    */
/* ---------------------------------------------------------------------------------------- */
struct fhph_error_slot {
  char text[512];
  const void *owner; /* the instance, or NULL for create */
  int set;
};

/* This thread's slot (a function-local static: one per thread and per plugin). */
static inline struct fhph_error_slot *fhph_error_slot_(void) {
  static FHPH_THREAD_LOCAL struct fhph_error_slot slot;
  return &slot;
}

/* Call at the start of every vtable function. */
static inline void fhph_clear_error(void) { fhph_error_slot_()->set = 0; }

/* Records a printf-style message for `owner` (NULL: create) on this thread; returns status. */
__attribute__((format(printf, 3, 4)))
static inline fhp_status fhph_fail(const void *owner, fhp_status status, const char *format, ...) {
  struct fhph_error_slot *slot = fhph_error_slot_();
  va_list args;
  va_start(args, format);
  vsnprintf(slot->text, sizeof slot->text, format, args);
  va_end(args);
  slot->owner = owner;
  slot->set = 1;
  return status;
}

/* vt->last_error: the message of this thread's last failure on `owner`, or "". */
static inline const char *fhph_last_error(const void *owner) {
  struct fhph_error_slot *slot = fhph_error_slot_();
  return slot->set && slot->owner == owner ? slot->text : "";
}

/* ---------------------------------------------------------------------------------------- */
/* Config                                                                                    */
/* ---------------------------------------------------------------------------------------- */
#define FHPH_STRING_CAPACITY 128

/* The value of one declared key: the config's, or the key's default_json. */
typedef struct fhph_value {
  int given;                         /* 1 if the config named the key, 0 for the default */
  double number;                     /* "number" and "integer" keys (integers exact to 2^53) */
  int boolean;                       /* "boolean" keys */
  char string[FHPH_STRING_CAPACITY]; /* "string" keys */
} fhph_value;

struct fhph_parser_ {
  const char *at;
};

static inline void fhph_skip_space_(struct fhph_parser_ *p) {
  while (*p->at == ' ' || *p->at == '\t' || *p->at == '\n' || *p->at == '\r') p->at++;
}

/* A string without escapes other than \" and \\ (config values need no more). */
static inline int fhph_read_string_(struct fhph_parser_ *p, char *out, size_t capacity) {
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
static inline int fhph_read_number_(struct fhph_parser_ *p, double *value, int *is_integer) {
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

/* One value of `key`'s declared type at p->at into *value; a message on error. */
static inline fhp_status fhph_read_value_(struct fhph_parser_ *p, const fhp_config_key *key, fhph_value *value) {
  int is_integer = 0;
  const char *type = key->type;
  if (strcmp(type, "string") == 0) {
    if (fhph_read_string_(p, value->string, sizeof value->string)) return FHP_OK;
  } else if (strcmp(type, "boolean") == 0) {
    if (strncmp(p->at, "true", 4) == 0 || strncmp(p->at, "false", 5) == 0) {
      value->boolean = *p->at == 't';
      p->at += value->boolean ? 4 : 5;
      return FHP_OK;
    }
  } else if (fhph_read_number_(p, &value->number, &is_integer)) {
    if (strcmp(type, "number") == 0) return FHP_OK;
    if (is_integer && fabs(value->number) <= 9007199254740992.0) {
      if (strcmp(key->key, "seed") != 0 || value->number >= 0) return FHP_OK;
      return fhph_fail(NULL, FHP_E_INVALID, "config key \"seed\" must be a non-negative integer");
    }
  }
  return fhph_fail(NULL, FHP_E_INVALID, "config key \"%s\" must be %s %s", key->key,
                   strcmp(type, "integer") == 0 ? "an" : "a", type);
}

/* Parses `json` (a flat JSON object; NULL means "{}") against the plugin's declared keys:
 * values[i] receives keys[i]'s value, the config's or its default_json.  Declare "seed" in
 * the table (every plugin accepts it; rule 9).  Range checks are the plugin's: test the
 * values afterwards and fail with fhph_fail(NULL, FHP_E_INVALID, ...).  Call from create. */
static inline fhp_status fhph_parse_config(const char *json, const fhp_config_key *keys, uint32_t n_keys,
                                           fhph_value *values) {
  struct fhph_parser_ p;
  char accepted[512] = "";
  for (uint32_t i = 0; i < n_keys; i++) {
    size_t used = strlen(accepted);
    snprintf(accepted + used, sizeof accepted - used, "%s%s", i ? ", " : "", keys[i].key);
    memset(&values[i], 0, sizeof values[i]);
    p.at = keys[i].default_json;
    if (fhph_read_value_(&p, &keys[i], &values[i]) != FHP_OK)
      return fhph_fail(NULL, FHP_E_INTERNAL, "the default of config key \"%s\" does not parse", keys[i].key);
  }
  p.at = json ? json : "{}";
  fhph_skip_space_(&p);
  if (*p.at++ != '{') return fhph_fail(NULL, FHP_E_INVALID, "config is not a JSON object");
  fhph_skip_space_(&p);
  if (*p.at == '}') {
    p.at++;
  } else {
    for (;;) {
      char name[64];
      uint32_t index = 0;
      fhph_skip_space_(&p);
      if (!fhph_read_string_(&p, name, sizeof name)) return fhph_fail(NULL, FHP_E_INVALID, "config: expected a key string");
      while (index < n_keys && strcmp(keys[index].key, name) != 0) index++;
      if (index == n_keys)
        return fhph_fail(NULL, FHP_E_INVALID, "unknown config key \"%s\" (accepted: %s)", name, accepted);
      if (values[index].given) return fhph_fail(NULL, FHP_E_INVALID, "config key \"%s\" appears twice", name);
      fhph_skip_space_(&p);
      if (*p.at++ != ':') return fhph_fail(NULL, FHP_E_INVALID, "config: expected ':' after \"%s\"", name);
      fhph_skip_space_(&p);
      fhp_status status = fhph_read_value_(&p, &keys[index], &values[index]);
      if (status != FHP_OK) return status;
      values[index].given = 1;
      fhph_skip_space_(&p);
      if (*p.at == ',') { p.at++; continue; }
      if (*p.at == '}') { p.at++; break; }
      return fhph_fail(NULL, FHP_E_INVALID, "config: expected ',' or '}' after \"%s\"", name);
    }
  }
  fhph_skip_space_(&p);
  if (*p.at != '\0') return fhph_fail(NULL, FHP_E_INVALID, "config: unexpected text after the object");
  return FHP_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Updates                                                                                   */
/* ---------------------------------------------------------------------------------------- */
/* True when `member` of the host's fhp_update lies within `stride` (its struct_size). */
#define FHPH_UPDATE_HAS(stride, member) \
  ((stride) >= offsetof(fhp_update, member) + sizeof(((fhp_update *)0)->member))

/* Update k of the array: the stride is the host's struct_size, not this file's sizeof. */
static inline const fhp_update *fhph_update_at(const fhp_update *updates, size_t stride, uint32_t k) {
  return (const fhp_update *)((const unsigned char *)updates + (size_t)k * stride);
}

/* The checks the header lists for aggregate, in its order: updates present, no NULL
 * buffers, a sane stride (*stride_out), n_params equal, n_samples > 0, no client twice.
 * Messages name the client.  Non-finite deltas are the kernel's to find (it reads them anyway). */
static inline fhp_status fhph_check_aggregate(const void *owner, const float *global, uint64_t n_params,
                                              const fhp_update *updates, uint32_t n_updates,
                                              const float *out_global, size_t *stride_out) {
  *stride_out = 0;
  if (n_updates == 0) return fhph_fail(owner, FHP_E_INVALID, "aggregate: no updates (n_updates is 0)");
  if (!updates || !global || !out_global) return fhph_fail(owner, FHP_E_INVALID, "aggregate: NULL argument");
  size_t stride = updates[0].struct_size;
  if (!FHPH_UPDATE_HAS(stride, n_samples) || stride % 8 != 0)
    return fhph_fail(owner, FHP_E_INVALID, "aggregate: fhp_update.struct_size %zu is invalid", stride);
  for (uint32_t k = 0; k < n_updates; k++) {
    const fhp_update *u = fhph_update_at(updates, stride, k);
    if (u->n_params != n_params)
      return fhph_fail(owner, FHP_E_INVALID, "aggregate: client %u has n_params %llu, expected %llu", u->client_id,
                       (unsigned long long)u->n_params, (unsigned long long)n_params);
    if (u->n_samples == 0) return fhph_fail(owner, FHP_E_INVALID, "aggregate: client %u has n_samples 0", u->client_id);
    if (!u->delta && n_params > 0)
      return fhph_fail(owner, FHP_E_INVALID, "aggregate: client %u has a NULL delta", u->client_id);
    for (uint32_t j = 0; j < k; j++)
      if (fhph_update_at(updates, stride, j)->client_id == u->client_id)
        return fhph_fail(owner, FHP_E_INVALID, "aggregate: client %u appears more than once", u->client_id);
  }
  *stride_out = stride;
  return FHP_OK;
}

/* The update's coverage mask, or NULL (trained everything, or a host struct without it). */
static inline const uint8_t *fhph_update_coverage(const fhp_update *u, size_t stride) {
  return FHPH_UPDATE_HAS(stride, coverage) ? u->coverage : NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Threads                                                                                   */
/* ---------------------------------------------------------------------------------------- */
/* task(ctx, i) for every i < n_tasks: on the host's threads if it offers parallel_for (ABI
 * 1.1), else in index order here.  Cut tasks by the data alone and the bits are the same. */
static inline void fhph_parallel_for(const fhp_host *host, uint64_t n_tasks,
                                     void (*task)(void *ctx, uint64_t index), void *ctx) {
  if (host && FHP_HAS_MEMBER(host, fhp_host, parallel_for) && host->parallel_for &&
      host->parallel_for(host->ctx, n_tasks, task, ctx) == FHP_OK)
    return;
  for (uint64_t i = 0; i < n_tasks; i++) task(ctx, i);
}

/* ---------------------------------------------------------------------------------------- */
/* State                                                                                     */
/* ---------------------------------------------------------------------------------------- */
#define FHPH_STATE_MAGIC "FHPS"

/* Counts every byte written; stores those that fit.  buf NULL: only counts. */
typedef struct fhph_writer {
  uint8_t *buf;
  uint64_t capacity;
  uint64_t length;
} fhph_writer;

static inline void fhph_write_bytes(fhph_writer *w, const void *bytes, uint64_t count) {
  if (w->buf && w->length + count <= w->capacity) memcpy(w->buf + w->length, bytes, (size_t)count);
  w->length += count;
}

/* The low `size` bytes of value, little-endian. */
static inline void fhph_write_le_(fhph_writer *w, uint64_t value, int size) {
  uint8_t bytes[8];
  for (int i = 0; i < size; i++) bytes[i] = (uint8_t)(value >> (8 * i));
  fhph_write_bytes(w, bytes, (uint64_t)size);
}

static inline void fhph_write_u64(fhph_writer *w, uint64_t value) { fhph_write_le_(w, value, 8); }
static inline void fhph_write_u32(fhph_writer *w, uint32_t value) { fhph_write_le_(w, value, 4); }

/* Doubles and floats by bit pattern: restored exactly. */
static inline void fhph_write_f64(fhph_writer *w, double value) {
  uint64_t bits;
  memcpy(&bits, &value, 8);
  fhph_write_u64(w, bits);
}

/* A length-prefixed float vector. */
static inline void fhph_write_floats(fhph_writer *w, const float *values, uint64_t count) {
  fhph_write_u64(w, count);
  for (uint64_t i = 0; i < count; i++) {
    uint32_t bits;
    memcpy(&bits, &values[i], 4);
    fhph_write_u32(w, bits);
  }
}

/* Starts save_state's output: the header (magic, format version, plugin id). */
static inline void fhph_writer_begin(fhph_writer *w, uint8_t *buf, uint64_t capacity, const char *plugin_id,
                                     uint32_t version) {
  w->buf = buf;
  w->capacity = capacity;
  w->length = 0;
  fhph_write_bytes(w, FHPH_STATE_MAGIC, 4);
  fhph_write_u32(w, version);
  fhph_write_u64(w, strlen(plugin_id));
  fhph_write_bytes(w, plugin_id, strlen(plugin_id));
}

/* Ends save_state by the header's protocol: *out_len = the length; FHP_E_STATE if buf was
 * given but too small (nothing useful was written then). */
static inline fhp_status fhph_writer_finish(const void *owner, const fhph_writer *w, uint64_t *out_len) {
  if (!out_len) return fhph_fail(owner, FHP_E_INVALID, "save_state: out_len is NULL");
  *out_len = w->length;
  if (w->buf && w->length > w->capacity)
    return fhph_fail(owner, FHP_E_STATE, "save_state: the buffer holds %llu bytes, the state needs %llu",
                     (unsigned long long)w->capacity, (unsigned long long)w->length);
  return FHP_OK;
}

/* Reads what a writer wrote; a read past the end sets `truncated` and yields zeros. */
typedef struct fhph_reader {
  const uint8_t *at, *end;
  int truncated;
} fhph_reader;

static inline int fhph_read_bytes(fhph_reader *r, void *out, uint64_t count) {
  if (r->truncated || (uint64_t)(r->end - r->at) < count) {
    r->truncated = 1;
    memset(out, 0, (size_t)count);
    return 0;
  }
  memcpy(out, r->at, (size_t)count);
  r->at += count;
  return 1;
}

/* `size` little-endian bytes. */
static inline uint64_t fhph_read_le_(fhph_reader *r, int size) {
  uint8_t bytes[8];
  uint64_t value = 0;
  fhph_read_bytes(r, bytes, (uint64_t)size);
  for (int i = 0; i < size; i++) value |= (uint64_t)bytes[i] << (8 * i);
  return value;
}

static inline uint64_t fhph_read_u64(fhph_reader *r) { return fhph_read_le_(r, 8); }
static inline uint32_t fhph_read_u32(fhph_reader *r) { return (uint32_t)fhph_read_le_(r, 4); }

static inline double fhph_read_f64(fhph_reader *r) {
  uint64_t bits = fhph_read_u64(r);
  double value;
  memcpy(&value, &bits, 8);
  return value;
}

/* A float vector of exactly `count` elements into values (as fhph_write_floats wrote it);
 * a different saved length marks the state truncated (corrupt). */
static inline void fhph_read_floats(fhph_reader *r, float *values, uint64_t count) {
  if (fhph_read_u64(r) != count) r->truncated = 1;
  for (uint64_t i = 0; i < count && !r->truncated; i++) {
    uint32_t bits = fhph_read_u32(r);
    memcpy(&values[i], &bits, 4);
  }
}

/* Starts load_state: checks magic, plugin id and format version. */
static inline fhp_status fhph_reader_begin(const void *owner, fhph_reader *r, const uint8_t *buf, uint64_t len,
                                           const char *plugin_id, uint32_t version) {
  char magic[4], id[256];
  r->at = buf;
  r->end = buf ? buf + len : buf;
  r->truncated = 0;
  if (!fhph_read_bytes(r, magic, 4) || memcmp(magic, FHPH_STATE_MAGIC, 4) != 0)
    return fhph_fail(owner, FHP_E_STATE, "not a FedHost plugin state (bad magic)");
  uint32_t saved_version = fhph_read_u32(r);
  uint64_t id_length = fhph_read_u64(r);
  if (id_length >= sizeof id || !fhph_read_bytes(r, id, id_length))
    return fhph_fail(owner, FHP_E_STATE, "saved state is corrupt (plugin id)");
  id[id_length] = '\0';
  if (strcmp(id, plugin_id) != 0)
    return fhph_fail(owner, FHP_E_STATE, "state was saved by plugin \"%s\", not \"%s\"", id, plugin_id);
  if (saved_version != version)
    return fhph_fail(owner, FHP_E_VERSION, "state format version %u is not the supported version %u",
                     saved_version, version);
  return FHP_OK;
}

/* Ends load_state: FHP_E_STATE if a read ran past the end or bytes are left over.  Check
 * it BEFORE changing the instance, so a refused state leaves the instance as it was. */
static inline fhp_status fhph_reader_finish(const void *owner, const fhph_reader *r) {
  if (r->truncated) return fhph_fail(owner, FHP_E_STATE, "saved state is truncated or corrupt");
  if (r->at != r->end)
    return fhph_fail(owner, FHP_E_STATE, "saved state has %llu unexpected trailing bytes",
                     (unsigned long long)(r->end - r->at));
  return FHP_OK;
}

#endif /* FEDHOST_PLUGIN_HELPERS_H */
