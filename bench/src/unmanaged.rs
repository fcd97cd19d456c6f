//! How the bench becomes an application master without a container: YARN's unmanaged AM. It
//! asks the RM for an application id, submits with `unmanaged: true`, and gets back the attempt
//! it now acts as; from there it speaks the AM protocol through the real `AmRmClient`.

use anyhow::Context;
use spindle_app_master::{AmRmClient, Registration};
use spindle_containers::AttemptId;
use spindle_protocol as proto;
use spindle_protocol::application_client_client::ApplicationClientClient;
use tonic::transport::{Channel, Endpoint};

pub type Applications = ApplicationClientClient<Channel>;

/// A lazily connected channel to `address` (`host:port`), with Nagle off as the daemons have it.
pub fn channel(address: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(format!("http://{address}"))
        .with_context(|| format!("{address} is not a host:port address"))?
        .tcp_nodelay(true)
        .connect_lazy())
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
        user: "bench".into(),
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
    let am = AmRmClient::new(rm, attempt)?;
    let registration = am
        .register("bench", 0, "")
        .await
        .with_context(|| format!("registering {attempt}"))?;
    Ok((am, registration))
}
