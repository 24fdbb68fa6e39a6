/* floor.h: what the floor programs (floor_pingpong.c, floor_spsc.c) share —
 * the clock, CPU pinning and the parsing of count flags. Each program is one
 * translation unit that defines _GNU_SOURCE and includes this first. Error
 * messages are prefixed with the program's name. */
#ifndef TACHYON_BENCH_FLOOR_H
#define TACHYON_BENCH_FLOOR_H

#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Set by main before forking: with one usable CPU a waiter yields (the peer
 * needs the CPU to answer) and nothing is pinned. */
static int one_cpu;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One turn of a spin-wait. */
static void relax(void) {
    if (one_cpu) sched_yield();
}

/* How many CPUs this process may run on. */
static int usable_cpus(void) {
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return 1;
    return CPU_COUNT(&allowed);
}

/* Pins the calling process to the k-th CPU it may use (k = 0, 1), when it
 * may use two or more. */
static void pin(int k) {
    cpu_set_t allowed, one;
    if (one_cpu || sched_getaffinity(0, sizeof allowed, &allowed) != 0) return;
    for (int cpu = 0, seen = 0; cpu < CPU_SETSIZE; cpu++) {
        if (CPU_ISSET(cpu, &allowed) && seen++ == k) {
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            if (sched_setaffinity(0, sizeof one, &one) != 0)
                fprintf(stderr, "%s: pin to CPU %d: %s\n", program_invocation_short_name, cpu, strerror(errno));
            return;
        }
    }
}

/* The value of a count flag, at least min; exits with status 2 otherwise. */
static long parse_count(const char *flag, const char *v, long min) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno != 0 || *end != '\0' || end == v || x < min) {
        fprintf(stderr, "%s: bad value for %s: %s\n", program_invocation_short_name, flag, v);
        exit(2);
    }
    return x;
}

#endif
