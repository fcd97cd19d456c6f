//! The web port's REST reads answer YARN's paths in YARN's JSON shapes: every field YARN's
//! ResourceManager REST API documents for `clusterInfo`, `clusterMetrics`, `schedulerInfo`,
//! `app`, `appAttempt` and `node`, nested as YARN nests them; the list filters; and YARN's
//! `RemoteException` for unknown (404) and malformed (400) ids and parameters.

use serde_json::{Value, json};

use crate::common::*;
use crate::http::get;

/// A running application on one fake node: its AM registered, two more containers allocated
/// and reported running. Returns (application, attempt, node).
pub async fn busy_cluster(rm: &mut Rm) -> (String, String, FakeNm) {
    let mut nm = FakeNm::register(rm, 4096).await;
    let app = rm.submit(512).await;
    let am = nm.started().await;
    let attempt = attempt_of(&am.container_id);
    rm.register_am(&attempt).await;
    let got = rm
        .allocate(&attempt, vec![ask(256, 1, 2)], 0)
        .await
        .unwrap();
    assert_eq!(got.allocated.len(), 2);
    let mut statuses = vec![running(&am.container_id)];
    statuses.extend(got.allocated.iter().map(|c| running(&c.container_id)));
    nm.heartbeat(statuses).await;
    (app, attempt, nm)
}

/// Every key of `template` is in `actual`, with a value of the same JSON type, recursively;
/// arrays' elements are checked against the template's first element.
pub fn assert_shape(actual: &Value, template: &Value, at: &str) {
    match (template, actual) {
        (Value::Object(t), Value::Object(a)) => {
            for (key, t) in t {
                let a = a
                    .get(key)
                    .unwrap_or_else(|| panic!("{at}.{key} is missing in {actual}"));
                assert_shape(a, t, &format!("{at}.{key}"));
            }
        }
        (Value::Array(t), Value::Array(a)) => {
            if let Some(t) = t.first() {
                assert!(!a.is_empty(), "{at} is empty");
                for (i, a) in a.iter().enumerate() {
                    assert_shape(a, t, &format!("{at}[{i}]"));
                }
            }
        }
        (Value::Null, _) => {}
        (Value::String(_), Value::String(_))
        | (Value::Number(_), Value::Number(_))
        | (Value::Bool(_), Value::Bool(_)) => {}
        _ => panic!("{at} is {actual}, expected something like {template}"),
    }
}

/// The fields YARN's docs list for each object, with values of their documented types.
fn yarn_app() -> Value {
    json!({
        "id": "", "user": "", "name": "", "queue": "", "state": "", "finalStatus": "",
        "progress": 0.0, "trackingUI": "", "trackingUrl": "", "diagnostics": "",
        "clusterId": 0, "applicationType": "", "applicationTags": "", "priority": 0,
        "startedTime": 0, "launchTime": 0, "finishedTime": 0, "elapsedTime": 0,
        "amContainerLogs": "", "amHostHttpAddress": "", "amRPCAddress": "",
        "allocatedMB": 0, "allocatedVCores": 0, "runningContainers": 0,
        "memorySeconds": 0, "vcoreSeconds": 0, "queueUsagePercentage": 0.0,
        "clusterUsagePercentage": 0.0, "preemptedResourceMB": 0, "preemptedResourceVCores": 0,
        "numNonAMContainerPreempted": 0, "numAMContainerPreempted": 0,
        "logAggregationStatus": "", "unmanagedApplication": false
    })
}

fn yarn_node() -> Value {
    json!({
        "rack": "", "state": "", "id": "", "nodeHostName": "", "nodeHTTPAddress": "",
        "lastHealthUpdate": 0, "version": "", "healthReport": "", "numContainers": 0,
        "usedMemoryMB": 0, "availMemoryMB": 0, "usedVirtualCores": 0,
        "availableVirtualCores": 0
    })
}

#[tokio::test]
async fn every_read_path_answers_in_yarn_shapes() {
    let mut rm = Rm::start().await;
    let web = rm.web_addr();
    let ts = rm.rm.as_ref().unwrap().cluster_timestamp();
    let (app, attempt, nm) = busy_cluster(&mut rm).await;

    for path in ["/ws/v1/cluster", "/ws/v1/cluster/info"] {
        let answer = get(web, path).await;
        assert_eq!(answer.status, 200, "{path}");
        assert!(
            answer
                .header("content-type")
                .unwrap()
                .starts_with("application/json")
        );
        let info = answer.json();
        assert_shape(
            &info,
            &json!({"clusterInfo": {
                "id": 0, "startedOn": 0, "state": "", "haState": "", "rmStateStoreName": "",
                "resourceManagerVersion": "", "resourceManagerBuildVersion": "",
                "resourceManagerVersionBuiltOn": "", "hadoopVersion": "",
                "hadoopBuildVersion": "", "hadoopVersionBuiltOn": ""
            }}),
            "",
        );
        assert_eq!(info["clusterInfo"]["id"], ts);
        assert_eq!(info["clusterInfo"]["state"], "STARTED");
        assert_eq!(info["clusterInfo"]["haState"], "ACTIVE");
    }

    let metrics = get(web, "/ws/v1/cluster/metrics").await.json();
    let counts = [
        "appsSubmitted",
        "appsCompleted",
        "appsPending",
        "appsRunning",
        "appsFailed",
        "appsKilled",
        "reservedMB",
        "availableMB",
        "allocatedMB",
        "reservedVirtualCores",
        "availableVirtualCores",
        "allocatedVirtualCores",
        "containersAllocated",
        "containersReserved",
        "containersPending",
        "totalMB",
        "totalVirtualCores",
        "totalNodes",
        "lostNodes",
        "unhealthyNodes",
        "decommissioningNodes",
        "decommissionedNodes",
        "rebootedNodes",
        "activeNodes",
        "shutdownNodes",
    ];
    let template: serde_json::Map<String, Value> =
        counts.iter().map(|k| (k.to_string(), json!(0))).collect();
    assert_shape(&metrics, &json!({ "clusterMetrics": template }), "");
    let m = &metrics["clusterMetrics"];
    assert_eq!(m["appsSubmitted"], 1);
    assert_eq!(m["appsRunning"], 1);
    assert_eq!(m["activeNodes"], 1);
    assert_eq!(m["totalNodes"], 1);
    assert_eq!(m["allocatedMB"], 512 + 2 * 256);
    assert_eq!(m["availableMB"], 4096 - 1024);
    assert_eq!(m["totalMB"], 4096);
    assert_eq!(m["containersAllocated"], 3);

    let scheduler = get(web, "/ws/v1/cluster/scheduler").await.json();
    assert_shape(
        &scheduler,
        &json!({"scheduler": {"schedulerInfo": {
            "type": "", "capacity": 0.0, "usedCapacity": 0.0, "qstate": "",
            "minQueueMemoryCapacity": 0, "maxQueueMemoryCapacity": 0, "numNodes": 0,
            "usedNodeCapacity": 0, "availNodeCapacity": 0, "totalNodeCapacity": 0,
            "numContainers": 0
        }}}),
        "",
    );
    let s = &scheduler["scheduler"]["schedulerInfo"];
    assert_eq!(s["type"], "fifoScheduler");
    assert_eq!(s["minQueueMemoryCapacity"], 256);
    assert_eq!(s["maxQueueMemoryCapacity"], 8192);
    assert_eq!(s["usedCapacity"], 0.25);
    assert_eq!(s["numContainers"], 3);

    let apps = get(web, "/ws/v1/cluster/apps").await.json();
    assert_shape(&apps, &json!({"apps": {"app": [yarn_app()]}}), "");
    let one = get(web, &format!("/ws/v1/cluster/apps/{app}")).await.json();
    assert_shape(&one, &json!({ "app": yarn_app() }), "");
    let a = &one["app"];
    assert_eq!(a["id"], app.as_str());
    assert_eq!(a["state"], "RUNNING");
    assert_eq!(a["trackingUrl"], "http://127.0.0.1/ui");
    assert_eq!(a["trackingUI"], "ApplicationMaster");
    assert_eq!(a["runningContainers"], 3);
    assert_eq!(a["allocatedMB"], 1024);
    assert_eq!(a["amHostHttpAddress"], "127.0.0.1:1");
    assert_eq!(a["amRPCAddress"], "127.0.0.1:0");
    assert_eq!(a["queueUsagePercentage"], 25.0);
    assert!(a["startedTime"].as_u64().unwrap() >= ts);
    assert!(
        a["amContainerLogs"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:1/node/containerlogs/container_")
    );

    let attempts = get(web, &format!("/ws/v1/cluster/apps/{app}/appattempts"))
        .await
        .json();
    assert_shape(
        &attempts,
        &json!({"appAttempts": {"appAttempt": [{
            "id": 1, "startTime": 0, "finishedTime": 0, "containerId": "",
            "nodeHttpAddress": "", "nodeId": "", "logsLink": "", "blacklistedNodes": "",
            "appAttemptId": "", "appAttemptState": ""
        }]}}),
        "",
    );
    let first = &attempts["appAttempts"]["appAttempt"][0];
    assert_eq!(first["id"], 1);
    assert_eq!(first["appAttemptId"], attempt.as_str());
    assert_eq!(first["appAttemptState"], "RUNNING");
    assert_eq!(first["nodeId"], nm.node_id.as_str());

    let state = get(web, &format!("/ws/v1/cluster/apps/{app}/state")).await;
    assert_eq!(state.status, 200);
    assert_eq!(state.json(), json!({"state": "RUNNING"}));

    let nodes = get(web, "/ws/v1/cluster/nodes").await.json();
    assert_shape(&nodes, &json!({"nodes": {"node": [yarn_node()]}}), "");
    let node = get(web, &format!("/ws/v1/cluster/nodes/{}", nm.node_id))
        .await
        .json();
    assert_shape(&node, &json!({ "node": yarn_node() }), "");
    let n = &node["node"];
    assert_eq!(n["id"], nm.node_id.as_str());
    assert_eq!(n["state"], "RUNNING");
    assert_eq!(n["nodeHTTPAddress"], "127.0.0.1:1");
    assert_eq!(n["numContainers"], 3);
    assert_eq!(n["usedMemoryMB"], 1024);
    assert_eq!(n["availMemoryMB"], 3072);
    let lost = get(web, "/ws/v1/cluster/nodes?states=LOST,DECOMMISSIONED").await;
    assert_eq!(lost.json(), json!({"nodes": {"node": []}}));
    rm.shutdown().await;
}

#[tokio::test]
async fn the_application_list_filters_as_yarn_documents() {
    let mut rm = Rm::start().await;
    let web = rm.web_addr();
    let _nm = FakeNm::register(&rm, 4096).await;
    let first = rm.submit(512).await;
    let second = rm.submit(512).await;
    rm.client
        .kill_application(spindle_protocol::KillApplicationRequest {
            application_id: second.clone(),
            diagnostics: String::new(),
        })
        .await
        .unwrap();
    let ids = |v: Value| -> Vec<String> {
        v["apps"]["app"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect()
    };
    let list = |query: &'static str| async move {
        let answer = get(web, &format!("/ws/v1/cluster/apps{query}")).await;
        assert_eq!(answer.status, 200, "{query}: {}", answer.body);
        answer.json()
    };
    assert_eq!(ids(list("").await), [first.as_str(), second.as_str()]);
    assert_eq!(ids(list("?states=accepted").await), [first.as_str()]);
    assert_eq!(ids(list("?state=KILLED").await), [second.as_str()]);
    assert_eq!(
        ids(list("?states=RUNNING,FINISHED").await),
        Vec::<String>::new()
    );
    assert_eq!(ids(list("?finalStatus=KILLED").await), [second.as_str()]);
    assert_eq!(ids(list("?queue=default&user=tester").await).len(), 2);
    assert_eq!(ids(list("?user=someone-else").await).len(), 0);
    assert_eq!(ids(list("?limit=1").await), [first.as_str()]);
    assert_eq!(ids(list("?applicationTypes=spindle").await).len(), 2);
    assert_eq!(
        ids(list("?startedTimeBegin=0&startedTimeEnd=1").await).len(),
        0
    );
    assert_eq!(ids(list("?finishedTimeBegin=1").await), [second.as_str()]);

    for (query, names) in [
        ("?states=SLEEPING", "SLEEPING"),
        ("?limit=0", "limit=0"),
        ("?startedTimeBegin=-1", "startedTimeBegin=-1"),
        ("?startedTimeBegin=9&startedTimeEnd=3", "startedTimeEnd=3"),
        ("?finishedTimeEnd=soon", "finishedTimeEnd=soon"),
    ] {
        let answer = get(web, &format!("/ws/v1/cluster/apps{query}")).await;
        let message = answer.remote_exception(400, "BadRequestException");
        assert!(message.contains(names), "{query}: {message}");
    }
    rm.shutdown().await;
}

#[tokio::test]
async fn unknown_ids_are_404_and_malformed_ones_400_as_yarn_answers_them() {
    let rm = Rm::start().await;
    let web = rm.web_addr();
    let ts = rm.rm.as_ref().unwrap().cluster_timestamp();
    let unknown = format!("application_{ts}_0042");
    for suffix in ["", "/appattempts", "/state"] {
        let answer = get(web, &format!("/ws/v1/cluster/apps/{unknown}{suffix}")).await;
        let message = answer.remote_exception(404, "NotFoundException");
        assert!(message.contains(&unknown), "{message}");
        let answer = get(web, &format!("/ws/v1/cluster/apps/app_nonsense{suffix}")).await;
        let message = answer.remote_exception(400, "BadRequestException");
        assert!(message.contains("app_nonsense"), "{message}");
    }
    let answer = get(web, "/ws/v1/cluster/nodes/nowhere:1").await;
    let message = answer.remote_exception(404, "NotFoundException");
    assert!(message.contains("nowhere:1"), "{message}");
    let answer = get(web, "/ws/v1/cluster/nodes/no-port").await;
    answer.remote_exception(400, "BadRequestException");
    let answer = get(web, "/ws/v1/cluster/nodes?states=ASLEEP").await;
    assert!(
        answer
            .remote_exception(400, "BadRequestException")
            .contains("ASLEEP")
    );
    let answer = get(web, "/ws/v1/cluster/containers").await;
    answer.remote_exception(404, "NotFoundException");
    rm.shutdown().await;
}
