//! What the Rust peers of `make bench-peers` share, so that every system is
//! driven, timed and reported the same way (bench/peers/README.md):
//!
//! ```text
//! PROG ping --name NAME --count N [--warmup W] [--pin CPU] [--timeout-s S]
//! PROG echo --name NAME [--pin CPU] [--timeout-s S]
//! PROG pub  --name NAME --count N [--pin CPU] [--timeout-s S]
//! PROG sub  --name NAME --count N [--warmup W] [--pin CPU] [--timeout-s S]
//! ```
//!
//! A message is 64 bytes; its first 8 are the sequence number
//! (little-endian). `ping` times each round trip after the first W with the
//! monotonic clock and prints their percentiles; `sub` checks every seq and
//! prints the rate of the messages after the first W; each as one JSON line.

use std::time::{Duration, Instant};

/// Bytes of every message.
pub const MSG: usize = 64;

/// The seq a ping sends after its last round trip: the echo stops on it.
pub const STOP: u64 = u64::MAX;

/// Command-line flags of a peer.
#[derive(Debug)]
pub struct Args {
    pub role: String,
    pub name: String,
    pub count: u64,
    pub warmup: u64,
    pub pin: Option<usize>,
    pub timeout: Duration,
}

fn usage(program: &str, why: &str) -> ! {
    eprintln!(
        "{program}: {why}\nusage: {program} ping|echo|pub|sub --name NAME [--count N] [--warmup W] [--pin CPU] [--timeout-s S]"
    );
    std::process::exit(2)
}

impl Args {
    /// Parses the process's arguments; exits with status 2 on a usage error.
    pub fn parse(program: &str) -> Args {
        let mut it = std::env::args().skip(1);
        let role = it.next().unwrap_or_default();
        if !matches!(role.as_str(), "ping" | "echo" | "pub" | "sub") {
            usage(program, "first argument must be ping, echo, pub or sub");
        }
        let mut a = Args {
            role,
            name: String::new(),
            count: 0,
            warmup: 0,
            pin: None,
            timeout: Duration::from_secs(30),
        };
        while let Some(flag) = it.next() {
            let Some(value) = it.next() else {
                usage(program, &format!("flag {flag} needs a value"))
            };
            let number = || {
                value
                    .parse::<u64>()
                    .unwrap_or_else(|_| usage(program, &format!("bad value for {flag}: {value}")))
            };
            match flag.as_str() {
                "--name" => a.name = value.clone(),
                "--count" => a.count = number(),
                "--warmup" => a.warmup = number(),
                "--pin" => a.pin = Some(number() as usize),
                "--timeout-s" => a.timeout = Duration::from_secs(number()),
                _ => usage(program, &format!("unknown flag {flag}")),
            }
        }
        if a.name.is_empty() {
            usage(program, "--name is required");
        }
        if a.role != "echo" && a.count == 0 {
            usage(program, "--count is required");
        }
        a
    }
}

/// Pins the calling thread to `cpu` (modulo the CPU count) where the machine
/// has two or more, as the Tachyon peers pin theirs.
pub fn pin(cpu: Option<usize>) {
    let Some(cpu) = cpu else { return };
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n < 2 {
        return;
    }
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu % n as usize, &mut set);
        if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) != 0 {
            eprintln!("pin to CPU {cpu}: {}", std::io::Error::last_os_error());
        }
    }
}

/// Retries `f` until it succeeds or `timeout` passes, sleeping 1 ms between tries.
pub fn retry<T, E: std::fmt::Debug>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Result<T, E>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => {
                fail(&format!("{what}: {e:?} after {timeout:?}"))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// Prints `why` on stderr and exits with status 1.
pub fn fail(why: &str) -> ! {
    eprintln!("{}: {why}", std::env::args().next().unwrap_or_default());
    std::process::exit(1)
}

/// Writes message `seq` as every stream producer does: all 64 bytes, word k
/// = seq + k.
#[inline(always)]
pub fn fill(buf: &mut [u8], seq: u64) {
    for (k, w) in buf[..MSG].chunks_exact_mut(8).enumerate() {
        w.copy_from_slice(&seq.wrapping_add(k as u64).to_le_bytes());
    }
}

/// The seq of a message.
#[inline(always)]
pub fn seq_of(buf: &[u8]) -> u64 {
    u64::from_le_bytes(buf[..8].try_into().unwrap())
}

/// Round-trip times of one ping run, in nanoseconds.
pub struct Rtts(Vec<u64>);

impl Rtts {
    pub fn with_capacity(n: u64) -> Rtts {
        Rtts(Vec::with_capacity(n as usize))
    }

    #[inline(always)]
    pub fn record(&mut self, t0: Instant) {
        self.0.push(t0.elapsed().as_nanos() as u64);
    }

    /// Prints the percentiles as one JSON line, indexed as the Go and C
    /// benchmarks index them: sorted[min(n-1, floor(q*n))].
    pub fn report(mut self) {
        self.0.sort_unstable();
        let n = self.0.len();
        if n == 0 {
            fail("no round trips timed");
        }
        let q = |p: f64| self.0[((p * n as f64) as usize).min(n - 1)];
        println!(
            "{{\"rtt_p50_ns\":{},\"rtt_p90_ns\":{},\"rtt_p99_ns\":{},\"rtt_p999_ns\":{},\"rtt_max_ns\":{},\"round_trips\":{}}}",
            q(0.50),
            q(0.90),
            q(0.99),
            q(0.999),
            self.0[n - 1],
            n
        );
    }
}

/// A subscriber's count and clock: the rate is that of the messages after
/// the first `warmup`.
pub struct Rate {
    next: u64,
    warmup: u64,
    start: Option<Instant>,
}

impl Rate {
    pub fn new(warmup: u64) -> Rate {
        Rate {
            next: 0,
            warmup,
            start: None,
        }
    }

    /// The seq due next.
    #[inline(always)]
    pub fn next(&self) -> u64 {
        self.next
    }

    /// Counts one message, failing unless it carries the seq due.
    #[inline(always)]
    pub fn check(&mut self, seq: u64) {
        if seq != self.next {
            fail(&format!(
                "stream: got seq {seq} where {} was due",
                self.next
            ));
        }
        if self.next == self.warmup {
            self.start = Some(Instant::now());
        }
        self.next += 1;
    }

    /// Prints the rate as one JSON line.
    pub fn report(self) {
        let secs = self.start.map_or(0.0, |t| t.elapsed().as_secs_f64());
        let timed = self.next.saturating_sub(self.warmup);
        let rate = if secs > 0.0 { timed as f64 / secs } else { 0.0 };
        println!(
            "{{\"received\":{},\"seconds\":{secs:.6},\"msgs_per_s\":{rate:.0}}}",
            self.next
        );
    }
}
