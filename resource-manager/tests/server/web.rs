//! The web port answers YARN's REST paths with YARN's JSON shapes.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

/// A minimal HTTP/1.1 GET; returns the status code and the JSON body.
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    within("the HTTP response", stream.read_to_string(&mut response))
        .await
        .unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .expect("a complete response");
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    (
        code,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn cluster_info_and_apps_in_yarn_shapes() {
    let mut rm = Rm::start().await;
    let web = rm.web_addr();
    let (code, info) = get(web, "/ws/v1/cluster/info").await;
    assert_eq!(code, 200);
    let ts = rm.rm.as_ref().unwrap().cluster_timestamp();
    assert_eq!(info["clusterInfo"]["state"], "STARTED");
    assert_eq!(info["clusterInfo"]["startedOn"], ts);
    assert!(info["clusterInfo"]["resourceManagerVersion"].is_string());

    let (_, apps) = get(web, "/ws/v1/cluster/apps").await;
    assert_eq!(apps["apps"]["app"], serde_json::json!([]));
    let app = rm.submit(512).await;
    let (code, apps) = get(web, "/ws/v1/cluster/apps").await;
    assert_eq!(code, 200);
    let listed = &apps["apps"]["app"][0];
    assert_eq!(listed["id"], app);
    assert_eq!(listed["name"], "story");
    assert_eq!(listed["queue"], "default");
    assert_eq!(listed["user"], "tester");
    assert_eq!(listed["state"], "ACCEPTED");
    assert_eq!(listed["finalStatus"], "UNDEFINED");
    assert!(listed["startedTime"].as_u64().unwrap() >= ts);
    assert_eq!(listed["finishedTime"], 0);
    for field in ["diagnostics", "trackingUrl"] {
        assert!(listed[field].is_string(), "{field}");
    }
    let (_, running) = get(web, "/ws/v1/cluster/apps?states=RUNNING").await;
    assert_eq!(running["apps"]["app"], serde_json::json!([]));
    rm.shutdown().await;
}
