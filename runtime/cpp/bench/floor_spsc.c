/* floor_spsc: the throughput floor of a shared-memory message ring.
 *
 * The least a ring of 64-byte messages can do, with nothing a Tachyon ring
 * has beyond it (no subscriber table, no policies, no liveness, no futex):
 * one producer and one consumer in two forked processes on distinct CPUs,
 * 4096 slots in an anonymous MAP_SHARED mapping, each side caching the
 * other's index and publishing its own once per batch of 64 (and before it
 * waits, so neither can wait for the other forever). The consumer copies
 * every message out and checks its sequence number.
 *
 * A slot carries what an ABI v2 slot carries for the seed message (64 B,
 * align 8): an 8-byte word (the stamp's place; here the index, checked too)
 * and the 64-byte message, in a slot of --slot bytes: 72 for a packed slot
 * (runtime/ABI.md §3: round_up(8 + 64, 8)), 128 for a line slot (two whole
 * cache lines). The floor moves the same bytes per message as the ring it
 * bounds.
 *
 *   floor_spsc [--count N] [--runs R] [--slot 72|128]
 *
 * Prints the median of R runs (default 3) as one JSON line on stdout,
 * {"floor_ring_msgs_per_s": ..}, and each run on stderr. On a one-CPU
 * machine the sides are not pinned and yield while they wait.
 *
 * Build: cc -O2 -std=c11 -Wall -Wextra -Werror floor_spsc.c -o floor_spsc
 */
#define _GNU_SOURCE
#include "floor.h"

#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define MSG_SIZE 64
#define MAX_SLOT 128
#define CAPACITY 4096
#define MASK (CAPACITY - 1)
#define BATCH 64 /* index publication batch */

static size_t slot_size = 72; /* --slot */

/* The message, laid out as the seed message (seq, timestamp_ns, payload[48]). */
struct message {
    uint64_t seq;
    uint64_t timestamp_ns;
    uint64_t payload[6];
};
_Static_assert(sizeof(struct message) == MSG_SIZE, "64-byte message");

struct ring {
    _Alignas(128) _Atomic uint64_t tail; /* producer: messages published */
    _Alignas(128) _Atomic uint64_t head; /* consumer: messages consumed */
    _Alignas(128) _Atomic int producer_ready;
    _Atomic int go;
    uint64_t elapsed_ns; /* consumer's results */
    uint64_t bad;        /* messages out of sequence */
    uint64_t checksum;   /* of every byte copied: the copy cannot be optimised away */
    _Alignas(128) unsigned char slots[CAPACITY * MAX_SLOT];
};

static void produce(struct ring *r, uint64_t count) {
    pin(1);
    atomic_store_explicit(&r->producer_ready, 1, memory_order_release);
    while (!atomic_load_explicit(&r->go, memory_order_acquire)) relax();
    uint64_t head_cache = 0;
    for (uint64_t i = 0; i < count; i++) {
        if (i - head_cache >= CAPACITY) {
            /* Publish before waiting: the consumer may be waiting for it. */
            atomic_store_explicit(&r->tail, i, memory_order_release);
            while (i - (head_cache = atomic_load_explicit(&r->head, memory_order_acquire)) >= CAPACITY) relax();
        }
        unsigned char *slot = r->slots + (i & MASK) * slot_size;
        struct message m = {.seq = i, .timestamp_ns = i ^ 0x5555};
        for (int k = 0; k < 6; k++) m.payload[k] = i * 0x9e3779b97f4a7c15u + (uint64_t)k;
        memcpy(slot, &i, sizeof i);
        memcpy(slot + 8, &m, sizeof m);
        if ((i + 1) % BATCH == 0) atomic_store_explicit(&r->tail, i + 1, memory_order_release);
    }
    atomic_store_explicit(&r->tail, count, memory_order_release);
    _exit(0);
}

static void consume(struct ring *r, uint64_t count) {
    pin(0);
    while (!atomic_load_explicit(&r->producer_ready, memory_order_acquire)) relax();
    uint64_t t0 = now_ns();
    atomic_store_explicit(&r->go, 1, memory_order_release);
    uint64_t tail_cache = 0, bad = 0, sum = 0, head;
    for (head = 0; head < count; head++) {
        if (head == tail_cache) {
            /* Publish before waiting: the producer may be waiting for it. */
            atomic_store_explicit(&r->head, head, memory_order_release);
            while ((tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire)) == head) relax();
        }
        const unsigned char *slot = r->slots + (head & MASK) * slot_size;
        uint64_t stamp;
        struct message m;
        memcpy(&stamp, slot, sizeof stamp);
        memcpy(&m, slot + 8, sizeof m);
        bad += (stamp != head) | (m.seq != head);
        sum += m.timestamp_ns ^ m.payload[0] ^ m.payload[5];
        if ((head + 1) % BATCH == 0) atomic_store_explicit(&r->head, head + 1, memory_order_release);
    }
    atomic_store_explicit(&r->head, head, memory_order_release);
    r->elapsed_ns = now_ns() - t0;
    r->bad = bad;
    r->checksum = sum;
    _exit(0);
}

/* One run: returns messages per second, or a negative value on failure. */
static double run(struct ring *r, uint64_t count) {
    atomic_store(&r->tail, 0);
    atomic_store(&r->head, 0);
    atomic_store(&r->producer_ready, 0);
    atomic_store(&r->go, 0);
    r->elapsed_ns = 0;
    r->bad = 0;
    fflush(NULL);
    pid_t pids[2];
    for (int k = 0; k < 2; k++) {
        pids[k] = fork();
        if (pids[k] < 0) {
            perror("floor_spsc: fork");
            return -1;
        }
        if (pids[k] == 0) {
            if (k == 0) consume(r, count);
            produce(r, count);
        }
    }
    int failed = 0;
    for (int k = 0; k < 2; k++) {
        int status = 0;
        if (waitpid(pids[k], &status, 0) != pids[k] || !WIFEXITED(status) || WEXITSTATUS(status) != 0) failed = 1;
    }
    if (failed) {
        fprintf(stderr, "floor_spsc: a child process failed\n");
        return -1;
    }
    if (r->bad != 0) {
        fprintf(stderr, "floor_spsc: %llu messages out of sequence\n", (unsigned long long)r->bad);
        return -1;
    }
    return (double)count * 1e9 / (double)(r->elapsed_ns ? r->elapsed_ns : 1);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    long count = 5000000, runs = 3;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        if (eq) v = eq + 1;
        else if (i + 1 < argc) v = argv[i + 1];
        if (len == strlen("--count") && strncmp(a, "--count", len) == 0 && v) {
            count = parse_count("--count", v, 1);
        } else if (len == strlen("--runs") && strncmp(a, "--runs", len) == 0 && v) {
            runs = parse_count("--runs", v, 1);
        } else if (len == strlen("--slot") && strncmp(a, "--slot", len) == 0 && v) {
            slot_size = (size_t)parse_count("--slot", v, 72);
            if (slot_size != 72 && slot_size != 128) {
                fprintf(stderr, "floor_spsc: --slot must be 72 (packed) or 128 (line)\n");
                return 2;
            }
        } else {
            fprintf(stderr, "usage: floor_spsc [--count N] [--runs R] [--slot 72|128]\n");
            return 2;
        }
        if (!eq) i++;
    }
    struct ring *r = mmap(NULL, sizeof *r, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    double *rates = malloc((size_t)runs * sizeof *rates);
    if (r == MAP_FAILED || rates == NULL) {
        perror("floor_spsc: allocate");
        return 1;
    }
    one_cpu = usable_cpus() < 2;
    for (long k = 0; k < runs; k++) {
        if ((rates[k] = run(r, (uint64_t)count)) < 0) return 1;
        fprintf(stderr, "floor_spsc: run %ld: %.0f msgs/s\n", k + 1, rates[k]);
    }
    qsort(rates, (size_t)runs, sizeof *rates, cmp_double);
    printf("{\"floor_ring_msgs_per_s\":%.0f}\n", rates[runs / 2]);
    free(rates);
    return 0;
}
