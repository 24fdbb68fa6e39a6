package genrust_test

// consumerRingTest is tests/ring.rs of the consumer crate: the ring client
// (tachyon-ring's default feature) as a user's crate meets it, over the
// generated seed message.
const consumerRingTest = `//! The ring client from a user's crate.

use std::time::Duration;

use tachyon_consumer::book_tsch::Tape;
use tachyon_consumer::message_tsch::Message;
use tachyon_ring::ring::{Error, Options, Publisher, SubscribeOptions, Subscriber};

#[test]
fn a_ring_round_trip_with_generated_messages() {
    let name = format!("t-consumer-{}", std::process::id());
    let mut publisher = Publisher::<Message>::create(&name, Options::default()).unwrap();
    let mut sub = Subscriber::<Message>::attach(&name, SubscribeOptions::default()).unwrap();
    let err = Subscriber::<Tape>::attach(&name, SubscribeOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Mismatch { field: "fingerprint", .. }), "{err}");
    for seq in 0..100 {
        let m = publisher.claim().unwrap();
        m.seq = seq;
        m.payload[0] = seq as u8;
        publisher.commit().unwrap();
    }
    publisher.close().unwrap();
    let got: Vec<u64> = sub
        .messages(Some(Duration::from_secs(5)))
        .map(|m| m.unwrap().seq)
        .collect();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    assert!(!std::path::Path::new(&format!("/dev/shm/{name}")).exists());
}
`
