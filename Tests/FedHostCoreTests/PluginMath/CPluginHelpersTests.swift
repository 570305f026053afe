import FedHostCore
import Foundation
import Testing

/// Sources/PluginAPI/include/fedhost_plugin_helpers.h, used the way an outside C author would:
/// FedAvgM with its momentum state, written with the helpers alone, must pass the conformance
/// run, agree with the bundled Swift FedAvgM, and resume bit-identically. (The robust
/// aggregator example uses the config, error, stride and thread helpers too; its own suite
/// checks those messages.)
@Suite("The C plugin helpers (fedhost_plugin_helpers.h)")
struct CPluginHelpersTests {
  static let source = #"""
    #include "fedhost_plugin.h"
    #include "fedhost_plugin_helpers.h"
    #include <stdlib.h>

    #define PLUGIN_ID "org.fedhost.test.c-fedavgm"
    enum { KEY_RATE, KEY_MOMENTUM, KEY_SEED, KEY_COUNT };
    static const fhp_config_key keys[KEY_COUNT] = {
      {sizeof(fhp_config_key), 0, "server_learning_rate", "number", "1.0", "eta_s"},
      {sizeof(fhp_config_key), 0, "server_momentum", "number", "0.0", "mu"},
      {sizeof(fhp_config_key), 0, "seed", "integer", "0", "unused"},
    };
    struct fhp_instance { const fhp_host *host; double rate, momentum; uint64_t n; float *m; };

    enum { CHUNK = 4096 };
    struct job { struct fhp_instance *self; const fhp_update *updates; size_t stride; uint32_t n_updates;
                 const double *p; const float *global; float *out; float *next_m; uint32_t *bad_client; };

    static void task(void *context, uint64_t t) {
      struct job *j = context;
      uint64_t end = (t + 1) * CHUNK < j->self->n ? (t + 1) * CHUNK : j->self->n;
      for (uint64_t e = t * CHUNK; e < end; e++) {
        double sum = 0, weight = 0;
        for (uint32_t k = 0; k < j->n_updates; k++) {
          const fhp_update *u = fhph_update_at(j->updates, j->stride, k);
          const uint8_t *coverage = fhph_update_coverage(u, j->stride);
          if (coverage && !coverage[e]) continue;
          if (!isfinite(u->delta[e]) && !j->bad_client[t]) j->bad_client[t] = u->client_id + 1;
          sum += j->p[k] * (double)(float)u->delta[e];
          weight += j->p[k];
        }
        double m = weight > 0 ? j->self->momentum * j->self->m[e] + (double)(float)(sum / weight) : j->self->m[e];
        j->next_m[e] = (float)m;
        j->out[e] = weight > 0 ? (float)(j->global[e] + j->self->rate * m) : j->global[e];
      }
    }

    static fhp_status create(const fhp_host *host, const char *json, fhp_instance **out) {
      fhph_value values[KEY_COUNT];
      fhph_clear_error();
      *out = NULL;
      fhp_status status = fhph_parse_config(json, keys, KEY_COUNT, values);
      if (status != FHP_OK) return status;
      struct fhp_instance *self = calloc(1, sizeof *self);
      if (!self) return fhph_fail(NULL, FHP_E_NOMEM, "out of memory");
      *self = (struct fhp_instance){host, values[KEY_RATE].number, values[KEY_MOMENTUM].number, 0, NULL};
      *out = self;
      return FHP_OK;
    }
    static void destroy(fhp_instance *self) { if (self) free(self->m); free(self); }
    static const char *last_error(const fhp_instance *self) { return fhph_last_error(self); }

    static fhp_status aggregate(fhp_instance *self, uint32_t round, const float *global, uint64_t n,
                                const fhp_update *updates, uint32_t n_updates, float *out, double *out_weights) {
      (void)round;
      fhph_clear_error();
      size_t stride;
      fhp_status status = fhph_check_aggregate(self, global, n, updates, n_updates, out, &stride);
      if (status != FHP_OK) return status;
      if (!self->m) { self->m = calloc(n ? n : 1, sizeof(float)); self->n = n; }
      if (self->n != n) return fhph_fail(self, FHP_E_INVALID, "state has %llu parameters", (unsigned long long)self->n);
      uint64_t tasks = (n + CHUNK - 1) / CHUNK;
      double total = 0, *p = calloc(n_updates, sizeof *p);
      float *next_m = malloc((n ? n : 1) * sizeof(float));
      uint32_t *bad = calloc(tasks ? tasks : 1, sizeof *bad);
      for (uint32_t k = 0; k < n_updates; k++) total += (double)fhph_update_at(updates, stride, k)->n_samples;
      for (uint32_t k = 0; k < n_updates; k++) p[k] = fhph_update_at(updates, stride, k)->n_samples / total;
      struct job job = {self, updates, stride, n_updates, p, global, out, next_m, bad};
      fhph_parallel_for(self->host, tasks, task, &job);
      for (uint64_t t = 0; t < tasks; t++)
        if (bad[t]) { status = fhph_fail(self, FHP_E_NUMERIC, "client %u: a delta is not finite", bad[t] - 1); break; }
      if (status == FHP_OK) {
        memcpy(self->m, next_m, n * sizeof(float));
        if (out_weights) for (uint32_t k = 0; k < n_updates; k++) out_weights[k] = p[k];
      }
      free(p); free(next_m); free(bad);
      return status;
    }

    static fhp_status save_state(fhp_instance *self, uint8_t *buf, uint64_t capacity, uint64_t *out_len) {
      fhph_writer w;
      fhph_clear_error();
      fhph_writer_begin(&w, buf, capacity, PLUGIN_ID, 1);
      fhph_write_u64(&w, self->n);
      fhph_write_floats(&w, self->m, self->m ? self->n : 0);
      return fhph_writer_finish(self, &w, out_len);
    }

    static fhp_status load_state(fhp_instance *self, const uint8_t *buf, uint64_t len) {
      fhph_reader r;
      fhph_clear_error();
      fhp_status status = fhph_reader_begin(self, &r, buf, len, PLUGIN_ID, 1);
      if (status != FHP_OK) return status;
      uint64_t n = fhph_read_u64(&r);
      float *m = n && n < len ? malloc(n * sizeof(float)) : NULL;
      if (n && !m) return fhph_fail(self, FHP_E_STATE, "saved state is corrupt (length %llu)", (unsigned long long)n);
      fhph_read_floats(&r, m, n);
      status = fhph_reader_finish(self, &r);
      if (status != FHP_OK) { free(m); return status; }
      free(self->m);
      self->m = m;
      self->n = n;
      return FHP_OK;
    }

    static const fhp_descriptor descriptor = {sizeof(fhp_descriptor), FHP_ABI_MAJOR, FHP_ABI_MINOR,
      FHP_KIND_AGGREGATOR, PLUGIN_ID, "FedAvgM in C", "1.0.0", "FedAvgM through the C helpers", keys, KEY_COUNT, 0,
      0, 0};
    static const fhp_vtable vtable = {.struct_size = sizeof(fhp_vtable), .create = create, .destroy = destroy,
      .last_error = last_error, .aggregate = aggregate, .save_state = save_state, .load_state = load_state};

    FHP_EXPORT fhp_status fedhost_plugin_entry(uint32_t major, uint32_t minor, const fhp_descriptor **d,
                                               const fhp_vtable **v) {
      (void)minor;
      *d = &descriptor;
      *v = major == FHP_ABI_MAJOR ? &vtable : NULL;
      return major == FHP_ABI_MAJOR ? FHP_OK : FHP_E_VERSION;
    }
    """#

  static let library = Result { () throws -> PluginLibrary in
    let path = try DataTestSupport.temporaryDirectory().appendingPathComponent("c_fedavgm.c").path
    try source.write(toFile: path, atomically: true, encoding: .utf8)
    return try PluginFixture.compileCPlugin(path, name: "CFedAvgM", standard: "c11",
                                            extraArguments: ["-Wextra", "-pedantic"])
  }

  @Test func aHelperBuiltPluginPassesValidation() throws {
    let failures = PluginConformance(library: try Self.library.get()).run().compactMap(\.failure)
    #expect(failures.isEmpty, "\(failures)")
  }

  @Test func itAgreesWithTheSwiftFedAvgMAndResumesBitIdentically() throws {
    let config = #"{"server_learning_rate": 0.8, "server_momentum": 0.9}"#
    var random = TestRandom(seed: 5)
    let count = 10_007
    var global = random.vector(count)
    let rounds = (0..<4).map { _ in
      (0..<3).map { PluginFixture.update(UInt32($0), random.vector(count, scale: 0.05), samples: UInt64(5 + $0),
                                         coverage: $0 == 1 ? random.mask(count, coverage: 0.5) : nil) }
    }
    let c = try Self.library.get().makeInstance(configJSON: config)
    let swift = try PluginFixture.instance("FedAvgM", config)
    var states: [[UInt8]] = []
    var outputs: [[Float]] = []
    for (round, updates) in rounds.enumerated() {
      let ours = try PluginFixture.aggregate(c, global: global, updates, round: round)
      expectClose(ours.global, try PluginFixture.aggregate(swift, global: global, updates, round: round).global.map(Double.init),
                  tolerance: 1e-6)
      states.append(try c.saveState())
      outputs.append(ours.global)
      global = ours.global
    }
    let resumed = try Self.library.get().makeInstance(configJSON: config)
    try resumed.loadState(states[1])
    #expect(try PluginFixture.aggregate(resumed, global: outputs[1], rounds[2], round: 2).global == outputs[2])
    #expect(try resumed.saveState() == states[2])
  }

  @Test func configAndStateErrorsNameTheProblem() throws {
    let library = try Self.library.get()
    let unknown = PluginFixture.errorText { _ = try library.makeInstance(configJSON: #"{"momentum": 0.9}"#) }
    #expect(unknown?.contains(#"unknown config key "momentum" (accepted: server_learning_rate, server_momentum, seed)"#) == true)
    let wrongType = PluginFixture.errorText { _ = try library.makeInstance(configJSON: #"{"server_momentum": "high"}"#) }
    #expect(wrongType?.contains(#"config key "server_momentum" must be a number"#) == true)
    let twice = PluginFixture.errorText { _ = try library.makeInstance(configJSON: #"{"seed": 1, "seed": 2}"#) }
    #expect(twice?.contains(#"config key "seed" appears twice"#) == true)
    let negativeSeed = PluginFixture.errorText { _ = try library.makeInstance(configJSON: #"{"seed": -3}"#) }
    #expect(negativeSeed?.contains("non-negative integer") == true)

    // The Swift FedAvgM's state has the same layout (PluginKit's StateWriter) and another id.
    let swift = try PluginFixture.instance("FedAvgM")
    _ = try PluginFixture.aggregate(swift, global: [1], [PluginFixture.update(0, [1])])
    let instance = try library.makeInstance(configJSON: "{}")
    let foreign = PluginFixture.errorText { try instance.loadState(try swift.saveState()) }
    #expect(foreign?.contains(#"state was saved by plugin "org.fedhost.fedavgm", not "org.fedhost.test.c-fedavgm""#) == true,
            "\(foreign ?? "")")
    _ = try PluginFixture.aggregate(instance, global: [1, 2], [PluginFixture.update(0, [1, 1])])
    let state = try instance.saveState()
    let truncated = PluginFixture.errorText { try instance.loadState(Array(state.dropLast(2))) }
    #expect(truncated?.contains("truncated or corrupt") == true, "\(truncated ?? "")")
    let trailing = PluginFixture.errorText { try instance.loadState(state + [0]) }
    #expect(trailing?.contains("1 unexpected trailing bytes") == true, "\(trailing ?? "")")
    // A refused state left the instance as it was.
    #expect(try instance.saveState() == state)
  }
}
