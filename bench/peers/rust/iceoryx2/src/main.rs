//! iceoryx2 publish-subscribe between two processes, as make bench-peers
//! drives every system (peerbench's contract). The round trip mirrors
//! iceoryx2's own `benchmarks/publish-subscribe`: two services (NAME-a2b,
//! NAME-b2a) of `[u8]` slices, history 0, subscriber buffer 1 with safe
//! overflow, the next sample loaned before the wait, `receive()` busy-polled.
//! Unlike that benchmark (which leaves payloads uninitialised and runs its
//! two participants as threads of one process) the ping writes its seq, the
//! echo copies the 64 received bytes into its reply and the ping checks the
//! seq, as for every system here; and the two participants are processes.
//!
//! The stream (NAME-stream) keeps every message: a 4096-sample subscriber
//! buffer, no overflow, and a publisher that retries until delivered.
use std::time::Instant;

use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use peerbench::{Args, MSG, Rate, Rtts, STOP, fail, fill, pin, retry, seq_of};

type Pub = Publisher<ipc::Service, [u8], ()>;
type Sub = Subscriber<ipc::Service, [u8], ()>;
type PubSub =
    iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, [u8], ()>;

/// Samples the stream's subscriber buffers: as many messages as Tachyon's
/// own benchmark ring holds.
const STREAM_BUFFER: usize = 4096;

fn or_fail<T, E: std::fmt::Debug>(what: &str) -> impl FnOnce(E) -> T + '_ {
    move |e| fail(&format!("{what}: {e:?}"))
}

fn node() -> Node<ipc::Service> {
    NodeBuilder::new()
        .create::<ipc::Service>()
        .unwrap_or_else(or_fail("create node"))
}

/// A round-trip service as the iceoryx2 benchmark configures it.
fn rtt_service(node: &Node<ipc::Service>, name: &str) -> PubSub {
    let sn = ServiceName::new(name).unwrap_or_else(or_fail("service name"));
    node.service_builder(&sn)
        .publish_subscribe::<[u8]>()
        .max_publishers(1)
        .max_subscribers(1)
        .history_size(0)
        .subscriber_max_buffer_size(1)
        .enable_safe_overflow(true)
        .open_or_create()
        .unwrap_or_else(or_fail("open or create service"))
}

fn publisher(s: &PubSub) -> Pub {
    s.publisher_builder()
        .initial_max_slice_len(MSG)
        .create()
        .unwrap_or_else(or_fail("create publisher"))
}

/// Loans a sample, writes the 64 bytes of msg into it and sends it.
fn send(p: &Pub, msg: &[u8; MSG]) {
    let s = p.loan_slice_uninit(MSG).unwrap_or_else(or_fail("loan"));
    s.write_from_slice(msg)
        .send()
        .unwrap_or_else(or_fail("send"));
}

/// Waits until the other process's subscriber is registered on `out`.
fn await_subscriber(a: &Args, out: &PubSub) {
    retry("wait for the other process's subscriber", a.timeout, || {
        if out.dynamic_config().number_of_subscribers() > 0 {
            Ok(())
        } else {
            Err("none yet")
        }
    });
}

fn receive(s: &Sub) -> iceoryx2::sample::Sample<ipc::Service, [u8], ()> {
    loop {
        if let Some(sample) = s.receive().unwrap_or_else(or_fail("receive")) {
            return sample;
        }
    }
}

/// This side's ports of the two round-trip services: the ping publishes on
/// NAME-a2b and subscribes to NAME-b2a, the echo the other way round. Waits
/// until the other side's subscriber is there.
fn rtt_ports(a: &Args, node: &Node<ipc::Service>, ping_side: bool) -> (Pub, Sub) {
    let a2b = rtt_service(node, &format!("{}-a2b", a.name));
    let b2a = rtt_service(node, &format!("{}-b2a", a.name));
    let (out, back) = if ping_side { (a2b, b2a) } else { (b2a, a2b) };
    let tx = publisher(&out);
    let rx: Sub = back
        .subscriber_builder()
        .create()
        .unwrap_or_else(or_fail("create subscriber"));
    await_subscriber(a, &out);
    (tx, rx)
}

fn ping(a: &Args) {
    let node = node();
    let (tx, rx) = rtt_ports(a, &node, true);
    pin(a.pin);
    let mut rtts = Rtts::with_capacity(a.count);
    let mut msg = [0u8; MSG];
    for i in 0..a.warmup + a.count {
        let t0 = Instant::now();
        msg[..8].copy_from_slice(&i.to_le_bytes());
        send(&tx, &msg);
        let got = receive(&rx);
        if got.payload().len() != MSG || seq_of(got.payload()) != i {
            fail(&format!(
                "round trip {i}: got seq {}",
                seq_of(got.payload())
            ));
        }
        drop(got);
        if i >= a.warmup {
            rtts.record(t0);
        }
    }
    msg[..8].copy_from_slice(&STOP.to_le_bytes());
    send(&tx, &msg);
    rtts.report();
}

fn echo(a: &Args) {
    pin(a.pin);
    let node = node();
    let (tx, rx) = rtt_ports(a, &node, false);
    loop {
        let got = receive(&rx);
        if seq_of(got.payload()) == STOP {
            break;
        }
        send(
            &tx,
            got.payload()
                .try_into()
                .unwrap_or_else(or_fail("received message size")),
        );
    }
}

fn stream_service(node: &Node<ipc::Service>, a: &Args) -> PubSub {
    let sn =
        ServiceName::new(&format!("{}-stream", a.name)).unwrap_or_else(or_fail("service name"));
    node.service_builder(&sn)
        .publish_subscribe::<[u8]>()
        .max_publishers(1)
        .max_subscribers(1)
        .history_size(0)
        .subscriber_max_buffer_size(STREAM_BUFFER)
        .enable_safe_overflow(false)
        .open_or_create()
        .unwrap_or_else(or_fail("open or create service"))
}

fn publish(a: &Args) {
    let node = node();
    let s = stream_service(&node, a);
    let tx: Pub = s
        .publisher_builder()
        .initial_max_slice_len(MSG)
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()
        .unwrap_or_else(or_fail("create publisher"));
    await_subscriber(a, &s);
    pin(a.pin);
    let mut msg = [0u8; MSG];
    for seq in 0..a.count {
        fill(&mut msg, seq);
        send(&tx, &msg);
    }
    // The subscriber's samples come from this publisher's segment: stay
    // until it has taken them all (it exits then).
    retry("wait for the subscriber to finish", a.timeout * 4, || {
        if s.dynamic_config().number_of_subscribers() == 0 {
            Ok(())
        } else {
            Err("still reading")
        }
    });
}

fn subscribe(a: &Args) {
    pin(a.pin);
    let node = node();
    let s = stream_service(&node, a);
    let rx: Sub = s
        .subscriber_builder()
        .buffer_size(STREAM_BUFFER)
        .create()
        .unwrap_or_else(or_fail("create subscriber"));
    let mut rate = Rate::new(a.warmup);
    while rate.next() < a.count {
        rate.check(seq_of(receive(&rx).payload()));
    }
    rate.report();
}

fn main() {
    set_log_level(LogLevel::Error);
    let a = Args::parse("bench-iceoryx2");
    match a.role.as_str() {
        "ping" => ping(&a),
        "echo" => echo(&a),
        "pub" => publish(&a),
        _ => subscribe(&a),
    }
}
