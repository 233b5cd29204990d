// The fp32 fused multiply-add peak of this CPU: the ceiling for the GFLOP/s figures in
// bench/NOTES.md. Each thread runs 16 independent chains of 16-wide (AVX-512) or 8-wide (AVX2)
// FMAs in registers, with no memory traffic; the program prints GFLOP/s, counting 2 flops per
// lane per FMA. -O3 matters: at -O2 GCC keeps the chains in memory and measures the stores.
//
//   gcc -O3 -march=native -pthread bench/fma_peak.c -o /tmp/fma_peak
//   /tmp/fma_peak 1; /tmp/fma_peak 2        # threads [iterations, default 2e8]
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CHAINS 16
static long iterations = 200000000;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

// The chains' sum, written to `out` so that the compiler cannot drop the loop.
static void *run(void *out) {
    float sum = 0;
#ifdef __AVX512F__
    __m512 acc[CHAINS], a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_ps((float)c);
    for (long i = 0; i < iterations; i++)
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
    for (int c = 0; c < CHAINS; c++) sum += _mm512_reduce_add_ps(acc[c]);
#else
    __m256 acc[CHAINS], a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    float lanes[8];
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_set1_ps((float)c);
    for (long i = 0; i < iterations; i++)
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_fmadd_ps(acc[c], a, b);
    for (int c = 0; c < CHAINS; c++) {
        _mm256_storeu_ps(lanes, acc[c]);
        for (int j = 0; j < 8; j++) sum += lanes[j];
    }
#endif
    *(float *)out = sum;
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    if (argc > 2) iterations = atol(argv[2]);
    if (threads < 1 || threads > 64 || iterations < 1) {
        fprintf(stderr, "usage: fma_peak [THREADS 1-64] [ITERATIONS]\n");
        return 2;
    }
#ifdef __AVX512F__
    const int lanes = 16;
#else
    const int lanes = 8;
#endif
    pthread_t th[64];
    float out[64];
    double start = now();
    for (int i = 0; i < threads; i++) pthread_create(&th[i], NULL, run, &out[i]);
    for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
    double seconds = now() - start;
    double gflop = 2.0 * lanes * CHAINS * (double)iterations * threads * 1e-9;
    printf("%d thread(s), %d lanes: %.1f GFLOP/s in all, %.1f per thread (%.2f s; checksum %g)\n",
           threads, lanes, gflop / seconds, gflop / seconds / threads, seconds, out[0]);
    return 0;
}
