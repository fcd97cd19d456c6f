//! The resource manager's HTTP port on a real cluster (RM and NM processes on loopback): an
//! application submitted, polled and killed through YARN's REST API, its container a real
//! process that the kill ends; and every page of the web UI loaded in headless Chromium, as a
//! person would see it, down to a container's log link, which its node manager answers only for a
//! holder of the application's NM token (once the application is over, by pointing at the RM's
//! log store, where `spindle logs` reads it). The application page's screenshot for the README is
//! written when `SPINDLE_UPDATE_SCREENSHOTS=1`.
//!
//! Chromium is looked for at /usr/bin/chromium; where it is missing the browser test says so
//! and passes (CI installs it).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{COMMAND, Cluster, TempDir, app_id_of, processes_of, wait_until};

const CHROMIUM: &str = "/usr/bin/chromium";
/// Hang guard for one HTTP exchange.
const HTTP_GUARD: Duration = Duration::from_secs(30);

/// One HTTP/1.1 exchange (`Connection: close`); returns the status, the headers and the body.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&serde_json::Value>,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the web port");
    stream.set_read_timeout(Some(HTTP_GUARD)).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(secret) = bearer {
        request.push_str(&format!("Authorization: Bearer {secret}\r\n"));
    }
    if method != "GET" {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("an HTTP answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete answer");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_string(), body.to_string())
}

fn get_json(addr: &str, path: &str) -> serde_json::Value {
    let (status, _, body) = http(addr, "GET", path, None, None);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

fn client_secret(cluster: &Cluster) -> String {
    let path = cluster.dir.path().join("rm").join("client.secret");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

#[test]
fn an_application_is_submitted_polled_and_killed_over_rest_on_a_real_cluster() {
    let cluster = Cluster::start(1, 1024);
    let web = cluster.rm.get("web-address");
    let secret = client_secret(&cluster);

    let (status, _, body) = http(
        &web,
        "POST",
        "/ws/v1/cluster/apps/new-application?user.name=ops",
        Some(&secret),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let new: serde_json::Value = serde_json::from_str(&body).unwrap();
    let app = new["application-id"].as_str().unwrap().to_string();

    let submission = serde_json::json!({
        "application-id": app,
        "application-name": "sleeper",
        "max-app-attempts": 1,
        "resource": { "memory": 256, "vCores": 1 },
        "am-container-spec": {
            "commands": { "command": "echo started in $PWD; sleep 300" },
            "environment": { "entry": [ { "key": "PURPOSE", "value": "rest test" } ] }
        }
    });
    let (status, head, body) = http(
        &web,
        "POST",
        "/ws/v1/cluster/apps?user.name=ops",
        Some(&secret),
        Some(&submission),
    );
    assert_eq!(status, 202, "{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("location: http://{web}/ws/v1/cluster/apps/{app}")),
        "{head}"
    );

    // Poll until the NM runs the AM container: a real process of this application.
    let attempts = format!("/ws/v1/cluster/apps/{app}/appattempts");
    wait_until(COMMAND, "the AM container to be launched", || {
        let json = get_json(&web, &attempts);
        json["appAttempts"]["appAttempt"][0]["appAttemptState"] == "LAUNCHED"
    });
    wait_until(COMMAND, "the AM's process", || {
        !processes_of(&app, &cluster.work_dirs).is_empty()
    });
    let report = get_json(&web, &format!("/ws/v1/cluster/apps/{app}"));
    assert_eq!(report["app"]["state"], "ACCEPTED");
    assert_eq!(report["app"]["user"], "ops");
    assert_eq!(report["app"]["runningContainers"], 1);
    let node = &report["app"]["amHostHttpAddress"];
    assert_eq!(node, &serde_json::json!(cluster.nms[0].get("web-address")));

    let (status, _, body) = http(
        &web,
        "PUT",
        &format!("/ws/v1/cluster/apps/{app}/state?user.name=ops"),
        Some(&secret),
        Some(&serde_json::json!({"state": "KILLED"})),
    );
    assert_eq!((status, body.as_str()), (200, r#"{"state":"KILLED"}"#));
    wait_until(COMMAND, "the killed application's processes to end", || {
        processes_of(&app, &cluster.work_dirs).is_empty()
    });
    let report = get_json(&web, &format!("/ws/v1/cluster/apps/{app}"));
    assert_eq!(report["app"]["finalStatus"], "KILLED");
    let listed = get_json(&web, "/ws/v1/cluster/apps?states=KILLED&user=ops");
    assert_eq!(listed["apps"]["app"][0]["id"], app.as_str());
}

/// Headless Chromium with its own profile directory.
struct Browser {
    profile: TempDir,
}

impl Browser {
    fn find() -> Option<Browser> {
        Path::new(CHROMIUM).exists().then(|| Browser {
            profile: TempDir::new("chromium"),
        })
    }

    fn run(&self, extra: &[String], url: &str) -> String {
        let out = self.profile.path().join("stdout");
        let mut child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ])
            .arg(format!(
                "--user-data-dir={}",
                self.profile.path().join("profile").display()
            ))
            .args(extra)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        let deadline = Instant::now() + COMMAND;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium still loading {url} after {COMMAND:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "chromium failed on {url}: {status}");
        std::fs::read_to_string(out).unwrap_or_default()
    }

    /// The page's DOM after it loaded: what a person would see, as HTML.
    fn dom(&self, url: &str) -> String {
        self.run(&["--dump-dom".into()], url)
    }

    fn screenshot(&self, url: &str, png: &Path) {
        self.run(
            &[
                format!("--screenshot={}", png.display()),
                "--window-size=1280,900".into(),
                "--hide-scrollbars".into(),
            ],
            url,
        );
    }
}

/// The `href`s of a page that contain `needle`.
/// The NM token the RM hands the application's owner for the node whose web address `link`
/// points at, as `spindle logs` asks for it.
fn nm_token_for(cluster: &Cluster, app: &str, link: &str) -> String {
    let node = cluster
        .nms
        .iter()
        .find(|nm| link.starts_with(&format!("http://{}/", nm.get("web-address"))))
        .map(|nm| nm.get("node-id"))
        .unwrap_or_else(|| panic!("{link} points at no node manager"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tokens = runtime.block_on(async {
        let credentials = spindle_client::credentials::credentials_from(Some((
            cluster.client_secret.as_path(),
            spindle_client::credentials::SecretSource::Flag,
        )))
        .unwrap();
        let mut rm = spindle_client::RmClient::connect(&cluster.rm_addr, credentials)
            .await
            .unwrap();
        rm.log_tokens(app.parse().unwrap()).await.unwrap()
    });
    tokens
        .into_iter()
        .find(|t| t.node_id == node)
        .unwrap_or_else(|| panic!("no NM token for {node}"))
        .token
}

fn links(dom: &str, needle: &str) -> Vec<String> {
    dom.split("href=\"")
        .skip(1)
        .filter_map(|rest| {
            rest.split_once('"')
                .map(|(href, _)| href.replace("&amp;", "&"))
        })
        .filter(|href| href.contains(needle))
        .collect()
}

#[test]
fn every_page_of_the_ui_renders_in_a_browser() {
    let Some(browser) = Browser::find() else {
        eprintln!("skipped: no browser at {CHROMIUM} (install the chromium package)");
        return;
    };
    let cluster = Cluster::start(2, 1024);
    let web = cluster.rm.get("web-address");
    let submit = cluster.submit_shell(
        &["--name", "hello-ui"],
        &[
            "--num-containers",
            "3",
            "--container-memory",
            "256",
            "--shell-command",
            "echo hello from $CONTAINER_ID",
        ],
    );
    assert!(submit.ok(), "{submit}");
    let app = app_id_of(&submit);
    let url = |path: &str| format!("http://{web}{path}");

    let root = browser.dom(&url("/"));
    assert!(
        root.contains("<h1>Cluster overview</h1>"),
        "/ leads to the overview:\n{root}"
    );
    assert!(root.contains("http-equiv=\"refresh\""));
    assert!(root.contains("hello-ui"), "{root}");
    assert!(root.contains(&app));

    let list = browser.dom(&url("/cluster/apps?state=FINISHED"));
    assert!(list.contains("<h1>Applications: FINISHED</h1>"), "{list}");
    assert!(list.contains(&app) && list.contains("SUCCEEDED"), "{list}");
    let empty = browser.dom(&url("/cluster/apps?state=RUNNING"));
    assert!(empty.contains("No applications."), "{empty}");

    let app_url = url(&format!("/cluster/app/{app}"));
    let page = browser.dom(&app_url);
    assert!(page.contains(&format!("Application {app}")), "{page}");
    assert!(
        page.contains(&app.replace("application_", "appattempt_")),
        "{page}"
    );
    let logs = links(&page, "/node/containerlogs/");
    // The AM and three containers, each with stdout and stderr on its node.
    assert_eq!(logs.len(), 2 * 4 + 2, "{logs:?}");
    let nm_webs: Vec<String> = cluster.nms.iter().map(|nm| nm.get("web-address")).collect();
    for link in &logs {
        assert!(
            nm_webs
                .iter()
                .any(|w| link.starts_with(&format!("http://{w}/"))),
            "{link} points at no node manager of {nm_webs:?}"
        );
    }
    let stdout = logs
        .iter()
        .find(|l| !l.contains("_000001/") && l.ends_with("/stdout"))
        .expect("a container's stdout link");
    // A node serves a log only to a holder of an NM token for its application.
    let refused = browser.dom(stdout);
    assert!(
        !refused.contains("hello from container_"),
        "{stdout}:\n{refused}"
    );
    assert!(
        refused.contains("nm.token"),
        "says what to send:\n{refused}"
    );
    let token = nm_token_for(&cluster, &app, stdout);
    let separator = if stdout.contains('?') { '&' } else { '?' };
    let with_token = format!("{stdout}{separator}nm.token={token}");
    let answer = browser.dom(&with_token);
    // The application is over: its logs went to the RM's log store, and the node says so.
    assert!(
        answer.contains("hello from container_") || answer.contains("spindle logs"),
        "{stdout}:\n{answer}"
    );
    let logs_command = cluster.spindle("logs", &[&app]);
    assert!(
        logs_command.stdout.contains("hello from container_"),
        "{logs_command}"
    );
    assert!(
        page.matches(">0<").count() >= 3,
        "exit statuses of the containers:\n{page}"
    );

    let nodes = browser.dom(&url("/cluster/nodes"));
    for id in &cluster.node_ids {
        assert!(nodes.contains(id.as_str()), "node {id}:\n{nodes}");
    }
    assert_eq!(nodes.matches(">RUNNING<").count(), 2, "{nodes}");

    let shots = TempDir::new("screenshot");
    let png = shots.path().join("app-page.png");
    browser.screenshot(&app_url, &png);
    let bytes = std::fs::read(&png).expect("a screenshot");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    if std::env::var_os("SPINDLE_UPDATE_SCREENSHOTS").is_some_and(|v| v == "1") {
        let target: PathBuf = [
            env!("CARGO_MANIFEST_DIR"),
            "..",
            "docs",
            "images",
            "app-page.png",
        ]
        .iter()
        .collect();
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&png, &target).unwrap();
        eprintln!("wrote {}", target.display());
    }
}
