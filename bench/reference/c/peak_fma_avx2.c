// The machine's single-thread FP32 FMA peak with 256-bit vectors: register-resident
// multiply-adds, no memory traffic. Adapted from ../shared/bench/reference/c/peak_fma.c, which
// also times AVX-512 (absent on many CPUs, and then it does not build) and keeps 16 ymm
// accumulators plus 2 constants in 16 ymm registers (spills). Here 12 independent chains:
// enough for two FMA pipes of latency up to 6 cycles, and no spills.
// Build: gcc -O3 -march=native -o peak_fma_avx2 peak_fma_avx2.c
// Prints "peak_fp32_avx2_GFLOPs X" (best of 7 runs).
#include <immintrin.h>
#include <stdio.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
#define CHAINS 12
int main(void) {
  const long iterations = 20000000L;  // per chain: 0.5–1 s per run
  double best = 0;
  float check = 0;
  for (int rep = 0; rep < 7; rep++) {
    __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    __m256 acc[CHAINS];
    for (int j = 0; j < CHAINS; j++) acc[j] = _mm256_set1_ps((float)j);
    double t0 = now();
    for (long i = 0; i < iterations; i++) {
#pragma GCC unroll 12
      for (int j = 0; j < CHAINS; j++) acc[j] = _mm256_fmadd_ps(acc[j], a, b);
    }
    double t = now() - t0;
    __m256 s = acc[0];
    for (int j = 1; j < CHAINS; j++) s = _mm256_add_ps(s, acc[j]);
    float out[8];
    _mm256_storeu_ps(out, s);
    check += out[0];
    double gflops = (double)iterations * CHAINS * 8 * 2 / t / 1e9;
    if (gflops > best) best = gflops;
  }
  printf("check %f\npeak_fp32_avx2_GFLOPs %.2f\n", check, best);
  return 0;
}
