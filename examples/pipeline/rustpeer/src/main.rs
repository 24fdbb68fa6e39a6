//! rustpeer is the Rust interop peer of examples/pipeline/PEERS.md: it
//! publishes, subscribes, echoes or pings the seed message
//! (`market.Message`) on named (or sealed) rings and prints a one-line JSON
//! summary on standard output; diagnostics go to standard error.
//!
//! Build: `cargo build --release -p rustpeer` (its build script generates
//! the message module with tachyon-gen).

use std::os::unix::net::UnixListener;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tachyon_ring::ring::{Error, Options, Policy, Publisher, SubscribeOptions, Subscriber};

#[allow(dead_code, clippy::all)]
mod message_tsch {
    include!(concat!(env!("OUT_DIR"), "/message_tsch.rs"));
}

use message_tsch::Message;

const USAGE: &str =
    "usage: rustpeer pub|sub --ring NAME [flags] | rustpeer echo --ping NAME --pong NAME [flags] \
| rustpeer ping --ping NAME --pong NAME --count N [flags] (see examples/pipeline/PEERS.md)";

/// A failed run: a usage error (exit 2) or a ring error (exit 1).
enum Fail {
    Usage(String),
    Run(String),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Run(e.to_string())
    }
}

struct Args {
    role: String,
    ring: String,
    count: u64,
    capacity: usize,
    policy: Policy,
    max_subscribers: usize,
    wait_subscribers: usize,
    batch: usize,
    max_lag: usize,
    slow_us: u64,
    latency: bool,
    timeout: Duration,
    ping: String,
    pong: String,
    pin: Option<usize>,
    warmup: u64,
    sealed: Option<String>,
}

fn parse(argv: &[String]) -> Result<Args, Fail> {
    let role = match argv.first().map(String::as_str) {
        Some(r @ ("pub" | "sub" | "echo" | "ping")) => r.to_owned(),
        _ => {
            return Err(Fail::Usage(
                "first argument must be pub, sub, echo or ping".into(),
            ))
        }
    };
    let mut a = Args {
        role,
        ring: String::new(),
        count: 0,
        capacity: 4096,
        policy: Policy::Block,
        max_subscribers: 8,
        wait_subscribers: 1,
        batch: 64,
        max_lag: 0,
        slow_us: 0,
        latency: false,
        timeout: Duration::from_secs(30),
        ping: String::new(),
        pong: String::new(),
        pin: None,
        warmup: 1000,
        sealed: None,
    };
    let mut it = argv[1..].iter();
    while let Some(arg) = it.next() {
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Err(Fail::Usage(format!("unexpected argument {arg:?}")));
        };
        let (flag, inline) = match flag.split_once('=') {
            Some((f, v)) => (f, Some(v.to_owned())),
            None => (flag, None),
        };
        if flag == "latency" {
            a.latency = true;
            continue;
        }
        // The value is the next argument whatever it looks like (a ring
        // name may start with '-').
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .cloned()
                .ok_or_else(|| Fail::Usage(format!("--{flag} needs a value")))?,
        };
        let num = |v: &str| -> Result<u64, Fail> {
            v.parse()
                .map_err(|_| Fail::Usage(format!("bad value for --{flag}: {v:?}")))
        };
        match flag {
            "ring" => a.ring = value,
            "count" => a.count = num(&value)?,
            "capacity" => a.capacity = num(&value)? as usize,
            "policy" => a.policy = value.parse().map_err(Fail::Usage)?,
            "max-subscribers" => a.max_subscribers = num(&value)? as usize,
            "wait-subscribers" => a.wait_subscribers = num(&value)? as usize,
            "batch" => a.batch = num(&value)? as usize,
            "max-lag" => a.max_lag = num(&value)? as usize,
            "slow-us" => a.slow_us = num(&value)?,
            "timeout-s" => {
                let s: f64 = value
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                    .ok_or_else(|| Fail::Usage(format!("bad value for --timeout-s: {value:?}")))?;
                a.timeout = Duration::from_secs_f64(s);
            }
            "ping" => a.ping = value,
            "pong" => a.pong = value,
            "pin" => a.pin = Some(num(&value)? as usize),
            "warmup" => a.warmup = num(&value)?,
            "sealed" => a.sealed = Some(value),
            _ => return Err(Fail::Usage(format!("unknown flag --{flag}"))),
        }
    }
    match a.role.as_str() {
        "pub" | "sub" if a.ring.is_empty() => Err(Fail::Usage("--ring is required".into())),
        "echo" | "ping" if a.ping.is_empty() || a.pong.is_empty() => {
            Err(Fail::Usage(format!("{} needs --ping and --pong", a.role)))
        }
        _ => Ok(a),
    }
}

/// patterns[b] is the payload of every message whose seq*131 mod 256 is b:
/// payload[i] = (seq*131 + i*7) mod 256 depends on seq only through that
/// byte, so filling and checking a payload is one 48-byte copy or compare.
fn patterns() -> Box<[[u8; 48]; 256]> {
    let mut p = Box::new([[0u8; 48]; 256]);
    for (b, row) in p.iter_mut().enumerate() {
        for (i, x) in row.iter_mut().enumerate() {
            *x = (b + i * 7) as u8;
        }
    }
    p
}

fn pattern_of(seq: u64) -> usize {
    (seq.wrapping_mul(131) & 0xff) as usize
}

fn realtime_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Pins the calling thread to `cpu` (modulo the CPU count); ignored on a
/// one-CPU machine.
fn pin(cpu: Option<usize>) {
    let Some(cpu) = cpu else { return };
    let n = thread::available_parallelism().map_or(1, |n| n.get());
    if n > 1 {
        let mut set = rustix::thread::CpuSet::new();
        set.set(cpu % n);
        if let Err(e) = rustix::thread::sched_setaffinity(None, &set) {
            eprintln!("rustpeer: pin to CPU {}: {e}", cpu % n);
        }
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

/// A sealed ring's server thread and its socket path.
type Served = Option<(thread::JoinHandle<()>, String)>;

/// Creates the publisher: a named ring, or a sealed one served on a Unix
/// socket at `sock` by a thread that stops when the publisher closes.
fn create(a: &Args, name: &str, opts: Options) -> Result<(Publisher<Message>, Served), Fail> {
    let Some(sock) = &a.sealed else {
        return Ok((Publisher::create(name, opts)?, None));
    };
    let publisher = Publisher::<Message>::create_sealed(name, opts)?;
    let listener =
        UnixListener::bind(sock).map_err(|e| Fail::Run(format!("listen on {sock}: {e}")))?;
    let server = publisher
        .sealed_server()
        .expect("a sealed publisher has a server");
    let serving = thread::spawn(move || {
        if let Err(e) = server.serve(&listener) {
            eprintln!("rustpeer: serve: {e}");
        }
    });
    Ok((publisher, Some((serving, sock.clone()))))
}

fn publish(a: &Args) -> Result<String, Fail> {
    let opts = Options {
        capacity: a.capacity,
        max_subscribers: a.max_subscribers,
        policy: a.policy,
        batch: a.batch,
        timeout: Some(a.timeout),
        ..Options::default()
    };
    let (mut publisher, served) = create(a, &a.ring, opts)?;
    let result = (|| {
        // Registered subscribers receive every message published from now
        // on (ABI.md §8.4, "Registered").
        publisher.wait_subscribers(a.wait_subscribers, a.timeout)?;
        pin(a.pin);
        let pats = patterns();
        let start = Instant::now();
        let mut now = 0;
        for seq in 0..a.count {
            let m = match publisher.claim() {
                Ok(m) => m,
                Err(Error::Full) => continue, // drop_newest: refused, counted
                Err(e) => return Err(Fail::Run(format!("publish {seq}: {e}"))),
            };
            // The clock costs a good part of a message's budget: read it
            // every 16 messages (an older reading only makes a measured
            // latency larger).
            if seq % 16 == 0 {
                now = realtime_ns();
            }
            m.seq = seq;
            m.timestamp_ns = now;
            m.payload = pats[pattern_of(seq)];
            publisher.commit()?;
        }
        publisher.flush();
        let secs = start.elapsed().as_secs_f64();
        Ok(format!(
            "\"published\": {}, \"dropped\": {}, \"seconds\": {secs}, \"msgs_per_s\": {}",
            publisher.published(),
            publisher.dropped(),
            rate(a.count, secs)
        ))
    })();
    let closed = publisher.close();
    if let Some((serving, sock)) = served {
        let _ = serving.join();
        let _ = std::fs::remove_file(sock);
    }
    let out = result?;
    closed?;
    Ok(out)
}

/// Attaches (or dials), retrying until the ring exists and is ready, up to
/// the deadline.
fn attach(
    name: &str,
    sealed: Option<&str>,
    opts: &SubscribeOptions,
    deadline: Instant,
) -> Result<Subscriber<Message>, Fail> {
    loop {
        let r = match sealed {
            Some(sock) => Subscriber::dial_sealed(sock, opts.clone()),
            None => Subscriber::attach(name, opts.clone()),
        };
        match r {
            Ok(s) => return Ok(s),
            Err(e) if e.is_not_yet() && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(1))
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// What a subscriber has seen, per PEERS.md.
#[derive(Clone, Copy, Default)]
struct Tally {
    received: u64,
    gaps: u64,
    torn: u64,
    reordered: u64,
    first: i64,
    last: i64,
    max_latency: i64,
}

impl Tally {
    fn see(&mut self, m: &Message, pats: &[[u8; 48]; 256], latency: bool) {
        let seq = m.seq as i64;
        if self.received == 0 {
            self.first = seq;
        }
        if self.last >= 0 && seq <= self.last {
            self.reordered += 1;
        } else if self.last >= 0 && seq > self.last + 1 {
            self.gaps += (seq - self.last - 1) as u64;
        } else if self.last < 0 && seq > 0 {
            self.gaps += seq as u64;
        }
        if m.payload != pats[pattern_of(m.seq)] {
            self.torn += 1;
        }
        if latency {
            self.max_latency = self
                .max_latency
                .max(realtime_ns() as i64 - m.timestamp_ns as i64);
        }
        self.last = self.last.max(seq);
        self.received += 1;
    }
}

fn subscribe(a: &Args) -> Result<String, Fail> {
    let deadline = Instant::now() + a.timeout;
    let opts = SubscribeOptions {
        max_lag: a.max_lag,
        ..SubscribeOptions::default()
    };
    let mut sub = attach(&a.ring, a.sealed.as_deref(), &opts, deadline)?;
    pin(a.pin);
    let pats = patterns();
    let end = deadline + a.timeout;
    let mut t = Tally {
        first: -1,
        last: -1,
        ..Tally::default()
    };
    let mut start = None;
    let enough = |t: &Tally| a.count > 0 && t.received >= a.count;
    let left = || Some(end.saturating_duration_since(Instant::now()));
    if a.slow_us > 0 {
        // A deliberately slow reader: copies, one at a time.
        let mut m = Message::default();
        while !enough(&t) {
            match sub.recv(&mut m, left()) {
                Ok(()) => {}
                Err(Error::Closed) => break,
                Err(e) => return Err(e.into()),
            }
            start.get_or_insert_with(Instant::now);
            t.see(&m, &pats, a.latency);
            thread::sleep(Duration::from_micros(a.slow_us));
        }
    } else {
        // Zero copy: check the messages in place, a batch at a time. A batch
        // overwritten meanwhile (lossy readers) is discarded whole: the ring
        // counted it as dropped, so its messages count as gaps, not seen.
        while !enough(&t) {
            let batch = match sub.borrow_batch(64, left()) {
                Ok(b) => b,
                Err(Error::Closed) => break,
                Err(e) => return Err(e.into()),
            };
            start.get_or_insert_with(Instant::now);
            let mut seen = t;
            for m in &batch {
                if enough(&seen) {
                    break;
                }
                seen.see(m, &pats, a.latency);
            }
            match batch.release() {
                Ok(()) => t = seen,
                Err(Error::Overwritten) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let secs = start.map_or(0.0, |s| s.elapsed().as_secs_f64());
    let mut out = format!(
        "\"received\": {}, \"dropped\": {}, \"gaps\": {}, \"torn\": {}, \"reordered\": {}, \"first\": {}, \"last\": {}, \"seconds\": {secs}, \"msgs_per_s\": {}",
        t.received,
        sub.dropped(),
        t.gaps,
        t.torn,
        t.reordered,
        t.first,
        t.last,
        rate(t.received, secs)
    );
    if a.latency {
        out.push_str(&format!(", \"max_latency_ns\": {}", t.max_latency));
    }
    Ok(out)
}

/// The echo's and the ping's own ring: capacity 64, batch 1, block.
fn rtt_options() -> Options {
    Options {
        capacity: 64,
        batch: 1,
        ..Options::default()
    }
}

fn echo(a: &Args) -> Result<String, Fail> {
    let mut out = Publisher::<Message>::create(&a.pong, rtt_options())?;
    let mut input = attach(
        &a.ping,
        None,
        &SubscribeOptions::default(),
        Instant::now() + a.timeout,
    )?;
    pin(a.pin);
    let start = Instant::now();
    let mut echoed = 0u64;
    let mut m = Message::default();
    loop {
        match input.recv(&mut m, None) {
            Ok(()) => {}
            Err(Error::Closed) => break,
            Err(e) => return Err(Fail::Run(format!("echo {echoed}: receive: {e}"))),
        }
        out.publish(&m)
            .map_err(|e| Fail::Run(format!("echo {echoed}: publish: {e}")))?;
        echoed += 1;
    }
    out.close()?;
    Ok(format!(
        "\"echoed\": {echoed}, \"seconds\": {}",
        start.elapsed().as_secs_f64()
    ))
}

fn ping(a: &Args) -> Result<String, Fail> {
    if a.count == 0 {
        return Err(Fail::Usage("ping needs --count N > 0".into()));
    }
    let mut out = Publisher::<Message>::create(&a.ping, rtt_options())?;
    let mut input = attach(
        &a.pong,
        None,
        &SubscribeOptions::default(),
        Instant::now() + a.timeout,
    )?;
    out.wait_subscribers(1, a.timeout)?;
    pin(a.pin);
    let total = a.warmup + a.count;
    let mut rtts = Vec::with_capacity(a.count as usize);
    let mut m = Message::default();
    for i in 0..total {
        let t0 = Instant::now();
        out.claim()?.seq = i;
        out.commit()?;
        input.recv(&mut m, Some(a.timeout))?;
        let rtt = t0.elapsed().as_nanos() as u64;
        if m.seq != i {
            return Err(Fail::Run(format!("ping {i}: echoed seq {}", m.seq)));
        }
        if i >= a.warmup {
            rtts.push(rtt);
        }
    }
    out.close()?;
    rtts.sort_unstable();
    let n = rtts.len();
    let q = |p: f64| rtts[((p * n as f64) as usize).min(n - 1)];
    Ok(format!(
        "\"round_trips\": {n}, \"rtt_p50_ns\": {}, \"rtt_p90_ns\": {}, \"rtt_p99_ns\": {}, \"rtt_p999_ns\": {}, \"rtt_max_ns\": {}",
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        rtts[n - 1]
    ))
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let result = parse(&argv).and_then(|a| {
        let body = match a.role.as_str() {
            "pub" => publish(&a),
            "sub" => subscribe(&a),
            "echo" => echo(&a),
            _ => ping(&a),
        }?;
        let ring = if a.ring.is_empty() { &a.ping } else { &a.ring };
        Ok(format!(
            "{{\"lang\": \"rust\", \"role\": \"{}\", \"ring\": {}, {body}}}",
            a.role,
            json_string(ring)
        ))
    });
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(Fail::Usage(why)) => {
            eprintln!("rustpeer: {why}\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Fail::Run(why)) => {
            eprintln!("rustpeer: {why}");
            ExitCode::from(1)
        }
    }
}
