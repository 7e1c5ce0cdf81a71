/* What the load generators (shootload, spawnload) share: a monotonic clock, C worker
 * threads that take run indexes from one counter, and the report — one JSON line with
 * count, errors, wall time, throughput and latency percentiles in milliseconds.
 * A worker loops on load_next() and records each latency in load_lat[i]. */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long load_total;
static atomic_long load_next_i, load_errors;
static double *load_lat;

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* The next run's index, or -1 when all load_total are taken. */
static long load_next(void) {
    long i = atomic_fetch_add(&load_next_i, 1);
    return i < load_total ? i : -1;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Run conc threads of worker over total runs and print the report; probe, when not
 * NULL, is written as the line's "probe" field. Returns the exit status for main. */
static int load_run(long total, int conc, void *(*worker)(void *), const char *probe) {
    if (total < 1 || conc < 1) {
        fprintf(stderr, "expected N (runs) and C (clients) to be positive integers\n");
        return 2;
    }
    load_total = total;
    load_lat = calloc((size_t)total, sizeof(double));
    pthread_t *t = calloc((size_t)conc, sizeof(pthread_t));
    if (!load_lat || !t) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    double t0 = now_ms();
    for (int i = 0; i < conc; i++)
        pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < conc; i++)
        pthread_join(t[i], NULL);
    double wall = now_ms() - t0;
    qsort(load_lat, (size_t)total, sizeof(double), cmp_double);
    if (probe)
        printf("{\"probe\":\"%s\",", probe);
    else
        printf("{");
    printf("\"n\":%ld,\"clients\":%d,\"errors\":%ld,\"wall_ms\":%.1f,\"per_s\":%.1f,\"p50_ms\":%.3f,"
           "\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f}\n",
           total, conc, (long)load_errors, wall, (double)total / wall * 1000, load_lat[total / 2],
           load_lat[total * 9 / 10], load_lat[total * 99 / 100], load_lat[total - 1]);
    fflush(stdout);
    free(t);
    free(load_lat);
    return 0;
}
