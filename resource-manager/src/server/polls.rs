//! Open Allocate long polls: at most one per attempt, each with its deadline. The core task
//! answers a poll when its attempt has news, when a newer poll supersedes it, or at its
//! deadline, whichever comes first.

use std::collections::{BTreeSet, HashMap};

use spindle_containers::AttemptId;
use spindle_protocol as proto;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::core::CoreError;

pub type AllocateReply = oneshot::Sender<Result<proto::AllocateResponse, CoreError>>;

struct OpenPoll {
    reply: AllocateReply,
    deadline: Instant,
    seq: u64,
}

#[derive(Default)]
pub struct Polls {
    open: HashMap<AttemptId, OpenPoll>,
    by_deadline: BTreeSet<(Instant, u64, AttemptId)>,
    next_seq: u64,
}

impl Polls {
    /// Holds `reply` open until `deadline`; returns the attempt's older poll, if one was open.
    pub fn hold(
        &mut self,
        attempt: AttemptId,
        reply: AllocateReply,
        deadline: Instant,
    ) -> Option<AllocateReply> {
        let older = self.take(attempt);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_deadline.insert((deadline, seq, attempt));
        self.open.insert(
            attempt,
            OpenPoll {
                reply,
                deadline,
                seq,
            },
        );
        older
    }

    pub fn take(&mut self, attempt: AttemptId) -> Option<AllocateReply> {
        let poll = self.open.remove(&attempt)?;
        self.by_deadline.remove(&(poll.deadline, poll.seq, attempt));
        Some(poll.reply)
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.by_deadline.first().map(|(deadline, _, _)| *deadline)
    }

    /// The polls whose deadline has come.
    pub fn expired(&mut self, now: Instant) -> Vec<(AttemptId, AllocateReply)> {
        let due: Vec<AttemptId> = self
            .by_deadline
            .iter()
            .take_while(|(deadline, _, _)| *deadline <= now)
            .map(|(_, _, attempt)| *attempt)
            .collect();
        due.into_iter()
            .filter_map(|attempt| Some((attempt, self.take(attempt)?)))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use spindle_containers::{ApplicationId, AttemptId};

    use super::*;

    #[test]
    fn one_poll_per_attempt_and_deadlines_in_order() {
        let a = AttemptId::new(ApplicationId::new(1, 1), 1);
        let b = AttemptId::new(ApplicationId::new(1, 2), 1);
        let t0 = Instant::now();
        let mut polls = Polls::default();
        assert!(
            polls
                .hold(a, oneshot::channel().0, t0 + Duration::from_secs(5))
                .is_none()
        );
        assert!(
            polls
                .hold(b, oneshot::channel().0, t0 + Duration::from_secs(1))
                .is_none()
        );
        assert!(
            polls
                .hold(a, oneshot::channel().0, t0 + Duration::from_secs(3))
                .is_some()
        );
        assert_eq!(polls.len(), 2);
        assert_eq!(polls.next_deadline(), Some(t0 + Duration::from_secs(1)));
        let due: Vec<_> = polls
            .expired(t0 + Duration::from_secs(3))
            .into_iter()
            .map(|(attempt, _)| attempt)
            .collect();
        assert_eq!(due, vec![b, a]);
        assert_eq!(polls.next_deadline(), None);
    }
}
