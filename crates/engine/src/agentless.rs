//! Agentless jobs, run by the engine itself: manual reviews (`official_devcloud_checkpoint`)
//! and delays (`official_devcloud_delay`).
//!
//! Their timers survive restarts because nothing is kept in memory: a review's deadline is its
//! step's stored start time plus the review timeout; a delay's end is its start plus the delay
//! plus the extensions users asked for. User decisions are stored step actions
//! (`pass`, `refuse`, `delay`, `delay_pass`, `delay_refuse`), read back on every step.

use crate::Inner;
use crate::config::EngineError;
use crate::model::RunIds;
use runnel_domain::Timestamp;
use runnel_domain::prepare::PreparedStepKind;
use runnel_domain::spec::{
    CheckpointSpec, JobIdx, PipelineSpec, ReviewStrategy, ReviewTimeoutAction, StepAction,
};
use runnel_domain::state::{RunState, StepUpdate};
use runnel_domain::status::{JobStatus, StepStatus};
use runnel_store::{StepActionRecord, StepActionStore};
use std::collections::HashMap;
use std::time::Duration;

/// User decisions on the steps of one run, by step run id, oldest first.
#[derive(Debug, Default)]
pub(crate) struct StepActions {
    by_step: HashMap<String, Vec<StepActionRecord>>,
}

impl StepActions {
    /// Whether a step reads the run's step actions: one of its agentless jobs (a review, a
    /// delay) is under way.
    pub(crate) fn are_read(spec: &PipelineSpec, state: &RunState) -> bool {
        spec.job_indices().any(|job| {
            spec.job(job).exec == runnel_domain::spec::ExecKind::Agentless
                && matches!(
                    state.job(job).status(),
                    JobStatus::Running | JobStatus::Paused
                )
        })
    }

    /// Loads the run's step actions when one of its agentless jobs could use them.
    pub(crate) async fn load_if_waiting(
        inner: &Inner,
        spec: &PipelineSpec,
        state: &RunState,
        run_id: &str,
    ) -> Result<StepActions, EngineError> {
        if !Self::are_read(spec, state) {
            return Ok(StepActions::default());
        }
        let mut by_step: HashMap<String, Vec<StepActionRecord>> = HashMap::new();
        for action in inner.store.step_actions(run_id).await? {
            by_step
                .entry(action.step_run_id.clone())
                .or_default()
                .push(action);
        }
        Ok(StepActions { by_step })
    }

    fn of(&self, step_run_id: &str) -> &[StepActionRecord] {
        self.by_step
            .get(step_run_id)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// What driving one job did.
#[derive(Debug, Default)]
pub(crate) struct Driven {
    pub(crate) changed: bool,
    /// The job must be looked at again at this time (a deadline).
    pub(crate) wake_at: Option<Timestamp>,
}

/// Moves a running or paused agentless job as far as its steps allow now.
pub(crate) fn drive(
    spec: &PipelineSpec,
    state: &mut RunState,
    ids: &RunIds,
    job: JobIdx,
    actions: &StepActions,
    now: Timestamp,
) -> Result<Driven, EngineError> {
    let illegal =
        |err: runnel_domain::state::IllegalTransition| EngineError::NotAllowed(err.to_string());
    let mut driven = Driven::default();
    for (position, step) in spec.job(job).steps.iter().enumerate() {
        let status = state.job(job).steps()[position].status();
        if status.is_final() {
            continue;
        }
        if !step.enabled {
            state
                .set_step(
                    spec,
                    job,
                    position,
                    StepUpdate::status(StepStatus::Skipped),
                    now,
                )
                .map_err(illegal)?;
            driven.changed = true;
            continue;
        }
        if status == StepStatus::Init {
            state
                .set_step(
                    spec,
                    job,
                    position,
                    StepUpdate::status(StepStatus::Running),
                    now,
                )
                .map_err(illegal)?;
            state
                .set_step(
                    spec,
                    job,
                    position,
                    StepUpdate::status(StepStatus::Paused),
                    now,
                )
                .map_err(illegal)?;
            if state.job(job).status() == JobStatus::Running {
                state.pause_job(spec, job, now).map_err(illegal)?;
            }
            driven.changed = true;
        }
        let started = state.job(job).steps()[position].started_at().unwrap_or(now);
        let step_actions = actions.of(&ids.steps[job.index()][position]);
        let verdict = match &step.action {
            StepAction::Checkpoint(review) => review_verdict(review, step_actions, started, now),
            StepAction::Delay { duration } => delay_verdict(*duration, step_actions, started, now),
            StepAction::Shell { .. } | StepAction::Plugin => Verdict::Fail(format!(
                "step `{}` cannot run inside the service",
                step.name
            )),
        };
        match verdict {
            Verdict::Wait(until) => {
                driven.wake_at = until;
                return Ok(driven);
            }
            Verdict::Pass(message) => {
                let update = StepUpdate {
                    status: StepStatus::Completed,
                    exit_code: None,
                    message,
                };
                state
                    .set_step(spec, job, position, update, now)
                    .map_err(illegal)?;
                if state.job(job).status() == JobStatus::Paused {
                    state.resume_job(spec, job, now).map_err(illegal)?;
                }
                driven.changed = true;
            }
            Verdict::Fail(message) => {
                let update = StepUpdate {
                    status: StepStatus::Failed,
                    exit_code: None,
                    message: Some(message.clone()),
                };
                state
                    .set_step(spec, job, position, update, now)
                    .map_err(illegal)?;
                state
                    .finish_job(spec, job, JobStatus::Failed, Some(message), now)
                    .map_err(illegal)?;
                driven.changed = true;
                return Ok(driven);
            }
        }
    }
    if matches!(
        state.job(job).status(),
        JobStatus::Running | JobStatus::Paused
    ) {
        if state.job(job).status() == JobStatus::Paused {
            state.resume_job(spec, job, now).map_err(illegal)?;
        }
        state
            .finish_job(spec, job, JobStatus::Completed, None, now)
            .map_err(illegal)?;
        driven.changed = true;
    }
    Ok(driven)
}

enum Verdict {
    /// Not yet; look again at this time (if any).
    Wait(Option<Timestamp>),
    Pass(Option<String>),
    Fail(String),
}

/// A review: one refusal fails it; `all` needs every listed approver, `any` one pass; at the
/// deadline the timeout policy decides. Decisions are checked for permission when made.
fn review_verdict(
    review: &CheckpointSpec,
    actions: &[StepActionRecord],
    started: Timestamp,
    now: Timestamp,
) -> Verdict {
    if let Some(refusal) = actions.iter().find(|action| action.action == "refuse") {
        let comment = if refusal.detail.is_empty() {
            String::new()
        } else {
            format!(": {}", refusal.detail)
        };
        return Verdict::Fail(format!("refused by {}{comment}", refusal.user_name));
    }
    let passed: Vec<&str> = actions
        .iter()
        .filter(|action| action.action == "pass")
        .map(|action| action.user_id.as_str())
        .collect();
    let done = match review.strategy {
        ReviewStrategy::Any => !passed.is_empty(),
        ReviewStrategy::All if review.approvers.is_empty() => !passed.is_empty(),
        ReviewStrategy::All => review
            .approvers
            .iter()
            .all(|approver| passed.contains(&approver.as_str())),
    };
    if done {
        return Verdict::Pass(None);
    }
    let deadline = started + review.timeout;
    if now >= deadline {
        return match review.timeout_action {
            ReviewTimeoutAction::Pass => Verdict::Pass(Some(
                "review timed out; passed by its timeout policy".to_owned(),
            )),
            ReviewTimeoutAction::Reject => Verdict::Fail("review timed out".to_owned()),
        };
    }
    Verdict::Wait(Some(deadline))
}

/// A delay: ends at start + duration + extensions, or when passed; a refusal fails it.
fn delay_verdict(
    duration: Duration,
    actions: &[StepActionRecord],
    started: Timestamp,
    now: Timestamp,
) -> Verdict {
    if let Some(refusal) = actions
        .iter()
        .find(|action| action.action == "delay_refuse")
    {
        return Verdict::Fail(format!("delay stopped by {}", refusal.user_name));
    }
    if actions.iter().any(|action| action.action == "delay_pass") {
        return Verdict::Pass(None);
    }
    let extension: u64 = actions
        .iter()
        .filter(|action| action.action == "delay")
        .filter_map(|action| action.detail.parse::<u64>().ok())
        .sum();
    let due = started + duration + Duration::from_secs(extension);
    if now >= due {
        Verdict::Pass(None)
    } else {
        Verdict::Wait(Some(due))
    }
}

/// The prepared kind of an agentless step (used to check which actions a step accepts).
pub(crate) fn kind_of(
    spec: &PipelineSpec,
    job: JobIdx,
    position: usize,
) -> Option<PreparedStepKind> {
    match &spec.job(job).steps.get(position)?.action {
        StepAction::Checkpoint(review) => Some(PreparedStepKind::Checkpoint(review.clone())),
        StepAction::Delay { duration } => Some(PreparedStepKind::Delay(*duration)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A verdict as a comparable value.
    #[derive(Debug, PartialEq, Eq)]
    enum Seen {
        Wait(Option<Timestamp>),
        Pass(Option<String>),
        Fail(String),
    }

    fn seen(verdict: Verdict) -> Seen {
        match verdict {
            Verdict::Wait(until) => Seen::Wait(until),
            Verdict::Pass(message) => Seen::Pass(message),
            Verdict::Fail(message) => Seen::Fail(message),
        }
    }

    const START: Timestamp = Timestamp::from_millis(1_750_000_000_000);
    const TIMEOUT: Duration = Duration::from_secs(3600);

    fn review(strategy: ReviewStrategy, timeout_action: ReviewTimeoutAction) -> CheckpointSpec {
        CheckpointSpec {
            audit_source: "members".to_owned(),
            approvers: vec![
                "u-alice".to_owned(),
                "u-bob".to_owned(),
                "u-carol".to_owned(),
            ],
            audit_role: None,
            strategy,
            timeout: TIMEOUT,
            timeout_action,
            comment: String::new(),
        }
    }

    fn decision(user: &str, action: &str, detail: &str) -> StepActionRecord {
        StepActionRecord {
            id: format!("{user}-{action}"),
            run_id: "run".to_owned(),
            step_run_id: "step".to_owned(),
            user_id: format!("u-{user}"),
            user_name: user.to_owned(),
            action: action.to_owned(),
            detail: detail.to_owned(),
            at: START + Duration::from_secs(1),
        }
    }

    /// The verdict a minute after the review started, well before its deadline.
    fn early(review: &CheckpointSpec, actions: &[StepActionRecord]) -> Seen {
        seen(review_verdict(
            review,
            actions,
            START,
            START + Duration::from_secs(60),
        ))
    }

    const DEADLINE: Timestamp = Timestamp::from_millis(1_750_000_000_000 + 3_600_000);

    #[test]
    fn any_passes_when_one_of_several_approvers_passes() {
        let any = review(ReviewStrategy::Any, ReviewTimeoutAction::Reject);
        assert_eq!(early(&any, &[]), Seen::Wait(Some(DEADLINE)));
        assert_eq!(
            early(&any, &[decision("bob", "pass", "")]),
            Seen::Pass(None)
        );
    }

    #[test]
    fn all_waits_until_every_approver_has_passed_then_passes() {
        let all = review(ReviewStrategy::All, ReviewTimeoutAction::Reject);
        let alice = decision("alice", "pass", "");
        let bob = decision("bob", "pass", "");
        let carol = decision("carol", "pass", "");
        assert_eq!(early(&all, &[]), Seen::Wait(Some(DEADLINE)));
        assert_eq!(
            early(&all, std::slice::from_ref(&alice)),
            Seen::Wait(Some(DEADLINE))
        );
        // The same approver twice is still one approver.
        assert_eq!(
            early(&all, &[alice.clone(), alice.clone(), bob.clone()]),
            Seen::Wait(Some(DEADLINE))
        );
        // A pass by someone who is not listed does not stand for a listed approver.
        assert_eq!(
            early(
                &all,
                &[alice.clone(), bob.clone(), decision("mallory", "pass", "")]
            ),
            Seen::Wait(Some(DEADLINE))
        );
        assert_eq!(early(&all, &[carol, alice, bob]), Seen::Pass(None));
    }

    #[test]
    fn one_refusal_refuses_under_both_strategies() {
        for strategy in [ReviewStrategy::Any, ReviewStrategy::All] {
            let review = review(strategy, ReviewTimeoutAction::Pass);
            let refused = Seen::Fail("refused by carol: not today".to_owned());
            assert_eq!(
                early(&review, &[decision("carol", "refuse", "not today")]),
                refused,
                "{strategy:?}"
            );
            // Even after others passed (the refusal wins whatever the order)...
            assert_eq!(
                early(
                    &review,
                    &[
                        decision("alice", "pass", ""),
                        decision("carol", "refuse", "not today"),
                        decision("bob", "pass", ""),
                    ]
                ),
                refused,
                "{strategy:?}"
            );
            // ...and past the deadline, whose policy would pass.
            assert_eq!(
                seen(review_verdict(
                    &review,
                    &[decision("carol", "refuse", "")],
                    START,
                    DEADLINE + Duration::from_secs(1),
                )),
                Seen::Fail("refused by carol".to_owned()),
                "{strategy:?}"
            );
        }
    }

    #[test]
    fn at_the_deadline_the_timeout_strategy_decides() {
        for strategy in [ReviewStrategy::Any, ReviewStrategy::All] {
            let passing = review(strategy, ReviewTimeoutAction::Pass);
            let rejecting = review(strategy, ReviewTimeoutAction::Reject);
            // A passed approver short of `all` does not change what the deadline does.
            let partial = if strategy == ReviewStrategy::All {
                vec![decision("alice", "pass", "")]
            } else {
                Vec::new()
            };
            let just_before = DEADLINE - Duration::from_millis(1);
            for review in [&passing, &rejecting] {
                assert_eq!(
                    seen(review_verdict(review, &partial, START, just_before)),
                    Seen::Wait(Some(DEADLINE)),
                    "{strategy:?} {:?}",
                    review.timeout_action
                );
            }
            for now in [DEADLINE, DEADLINE + Duration::from_secs(86_400)] {
                assert_eq!(
                    seen(review_verdict(&passing, &partial, START, now)),
                    Seen::Pass(Some(
                        "review timed out; passed by its timeout policy".to_owned()
                    )),
                    "{strategy:?}"
                );
                assert_eq!(
                    seen(review_verdict(&rejecting, &partial, START, now)),
                    Seen::Fail("review timed out".to_owned()),
                    "{strategy:?}"
                );
            }
        }
    }

    #[test]
    fn a_review_decided_in_time_is_not_undone_by_its_deadline() {
        let all = review(ReviewStrategy::All, ReviewTimeoutAction::Reject);
        let everyone = [
            decision("alice", "pass", ""),
            decision("bob", "pass", ""),
            decision("carol", "pass", ""),
        ];
        assert_eq!(
            seen(review_verdict(&all, &everyone, START, DEADLINE)),
            Seen::Pass(None)
        );
    }
}
