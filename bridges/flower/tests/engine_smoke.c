/* The engine from C through fedhost_engine.h alone: opens the embedded federation, trains
 * client 0 for round 0 from the starting model twice and checks the two updates are the same
 * bits, non-zero and finite; then that a bad client index is refused with a message. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedhost_engine.h"

int main(void) {
  fhe_error error = {{0}};
  fhe_engine *engine = NULL;
  if ((fhe_abi_version() >> 16) != FHE_VERSION_MAJOR) { puts("version mismatch"); return 1; }
  if (fhe_open(NULL, ".", "protocol=fl\nrounds=1", 7, &engine, &error) != FHE_OK) { printf("open: %s\n", error.message); return 1; }
  fhe_info info = {.struct_size = sizeof info};
  if (fhe_get_info(engine, &info, &error) != FHE_OK) { printf("info: %s\n", error.message); return 1; }
  size_t n = (size_t)info.parameter_count;
  float *global = malloc(n * sizeof *global), *first = malloc(n * sizeof *first), *second = malloc(n * sizeof *second);
  fhe_metric metrics[8];
  size_t metric_count = 0;
  uint64_t samples = 0;
  if (fhe_starting_model(engine, global, n, &error) != FHE_OK ||
      fhe_train(engine, 0, 0, global, n, first, NULL, &samples, metrics, 8, &metric_count, &error) != FHE_OK ||
      fhe_train(engine, 0, 0, global, n, second, NULL, &samples, metrics, 8, &metric_count, &error) != FHE_OK) {
    printf("train: %s\n", error.message);
    return 1;
  }
  double norm = 0;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(first[i]) || memcmp(&first[i], &second[i], sizeof(float)) != 0) { printf("element %zu differs\n", i); return 1; }
    norm += (double)first[i] * first[i];
  }
  if (norm == 0 || samples == 0 || metric_count != 3) { printf("empty update\n"); return 1; }
  if (fhe_train(engine, 99, 0, global, n, first, NULL, &samples, metrics, 8, &metric_count, &error) != FHE_E_INPUT) {
    puts("client 99 was accepted");
    return 1;
  }
  printf("clients %u, parameters %zu, samples %llu, |delta| %.6f, %s=%.6f; client 99: %s\n", info.client_count, n,
         (unsigned long long)samples, sqrt(norm), metrics[1].key, metrics[1].value, error.message);
  fhe_close(engine);
  free(global); free(first); free(second);
  return 0;
}
