//! Allocation budget of the delivery hot path, counted by a per-thread
//! counting allocator (this binary's global allocator): recording a
//! delivery's telemetry allocates nothing once warm, and a local fan-out
//! allocates the same whatever the number of recipients.
//!
//! One test function: the Prometheus recorder is global and installed once.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use tandem_monitoring::source::EmptySource;
use tandem_monitoring::{Monitoring, MonitoringConfig};
use tandem_protocol::Transport;
use tandem_server::broker::memory::MemoryBroker;
use tandem_server::config::Config;
use tandem_server::manager::{AttachRequest, Attached, ConnectionManager, Limits};
use tandem_server::session::connection::{Next, Outbound};
use tandem_server::session::identity::Identity;
use tandem_server::telemetry::{self as ev, Telemetry};

const HISTORY: usize = 4;
const CHANNEL: &str = "room:bench";

fn manager() -> ConnectionManager {
    let monitoring = Monitoring::new(&MonitoringConfig::default(), "test", Arc::new(EmptySource), None);
    let mut limits = Limits::from_config(&Config::default());
    limits.history_size = HISTORY;
    ConnectionManager::new(limits, Telemetry::new(monitoring), Arc::new(MemoryBroker))
}

fn attach(m: &ConnectionManager, i: usize) -> Attached {
    let who = Identity { player_id: format!("p{i}"), channels: None, publish: None, dev_mode: false };
    let req = AttachRequest {
        transport: if i % 2 == 0 { Transport::WebSocket } else { Transport::Sse },
        session_id: None,
        last_seq: None,
        channels: vec![CHANNEL.to_owned()],
        granted: Vec::new(),
        started: Instant::now(),
        remote_connections: 0,
        adopt: None,
        positions: Vec::new(),
    };
    m.attach(&who, req).unwrap()
}

/// What a connection's writer does: takes everything queued. Returns the
/// deliveries taken.
fn drain(links: &[Attached]) -> usize {
    let mut deliveries = 0;
    for a in links {
        while let Next::Send(item) = a.conn.next() {
            deliveries += usize::from(matches!(item, Outbound::Delivery { .. }));
        }
    }
    deliveries
}

/// Allocations (count, bytes) of one publication to `links`, after enough
/// publications that every history and queue has reached its size.
fn one_publication(m: &ConnectionManager, links: &[Attached]) -> (u64, u64) {
    let data = RawValue::from_string(r#"{"text":"hello"}"#.to_owned()).unwrap();
    for _ in 0..HISTORY + 2 {
        m.publish(CHANNEL, "tick", &data, "api", None).unwrap();
        assert_eq!(drain(links), links.len());
    }
    let info = allocation_counter::measure(|| {
        let published = m.publish(CHANNEL, "tick", &data, "api", None).unwrap();
        assert_eq!(published.fanout.delivered_connections, links.len());
    });
    assert_eq!(drain(links), links.len());
    (info.count_total, info.bytes_total)
}

#[test]
fn delivery_telemetry_and_fan_out_allocate_nothing_per_recipient() {
    // The counter is live: this would pass vacuously without it.
    let probe = allocation_counter::measure(|| drop(std::hint::black_box(vec![0u8; 64])));
    assert_eq!(probe.count_total, 1);

    // The real recorder, so the per-delivery counter is a live Prometheus
    // handle (its upkeep thread allocates on its own thread, not counted).
    let prometheus = tandem_monitoring::recorder::install().unwrap();
    let m = manager();
    let a = attach(&m, 0);
    let ids = a.ids();

    // Recording one delivery: counter, HDR window and Prometheus buckets.
    // Warm: the first sample allocates the window's histogram.
    ev::message_delivered(m.telemetry(), ids, 1, Duration::from_micros(300));
    let info = allocation_counter::measure(|| {
        for seq in 0..10_000u64 {
            ev::message_delivered(m.telemetry(), ids, seq, Duration::from_micros(100 + seq * 37));
        }
    });
    assert_eq!((info.count_total, info.bytes_total), (0, 0), "{info:?}");
    // ...and every one of them was recorded.
    let text = prometheus.render();
    assert!(text.contains("tandem_messages_delivered_total{transport=\"websocket\"} 10001"), "{text}");
    let mut text = String::new();
    m.telemetry().monitoring.performance.render_prometheus(&mut text);
    assert!(text.contains("tandem_message_delivery_seconds_count 10001"), "{text}");

    // A whole local fan-out: what one publication allocates (its id, its
    // frame, the counters' keys) must not grow with its recipients.
    let mut links = vec![a];
    links.extend((1..10).map(|i| attach(&m, i)));
    drain(&links);
    let (count_10, bytes_10) = one_publication(&m, &links);
    links.extend((10..400).map(|i| attach(&m, i)));
    drain(&links);
    let (count_400, bytes_400) = one_publication(&m, &links);
    assert_eq!(count_10, count_400, "allocations for 10 vs 400 recipients");
    assert_eq!(bytes_10, bytes_400, "bytes for 10 vs 400 recipients");
    assert!(count_10 > 0, "the publication itself allocates: the counter saw the fan-out");
}
