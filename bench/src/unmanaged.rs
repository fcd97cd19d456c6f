//! How the bench becomes an application master without a container: YARN's unmanaged AM. It
//! asks the RM for an application id, submits with `unmanaged: true`, and gets back the attempt
//! it now acts as and that attempt's AM token; from there it speaks the AM protocol through the
//! real `AmRmClient`. The bench is a client like any other: its calls prove the cluster's
//! client secret, which the RM under test generated in its state dir.

use std::path::Path;

use anyhow::Context;
use spindle_app_master::{AmRmClient, Registration};
use spindle_containers::AttemptId;
use spindle_protocol as proto;
use spindle_protocol::application_client_client::ApplicationClientClient;
use spindle_security::{CallCredentials, Secret, SecretKind, current_user};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

pub type Applications = ApplicationClientClient<InterceptedService<Channel, CallCredentials>>;

/// A lazily connected channel to `address` (`host:port`), with Nagle off as the daemons have it.
pub fn channel(address: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(format!("http://{address}"))
        .with_context(|| format!("{address} is not a host:port address"))?
        .tcp_nodelay(true)
        .connect_lazy())
}

/// Proof of the `kind` secret that the RM with state dir `state_dir` generated, for this
/// process's user.
pub fn credentials(state_dir: &Path, kind: SecretKind) -> anyhow::Result<CallCredentials> {
    let path = state_dir.join(kind.file_name());
    let secret = Secret::read(&path).with_context(|| format!("reading the RM's {kind}"))?;
    Ok(CallCredentials::with_secret(kind, secret, current_user()))
}

/// The RM's client services at `address`, called with the client secret from `state_dir`.
pub fn applications(address: &str, state_dir: &Path) -> anyhow::Result<Applications> {
    Ok(ApplicationClientClient::with_interceptor(
        channel(address)?,
        credentials(state_dir, SecretKind::Client)?,
    ))
}

/// Submits an unmanaged application named `name` and registers as its AM.
pub async fn start_am(
    rm: &str,
    applications: &mut Applications,
    name: &str,
) -> anyhow::Result<(AmRmClient, Registration)> {
    let new = applications
        .get_new_application(proto::GetNewApplicationRequest {})
        .await
        .context("GetNewApplication")?
        .into_inner();
    let submission = proto::SubmitApplicationRequest {
        application_id: new.application_id.clone(),
        name: name.to_string(),
        user: current_user(),
        unmanaged: true,
        ..Default::default()
    };
    let submitted = applications
        .submit_application(submission)
        .await
        .with_context(|| format!("SubmitApplication of {}", new.application_id))?
        .into_inner();
    let attempt: AttemptId = submitted.attempt_id.parse().with_context(|| {
        format!(
            "the RM gave no usable attempt for unmanaged application {}",
            new.application_id
        )
    })?;
    let am = AmRmClient::new(rm, attempt, &submitted.am_token)?;
    let registration = am
        .register("bench", 0, "")
        .await
        .with_context(|| format!("registering {attempt}"))?;
    Ok((am, registration))
}
