//! Changing the cluster over REST, as YARN's API does it: an application id from
//! `new-application`, a submission in YARN's JSON shape (202 + Location), polling its state, and
//! a kill through `PUT …/state` — each reaching the node as the gRPC path would. And who may:
//! without the client secret and a `user.name` a change is 401; with anonymous reads off, so is
//! a read; a secret file others can read stops the RM from starting.

use std::os::unix::fs::PermissionsExt;

use serde_json::{Value, json};
use spindle_containers::exit_status::KILLED_BY_RESOURCEMANAGER;
use spindle_resource_manager::{ResourceManager, RmError};

use crate::common::*;
use crate::http::{Req, get};
use crate::web::assert_shape;

const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn submission(app: &str) -> Value {
    json!({
        "application-id": app,
        "application-name": "over-rest",
        "queue": "default",
        "application-type": "YARN",
        "application-tags": { "tag": ["nightly", "rest"] },
        "max-app-attempts": 1,
        "unmanaged-AM": false,
        "resource": { "memory": 512, "vCores": 1 },
        "am-container-spec": {
            "local-resources": { "entry": [ { "key": "prog", "value": {
                "resource": SHA, "type": "FILE", "visibility": "APPLICATION",
                "size": 4, "timestamp": 0, "executable": true } } ] },
            "environment": { "entry": [ { "key": "GREETING", "value": "hello world" } ] },
            "commands": { "command": "./prog --log <LOG_DIR>/am.log" }
        }
    })
}

#[tokio::test]
async fn an_application_is_submitted_polled_and_killed_over_rest() {
    let mut rm = Rm::start().await;
    let web = rm.web_addr();
    let secret = rm.client_secret();
    let mut nm = FakeNm::register(&rm, 4096).await;

    let answer = Req::new(
        "POST",
        "/ws/v1/cluster/apps/new-application?user.name=alice",
    )
    .bearer(&secret)
    .header("Content-Type", "application/json")
    .send(web)
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let new = answer.json();
    assert_shape(
        &new,
        &json!({"application-id": "", "maximum-resource-capability": {"memory": 0, "vCores": 0}}),
        "",
    );
    assert_eq!(new["maximum-resource-capability"]["memory"], 8192);
    let app = new["application-id"].as_str().unwrap().to_string();

    let answer = Req::new("POST", "/ws/v1/cluster/apps?user.name=alice")
        .bearer(&secret)
        .json(&submission(&app))
        .send(web)
        .await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let location = answer.header("location").expect("a Location header");
    assert_eq!(location, format!("http://{web}/ws/v1/cluster/apps/{app}"));

    // The node is asked to start the AM as a gRPC submission would have it, as alice.
    let am = nm.started().await;
    let token = nm.keys.check_container_token(&am.container_token).unwrap();
    assert_eq!(token.user, "alice");
    assert_eq!(am.resource.unwrap().memory_mb, 512);
    let launch = am.launch_context.unwrap();
    assert_eq!(
        launch.command,
        ["bash", "-c", "./prog --log \"${LOG_DIRS}\"/am.log"]
    );
    assert_eq!(
        launch.environment.get("GREETING").map(String::as_str),
        Some("hello world")
    );
    assert_eq!(launch.local_resources.len(), 1);
    assert_eq!(launch.local_resources[0].name, "prog");
    assert_eq!(launch.local_resources[0].sha256, SHA);
    assert!(launch.local_resources[0].executable);

    let path = location.split_once(&web.to_string()).unwrap().1.to_string();
    let report = get(web, &path).await.json();
    assert_eq!(report["app"]["user"], "alice");
    assert_eq!(report["app"]["name"], "over-rest");
    assert_eq!(report["app"]["applicationType"], "YARN");
    assert_eq!(report["app"]["applicationTags"], "nightly,rest");
    assert_eq!(report["app"]["state"], "ACCEPTED");
    let state_path = format!("/ws/v1/cluster/apps/{app}/state");
    rm.register_am(&attempt_of(&am.container_id)).await;
    assert_eq!(
        get(web, &state_path).await.json(),
        json!({"state": "RUNNING"})
    );

    // Bob may not kill alice's application; she may.
    let answer = Req::new("PUT", &format!("{state_path}?user.name=bob"))
        .bearer(&secret)
        .json(&json!({"state": "KILLED", "diagnostics": "enough"}))
        .send(web)
        .await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    let refusal = answer.json();
    assert_eq!(
        refusal["RemoteException"]["exception"],
        "ForbiddenException"
    );
    let message = refusal["RemoteException"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "user bob may not kill application {app}, owned by alice"
        )),
        "{message}"
    );
    assert_eq!(
        get(web, &state_path).await.json(),
        json!({"state": "RUNNING"})
    );
    let answer = Req::new("PUT", &format!("{state_path}?user.name=alice"))
        .bearer(&secret)
        .json(&json!({"state": "KILLED", "diagnostics": "enough"}))
        .send(web)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json(), json!({"state": "KILLED"}));
    match nm.next_event().await {
        NmEvent::Stopped {
            containers,
            exit_status,
        } => {
            assert_eq!(containers, [am.container_id.as_str()]);
            assert_eq!(exit_status, KILLED_BY_RESOURCEMANAGER);
        }
        other => panic!("expected the AM container to be stopped, got {other:?}"),
    }
    let report = get(web, &format!("/ws/v1/cluster/apps/{app}")).await.json();
    assert_eq!(report["app"]["state"], "KILLED");
    assert_eq!(report["app"]["finalStatus"], "KILLED");
    let diagnostics = report["app"]["diagnostics"].as_str().unwrap();
    assert!(
        diagnostics.contains("alice") && diagnostics.contains("enough"),
        "{diagnostics}"
    );

    // Killing it again (an admin, the RM's own user, may too) changes nothing and says how it
    // ended.
    let admin = spindle_security::current_user();
    let again = Req::new("PUT", &format!("{state_path}?user.name={admin}"))
        .bearer(&secret)
        .json(&json!({"state": "KILLED"}))
        .send(web)
        .await;
    assert_eq!(
        (again.status, again.json()),
        (200, json!({"state": "KILLED"}))
    );
    rm.shutdown().await;
}

#[tokio::test]
async fn changes_need_the_client_secret_and_a_user() {
    let mut rm = Rm::start().await;
    let web = rm.web_addr();
    let secret = rm.client_secret();
    assert_eq!(secret.len(), 64, "32 random bytes in hex");
    let mode = std::fs::metadata(rm.state_dir().join(spindle_resource_manager::SECRET_FILE))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let new_app = "/ws/v1/cluster/apps/new-application?user.name=alice";
    let answer = Req::new("POST", new_app).send(web).await;
    let message = answer.remote_exception(401, "AuthorizationException");
    assert!(message.contains("Authorization: Bearer"), "{message}");
    assert!(
        answer
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer")
    );
    let wrong = Req::new("POST", new_app)
        .bearer(&format!("{secret}x"))
        .send(web)
        .await;
    wrong.remote_exception(401, "AuthorizationException");
    let no_user = Req::new("POST", "/ws/v1/cluster/apps/new-application")
        .bearer(&secret)
        .send(web)
        .await;
    assert!(
        no_user
            .remote_exception(401, "AuthorizationException")
            .contains("user.name")
    );
    let bad_user = Req::new(
        "POST",
        "/ws/v1/cluster/apps/new-application?user.name=a%20b",
    )
    .bearer(&secret)
    .send(web)
    .await;
    assert!(
        bad_user
            .remote_exception(400, "BadRequestException")
            .contains("user.name")
    );
    let kill = Req::new("PUT", "/ws/v1/cluster/apps/application_1_0001/state")
        .json(&json!({"state": "KILLED"}))
        .send(web)
        .await;
    kill.remote_exception(401, "AuthorizationException");
    // Reads stay anonymous.
    assert_eq!(get(web, "/ws/v1/cluster/apps").await.status, 200);
    assert_eq!(get(web, "/metrics").await.status, 200);

    // Bad bodies, ids and targets, with the secret.
    let app = rm.new_app().await;
    let post = |path: &'static str| {
        Req::new("POST", path)
            .bearer(&secret)
            .header("Content-Type", "application/json")
    };
    let answer = post("/ws/v1/cluster/apps?user.name=alice")
        .body("{not json")
        .send(web)
        .await;
    assert!(
        answer
            .remote_exception(400, "BadRequestException")
            .contains("request body")
    );
    let answer = Req::new("POST", "/ws/v1/cluster/apps?user.name=alice")
        .bearer(&secret)
        .header("Content-Type", "application/xml")
        .body("<application-submission-context/>")
        .send(web)
        .await;
    assert_eq!(answer.status, 415, "{}", answer.body);
    let mut too_big = submission(&app);
    too_big["resource"]["memory"] = json!(100_000);
    let answer = Req::new("POST", "/ws/v1/cluster/apps?user.name=alice")
        .bearer(&secret)
        .json(&too_big)
        .send(web)
        .await;
    let message = answer.remote_exception(400, "BadRequestException");
    assert!(
        message.contains("100000") && message.contains("8192"),
        "{message}"
    );
    let ts = rm.rm.as_ref().unwrap().cluster_timestamp();
    let answer = Req::new("POST", "/ws/v1/cluster/apps?user.name=alice")
        .bearer(&secret)
        .json(&submission(&format!("application_{ts}_0999")))
        .send(web)
        .await;
    assert!(
        answer
            .remote_exception(400, "BadRequestException")
            .contains("GetNewApplication")
    );
    let ok = Req::new("POST", "/ws/v1/cluster/apps?user.name=alice")
        .bearer(&secret)
        .json(&submission(&app))
        .send(web)
        .await;
    assert_eq!(ok.status, 202, "{}", ok.body);
    let twice = Req::new("POST", "/ws/v1/cluster/apps?user.name=alice")
        .bearer(&secret)
        .json(&submission(&app))
        .send(web)
        .await;
    assert!(
        twice
            .remote_exception(400, "BadRequestException")
            .contains("already submitted")
    );

    let put = |path: String, body: Value| {
        let secret = secret.clone();
        async move {
            Req::new("PUT", &format!("{path}?user.name=alice"))
                .bearer(&secret)
                .json(&body)
                .send(web)
                .await
        }
    };
    let answer = put(
        format!("/ws/v1/cluster/apps/{app}/state"),
        json!({"state": "RUNNING"}),
    )
    .await;
    assert!(
        answer
            .remote_exception(400, "BadRequestException")
            .contains("KILLED")
    );
    let unknown = format!("application_{ts}_0998");
    let answer = put(
        format!("/ws/v1/cluster/apps/{unknown}/state"),
        json!({"state": "KILLED"}),
    )
    .await;
    answer.remote_exception(404, "NotFoundException");
    let answer = put(
        "/ws/v1/cluster/apps/nonsense/state".into(),
        json!({"state": "KILLED"}),
    )
    .await;
    answer.remote_exception(400, "BadRequestException");
    rm.shutdown().await;
}

#[tokio::test]
async fn reads_need_the_secret_when_anonymous_reads_are_off() {
    let rm = Rm::start_with(|c| c.anonymous_reads = false).await;
    let web = rm.web_addr();
    let secret = rm.client_secret();
    for path in ["/ws/v1/cluster/apps", "/metrics", "/cluster"] {
        let answer = get(web, path).await;
        assert_eq!(answer.status, 401, "{path}");
        let answer = Req::new("GET", path).bearer(&secret).send(web).await;
        assert_eq!(answer.status, 200, "{path}");
    }
    rm.shutdown().await;
}

#[tokio::test]
async fn a_configured_secret_file_is_used_and_one_others_can_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    let secret = "correct-horse-battery-staple-and-some-more";
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut config = test_config(&dir.path().join("state"));
    config.secret_file = Some(path.clone());
    let refused = ResourceManager::start(config.clone())
        .await
        .err()
        .expect("refused");
    assert!(matches!(refused, RmError::Secret { .. }), "{refused}");
    let message = refused.to_string();
    assert!(
        message.contains("secret") && message.contains("0644"),
        "{message}"
    );

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let rm = Rm::start_with(|c| c.secret_file = Some(path)).await;
    let web = rm.web_addr();
    let answer = Req::new("POST", "/ws/v1/cluster/apps/new-application?user.name=ops")
        .bearer(secret)
        .send(web)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        !rm.state_dir()
            .join(spindle_resource_manager::SECRET_FILE)
            .exists()
    );
    rm.shutdown().await;
}
