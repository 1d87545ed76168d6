//! Scheduler behaviour, driven through a small simulator over compiled YAML pipelines.

use super::*;
use crate::compile::compile_text;
use crate::definition::Format;
use crate::spec::PipelineSpec;
use crate::state::{RunState, Selection};
use proptest::prelude::*;

struct Sim {
    spec: PipelineSpec,
    state: RunState,
    context: RunContext,
    now: i64,
}

impl Sim {
    fn new(yaml: &str) -> Sim {
        Sim::with_selection(yaml, Selection::default())
    }

    fn with_selection(yaml: &str, selection: Selection) -> Sim {
        let spec = compile_text(yaml, Format::Yaml)
            .unwrap_or_else(|diagnostics| panic!("{diagnostics:#?}"));
        let mut state = RunState::new(&spec, &selection).expect("selection is valid");
        state.start(Timestamp(0)).expect("a new run starts");
        let mut sim = Sim {
            spec,
            state,
            context: RunContext::default(),
            now: 0,
        };
        sim.advance();
        sim
    }

    fn tick(&mut self) -> Timestamp {
        self.now += 1;
        Timestamp(self.now)
    }

    fn advance(&mut self) {
        let now = self.tick();
        advance(&self.spec, &mut self.state, &self.context, now)
            .expect("scheduler actions are legal");
    }

    fn job(&self, identifier: &str) -> JobIdx {
        self.spec
            .job_by_identifier(identifier)
            .unwrap_or_else(|| panic!("no job {identifier}"))
    }

    fn job_status(&self, identifier: &str) -> JobStatus {
        self.state.job(self.job(identifier)).status()
    }

    fn stage_status(&self, identifier: &str) -> StageStatus {
        self.state
            .stage(
                self.spec
                    .stage_by_identifier(identifier)
                    .expect("stage exists"),
            )
            .status()
    }

    /// Starts a queued job and finishes it with `status`, then lets the scheduler react.
    fn run(&mut self, identifier: &str, status: JobStatus) {
        let job = self.job(identifier);
        let now = self.tick();
        self.state
            .start_job(&self.spec, job, now)
            .expect("job was queued");
        let now = self.tick();
        self.state
            .finish_job(&self.spec, job, status, None, now)
            .expect("job was running");
        self.advance();
    }

    fn statuses(&self) -> Vec<(String, JobStatus)> {
        self.spec
            .jobs()
            .iter()
            .map(|job| (job.identifier.clone(), self.job_status(&job.identifier)))
            .collect()
    }
}

const PARALLEL_AND_SERIAL: &str = r#"
stages:
  - name: build
    jobs:
      - { name: a, steps: [{ run: "true" }] }
      - { name: b, steps: [{ run: "true" }] }
      - { name: c, needs: [a], steps: [{ run: "true" }] }
  - name: after
    jobs:
      - { name: d, steps: [{ run: "true" }] }
"#;

#[test]
fn independent_jobs_queue_together_and_a_serial_job_waits_only_for_its_own_needs() {
    let mut sim = Sim::new(PARALLEL_AND_SERIAL);
    assert_eq!(sim.job_status("a"), JobStatus::Queued);
    assert_eq!(sim.job_status("b"), JobStatus::Queued);
    assert_eq!(sim.job_status("c"), JobStatus::Init);
    assert_eq!(sim.job_status("d"), JobStatus::Init);

    // `c` starts as soon as `a` is done, while `b` is still running: not level by level.
    let b = sim.job("b");
    let now = sim.tick();
    sim.state.start_job(&sim.spec, b, now).expect("b queued");
    sim.run("a", JobStatus::Completed);
    assert_eq!(sim.job_status("c"), JobStatus::Queued);
    assert_eq!(sim.job_status("b"), JobStatus::Running);
    assert_eq!(
        sim.job_status("d"),
        JobStatus::Init,
        "the next stage waits for the whole stage"
    );

    let now = sim.tick();
    sim.state
        .finish_job(&sim.spec, b, JobStatus::Completed, None, now)
        .expect("b running");
    sim.advance();
    sim.run("c", JobStatus::Completed);
    assert_eq!(sim.stage_status("build"), StageStatus::Completed);
    assert_eq!(sim.job_status("d"), JobStatus::Queued);
    sim.run("d", JobStatus::Completed);
    assert_eq!(sim.state.status(), RunStatus::Completed);
}

#[test]
fn after_a_failure_completed_jobs_run_and_default_jobs_are_skipped() {
    let mut sim = Sim::new(
        r#"
jobs:
  - { name: compile, steps: [{ run: "false" }] }
  - { name: report, needs: [compile], if: "${{ completed() }}", steps: [{ run: "true" }] }
  - { name: package, needs: [compile], steps: [{ run: "true" }] }
  - { name: publish, needs: [package], steps: [{ run: "true" }] }
  - { name: on-failure, needs: [package], if: "${{ failure() }}", steps: [{ run: "true" }] }
"#,
    );
    sim.run("compile", JobStatus::Failed);
    assert_eq!(sim.job_status("report"), JobStatus::Queued);
    assert_eq!(sim.job_status("package"), JobStatus::Skipped);
    // A skip caused by a failure propagates as a failure: `publish` is skipped, `on-failure` runs.
    assert_eq!(sim.job_status("publish"), JobStatus::Skipped);
    assert_eq!(sim.job_status("on-failure"), JobStatus::Queued);
    sim.run("report", JobStatus::Completed);
    sim.run("on-failure", JobStatus::Completed);
    assert_eq!(sim.state.status(), RunStatus::Failed);
    assert_eq!(
        sim.state.job(sim.job("package")).skip_reason(),
        Some(&SkipReason::UpstreamFailed)
    );
}

#[test]
fn a_failed_stage_skips_later_stages_except_run_always_ones() {
    let mut sim = Sim::new(
        r#"
stages:
  - { name: build, jobs: [{ name: compile, steps: [{ run: "false" }] }] }
  - { name: deploy, jobs: [{ name: ship, steps: [{ run: "true" }] }] }
  - { name: cleanup, always: true, jobs: [{ name: tidy, steps: [{ run: "true" }] }] }
  - { name: notify, always: true, if: "${{ failure() }}", jobs: [{ name: page, steps: [{ run: "true" }] }] }
"#,
    );
    sim.run("compile", JobStatus::Failed);
    assert_eq!(sim.stage_status("build"), StageStatus::Failed);
    assert_eq!(sim.stage_status("deploy"), StageStatus::Skipped);
    assert_eq!(sim.job_status("ship"), JobStatus::Skipped);
    assert_eq!(sim.job_status("tidy"), JobStatus::Queued);
    sim.run("tidy", JobStatus::Completed);
    // `failure()` sees the failed `build` stage upstream, through `cleanup` and `deploy`.
    assert_eq!(
        sim.job_status("page"),
        JobStatus::Queued,
        "{:?}",
        sim.statuses()
    );
    sim.run("page", JobStatus::Completed);
    assert_eq!(sim.state.status(), RunStatus::Failed);
}

#[test]
fn a_deselected_stage_in_the_middle_does_not_let_the_next_one_start_early() {
    let mut sim = Sim::with_selection(
        r#"
stages:
  - { name: one, jobs: [{ name: a, steps: [{ run: "true" }] }] }
  - { name: two, jobs: [{ name: b, steps: [{ run: "true" }] }] }
  - { name: three, jobs: [{ name: c, steps: [{ run: "true" }] }] }
"#,
        Selection {
            stages: vec!["one".into(), "three".into()],
            jobs: vec![],
        },
    );
    assert_eq!(sim.stage_status("two"), StageStatus::Unselected);
    assert_eq!(sim.job_status("c"), JobStatus::Init);
    sim.run("a", JobStatus::Completed);
    assert_eq!(sim.job_status("c"), JobStatus::Queued);
}

#[test]
fn a_manual_admission_pauses_the_run_until_passed() {
    let mut sim = Sim::new(
        r#"
stages:
  - { name: build, jobs: [{ name: compile, steps: [{ run: "true" }] }] }
  - { name: deploy, manual: true, jobs: [{ name: ship, steps: [{ run: "true" }] }] }
"#,
    );
    sim.run("compile", JobStatus::Completed);
    assert_eq!(sim.stage_status("deploy"), StageStatus::Paused);
    assert_eq!(sim.state.status(), RunStatus::Paused);
    assert_eq!(sim.job_status("ship"), JobStatus::Init);

    let stage = sim.spec.stage_by_identifier("deploy").expect("stage");
    let now = sim.tick();
    sim.state
        .admit_stage(&sim.spec, stage, now)
        .expect("stage awaits admission");
    sim.advance();
    assert_eq!(sim.state.status(), RunStatus::Running);
    assert_eq!(sim.job_status("ship"), JobStatus::Queued);
    sim.run("ship", JobStatus::Completed);
    assert_eq!(sim.state.status(), RunStatus::Completed);
    assert!(sim.state.pause_time(Timestamp(sim.now)) > std::time::Duration::ZERO);
}

#[test]
fn cancelling_stops_waiting_jobs_at_once_and_ends_when_running_ones_report() {
    let mut sim = Sim::new(PARALLEL_AND_SERIAL);
    let a = sim.job("a");
    let now = sim.tick();
    sim.state.start_job(&sim.spec, a, now).expect("a queued");
    let now = sim.tick();
    let running = sim
        .state
        .request_cancel(&sim.spec, now)
        .expect("run is active");
    assert_eq!(running, vec![a]);
    assert_eq!(sim.job_status("b"), JobStatus::Canceled);
    assert_eq!(sim.job_status("c"), JobStatus::Canceled);
    sim.advance();
    assert_eq!(
        sim.state.status(),
        RunStatus::Running,
        "a is still being stopped"
    );
    let now = sim.tick();
    sim.state
        .finish_job(&sim.spec, a, JobStatus::Canceled, None, now)
        .expect("a running");
    sim.advance();
    assert_eq!(sim.state.status(), RunStatus::Canceled);
    assert_eq!(sim.stage_status("after"), StageStatus::Canceled);
}

#[test]
fn retry_resets_failed_jobs_and_what_they_blocked_but_keeps_completed_results() {
    let mut sim = Sim::new(PARALLEL_AND_SERIAL);
    sim.run("a", JobStatus::Failed);
    sim.run("b", JobStatus::Completed);
    assert_eq!(sim.job_status("c"), JobStatus::Skipped);
    assert_eq!(sim.state.status(), RunStatus::Failed);

    let now = sim.tick();
    let reset = sim
        .state
        .retry(&sim.spec, None, now)
        .expect("failed run can be retried");
    let names: Vec<&str> = reset
        .iter()
        .map(|job| sim.spec.job(*job).identifier.as_str())
        .collect();
    assert_eq!(names, vec!["a", "c", "d"]);
    assert_eq!(sim.job_status("b"), JobStatus::Completed);
    sim.advance();
    assert_eq!(sim.job_status("a"), JobStatus::Queued);
    sim.run("a", JobStatus::Completed);
    sim.run("c", JobStatus::Completed);
    sim.run("d", JobStatus::Completed);
    assert_eq!(sim.state.status(), RunStatus::Completed);
    assert_eq!(sim.state.job(sim.job("a")).attempt(), 2);
}

#[test]
fn retry_is_refused_for_runs_that_did_not_fail() {
    let mut sim = Sim::new(PARALLEL_AND_SERIAL);
    let now = sim.tick();
    assert_eq!(
        sim.state.retry(&sim.spec, None, now),
        Err(crate::state::RetryError::NotRetryable(RunStatus::Running))
    );
}

#[test]
fn selection_follows_select_strategy_and_choose_jobs() {
    let yaml = r#"
jobs:
  - { name: build, steps: [{ run: "true" }] }
  - { name: lint, select: never, steps: [{ run: "true" }] }
  - { name: audit, select: always, steps: [{ run: "true" }] }
"#;
    let sim = Sim::new(yaml);
    assert_eq!(sim.job_status("lint"), JobStatus::Unselected);
    assert_eq!(sim.job_status("build"), JobStatus::Queued);

    let sim = Sim::with_selection(
        yaml,
        Selection {
            stages: vec![],
            jobs: vec!["lint".into()],
        },
    );
    assert_eq!(sim.job_status("lint"), JobStatus::Queued);
    assert_eq!(sim.job_status("build"), JobStatus::Unselected);
    assert_eq!(
        sim.job_status("audit"),
        JobStatus::Queued,
        "`always` jobs cannot be deselected"
    );

    let spec = compile_text(yaml, Format::Yaml).expect("valid");
    let err = RunState::new(
        &spec,
        &Selection {
            stages: vec![],
            jobs: vec!["nope".into()],
        },
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "choose_jobs names `nope`, which is not a job of this pipeline"
    );
}

#[test]
fn conditions_see_the_pipeline_and_sources_contexts() {
    let yaml = r#"
jobs:
  - name: deploy
    if: "${{ pipeline.trigger_type == 'Manual' && sources.app.target_branch == 'main' }}"
    steps: [{ run: "true" }]
"#;
    let mut sim = Sim::new(yaml);
    // Empty contexts: the condition is false and the job is skipped.
    assert_eq!(sim.job_status("deploy"), JobStatus::Skipped);

    let spec = compile_text(yaml, Format::Yaml).expect("valid");
    let mut state = RunState::new(&spec, &Selection::default()).expect("valid");
    state.start(Timestamp(0)).expect("starts");
    sim.context = RunContext {
        pipeline: serde_json::json!({"trigger_type": "Manual"}),
        sources: serde_json::json!({"app": {"target_branch": "main"}}),
        env: serde_json::json!({}),
    };
    advance(&spec, &mut state, &sim.context, Timestamp(1)).expect("legal");
    assert_eq!(
        state
            .job(spec.job_by_identifier("deploy").expect("job"))
            .status(),
        JobStatus::Queued
    );
}

#[test]
fn a_job_condition_can_read_outputs_of_earlier_jobs() {
    let mut sim = Sim::new(
        r#"
jobs:
  - { name: probe, steps: [{ run: "true" }] }
  - { name: act, needs: [probe], if: "${{ jobs.probe.outputs.changed == 'yes' }}", steps: [{ run: "true" }] }
"#,
    );
    let probe = sim.job("probe");
    sim.state
        .add_job_outputs(probe, [("changed".to_owned(), "yes".to_owned())]);
    sim.run("probe", JobStatus::Completed);
    assert_eq!(sim.job_status("act"), JobStatus::Queued);
}

#[test]
fn an_empty_pipeline_completes_at_once() {
    let sim = Sim::new("stages: []");
    assert_eq!(sim.state.status(), RunStatus::Completed);
}

// ---- property: G8 DAG safety over random pipelines and random outcomes ----

/// A random pipeline: `stages[s]` holds jobs; each job may need earlier jobs of its stage.
fn pipeline_strategy() -> impl Strategy<Value = (String, usize)> {
    let stage = prop::collection::vec(prop::collection::vec((any::<u8>(), 0u8..4), 1..5), 1..4);
    (stage, prop::collection::vec(any::<bool>(), 4)).prop_map(|(stages, flags)| {
        let mut yaml = String::from("stages:\n");
        let mut total = 0;
        for (stage_index, jobs) in stages.iter().enumerate() {
            let always = flags[stage_index % flags.len()];
            yaml.push_str(&format!("  - name: s{stage_index}\n    always: {always}\n    jobs:\n"));
            for (job_index, (needs_mask, condition)) in jobs.iter().enumerate() {
                let needs: Vec<String> = (0..job_index)
                    .filter(|earlier| needs_mask & (1 << earlier) != 0)
                    .map(|earlier| format!("j{stage_index}_{earlier}"))
                    .collect();
                let condition = ["${{ default() }}", "${{ completed() }}", "${{ failure() }}", "${{ always() }}"]
                    [*condition as usize];
                yaml.push_str(&format!(
                    "      - {{ name: j{stage_index}_{job_index}, needs: [{}], if: \"{condition}\", steps: [{{ run: \"true\" }}] }}\n",
                    needs.join(", ")
                ));
                total += 1;
            }
        }
        (yaml, total)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn jobs_never_start_before_their_dependencies_are_final_and_final_states_stay_final(
        (yaml, _total) in pipeline_strategy(),
        outcomes in prop::collection::vec(0u8..4, 64),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 64),
        cancel_at in prop::option::of(0usize..20),
    ) {
        let spec = compile_text(&yaml, Format::Yaml).expect("generated pipelines are valid");
        let mut state = RunState::new(&spec, &Selection::default()).expect("no selection");
        state.start(Timestamp(0)).expect("starts");
        let context = RunContext::default();
        let mut now = 0i64;
        let mut finals: Vec<Option<JobStatus>> = vec![None; spec.jobs().len()];
        for round in 0..64 {
            now += 1;
            let actions = plan(&spec, &state, &context);
            for action in &actions {
                if let Action::QueueJob(job) = action {
                    for need in &spec.job(*job).needs {
                        prop_assert!(state.job(*need).status().is_final(), "{:?} queued before its need {:?}", job, need);
                    }
                    for prerequisite in &spec.stage(spec.job(*job).stage).prerequisites {
                        prop_assert!(state.stage(*prerequisite).status().is_final());
                    }
                }
                apply(&spec, &mut state, action, Timestamp(now)).expect("planned actions are legal");
            }
            if Some(round) == cancel_at && !state.status().is_final() {
                for job in state.request_cancel(&spec, Timestamp(now)).expect("active") {
                    state.finish_job(&spec, job, JobStatus::Canceled, None, Timestamp(now)).expect("running job ends");
                }
            }
            // Pick one queued or running job and move it along with a random outcome.
            let active: Vec<JobIdx> = spec.job_indices()
                .filter(|job| matches!(state.job(*job).status(), JobStatus::Queued | JobStatus::Running))
                .collect();
            if !active.is_empty() {
                let job = active[picks[round].index(active.len())];
                if state.job(job).status() == JobStatus::Queued {
                    state.start_job(&spec, job, Timestamp(now)).expect("queued job starts");
                } else {
                    let status = match outcomes[round] { 0 => JobStatus::Failed, 1 => JobStatus::Canceled, _ => JobStatus::Completed };
                    state.finish_job(&spec, job, status, None, Timestamp(now)).expect("running job ends");
                }
            }
            for job in spec.job_indices() {
                let status = state.job(job).status();
                if let Some(final_status) = finals[job.index()] {
                    prop_assert_eq!(status, final_status, "a final job changed");
                } else if status.is_final() {
                    finals[job.index()] = Some(status);
                }
            }
        }
        // Drain: finish everything still going, then the run must be final.
        for _ in 0..200 {
            advance(&spec, &mut state, &context, Timestamp(now)).expect("legal");
            let Some(job) = spec.job_indices().find(|job| matches!(state.job(*job).status(), JobStatus::Queued | JobStatus::Running)) else { break };
            if state.job(job).status() == JobStatus::Queued {
                state.start_job(&spec, job, Timestamp(now)).expect("starts");
            } else {
                state.finish_job(&spec, job, JobStatus::Completed, None, Timestamp(now)).expect("ends");
            }
        }
        advance(&spec, &mut state, &context, Timestamp(now)).expect("legal");
        prop_assert!(state.status().is_final(), "run ended {:?}", state.status());
        prop_assert!(spec.job_indices().all(|job| state.job(job).status().is_final()));
    }
}
