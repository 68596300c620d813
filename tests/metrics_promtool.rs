//! `/metrics` output checked by Prometheus's own `promtool check metrics` (Debian package `prometheus`).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{free_port, http_exchange, promtool, TestNode};

#[test]
fn metrics_pass_promtool_and_cover_the_reference_set() {
    let port = free_port();
    // A bare port means loopback.
    let node = TestNode::start(&[&format!("-metricsbind={port}"), "-dbcache=16"]);
    assert_eq!(node.metricsport, Some(port));
    node.cli(&["getconnectioncount"]).ok();
    node.cli(&["setban", "1.2.3.4", "add"]).ok();
    let _ = node.cli(&["nosuchmethod"]);

    let (status, head, body) = http_exchange(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200);
    assert!(head.contains("Content-Type: text/plain; version=0.0.4"), "{head}");

    let mut child = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child.stdin.take().expect("stdin").write_all(body.as_bytes()).expect("feed promtool");
    let out = child.wait_with_output().expect("promtool output");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    for family in [
        "bsv_relay_build_info{",
        "bsv_relay_start_time_seconds ",
        "bsv_relay_peers{conn_type=\"full\",direction=\"inbound\"} 0",
        "bsv_relay_peer_connections_total{direction=\"outbound\",result=\"failed\"} 0",
        "bsv_relay_peer_disconnections_total{reason=\"ping_timeout\"} 0",
        "bsv_relay_peer_ping_seconds_bucket",
        "bsv_relay_p2p_messages_received_total{command=\"tx\"} 0",
        "bsv_relay_p2p_sent_bytes_total{command=\"other\"} 0",
        "bsv_relay_p2p_decode_errors_total{reason=\"bad_checksum\"} 0",
        "bsv_relay_misbehavior_events_total{reason=",
        "bsv_relay_bans_total{source=\"manual\"} 1",
        "bsv_relay_banned_entries 1",
        "bsv_relay_rpc_requests_total{method=\"getconnectioncount\",result=\"ok\"} 1",
        "bsv_relay_rpc_requests_total{method=\"unknown\",result=\"error\"} 1",
        "bsv_relay_rpc_request_duration_seconds_bucket",
        // -dbcache=16: seven eighths of 16 MiB for coins.
        "bsv_relay_utxo_cache_bytes{kind=\"limit\"} 14680064",
        "bsv_relay_utxo_cache_flushes_total ",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(body.contains(family), "missing {family}");
    }
    // Labels never carry caller-supplied strings.
    assert!(!body.contains("nosuchmethod"));

    let (status, _, _) = http_exchange(port, b"GET /other HTTP/1.1\r\n\r\n");
    assert_eq!(status, 404);
}
