//! The web form in a real headless browser: Debian's Chromium driven over the W3C WebDriver
//! protocol by `chromedriver` (a few plain HTTP calls, no client library).
//!
//! Skipped when no chromedriver is installed, unless CATEGORIZER_REQUIRE_BROWSER_TEST=1 (CI
//! sets it), which turns a missing browser into a failure. With CATEGORIZER_SCREENSHOTS=DIR
//! the result and model pages are saved there as PNG files.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{customer, start, stored_model};

fn chromedriver() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("CHROMEDRIVER").map(PathBuf::from),
        Some("/usr/bin/chromedriver".into()),
        Some("/usr/lib/chromium/chromedriver".into()),
    ];
    candidates.into_iter().flatten().find(|p| p.is_file())
}

fn chromium() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("CHROMIUM").map(PathBuf::from),
        Some("/usr/bin/chromium".into()),
        Some("/usr/lib/chromium/chromium".into()),
    ];
    candidates.into_iter().flatten().find(|p| p.is_file())
}

/// The driver process, killed when dropped.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A WebDriver session.
struct Session {
    client: reqwest::Client,
    base: String,
}

impl Session {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut rq = self.client.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            rq = rq
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = rq.send().await.unwrap();
        let status = r.status();
        let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert!(status.is_success(), "WebDriver {path}: {status} {v}");
        v["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .post("/element", json!({"using": "css selector", "value": css}))
            .await;
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.get(&format!("/element/{e}/text"))
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.post(&format!("/element/{e}/click"), json!({})).await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.post(&format!("/element/{e}/clear"), json!({})).await;
        self.post(&format!("/element/{e}/value"), json!({"text": text}))
            .await;
    }

    async fn screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("CATEGORIZER_SCREENSHOTS") else {
            return;
        };
        let b64 = self.get("/screenshot").await;
        let png = decode_base64(b64.as_str().unwrap());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(PathBuf::from(dir).join(name), png).unwrap();
    }
}

fn decode_base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=' && c != b'\n').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let v: Vec<u32> = chunk.iter().map(|&c| val(c) as u32).collect();
        let n = v.iter().fold(0u32, |acc, x| acc << 6 | x) << (6 * (4 - v.len()));
        out.extend_from_slice(&n.to_be_bytes()[1..v.len()]);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_fills_the_form_in_chromium_and_reads_the_segment() {
    let (Some(driver_bin), Some(browser)) = (chromedriver(), chromium()) else {
        assert!(
            std::env::var("CATEGORIZER_REQUIRE_BROWSER_TEST").as_deref() != Ok("1"),
            "CATEGORIZER_REQUIRE_BROWSER_TEST=1 but chromium/chromedriver are not installed \
             (apt-get install chromium chromium-driver)"
        );
        eprintln!("skipped: chromium and chromedriver are not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (url, _) = start(&stored_model(dir.path(), 1), crate::support::settings()).await;

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let _driver = Driver(
        Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client = reqwest::Client::new();
    let driver_url = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if client
            .get(format!("{driver_url}/status"))
            .send()
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let profile = dir.path().join("chromium-profile");
    let caps = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": browser,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--no-first-run",
                     "--window-size=1280,1800",
                     format!("--user-data-dir={}", profile.display())]
        }
    }}});
    let r = client
        .post(format!("{driver_url}/session"))
        .header("content-type", "application/json")
        .body(caps.to_string())
        .send()
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let id = v["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
        .to_string();
    let s = Session {
        client: client.clone(),
        base: format!("{driver_url}/session/{id}"),
    };

    // Element look-ups wait for the page that a click loads.
    s.post("/timeouts", json!({"implicit": 10_000})).await;

    // Fill in every field as a person would: type numbers, pick from the select boxes.
    s.post("/url", json!({"url": format!("{url}/")})).await;
    let c = customer(41);
    for f in categorizer::schema::FEATURES {
        let v = &c[f.key];
        if f.choices.is_empty() {
            s.type_into(&format!("#{}", f.key), &v.to_string()).await;
        } else {
            s.click(&format!("#{} option[value=\"{}\"]", f.key, v))
                .await;
        }
    }
    s.click("#predict").await;
    let heading = s.text("#result h1").await;
    assert!(heading.starts_with("Cluster "), "{heading}");
    let segment: usize = s.text("#segment").await.parse().unwrap();
    assert!(segment < 3, "{segment}");
    assert!(!s.text("#segment-name").await.is_empty());
    let why = s.text("#explanation").await;
    assert!(
        why.starts_with("Closer to ") || why.starts_with("Placed in "),
        "{why}"
    );
    s.screenshot("result.png").await;

    // A bad value: the form comes back with the error next to the field and the input kept.
    s.type_into("#Age", "-7").await;
    s.click("#predict").await;
    let error = s.text("#Age-error").await;
    assert!(error.contains("outside"), "{error}");
    let kept = s
        .get(&format!("/element/{}/property/value", s.find("#Age").await))
        .await;
    assert_eq!(kept, "-7");
    let income = s
        .get(&format!(
            "/element/{}/property/value",
            s.find("#Income").await
        ))
        .await;
    assert_eq!(income, "52000.0", "the other fields keep their values");
    s.screenshot("form-error.png").await;

    s.post("/url", json!({"url": format!("{url}/model")})).await;
    assert!(s.text("h1").await.starts_with("Model "));
    s.screenshot("model.png").await;

    s.call(reqwest::Method::DELETE, "", None).await;
}
