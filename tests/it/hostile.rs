//! Hostile requests and faults against a spawned `categorizer serve` process: limits that hold
//! before the cost is paid, connections that cannot hold the server, shutdown that ends.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::stored_model;

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `categorizer serve` on a model trained here, with `env` settings; waits until it is ready.
fn serve(dir: &Path, env: &[(&str, &str)]) -> (Child, u16) {
    stored_model(dir, 3);
    let port = free_port();
    let mut c = crate::support::categorizer();
    c.args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .arg("--models")
        .arg(dir.join("models3"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    assert!(
        crate::support::wait_ready(&mut child, port),
        "the server did not start"
    );
    (child, port)
}

/// The process's peak resident memory (VmHWM) in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

/// Sends `body` to `path` as one HTTP/1.1 request; returns the status and the response text.
fn post(port: u16, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    // The server may answer (413) and close before the body is all sent.
    let _ = s.write_all(body);
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn an_oversized_customer_list_is_refused_at_the_limit_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (child, port) = serve(dir.path(), &[]);
    // 60 MiB of `1,`: 31 million "customers" under the 64 MiB body limit. Before, the whole
    // list was parsed into rows first: 6.4 GB of RSS and 16 s before the 413.
    let body = {
        let mut b = b"{\"customers\":[".to_vec();
        b.extend(b"1,".repeat(30 * 1024 * 1024));
        b.extend(b"1]}");
        b
    };
    let before = peak_rss(child.id());
    let (status, text) = post(port, "/api/v1/predict", "application/json", &body);
    let after = peak_rss(child.id());
    assert_eq!(status, 413, "{}", &text[..text.len().min(500)]);
    assert!(text.contains("too_many_customers"), "{text}");
    let growth = after.saturating_sub(before);
    let bound = 8 * body.len() as u64 + (64 << 20);
    assert!(
        growth <= bound,
        "peak RSS grew {} MB for a {} MB body (bound {} MB)",
        growth >> 20,
        body.len() >> 20,
        bound >> 20
    );
    // The form takes kilobytes: a big form body is refused before it is read.
    let (status, _) = post(
        port,
        "/",
        "application/x-www-form-urlencoded",
        &vec![b'a'; 200 * 1024],
    );
    assert_eq!(status, 413);
    stop(child);
}

#[test]
fn a_request_head_trickled_a_byte_at_a_time_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    // Bytes every 100 ms keep the 5 s idle clock from ever running out: only the head's own
    // limit (1 s) can close the connection before the 200 bytes (20 s) are sent.
    let (child, port) = serve(
        dir.path(),
        &[
            ("CATEGORIZER__SERVER__REQUEST_TIMEOUT_MS", "1000"),
            ("CATEGORIZER__SERVER__IDLE_TIMEOUT_MS", "5000"),
            ("CATEGORIZER__SERVER__HEADER_READ_TIMEOUT_MS", "1000"),
        ],
    );
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n".to_vec();
    head.resize(200, b'a');
    let mut sent = 0;
    for b in &head {
        if slow.write_all(&[*b]).is_err() {
            break;
        }
        sent += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 64];
    let closed = sent < head.len() || matches!(slow.read(&mut buf), Ok(0) | Err(_));
    assert!(
        sent < head.len(),
        "all {sent} bytes of the head were taken, closed: {closed}"
    );
    // A whole head sent at once is answered as before.
    let mut quick = TcpStream::connect(("127.0.0.1", port)).unwrap();
    quick
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    quick.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    stop(child);
}

#[test]
fn a_half_sent_request_is_closed_and_does_not_hold_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, port) = serve(
        dir.path(),
        &[
            ("CATEGORIZER__SERVER__REQUEST_TIMEOUT_MS", "500"),
            ("CATEGORIZER__SERVER__IDLE_TIMEOUT_MS", "1500"),
            ("CATEGORIZER__SERVER__SHUTDOWN_GRACE_MS", "1000"),
        ],
    );
    let half = |s: &mut TcpStream| {
        s.write_all(b"POST /api/v1/predict HTTP/1.1\r\nHost: x\r\nContent-Le")
            .unwrap();
    };
    // The server closes a connection that stopped mid-head once it has been idle too long.
    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    half(&mut idle);
    let start = Instant::now();
    let mut buf = [0u8; 64];
    let closed = matches!(idle.read(&mut buf), Ok(0) | Err(_));
    assert!(closed, "the half-sent request was answered");
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "the connection was held open"
    );

    // SIGTERM with another half-sent request open: the process still ends.
    let mut open = TcpStream::connect(("127.0.0.1", port)).unwrap();
    half(&mut open);
    std::thread::sleep(Duration::from_millis(200));
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let start = Instant::now();
    let exited = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > Duration::from_secs(20) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(open);
    match exited {
        Some(status) => assert!(status.success(), "{status}"),
        None => {
            stop(child);
            panic!("the server did not exit within 20 s of SIGTERM");
        }
    }
}

#[test]
fn a_model_file_that_is_not_its_manifests_is_refused() {
    use categorizer::inference::SessionOptions;
    use categorizer::registry::ServedModel;
    let dir = tempfile::tempdir().unwrap();
    let version = stored_model(dir.path(), 4);
    ServedModel::open(&version, &SessionOptions::default()).unwrap();
    let model = version.join(categorizer::registry::store::MODEL_FILE);
    let mut bytes = std::fs::read(&model).unwrap();
    bytes.push(0);
    std::fs::write(&model, &bytes).unwrap();
    let e = ServedModel::open(&version, &SessionOptions::default())
        .err()
        .expect("a damaged model loads")
        .to_string();
    assert!(e.contains("SHA-256"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_copied_under_another_name_is_not_reloaded_on_every_poll() {
    use std::sync::atomic::Ordering;

    use categorizer::inference::SessionOptions;
    use categorizer::registry::ServedModel;
    use categorizer::registry::store::{LocalStore, ModelStore};

    let dir = tempfile::tempdir().unwrap();
    let version = stored_model(dir.path(), 6);
    let store = LocalStore::new(dir.path().join("models6"));
    // The same files under a new name, made current: the manifest still says the old name.
    let copy = "20990101T000000Z-c0c0c0c0";
    let files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&version)
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    store.put(copy, &refs).unwrap();
    store.set_current(copy).unwrap();
    let model = ServedModel::open(&version, &SessionOptions::default()).unwrap();
    let (_, state) = crate::support::start_model(model, crate::support::settings(), None).await;
    categorizer::registry::follow::watch_store(
        state.clone(),
        std::sync::Arc::new(store),
        None,
        SessionOptions::default(),
        Duration::from_millis(50),
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let m = state.metrics();
    assert_eq!(
        m.model_switches.load(Ordering::Relaxed),
        0,
        "reloaded the same model"
    );
    assert_eq!(m.model_refusals.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_pieces_or_split_across_sessions_gets_the_same_answers() {
    use categorizer::inference::SessionOptions;
    use categorizer::registry::ServedModel;

    let dir = tempfile::tempdir().unwrap();
    let version = stored_model(dir.path(), 7);
    let customers: Vec<serde_json::Value> = (0..2500)
        .map(|i| crate::support::customer(20 + (i % 60)))
        .collect();
    let body = serde_json::json!({ "customers": customers }).to_string();
    let mut answers = Vec::new();
    // Whole; in pieces of 300 rows; whole but run in one part per core (2 on CI).
    for (max_batch_rows, split_rows) in [(100_000, 0), (300, 0), (100_000, 1000)] {
        let mut settings = crate::support::settings();
        settings.server.batcher.max_batch_rows = max_batch_rows;
        settings.server.batcher.split_rows = split_rows;
        let model = ServedModel::open(&version, &SessionOptions::default()).unwrap();
        let (url, _) = crate::support::start_model(model, settings, None).await;
        let r = reqwest::Client::new()
            .post(format!("{url}/api/v1/predict?explain=true"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = crate::support::json_body(r).await;
        assert_eq!(v["predictions"].as_array().unwrap().len(), 2500);
        answers.push(v["predictions"].clone());
    }
    // The same segments and explanations; probabilities equal up to the kernels' rounding for
    // other batch sizes.
    for other in &answers[1..] {
        let (a, b) = (answers[0].as_array().unwrap(), other.as_array().unwrap());
        for (i, (a, b)) in a.iter().zip(b).enumerate() {
            assert_eq!(a["segment"], b["segment"], "row {i}");
            assert_eq!(
                a["explanation"]["runner_up"], b["explanation"]["runner_up"],
                "row {i}"
            );
            assert!(a["explanation"]["top_features"].is_array(), "row {i}: {a}");
            let (pa, pb) = (
                a["probabilities"].as_array().unwrap(),
                b["probabilities"].as_array().unwrap(),
            );
            assert_eq!(pa.len(), pb.len());
            for (x, y) in pa.iter().zip(pb) {
                assert!(
                    (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() < 1e-5,
                    "row {i}"
                );
            }
        }
    }
}

/// One GET on a fresh connection, keep-alive asked for: the status and the response head.
fn get_head(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    // The head and a short body arrive together; a kept-alive connection stays open.
    while !text.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&text).to_lowercase();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// SIGTERM starts a drain: not ready, still serving (every answer closing its connection),
/// then the process stops accepting and exits 0.
#[test]
fn sigterm_drains_not_ready_but_serving_then_exits() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, port) = serve(
        dir.path(),
        &[
            ("CATEGORIZER__SERVER__DRAIN_MS", "4000"),
            ("CATEGORIZER__SERVER__SHUTDOWN_GRACE_MS", "1000"),
        ],
    );
    let (ready, head) = get_head(port, "/readyz");
    assert_eq!(ready, 200, "{head}");
    assert!(!head.contains("connection: close"), "{head}");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // The drain: readiness fails at once (poll until the signal has been handled), while
    // liveness and predictions are answered on new connections.
    let start = Instant::now();
    let (mut status, mut head) = get_head(port, "/readyz");
    while status == 200 && start.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(20));
        (status, head) = get_head(port, "/readyz");
    }
    assert_eq!(status, 503, "{head}");
    assert!(head.contains("connection: close"), "{head}");
    let (live, head) = get_head(port, "/healthz");
    assert_eq!(live, 200, "{head}");
    assert!(head.contains("connection: close"), "{head}");
    let body =
        serde_json::to_vec(&serde_json::json!({"customers": [crate::support::customer(40)]}))
            .unwrap();
    let (predicted, text) = post(port, "/api/v1/predict", "application/json", &body);
    assert_eq!(predicted, 200, "{text}");
    assert!(
        child.try_wait().unwrap().is_none(),
        "exited during the drain"
    );
    // After the drain and the grace: gone, with status 0.
    let exited = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > Duration::from_secs(20) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    match exited {
        Some(status) => assert!(status.success(), "{status}"),
        None => {
            stop(child);
            panic!("the server did not exit within 20 s of SIGTERM");
        }
    }
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}
