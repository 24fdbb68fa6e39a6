//! riyaneel's Tachyon (crates.io `tachyon-ipc`, whose `tachyon-sys` vendors
//! the C++ core) between two processes, as make bench-peers drives every
//! system (peerbench's contract):
//!
//! - `ping`/`echo`: two buses (NAME-ping, NAME-pong), one 64-byte message at
//!   a time, as tachyon-ipc's own `examples/bench_ipc.rs`: the echo copies
//!   the received payload into its reply slot (one SHM-to-SHM copy), the ping
//!   checks the seq. Both wait with `acquire_rx(u32::MAX)` (spin, never park).
//! - `pub`/`sub`: one bus, the publisher writes 64-byte messages and flushes
//!   every 32 (the core's batch), the subscriber drains batches of up to 32
//!   with `tachyon_drain_batch` into a reused view array (tachyon-ipc's
//!   `drain_batch` allocates one per call) and checks every seq.
//!
//! Both buses keep the core's default hybrid mode (a consumer may sleep, so a
//! producer's flush checks its flag), as Tachyon's own rings do.
use std::ptr;
use std::time::Instant;

use peerbench::{Args, MSG, Rate, Rtts, STOP, fail, fill, pin, retry, seq_of};
use tachyon_ipc::Bus;
use tachyon_sys as sys;

/// Bytes of every bus: 4096 messages of 64-byte header + 64-byte payload,
/// as many messages as Tachyon's own benchmark ring holds.
const CAPACITY: usize = 4096 * 128;
/// Messages per drained batch and per producer flush: the core's BATCH_SIZE.
const BATCH: usize = 32;
const TYPE_ID: u32 = 1;

fn socket(name: &str, end: &str) -> String {
    format!("/tmp/{name}-{end}.sock")
}

fn listen(path: &str) -> Bus {
    let _ = std::fs::remove_file(path);
    Bus::listen(path, CAPACITY).unwrap_or_else(|e| fail(&format!("listen {path}: {e:?}")))
}

fn send(bus: &Bus, f: impl FnOnce(&mut [u8])) {
    let mut g = loop {
        match bus.acquire_tx(MSG) {
            Ok(g) => break g,
            Err(tachyon_ipc::TachyonError::BufferFull) => std::hint::spin_loop(),
            Err(e) => fail(&format!("acquire_tx: {e:?}")),
        }
    };
    // SAFETY: f writes at most MSG bytes, the size acquired.
    f(unsafe { &mut g.as_mut_slice()[..MSG] });
    g.commit(MSG, TYPE_ID)
        .unwrap_or_else(|e| fail(&format!("commit_tx: {e:?}")));
}

fn ping(a: &Args) {
    let tx = retry("connect ping bus", a.timeout, || {
        Bus::connect(&socket(&a.name, "ping"))
    });
    let rx = retry("connect pong bus", a.timeout, || {
        Bus::connect(&socket(&a.name, "pong"))
    });
    pin(a.pin);
    let mut rtts = Rtts::with_capacity(a.count);
    for i in 0..a.warmup + a.count {
        let t0 = Instant::now();
        send(&tx, |b| b[..8].copy_from_slice(&i.to_le_bytes()));
        let g = rx
            .acquire_rx(u32::MAX)
            .unwrap_or_else(|e| fail(&format!("acquire_rx: {e:?}")));
        if g.actual_size != MSG || seq_of(g.data()) != i {
            fail(&format!(
                "round trip {i}: got seq {} ({} bytes)",
                seq_of(g.data()),
                g.actual_size
            ));
        }
        g.commit()
            .unwrap_or_else(|e| fail(&format!("commit_rx: {e:?}")));
        if i >= a.warmup {
            rtts.record(t0);
        }
    }
    send(&tx, |b| b[..8].copy_from_slice(&STOP.to_le_bytes()));
    rtts.report();
}

fn echo(a: &Args) {
    pin(a.pin);
    let (ping_path, pong_path) = (socket(&a.name, "ping"), socket(&a.name, "pong"));
    let rx = listen(&ping_path);
    let tx = listen(&pong_path);
    loop {
        let g = rx
            .acquire_rx(u32::MAX)
            .unwrap_or_else(|e| fail(&format!("acquire_rx: {e:?}")));
        if seq_of(g.data()) == STOP {
            break;
        }
        send(&tx, |b| b.copy_from_slice(g.data()));
        g.commit()
            .unwrap_or_else(|e| fail(&format!("commit_rx: {e:?}")));
    }
    let _ = std::fs::remove_file(ping_path);
    let _ = std::fs::remove_file(pong_path);
}

fn publish(a: &Args) {
    let tx = retry("connect stream bus", a.timeout, || {
        Bus::connect(&socket(&a.name, "stream"))
    });
    pin(a.pin);
    for seq in 0..a.count {
        let mut g = loop {
            match tx.acquire_tx(MSG) {
                Ok(g) => break g,
                Err(tachyon_ipc::TachyonError::BufferFull) => std::hint::spin_loop(),
                Err(e) => fail(&format!("acquire_tx: {e:?}")),
            }
        };
        // SAFETY: MSG bytes were acquired.
        fill(unsafe { g.as_mut_slice() }, seq);
        g.commit_unflushed(MSG, TYPE_ID)
            .unwrap_or_else(|e| fail(&format!("commit_tx: {e:?}")));
    }
    tx.flush();
}

/// The raw bus of the C core: the batch drain needs its own view array.
struct RawBus(*mut sys::tachyon_bus_t);

impl Drop for RawBus {
    fn drop(&mut self) {
        unsafe { sys::tachyon_bus_destroy(self.0) };
    }
}

fn subscribe(a: &Args) {
    pin(a.pin);
    let path = socket(&a.name, "stream");
    let _ = std::fs::remove_file(&path);
    let cpath = std::ffi::CString::new(path.clone()).unwrap();
    let mut raw = ptr::null_mut();
    let err = unsafe { sys::tachyon_bus_listen(cpath.as_ptr(), CAPACITY, &mut raw) };
    if err != sys::tachyon_error_t_TACHYON_SUCCESS {
        fail(&format!("listen {path}: error {err}"));
    }
    let bus = RawBus(raw);
    let empty = sys::tachyon_msg_view_t {
        ptr: ptr::null(),
        actual_size: 0,
        reserved_: 0,
        type_id: 0,
        padding_: 0,
    };
    let mut views = [empty; BATCH];
    let mut rate = Rate::new(a.warmup);
    while rate.next() < a.count {
        let n = unsafe { sys::tachyon_drain_batch(bus.0, views.as_mut_ptr(), BATCH, u32::MAX) };
        if n == 0 {
            if unsafe { sys::tachyon_get_state(bus.0) }
                == sys::tachyon_state_t_TACHYON_STATE_FATAL_ERROR
            {
                fail("stream bus: fatal error");
            }
            continue;
        }
        for v in &views[..n] {
            // SAFETY: the view is valid until the batch is committed.
            rate.check(seq_of(unsafe {
                std::slice::from_raw_parts(v.ptr.cast::<u8>(), v.actual_size)
            }));
        }
        unsafe { sys::tachyon_commit_rx_batch(bus.0, views.as_ptr(), n) };
    }
    rate.report();
    drop(bus);
    let _ = std::fs::remove_file(path);
}

fn main() {
    let a = Args::parse("bench-riyaneel");
    match a.role.as_str() {
        "ping" => ping(&a),
        "echo" => echo(&a),
        "pub" => publish(&a),
        _ => subscribe(&a),
    }
}
