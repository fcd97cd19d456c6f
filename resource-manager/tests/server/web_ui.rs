//! The UI's pages over HTTP: `/` leads to `/cluster`; the overview, the application list, an
//! application and the nodes render what the cluster holds, refresh themselves, and escape
//! whatever a user or an AM sent (an application named `<script>…` stays text, so does a queue
//! named `mallory&co`; a
//! `javascript:` tracking URL is no link). Unknown applications and bad filters are pages too.

use spindle_protocol as proto;

use crate::common::*;
use crate::http::get;

const HOSTILE: &str = "<script>alert(\"pwned\")</script>";

#[tokio::test]
async fn pages_show_the_cluster_and_escape_what_users_sent() {
    let mut rm = Rm::start().await;
    let web = rm.web_addr();
    let mut nm = FakeNm::register(&rm, 4096).await;
    let app = rm.new_app().await;
    let mut request = submission(&app, 512);
    request.name = HOSTILE.into();
    // User names are checked for shape now; a queue name is still whatever was sent.
    request.queue = "mallory&co".into();
    rm.client.submit_application(request).await.unwrap();
    let am = nm.started().await;
    let attempt = attempt_of(&am.container_id);
    rm.am_for(&attempt)
        .register_application_master(proto::RegisterApplicationMasterRequest {
            attempt_id: attempt.clone(),
            host: "127.0.0.1".into(),
            rpc_port: 0,
            tracking_url: "javascript:alert(1)".into(),
        })
        .await
        .unwrap();
    let got = rm
        .allocate(&attempt, vec![ask(256, 1, 1)], 0)
        .await
        .unwrap();
    let task = got.allocated[0].container_id.clone();
    nm.heartbeat(vec![running(&am.container_id), running(&task)])
        .await;
    nm.heartbeat(vec![completed(&task, 3)]).await;

    let root = get(web, "/").await;
    assert!((300..400).contains(&root.status), "{}", root.status);
    assert_eq!(root.header("location"), Some("/cluster"));

    for path in [
        "/cluster".to_string(),
        "/cluster/apps".to_string(),
        "/cluster/apps?state=RUNNING".to_string(),
        format!("/cluster/app/{app}"),
        "/cluster/nodes".to_string(),
    ] {
        let page = get(web, &path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert!(
            page.header("content-type")
                .unwrap()
                .starts_with("text/html")
        );
        let html = &page.body;
        assert!(html.starts_with("<!DOCTYPE html>"), "{path}");
        assert!(
            html.contains("<meta http-equiv=\"refresh\" content=\"5\">"),
            "{path}"
        );
        assert!(
            !html.contains("<script"),
            "{path} lets a script through:\n{html}"
        );
        assert!(!html.contains("javascript:alert(1)\""), "{path}");
    }

    let overview = get(web, "/cluster").await.body;
    assert!(overview.contains("512 MB of 4 GB"), "{overview}");
    assert!(overview.contains("href=\"/cluster/apps?state=RUNNING\""));
    assert!(overview.contains(&format!("href=\"/cluster/app/{app}\"")));

    let list = get(web, "/cluster/apps?state=RUNNING").await.body;
    assert!(list.contains("&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;"));
    assert!(list.contains("mallory&amp;co"));
    let none = get(web, "/cluster/apps?state=FINISHED").await.body;
    assert!(none.contains("No applications."));

    let page = get(web, &format!("/cluster/app/{app}")).await.body;
    assert!(page.contains(&attempt), "the attempt is listed");
    assert!(page.contains(&am.container_id) && page.contains(&task));
    assert!(page.contains(&nm.node_id), "the containers' node");
    assert!(
        page.contains(&format!(
            "href=\"http://127.0.0.1:1/node/containerlogs/{task}/stderr\""
        )),
        "links to the logs on the node manager"
    );
    assert!(page.contains("javascript:alert(1)"), "shown as text");
    assert!(page.contains(">3<"), "the task's exit status");

    let nodes = get(web, "/cluster/nodes").await.body;
    assert!(nodes.contains(&nm.node_id) && nodes.contains("fake-nm"));
    assert!(nodes.contains("512 MB of 4 GB"), "{nodes}");

    let ts = rm.rm.as_ref().unwrap().cluster_timestamp();
    let missing = get(web, &format!("/cluster/app/application_{ts}_0077")).await;
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("application_"));
    let bad = get(web, "/cluster/apps?state=%3Cb%3E").await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("&lt;B&gt;"), "{}", bad.body);
    assert_eq!(get(web, "/cluster/nowhere").await.status, 404);
    rm.shutdown().await;
}
