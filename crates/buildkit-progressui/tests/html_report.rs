//! The HTML report (`buildkit_progressui::report::write_html`) in a real browser: Debian's
//! `chromium`, headless (`.ci/run` installs it).
//!
//! - The DOM after the page's script ran (`--dump-dom`): one `.step` row per timeline entry, in
//!   timeline order, with its `data-digest`, its outcome as a class and `critical` exactly on
//!   the critical path; one `.bar` per merged run interval; the totals; a step named in the
//!   address shows its error and last log lines in the details panel.
//! - A screenshot (`--screenshot`, 1400×1000) is written and is a real picture.
//! - No network request: Chromium runs with every request sent to a proxy that this test
//!   listens on, and the proxy must see no request of the page (Chromium's own background
//!   services, which connect at every start, are told apart by their request lines: see
//!   [`browser_service`]); a page that loads an image is seen, so the check can fail. The
//!   page's text holds no `http://` or `https://` outside the report's JSON, and it carries
//!   the Content Security Policy that forbids fetching.
//!
//! The reports are the library's (`ReportBuilder`, `write_json`) of corpus recordings —
//! `bktrace demo`'s, a failed `RUN`, a build the client left with a step running — and a
//! 300-step build made here. Without `chromium` on `PATH` the browser tests print `SKIPPED: chromium not
//! found` and pass, unless `CI=true`, where they fail.
//!
//! The screenshot in the workspace README (`docs/report.png`, the report of the recording
//! `bktrace demo` replays) is made by this test too:
//!
//! ```text
//! UPDATE_SCREENSHOT=1 cargo test -p buildkit-progressui --test html_report
//! ```
//!
//! (never under `CI=true`); otherwise the test checks that the committed picture is a PNG of
//! a reasonable size.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use buildkit_progressui::report::{ReportBuilder, write_html, write_json};
use serde_json::{Value, json};

/// How long one Chromium run may take before the test gives up on it: generous, it takes
/// about a second (the machine may be busy compiling).
const BROWSER_TIMEOUT: Duration = Duration::from_secs(180);

/// The policy the page must carry.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; \
                   img-src data:";

/// The report JSON (`--format json`) of the corpus recording `daemon/name`, made by the
/// library from the recording's events, as `bktrace report --format json` makes it.
fn report_json(daemon: &str, name: &str) -> String {
    let recording = workspace_tests::corpus::get(daemon, name);
    let body = std::fs::read(&recording.path).expect("the recording");
    let mut builder = ReportBuilder::new();
    for event in workspace_tests::body::decode_body(&body, 64 * 1024) {
        builder.apply(&event);
    }
    let mut json = Vec::new();
    write_json(&builder.finish(), &mut json).expect("writing to a Vec");
    String::from_utf8(json).expect("JSON is UTF-8")
}

/// The report of `bktrace demo`'s recording (`docker-28.5/multistage-parallel`).
fn demo_json() -> String {
    report_json("docker-28.5", "multistage-parallel")
}

fn html(json: &str, title: &str) -> String {
    let mut out = Vec::new();
    write_html(json, title, &mut out).expect("writing to a Vec");
    String::from_utf8(out).expect("the page is UTF-8")
}

// ---- the browser ------------------------------------------------------------------------------

/// `chromium` on `PATH`; `None` after a `SKIPPED` line when there is none, a panic under
/// `CI=true`.
fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("chromium"))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        if workspace_tests::ci() {
            panic!("chromium not found on PATH (.ci/run installs Debian's chromium)");
        }
        let test = std::thread::current()
            .name()
            .map_or_else(String::new, |name| format!(" [{name}]"));
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: chromium not found; set CI=true to make this a failure{test}"
        );
    }
    found
}

/// A TCP listener standing in for an HTTP proxy: it accepts connections, reads each one's
/// request line (`CONNECT host:443 HTTP/1.1`, `GET http://host/… HTTP/1.1`) and closes it at
/// once, so a page waiting for a response fails quickly instead of hanging.
struct Proxy {
    addr: SocketAddr,
    seen: mpsc::Receiver<(SocketAddr, String)>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The first line our own connections send to the proxy.
const MARKER: &str = "bktrace-test-marker";

impl Proxy {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
        let addr = listener.local_addr().unwrap();
        let (tx, seen) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let Ok(peer) = stream.peer_addr() else {
                        continue;
                    };
                    // A client of a proxy sends its request at once; the bound only keeps a
                    // silent one from stopping the loop.
                    let _ = stream.set_read_timeout(Some(BROWSER_TIMEOUT));
                    let mut line = String::new();
                    let _ = BufReader::new(stream.take(4096)).read_line(&mut line);
                    let _ = tx.send((peer, line.trim_end().to_string()));
                }
            }
        });
        Proxy {
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn connect_marker(&self) -> SocketAddr {
        let mut marker = TcpStream::connect(self.addr).expect("connecting to the proxy");
        marker
            .write_all(format!("{MARKER}\r\n").as_bytes())
            .expect("writing to the proxy");
        marker.local_addr().unwrap()
    }

    /// The request lines of the connections made to the proxy so far. To be called after the
    /// browser exited: a connection of our own, made now, is accepted after every connection
    /// already queued, so all of the browser's are counted once ours arrives.
    fn requests(&self) -> Vec<String> {
        let marker = self.connect_marker();
        let mut seen = Vec::new();
        loop {
            match self.seen.recv_timeout(BROWSER_TIMEOUT) {
                Ok((peer, _)) if peer == marker => return seen,
                Ok((_, line)) => seen.push(line),
                Err(e) => panic!("the proxy thread did not see our own connection: {e}"),
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which sees `stop` and ends.
        self.connect_marker();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Whether a request line is one of Chromium's own background services rather than a
/// page's: a request to one of Google's service domains. Chromium 156 makes some at every
/// start, with `about:blank` too (seen: `clients2.google.com` network time,
/// `update.googleapis.com` component update, `accounts.google.com`), even with
/// `--disable-background-networking --disable-component-update --disable-sync` (and with
/// `--disable-extensions --disable-default-apps --disable-features=NetworkTimeServiceQuerying`);
/// whether one comes before the browser exits varies, so they are told apart instead of
/// silenced. The page names no address at all (checked on its text), so none of its requests
/// could go there.
fn browser_service(line: &str) -> bool {
    let mut words = line.split(' ');
    let (Some(method), Some(target)) = (words.next(), words.next()) else {
        return false;
    };
    let authority = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
        .unwrap_or(target)
        .split(['/', '?'])
        .next()
        .unwrap_or("");
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    matches!(method, "CONNECT" | "GET" | "POST")
        && ["google.com", "googleapis.com", "gvt1.com", "gstatic.com"]
            .iter()
            .any(|domain| {
                host.strip_suffix(domain)
                    .is_some_and(|sub| sub.ends_with('.'))
            })
}

#[test]
fn browser_service_requests_are_told_apart_from_a_page_s() {
    for line in [
        "CONNECT accounts.google.com:443 HTTP/1.1",
        "GET http://clients2.google.com/time/1/current?cup2key=1 HTTP/1.1",
        "POST http://update.googleapis.com/service/update2/json HTTP/1.1",
    ] {
        assert!(browser_service(line), "{line}");
    }
    for line in [
        "GET http://bktrace.invalid/pixel.png HTTP/1.1",
        "CONNECT example.com:443 HTTP/1.1",
        "CONNECT evilgoogle.com:443 HTTP/1.1",
        "GET http://google.com.example/x HTTP/1.1",
        MARKER,
        "",
    ] {
        assert!(!browser_service(line), "{line}");
    }
}

/// What one browser run gave.
struct Run {
    /// `--dump-dom`'s output: the DOM after the page's script ran.
    stdout: String,
    /// The request lines of the connections the proxy saw that were not Chromium's own
    /// background services ([`browser_service`]): the page's.
    page_requests: Vec<String>,
}

/// Opens `page` (a file, with an optional `#fragment`) in headless Chromium with `extra`
/// arguments (`--dump-dom`, `--screenshot=…`), every request sent to a proxy of this test,
/// and waits for it to exit (bounded by [`BROWSER_TIMEOUT`]).
fn browse(chromium: &Path, page: &Path, fragment: &str, extra: &[&str]) -> Run {
    let profile = tempfile::tempdir().expect("a temporary profile directory");
    let proxy = Proxy::start();
    let url = format!("file://{}{fragment}", page.display());
    let mut command = Command::new(chromium);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--proxy-server={}", proxy.addr))
        // Loopback addresses go through the proxy too.
        .arg("--proxy-bypass-list=<-loopback>")
        .args(extra)
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = command.spawn().expect("starting chromium");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(BROWSER_TIMEOUT) {
        Ok(output) => output.expect("waiting for chromium"),
        Err(_) => {
            // Only the process this test started, by its id.
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
            panic!("chromium did not exit within {BROWSER_TIMEOUT:?} on {url}");
        }
    };
    assert!(
        output.status.success(),
        "chromium failed ({}) on {url}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Run {
        stdout: String::from_utf8(output.stdout).expect("the DOM is UTF-8"),
        page_requests: proxy
            .requests()
            .into_iter()
            .filter(|line| !browser_service(line))
            .collect(),
    }
}

/// Writes `page` to a file in `dir` and returns its path.
fn page_file(dir: &Path, page: &str) -> PathBuf {
    let path = dir.join("report.html");
    std::fs::write(&path, page).unwrap();
    path
}

// ---- the DOM ----------------------------------------------------------------------------------

/// An element's start tag, as Chromium serializes it.
#[derive(Debug)]
struct Tag {
    attrs: BTreeMap<String, String>,
}

impl Tag {
    fn classes(&self) -> Vec<&str> {
        self.attrs
            .get("class")
            .map_or_else(Vec::new, |c| c.split_whitespace().collect())
    }
    fn has_class(&self, class: &str) -> bool {
        self.classes().contains(&class)
    }
    fn digest(&self) -> Option<&str> {
        self.attrs.get("data-digest").map(String::as_str)
    }
}

/// The start tags of a serialized DOM, in document order: enough of HTML for Chromium's own
/// output (double-quoted attribute values, the text of `<script>` and `<style>` skipped).
fn tags(dom: &str) -> Vec<Tag> {
    let mut tags = Vec::new();
    let mut rest = dom;
    while let Some(at) = rest.find('<') {
        rest = &rest[at + 1..];
        let name_len = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        if name_len == 0 || !rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
            continue;
        }
        let name = rest[..name_len].to_ascii_lowercase();
        rest = &rest[name_len..];
        let mut attrs = BTreeMap::new();
        loop {
            rest = rest.trim_start();
            if rest.starts_with('>') || rest.starts_with("/>") || rest.is_empty() {
                break;
            }
            let key_len = rest
                .find(|c: char| c == '=' || c == '>' || c.is_whitespace())
                .unwrap_or(rest.len());
            let key = rest[..key_len].to_string();
            rest = &rest[key_len..];
            let mut value = String::new();
            if let Some(quoted) = rest.strip_prefix("=\"") {
                let end = quoted.find('"').expect("a closed attribute value");
                value = unescape(&quoted[..end]);
                rest = &quoted[end + 1..];
            }
            attrs.insert(key, value);
        }
        if name == "script" || name == "style" {
            let close = format!("</{name}");
            rest = &rest[rest.find(&close).expect("a closed raw-text element")..];
        }
        tags.push(Tag { attrs });
    }
    tags
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// The serialized content of the `tag` element with `id` (elements of the same name nested
/// in it included).
fn element<'a>(dom: &'a str, tag: &str, id: &str) -> &'a str {
    let open = dom
        .find(&format!(" id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the DOM"));
    let start = open + dom[open..].find('>').unwrap() + 1;
    let (opening, closing) = (format!("<{tag}"), format!("</{tag}>"));
    let mut depth = 1;
    let mut at = start;
    loop {
        let close = at + dom[at..].find(&closing).expect("a closed element");
        match dom[at..close].find(&opening) {
            Some(nested) => {
                depth += 1;
                at += nested + opening.len();
            }
            None => {
                depth -= 1;
                if depth == 0 {
                    return &dom[start..close];
                }
                at = close + closing.len();
            }
        }
    }
}

/// Checks the DOM of `report`'s page: the rows, their classes, the bars, the totals.
fn check_dom(dom: &str, report: &Value) {
    let tags = tags(dom);
    let timeline = report["timeline"].as_array().unwrap();

    let rows: Vec<&Tag> = tags.iter().filter(|t| t.has_class("step")).collect();
    let row_digests: Vec<&str> = rows.iter().map(|r| r.digest().unwrap()).collect();
    let digests: Vec<&str> = timeline
        .iter()
        .map(|s| s["digest"].as_str().unwrap())
        .collect();
    assert_eq!(row_digests, digests, "one .step row per timeline entry");
    assert!(!rows.is_empty());

    for (row, step) in rows.iter().zip(timeline) {
        let digest = step["digest"].as_str().unwrap();
        let critical = step["critical"].as_bool().unwrap();
        assert_eq!(row.has_class("critical"), critical, "row of {digest}");
        assert!(
            row.has_class(step["outcome"].as_str().unwrap()),
            "row of {digest}: {:?}",
            row.classes()
        );
        let bars: Vec<&Tag> = tags
            .iter()
            .filter(|t| t.has_class("bar") && t.digest() == Some(digest))
            .collect();
        let intervals = step["intervals"].as_array().unwrap().len();
        assert_eq!(bars.len(), intervals.max(1), "bars of {digest}");
        for bar in bars {
            assert_eq!(bar.has_class("critical"), critical, "bar of {digest}");
            assert!(bar.attrs["style"].contains("left:"), "{:?}", bar.attrs);
        }
        // The name is in a tooltip in full.
        assert!(
            dom.contains(&format!(
                "title=\"{}\"",
                escape_attr(step["name"].as_str().unwrap())
            )),
            "no full name of {digest}"
        );
    }
    let critical_rows = rows.iter().filter(|r| r.has_class("critical")).count();
    let on_path = report["critical_path"].as_array().unwrap().len();
    assert_eq!(
        critical_rows, on_path,
        "critical rows and the critical path"
    );

    // Every bar is a step's.
    for bar in tags.iter().filter(|t| t.has_class("bar")) {
        assert!(
            bar.digest().is_some_and(|d| digests.contains(&d)),
            "{bar:?}"
        );
    }

    // The totals, one card per key.
    let cards: Vec<&str> = tags
        .iter()
        .filter(|t| t.has_class("card"))
        .map(|t| t.attrs["data-total"].as_str())
        .collect();
    assert_eq!(
        cards,
        [
            "wall_time_s",
            "steps",
            "cache_ratio",
            "critical_path_s",
            "warnings",
            "log_bytes"
        ]
    );
    let totals = element(dom, "div", "totals");
    let total = report["steps"]["total"].as_u64().unwrap();
    assert!(totals.contains(&format!(">{total}<")), "{totals}");
    let ratio = (report["cache_ratio"].as_f64().unwrap() * 100.0).round();
    assert!(totals.contains(&format!(">{ratio}%<")), "{totals}");
}

/// `text` as Chromium writes it in element text.
fn escape_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('\u{a0}', "&nbsp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `text` as Chromium writes it in an attribute value.
fn escape_attr(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('\u{a0}', "&nbsp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A PNG's width and height, from its `IHDR` chunk.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert_eq!(&png[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes(b.try_into().unwrap());
    (be(&png[16..20]), be(&png[20..24]))
}

/// A made-up build of `n` steps in 6 stages: parallel chains, cached, canceled and one failed
/// step, restarts (two intervals), long names and URLs in the logs.
fn big_report(n: usize) -> Value {
    let stages = ["deps", "build", "test", "docs", "assets", "final"];
    let mut timeline = Vec::new();
    let mut path = Vec::new();
    let mut end = 0.0_f64;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for i in 0..n {
        let stage = stages[i % stages.len()];
        let outcome = match i {
            _ if i == n - 10 => "failed",
            _ if i % 11 == 3 => "canceled",
            _ if i % 4 == 1 => "cached",
            _ => "done",
        };
        *counts.entry(outcome).or_default() += 1;
        let start = i as f64 * 0.25;
        let duration = if outcome == "cached" {
            0.0
        } else {
            0.5 + (i % 7) as f64 * 0.6
        };
        let intervals = if i % 13 == 0 {
            json!([
                [start, start + duration / 3.0],
                [start + duration / 2.0, start + duration * 5.0 / 6.0]
            ])
        } else {
            json!([[start, start + duration]])
        };
        let critical = i % 6 == 0 && outcome == "done";
        let digest = format!("sha256:{i:064x}");
        let name = format!(
            "[{stage} {}/{}] RUN ./scripts/step-{i}.sh --with-a-long-argument-list --that-is-cut",
            i / stages.len() + 1,
            n / stages.len()
        );
        if critical {
            path.push(
                json!({"digest": digest, "name": name, "duration_s": duration, "share": 0.01}),
            );
        }
        end = end.max(start + duration);
        timeline.push(json!({
            "digest": digest, "name": name, "stage": stage, "outcome": outcome,
            "duration_s": duration, "start_s": start, "end_s": start + duration,
            "intervals": intervals, "inputs": [], "critical": critical, "internal": false,
            "error": if outcome == "failed" { json!("process exit code: 2") } else { Value::Null },
            "last_lines": [format!("fetching https://example.com/{i} </script>")],
        }));
    }
    let count = |outcome| counts.get(outcome).copied().unwrap_or(0);
    json!({
        "version": 1, "wall_time_s": end,
        "steps": {
            "total": n, "done": count("done"), "cached": count("cached"), "failed": count("failed"),
            "canceled": count("canceled"), "interrupted": 0, "pending": 0,
        },
        "cache_ratio": 0.25, "warnings": 2, "log_bytes": 4096, "slowest": [],
        "stages": stages.iter().enumerate().map(|(k, s)| json!({
            "stage": s, "steps": n / stages.len(), "duration_s": end - k as f64,
            "start_s": k as f64 * 0.25, "end_s": end - k as f64 * 0.25,
        })).collect::<Vec<_>>(),
        "critical_path": path, "critical_path_s": 1.0, "failed": null, "timeline": timeline,
    })
}

// ---- the tests --------------------------------------------------------------------------------

/// The page text: the policy is there, and no web address outside the report's data (the
/// logs may hold addresses; they are data, never loaded).
#[test]
fn the_page_names_no_address_outside_its_data_and_forbids_fetching() {
    let json = big_report(12).to_string();
    let page = html(&json, "report");
    assert!(page.contains(&format!(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
    )));
    let open = "<script type=\"application/json\" id=\"report-data\">";
    let start = page.find(open).unwrap() + open.len();
    let end = start + page[start..].find("</script>").unwrap();
    let data = &page[start..end];
    assert!(
        data.contains("https://example.com/"),
        "the logs' addresses are in the data"
    );
    let outside = format!("{}{}", &page[..start], &page[end..]);
    for scheme in ["http://", "https://"] {
        assert!(!outside.contains(scheme), "{scheme} outside the data");
    }
    let parsed: Value = serde_json::from_str(data).unwrap();
    assert_eq!(parsed, serde_json::from_str::<Value>(&json).unwrap());
}

/// The demo build's page: the DOM, a screenshot, no connection.
#[test]
fn the_demo_report_in_chromium() {
    let Some(chromium) = chromium() else { return };
    let json = demo_json();
    let report: Value = serde_json::from_str(&json).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let page = page_file(dir.path(), &html(&json, "bktrace demo"));

    let run = browse(&chromium, &page, "", &["--dump-dom"]);
    check_dom(&run.stdout, &report);
    assert_eq!(run.page_requests, [] as [&str; 0], "the page made requests");
    // The stages are drawn, labelled by name.
    for stage in report["stages"].as_array().unwrap() {
        let name = stage["stage"].as_str().unwrap();
        assert!(
            run.stdout.contains(&format!("title=\"{name}\"")),
            "stage {name}"
        );
    }

    let png = dir.path().join("report.png");
    let shot = format!("--screenshot={}", png.display());
    let run = browse(&chromium, &page, "", &[&shot, "--window-size=1400,1000"]);
    assert_eq!(run.page_requests, [] as [&str; 0], "the page made requests");
    let png = std::fs::read(&png).expect("chromium wrote the screenshot");
    assert_eq!(png_size(&png), (1400, 1000));
    // A white page of that size is about 5 KB; the report's is about 100 KB.
    assert!(png.len() > 20_000, "a screenshot of {} bytes", png.len());
}

/// A failed build with the failed step named in the address: the failure banner, the step
/// selected, its error and last lines in the details panel.
#[test]
fn a_failed_step_named_in_the_address_shows_its_error_and_last_lines() {
    let Some(chromium) = chromium() else { return };
    let json = report_json("docker-28.5", "run-fails");
    let report: Value = serde_json::from_str(&json).unwrap();
    let failed = &report["failed"];
    let digest = failed["digest"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let page = page_file(dir.path(), &html(&json, "run-fails"));

    let run = browse(&chromium, &page, &format!("#{digest}"), &["--dump-dom"]);
    check_dom(&run.stdout, &report);
    assert_eq!(run.page_requests, [] as [&str; 0]);
    let selected: Vec<String> = tags(&run.stdout)
        .into_iter()
        .filter(|t| t.has_class("selected"))
        .map(|t| t.attrs["data-digest"].clone())
        .collect();
    assert_eq!(selected, [digest]);
    let details = element(&run.stdout, "section", "details");
    let error = escape_text(failed["error"].as_str().unwrap());
    assert!(details.contains(&error), "{details}");
    for line in failed["last_lines"].as_array().unwrap() {
        assert!(details.contains(line.as_str().unwrap()), "{details}");
    }
    assert!(element(&run.stdout, "div", "failure").contains("exit code: 3"));
}

/// A build cut off by its client: the step left running is drawn as interrupted, and on the
/// critical path.
#[test]
fn an_interrupted_build() {
    let Some(chromium) = chromium() else { return };
    let json = report_json("docker-26.1", "client-cancel");
    let report: Value = serde_json::from_str(&json).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let page = page_file(dir.path(), &html(&json, "client-cancel"));

    let run = browse(&chromium, &page, "", &["--dump-dom"]);
    check_dom(&run.stdout, &report);
    assert_eq!(run.page_requests, [] as [&str; 0]);
    let interrupted: Vec<String> = tags(&run.stdout)
        .iter()
        .filter(|t| t.has_class("step") && t.has_class("interrupted"))
        .map(|t| {
            let mut classes = t.classes();
            classes.sort_unstable();
            classes.join(" ")
        })
        .collect();
    assert_eq!(interrupted, ["critical interrupted row step"]);
}

/// 300 steps: every row and bar drawn, rows 16 px high (the page scrolls), a screenshot.
#[test]
fn a_300_step_build_is_drawn_whole() {
    let Some(chromium) = chromium() else { return };
    let report = big_report(300);
    let json = report.to_string();
    let dir = tempfile::tempdir().unwrap();
    let page = page_file(dir.path(), &html(&json, "300 steps"));

    let run = browse(&chromium, &page, "", &["--dump-dom"]);
    check_dom(&run.stdout, &report);
    assert_eq!(run.page_requests, [] as [&str; 0]);

    let png = dir.path().join("report.png");
    let shot = format!("--screenshot={}", png.display());
    let run = browse(&chromium, &page, "", &[&shot, "--window-size=1400,1000"]);
    assert_eq!(run.page_requests, [] as [&str; 0]);
    let png = std::fs::read(&png).expect("chromium wrote the screenshot");
    assert_eq!(png_size(&png), (1400, 1000));
    assert!(png.len() > 20_000, "a screenshot of {} bytes", png.len());
}

/// The proxy check can fail: a page that loads an image over HTTP (no policy) makes the
/// browser connect to the proxy.
#[test]
fn the_proxy_sees_a_page_that_fetches() {
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let page = page_file(
        dir.path(),
        "<!DOCTYPE html><title>fetches</title><img src=\"http://bktrace.invalid/pixel.png\">",
    );
    let run = browse(&chromium, &page, "", &["--dump-dom"]);
    assert!(run.stdout.contains("pixel.png"), "{}", run.stdout);
    // (Chromium may retry a request whose connection was closed.)
    assert!(
        !run.page_requests.is_empty()
            && run
                .page_requests
                .iter()
                .all(|line| line == "GET http://bktrace.invalid/pixel.png HTTP/1.1"),
        "{:?}",
        run.page_requests
    );
}

/// `docs/report.png`, the README's picture of the demo build's report: remade with
/// `UPDATE_SCREENSHOT=1`, else checked to be a PNG under 300 KB.
#[test]
fn the_readme_screenshot() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/report.png");
    if std::env::var_os("UPDATE_SCREENSHOT").is_some() && !workspace_tests::ci() {
        let chromium = chromium().expect("UPDATE_SCREENSHOT=1 needs chromium");
        let json = demo_json();
        let report: Value = serde_json::from_str(&json).unwrap();
        // The slowest step selected, so the details panel shows its log lines.
        let slowest = report["slowest"][0]["digest"].as_str().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let page = page_file(dir.path(), &html(&json, "bktrace demo: build report"));
        let shot = format!("--screenshot={}", docs.display());
        browse(
            &chromium,
            &page,
            &format!("#{slowest}"),
            &[&shot, "--window-size=1400,620"],
        );
    }
    let png = std::fs::read(&docs).unwrap_or_else(|e| panic!("{}: {e}", docs.display()));
    let (width, height) = png_size(&png);
    assert!(width >= 1000 && height >= 400, "{width}×{height}");
    assert!(png.len() < 300 * 1024, "{} bytes", png.len());
}
