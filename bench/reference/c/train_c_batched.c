// Minibatch training of the 9-256-128-64-32-16-12-8-1 MLP in plain C: the batched peer of
// ../shared/bench/reference/c/train_c.c (same init.bin, same Keras-style Adam, fp32, BCE on a
// sigmoid head). A batch runs layer by layer over all its samples as plain loops — forward
// Y = X·W + b, backward dX = dY·Wᵀ masked by ReLU', dW = Xᵀ·dY summed over the batch — then one
// Adam step on the batch-mean gradient. gcc auto-vectorizes the loops; nothing is hand-blocked.
// Build: gcc -O3 -march=native -fno-math-errno -o train_c_batched train_c_batched.c -lm
// Run:   FTZ=1 ./train_c_batched init.bin BATCH [LR]
// Prints "train: ... samples/s (best) ... (median)" over 7 timed epochs after a warm-up epoch.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xmmintrin.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
static int compare_doubles(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }
#define NL 8
#define MAX_WIDTH 256
static const int dims[NL + 1] = {9, 256, 128, 64, 32, 16, 12, 8, 1};
static const float B1 = 0.9f, B2 = 0.999f, EPS = 1e-7f;
static float LR = 1e-3f;
static long P;
static float *p, *g, *m, *v, *p0;
static float *W[NL], *Bv[NL], *gW[NL], *gB[NL];
static float *A[NL + 1], *D[NL + 1];  // per layer: batch rows of MAX_WIDTH floats
static int N, batch;
static float *X, *Y;
static long t_step;

static void forward(int n) {
  for (int l = 0; l < NL; l++) {
    int ni = dims[l], no = dims[l + 1];
    const float *restrict w = W[l];
    for (int s = 0; s < n; s++) {
      const float *restrict x = A[l] + (long)s * MAX_WIDTH;
      float *restrict y = A[l + 1] + (long)s * MAX_WIDTH;
      memcpy(y, Bv[l], no * 4);
      for (int i = 0; i < ni; i++) {
        float xi = x[i];
        const float *restrict wr = w + (long)i * no;
        for (int o = 0; o < no; o++) y[o] += xi * wr[o];
      }
      if (l < NL - 1) for (int o = 0; o < no; o++) y[o] = y[o] > 0.f ? y[o] : 0.f;
    }
  }
}

static void backward(int n, const float *labels) {
  for (int s = 0; s < n; s++) {
    float z = A[NL][(long)s * MAX_WIDTH];
    D[NL][(long)s * MAX_WIDTH] = 1.f / (1.f + expf(-z)) - labels[s];
  }
  memset(g, 0, P * 4);
  for (int l = NL - 1; l >= 0; l--) {
    int ni = dims[l], no = dims[l + 1];
    for (int s = 0; s < n; s++) {
      const float *restrict d = D[l + 1] + (long)s * MAX_WIDTH;
      const float *restrict x = A[l] + (long)s * MAX_WIDTH;
      for (int i = 0; i < ni; i++) {
        float xi = x[i];
        float *restrict gr = gW[l] + (long)i * no;
        for (int o = 0; o < no; o++) gr[o] += xi * d[o];
      }
      for (int o = 0; o < no; o++) gB[l][o] += d[o];
      if (l > 0) {
        float *restrict dx = D[l] + (long)s * MAX_WIDTH;
        for (int i = 0; i < ni; i++) {
          const float *restrict wr = W[l] + (long)i * no;
          float sum = 0;
          for (int o = 0; o < no; o++) sum += wr[o] * d[o];
          dx[i] = x[i] > 0.f ? sum : 0.f;
        }
      }
    }
  }
}

static void adam(int n) {
  t_step++;
  float alpha = LR * sqrtf(1.f - powf(B2, (float)t_step)) / (1.f - powf(B1, (float)t_step));
  float scale = 1.f / n;
  float *restrict pp = p; const float *restrict gg = g; float *restrict mm = m; float *restrict vv = v;
  for (long k = 0; k < P; k++) {
    float gk = gg[k] * scale;
    mm[k] += (gk - mm[k]) * (1.f - B1);
    vv[k] += (gk * gk - vv[k]) * (1.f - B2);
    pp[k] -= alpha * mm[k] / (sqrtf(vv[k]) + EPS);
  }
}

static double epoch(double *loss) {
  double sum = 0, t0 = now();
  for (int start = 0; start < N; start += batch) {
    int n = N - start < batch ? N - start : batch;
    for (int s = 0; s < n; s++) memcpy(A[0] + (long)s * MAX_WIDTH, X + (long)(start + s) * dims[0], dims[0] * 4);
    forward(n);
    if (loss) for (int s = 0; s < n; s++) {
      float z = A[NL][(long)s * MAX_WIDTH], y = Y[start + s];
      sum += fmaxf(z, 0) - y * z + log1pf(expf(-fabsf(z)));
    }
    backward(n, Y + start);
    adam(n);
  }
  double t = now() - t0;
  if (loss) *loss = sum / N;
  return t;
}

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: %s init.bin BATCH [LR]\n", argv[0]); return 2; }
  batch = atoi(argv[2]);
  if (batch < 1) { fprintf(stderr, "BATCH must be at least 1, got %s\n", argv[2]); return 2; }
  if (argc > 3) LR = strtof(argv[3], NULL);
  long NW = 0, NB = 0;
  for (int l = 0; l < NL; l++) { NW += (long)dims[l] * dims[l + 1]; NB += dims[l + 1]; }
  P = NW + NB;
  p = aligned_alloc(64, P * 4 + 64); g = aligned_alloc(64, P * 4 + 64);
  m = aligned_alloc(64, P * 4 + 64); v = aligned_alloc(64, P * 4 + 64); p0 = malloc(P * 4);
  long off = 0;
  for (int l = 0; l < NL; l++) { W[l] = p + off; gW[l] = g + off; off += (long)dims[l] * dims[l + 1]; }
  for (int l = 0; l < NL; l++) { Bv[l] = p + off; gB[l] = g + off; off += dims[l + 1]; }
  for (int l = 0; l <= NL; l++) {
    A[l] = aligned_alloc(64, (long)batch * MAX_WIDTH * 4);
    D[l] = aligned_alloc(64, (long)batch * MAX_WIDTH * 4);
  }
  FILE *f = fopen(argv[1], "rb");
  if (!f) { perror(argv[1]); return 1; }
  if (fread(&N, 4, 1, f) != 1 || fread(p, 4, P, f) != (size_t)P) { fprintf(stderr, "%s: short read\n", argv[1]); return 1; }
  X = malloc((long)N * dims[0] * 4); Y = malloc(N * 4);
  if (fread(X, 4, (long)N * dims[0], f) != (size_t)N * dims[0] || fread(Y, 4, N, f) != (size_t)N) {
    fprintf(stderr, "%s: short read\n", argv[1]); return 1;
  }
  fclose(f);
  memcpy(p0, p, P * 4);
  if (getenv("FTZ") && atoi(getenv("FTZ"))) _mm_setcsr(_mm_getcsr() | 0x8040);  // FTZ + DAZ
  memset(m, 0, P * 4); memset(v, 0, P * 4); t_step = 0;
  double loss;
  epoch(&loss);  // warm-up epoch, with the loss as a sanity check
  printf("P=%ld N=%d batch=%d first-epoch mean loss %.6f\n", P, N, batch, loss);
  const int R = 7;
  double ts[R];
  for (int r = 0; r < R; r++) ts[r] = epoch(NULL);
  qsort(ts, R, sizeof(double), compare_doubles);
  printf("train: %d samples/epoch x %d reps: %.0f samples/s (best) %.0f samples/s (median)\n", N, R, N / ts[0], N / ts[R / 2]);
  return 0;
}
