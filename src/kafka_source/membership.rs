//! A consumer's membership of its topic's group: its identity (a static
//! instance id or none, the classic or the consumer group protocol), what a
//! fatal error of the client means for it (a fenced or still-held instance
//! id), how long it keeps joining while its instance id is held, and
//! leaving the group before the close.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use super::context::PersisterContext;
use crate::config::{GroupProtocol, KafkaTopicSection};
use crate::pipeline::control::{Control, Failure, EXIT_INSTANCE_NAME_IN_USE};

/// A consumer's identity in its topic's group: which group, which static
/// instance id (KIP-345) if any, which protocol.
///
/// What a stop does with the partitions follows from it: every stop
/// unsubscribes first (`leave_group`). Under the classic protocol that is a
/// LeaveGroup, naming the instance of a static member: its partitions move
/// to the other members at once, and a restart joins again (a cooperative
/// rebalance; closing a static member without it, to keep the partitions
/// for the restart, was measured to hang the close until the drain
/// deadline whenever a rebalance was under way). Under the consumer
/// protocol librdkafka's leave of a static member keeps its partitions
/// until its session times out (member epoch -2), for the restart.
#[derive(Debug, Clone)]
pub struct Membership {
    /// The section's `group_id`.
    pub group: String,
    /// `group.instance.id`, with static membership.
    pub instance_id: Option<String>,
    /// `group_instance_name`, for messages.
    pub instance_name: String,
    /// The group protocol.
    pub protocol: GroupProtocol,
}

impl Membership {
    /// The membership of consumer thread `member` of `section`.
    pub fn of(section: &KafkaTopicSection, member: usize) -> Membership {
        Membership {
            group: section.group_id.clone(),
            instance_id: section.group_instance_id(member),
            instance_name: section.instance_name(),
            protocol: section.protocol(),
        }
    }

    /// The failure when another consumer holds this one's instance id.
    fn duplicate_instance(&self, topic: &str, reason: &str) -> Failure {
        let message = format!(
            "consuming {topic}: another consumer of group {} uses the static instance id {} ({reason}): two persisters run with group_instance_name = {}; give each its own group_instance_name in [kafka] (default: the host name; empty turns static membership off)",
            self.group,
            self.instance_id.as_deref().unwrap_or("-"),
            self.instance_name,
        );
        Failure {
            message,
            exit_status: EXIT_INSTANCE_NAME_IN_USE,
        }
    }
}

/// How a consumer client's run ended.
pub(super) enum Ended {
    /// Stopped (a stop signal or a fatal error): nothing more to do.
    Stopped,
    /// Its static instance id is still held by a member that has not left
    /// (consumer protocol): a killed previous run of this persister whose
    /// session has not expired yet, or another persister with the same
    /// instance name. Nothing was assigned: connect again later.
    InstanceIdHeld(String),
}

impl Membership {
    /// After librdkafka reported the fatal error `code` (`reason`) on the
    /// consumer of `topic`: what it means. Another member holding this
    /// consumer's static instance id before anything was ever assigned to
    /// it (`assigned_once`) ends the run (to connect again while that may
    /// be a killed previous run, see [`Ended::InstanceIdHeld`]); anything
    /// else ends the process, said with its cause, after an orderly stop:
    /// the WAL is sound, and what it holds reaches InfluxDB before the exit
    /// (a fenced persister that left records behind would deliver them only
    /// when it runs again).
    pub(super) fn fatal_error(
        &self,
        topic: &str,
        code: RDKafkaErrorCode,
        reason: String,
        assigned_once: bool,
        control: &Control,
    ) -> Ended {
        match code {
            RDKafkaErrorCode::UnreleasedInstanceId if !assigned_once => {
                return Ended::InstanceIdHeld(reason);
            }
            RDKafkaErrorCode::FencedInstanceId | RDKafkaErrorCode::UnreleasedInstanceId => {
                control.fail(self.duplicate_instance(topic, &reason));
            }
            _ => control.fail(Failure {
                message: format!(
                    "the Kafka consumer of topic {topic} in group {} failed for good: {reason}",
                    self.group
                ),
                exit_status: 1,
            }),
        }
        Ended::Stopped
    }
}

/// Longest a consumer keeps connecting again while its static instance id
/// is held by a member that has not left (consumer protocol): above the
/// brokers' longest session timeout by default
/// (`group.consumer.max.session.timeout.ms`, 60 s), after which the holder
/// can only be another running persister.
const INSTANCE_ID_PATIENCE: Duration = Duration::from_secs(75);

/// Pause between two attempts to join with a held instance id.
const INSTANCE_ID_RETRY: Duration = Duration::from_secs(1);

/// Joining again while this consumer's static instance id is held by a
/// member that has not left (see [`Ended::InstanceIdHeld`]).
#[derive(Default)]
pub(super) struct HeldInstanceId {
    /// When the instance id was first found held.
    since: Option<Instant>,
}

impl HeldInstanceId {
    /// After a run of the consumer of `topic` ended with its instance id
    /// held (`reason`): waits [`INSTANCE_ID_RETRY`] and returns true to
    /// join again, or false to give up, when a stop was requested or the id
    /// was held for [`INSTANCE_ID_PATIENCE`] (then the run fails: another
    /// persister uses the same instance name).
    pub(super) fn wait(
        &mut self,
        membership: &Membership,
        topic: &str,
        reason: &str,
        control: &Control,
    ) -> bool {
        let since = *self.since.get_or_insert_with(|| {
            log::warn!(
                "consuming {topic}: the static instance id {} is still held in group {} ({reason}): by this persister's previous run if it was killed (until its session times out on the brokers), or by another persister with the same group_instance_name; joining again every {INSTANCE_ID_RETRY:?} for up to {INSTANCE_ID_PATIENCE:?}",
                membership.instance_id.as_deref().unwrap_or("-"),
                membership.group
            );
            Instant::now()
        });
        if since.elapsed() >= INSTANCE_ID_PATIENCE {
            let mut failure = membership.duplicate_instance(topic, reason);
            failure.message += &format!(" (refused for {INSTANCE_ID_PATIENCE:?})");
            control.fail(failure);
            return false;
        }
        let retry_at = Instant::now() + INSTANCE_ID_RETRY;
        while Instant::now() < retry_at {
            if control.stopping() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    }
}

/// Longest a stopping consumer waits for the group to take its partitions
/// back before it closes anyway (the close itself then revokes them).
const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Leaves the group and waits until nothing is assigned, so that the close
/// (when the consumer is dropped) finds no assignment in progress:
/// librdkafka 2.5 and later can abort the process in
/// `rd_kafka_cgrp_terminated` when a close meets a rebalance
/// (confluentinc/librdkafka#4792, open at 2.12.1; seen here when two
/// members stop one after the other). Unsubscribing and serving the revoke
/// first, as its maintainers suggest, closes with nothing to stop.
pub(super) fn leave_group(consumer: &BaseConsumer<PersisterContext>, ctx: &PersisterContext) {
    ctx.closing.store(true, Ordering::Relaxed);
    consumer.unsubscribe();
    let deadline = Instant::now() + LEAVE_TIMEOUT;
    loop {
        // Serves the revoke (flush, synchronous commit, unassign). A message
        // polled now is neither in the WAL nor committed: the partition's
        // next owner reads it again.
        if let Some(Err(e)) = consumer.poll(Duration::from_millis(50)) {
            log::debug!("leaving the group of {}: {e}", ctx.topic);
        }
        let assigned = consumer.assignment().map_or(0, |a| a.count());
        if assigned == 0 {
            return;
        }
        if Instant::now() >= deadline {
            log::warn!(
                "leaving the group of {}: {assigned} partition(s) still assigned after {LEAVE_TIMEOUT:?}; closing anyway",
                ctx.topic
            );
            return;
        }
    }
}
