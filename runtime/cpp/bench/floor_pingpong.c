/* floor_pingpong: the physical floor of a cross-process round trip.
 *
 * Two processes (fork) share one anonymous MAP_SHARED page and bounce a
 * counter in one cache line: the parent stores 2i+1, the child, spinning,
 * answers 2i+2, the parent spins until it sees it. Each round trip moves the
 * line to the other core and back, the least any shared-memory ping-pong can
 * cost; a ring's round trip (bench/, issue 7) is judged against it.
 *
 *   floor_pingpong [--iterations N] [--warmup W]
 *
 * Pinned to the first two CPUs the process may use (CPUs 0 and 1 on an
 * unrestricted machine, as bench/ pins its ping-pongs); on one CPU it is not
 * pinned and a waiter yields instead of spinning, so the figure is then a
 * scheduler round trip. After W warm-up round trips, N are timed one by one
 * with CLOCK_MONOTONIC and one JSON line goes to stdout:
 *
 *   {"floor_rtt_p50_ns":..,"floor_rtt_p90_ns":..,"floor_rtt_p99_ns":..,
 *    "floor_rtt_p999_ns":..,"floor_rtt_max_ns":..}
 *
 * With --slots it measures instead the floor of ABI v2's message exchange
 * (runtime/ABI.md §8), hand-coded here without any Tachyon code: two rings
 * (ping, pong) of 64 slots. By default each slot is ABI v2's packed slot of
 * the 64-byte seed message: an 8-byte stamp and the message (72 bytes, so
 * two cache lines); with --line it is a line slot (ABI.md §3) of a 56-byte
 * message, stamp and message in one aligned 64-byte line. The exchange is
 * that of an asymmetric-fence ring (flags bit 1, §8.6), the default where
 * membarrier works: the writer stores stamp 2i+1, the message, stamp 2i+2
 * and the tail, all plain (release) stores, then loads a sleeper flag
 * (handshake H1, whose fence the parking side's membarrier supplies); the
 * reader spins on the stamp (§8.5 step 1a) and on a word of the slot's
 * second line if it has one (so both lines travel together, as the clients
 * wait), copies the message, re-checks the stamp, stores its head (release)
 * and loads the producer's sleeping flag (H2). Nothing ever sleeps. This is
 * what the protocol itself costs on this machine, the bound any client of
 * ABI v2 meets; keys are then "protocol_floor_rtt_*", with
 * "protocol_floor_slot_bytes" (72 packed, 128 with --line, for --msg 64).
 *
 * Build: cc -O2 -std=c11 -Wall -Wextra -Werror floor_pingpong.c -o floor_pingpong
 */
#define _GNU_SOURCE
#include "floor.h"

#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* The child stops when it reads this. */
#define STOP UINT64_MAX

struct shared {
    _Alignas(128) _Atomic uint64_t counter;  /* alone on its line (and the next, against adjacent-line prefetch) */
    _Alignas(128) char pad;
};

/* --slots: one direction of the exchange. Lines as in ABI.md: the tail and
 * the sleeper flags on producer-written lines, the head and the sleeping
 * flag on subscriber/producer lines of their own. */
#define SLOTS 64
#define MAX_SLOT 1088
struct ring {
    _Alignas(128) _Atomic uint64_t tail;
    _Alignas(128) _Atomic uint32_t sleeper;       /* subscriber's flag, read by the producer */
    _Alignas(128) _Atomic uint32_t prod_sleeping; /* producer's flag, read by the subscriber */
    _Alignas(128) _Atomic uint64_t head;
    _Alignas(128) unsigned char slots[SLOTS * MAX_SLOT];
};

/* The geometry (ABI.md §3): packed, an 8-byte stamp and the message
 * rounded up to 8 bytes, or line, the same rounded up to whole aligned
 * cache lines. Set once, before the fork. */
static size_t slot_size = 72, msg_size = 64;

static _Atomic uint64_t *stamp_of(struct ring *r, uint64_t i) {
    return (_Atomic uint64_t *)(void *)&r->slots[(i % SLOTS) * slot_size];
}

static void ring_send(struct ring *r, uint64_t i, const unsigned char *msg) {
    _Atomic uint64_t *st = stamp_of(r, i);
    atomic_store_explicit(st, 2 * i + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release); /* x86: orders the compiler only, as Go's open stamp */
    memcpy((unsigned char *)st + 8, msg, msg_size);
    atomic_store_explicit(st, 2 * i + 2, memory_order_release);
    atomic_store_explicit(&r->tail, i + 1, memory_order_release);                /* asymmetric: no fence */
    if (atomic_load_explicit(&r->sleeper, memory_order_relaxed) != 0) fprintf(stderr, "unexpected sleeper\n"); /* H1 */
}

/* Receives index i into msg; returns 0, or -1 on STOP (stamp of all ones). */
static int ring_recv(struct ring *r, uint64_t i, unsigned char *msg) {
    _Atomic uint64_t *st = stamp_of(r, i);
    uint64_t s;
    /* the slot's last word: on its second line if it has one, else the stamp's line again */
    _Atomic uint64_t *last = (_Atomic uint64_t *)(void *)((unsigned char *)st + slot_size - 8);
    while ((s = atomic_load_explicit(st, memory_order_acquire)) != 2 * i + 2) {
        (void)atomic_load_explicit(last, memory_order_acquire);
        if (s == STOP) return -1;
        relax();
    }
    memcpy(msg, (unsigned char *)st + 8, msg_size);
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(st, memory_order_relaxed) != 2 * i + 2) abort(); /* never lapped here */
    atomic_store_explicit(&r->head, i + 1, memory_order_release);               /* asymmetric: no fence */
    if (atomic_load_explicit(&r->prod_sleeping, memory_order_relaxed) != 0) fprintf(stderr, "unexpected sleeping producer\n"); /* H2 */
    return 0;
}

static void echo(struct shared *s) {
    pin(1);
    for (uint64_t want = 1;; want += 2) {
        uint64_t v;
        while ((v = atomic_load_explicit(&s->counter, memory_order_acquire)) != want) {
            if (v == STOP) _exit(0);
            relax();
        }
        atomic_store_explicit(&s->counter, want + 1, memory_order_release);
    }
}

static void slot_echo(struct ring *ping, struct ring *pong) {
    pin(1);
    unsigned char msg[MAX_SLOT];
    for (uint64_t i = 0; ring_recv(ping, i, msg) == 0; i++) ring_send(pong, i, msg);
    _exit(0);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of sorted samples, indexed as bench/ does it. */
static uint64_t quantile(const uint64_t *sorted, size_t n, double q) {
    size_t i = (size_t)(q * (double)n);
    return sorted[i < n ? i : n - 1];
}

int main(int argc, char **argv) {
    long iterations = 200000, warmup = 10000;
    int slots = 0, line = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        if (eq) v = eq + 1;
        else if (i + 1 < argc) v = argv[i + 1];
        if (!eq && strcmp(a, "--slots") == 0) {
            slots = 1;
            continue;
        }
        if (!eq && strcmp(a, "--line") == 0) {
            slots = line = 1;
            continue;
        }
        if (len == strlen("--msg") && strncmp(a, "--msg", len) == 0 && v) {
            msg_size = (size_t)parse_count("--msg", v, 8);
            if (msg_size > MAX_SLOT - 64 || msg_size % 8 != 0) {
                fprintf(stderr, "floor_pingpong: --msg must be a multiple of 8 up to %d\n", MAX_SLOT - 64);
                return 2;
            }
        } else if (len == strlen("--iterations") && strncmp(a, "--iterations", len) == 0 && v) {
            iterations = parse_count("--iterations", v, 1);
        } else if (len == strlen("--warmup") && strncmp(a, "--warmup", len) == 0 && v) {
            warmup = parse_count("--warmup", v, 0);
        } else {
            fprintf(stderr, "usage: floor_pingpong [--slots [--line] [--msg BYTES]] [--iterations N] [--warmup W]\n");
            return 2;
        }
        if (!eq) i++;
    }

    slot_size = line ? (8 + msg_size + 63) / 64 * 64 : 8 + msg_size;
    struct shared *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    struct ring *rings = mmap(NULL, 2 * sizeof *rings, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    uint64_t *rtt = malloc((size_t)iterations * sizeof *rtt);
    if (s == MAP_FAILED || rings == MAP_FAILED || rtt == NULL) {
        perror("floor_pingpong: allocate");
        return 1;
    }
    atomic_init(&s->counter, 0);
    one_cpu = usable_cpus() < 2; /* before fork: both sides must know */
    fflush(NULL);
    pid_t child = fork();
    if (child < 0) {
        perror("floor_pingpong: fork");
        return 1;
    }
    if (child == 0) {
        if (slots) slot_echo(&rings[0], &rings[1]);
        echo(s);
    }
    pin(0);

    uint64_t total = (uint64_t)warmup + (uint64_t)iterations;
    unsigned char out[MAX_SLOT] = {0}, in[MAX_SLOT];
    for (uint64_t i = 0; i < total; i++) {
        uint64_t t0 = now_ns();
        if (slots) {
            memcpy(out, &i, sizeof i); /* the seed message's seq */
            ring_send(&rings[0], i, out);
            if (ring_recv(&rings[1], i, in) != 0 || memcmp(in, out, msg_size) != 0) abort();
        } else {
            atomic_store_explicit(&s->counter, 2 * i + 1, memory_order_release);
            while (atomic_load_explicit(&s->counter, memory_order_acquire) != 2 * i + 2) relax();
        }
        uint64_t t1 = now_ns();
        if (i >= (uint64_t)warmup) rtt[i - (uint64_t)warmup] = t1 - t0;
    }
    if (slots) atomic_store_explicit(stamp_of(&rings[0], total), STOP, memory_order_release);
    else atomic_store_explicit(&s->counter, STOP, memory_order_release);
    int status = 0;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "floor_pingpong: echo process failed (status %d)\n", status);
        return 1;
    }

    size_t n = (size_t)iterations;
    qsort(rtt, n, sizeof *rtt, cmp_u64);
    const char *k = slots ? "protocol_floor" : "floor";
    printf("{\"%s_rtt_p50_ns\":%llu,\"%s_rtt_p90_ns\":%llu,\"%s_rtt_p99_ns\":%llu,"
           "\"%s_rtt_p999_ns\":%llu,\"%s_rtt_max_ns\":%llu",
           k, (unsigned long long)quantile(rtt, n, 0.50), k, (unsigned long long)quantile(rtt, n, 0.90),
           k, (unsigned long long)quantile(rtt, n, 0.99), k, (unsigned long long)quantile(rtt, n, 0.999),
           k, (unsigned long long)rtt[n - 1]);
    if (slots) printf(",\"protocol_floor_slot_bytes\":%zu", slot_size);
    printf("}\n");
    free(rtt);
    return 0;
}
