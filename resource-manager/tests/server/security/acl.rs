//! The ACLs over gRPC: only its owner and admins kill an application; only admins submit on
//! another user's behalf; a queue listed in queue-acls takes its users' submissions (and
//! admins'), an unlisted one anyone's. Every refusal names the user, the application, its owner
//! or queue, and who may — and changes nothing.

use spindle_protocol as proto;
use spindle_resource_manager::QueueAcl;
use tonic::Code;

use super::assert_refused;
use crate::common::*;

fn kill(app: &str) -> proto::KillApplicationRequest {
    proto::KillApplicationRequest {
        application_id: app.into(),
        diagnostics: "stop".into(),
    }
}

#[tokio::test]
async fn only_the_owner_and_admins_may_kill_an_application() {
    let mut rm = Rm::start_with(|c| c.admins = vec!["boss".into()]).await;
    let first = rm.submit(512).await;
    let second = rm.submit(512).await;

    let message = assert_refused(
        rm.client_as("mallory").kill_application(kill(&first)).await,
        Code::PermissionDenied,
        &format!("user mallory may not kill application {first}, owned by {USER}"),
    );
    let rm_user = spindle_security::current_user();
    assert!(
        message.contains("only its owner and admins")
            && message.contains("boss")
            && message.contains(&rm_user),
        "{message}"
    );
    assert_eq!(
        rm.report(&first).await.state,
        proto::ApplicationState::Accepted as i32,
        "nothing changed"
    );

    rm.client
        .kill_application(kill(&first))
        .await
        .expect("the owner may");
    assert_eq!(
        rm.report(&first).await.state,
        proto::ApplicationState::Killed as i32
    );
    rm.client_as("boss")
        .kill_application(kill(&second))
        .await
        .expect("an admin may");
    assert_eq!(
        rm.report(&second).await.state,
        proto::ApplicationState::Killed as i32
    );
    rm.shutdown().await;
}

#[tokio::test]
async fn queue_acls_and_submissions_on_behalf_of_others() {
    let mut rm = Rm::start_with(|c| {
        c.admins = vec!["boss".into()];
        c.queue_acls = [(
            "prod".to_string(),
            QueueAcl {
                submit: vec!["alice".into()],
            },
        )]
        .into();
    })
    .await;
    let in_queue = |app: &str, queue: &str, user: &str| {
        let mut r = submission(app, 512);
        r.queue = queue.into();
        r.user = user.into();
        r
    };

    let app = rm.new_app().await;
    let message = assert_refused(
        rm.client_as("bob")
            .submit_application(in_queue(&app, "prod", ""))
            .await,
        Code::PermissionDenied,
        &format!(
            "user bob may not submit application {app} to queue prod: its submit ACL allows alice"
        ),
    );
    assert!(message.contains("boss"), "{message}");
    rm.client_as("alice")
        .submit_application(in_queue(&app, "prod", ""))
        .await
        .expect("alice may submit to prod");
    assert_eq!(
        rm.report(&app).await.user,
        "alice",
        "the owner is the caller"
    );

    let app = rm.new_app().await;
    rm.client_as("bob")
        .submit_application(in_queue(&app, "adhoc", "bob"))
        .await
        .expect("a queue not listed takes anyone");

    // Only an admin submits for someone else, and may submit anywhere.
    let app = rm.new_app().await;
    assert_refused(
        rm.client_as("bob")
            .submit_application(in_queue(&app, "adhoc", "alice"))
            .await,
        Code::PermissionDenied,
        &format!("user bob may not submit application {app} on behalf of user alice"),
    );
    assert_refused(
        rm.client_as("boss")
            .submit_application(in_queue(&app, "adhoc", "a/b"))
            .await,
        Code::InvalidArgument,
        "user=a/b",
    );
    let listed = rm
        .client
        .list_applications(proto::ListApplicationsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .applications;
    assert_eq!(listed.len(), 2, "the refused submissions created nothing");
    rm.client_as("boss")
        .submit_application(in_queue(&app, "prod", "carol"))
        .await
        .expect("an admin may submit for carol, to prod");
    assert_eq!(rm.report(&app).await.user, "carol");
    rm.shutdown().await;
}
