//! The local run loop: the pure scheduler decides, the shell executor runs, events come back.

use super::{now, report};
use anyhow::Context as _;
use runnel_domain::params::ResolvedParameters;
use runnel_domain::prepare::{PreparedJob, PreparedStepKind, prepare_job};
use runnel_domain::scheduler::{Action, RunContext, advance};
use runnel_domain::spec::{ExecKind, JobIdx, PipelineSpec};
use runnel_domain::state::{RunState, StepUpdate};
use runnel_domain::status::{JobStatus, RunStatus, StepStatus};
use runnel_executor::{
    JobEvent, JobOutcome, JobTask, ShellExecutor, StepAction, StepResult, StepTask, run_job,
};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub(super) struct DriverConfig {
    pub(super) spec: PipelineSpec,
    pub(super) state: RunState,
    pub(super) context: RunContext,
    pub(super) parameters: ResolvedParameters,
    pub(super) executor: ShellExecutor,
    pub(super) parallel: usize,
    pub(super) run_id: String,
    pub(super) quiet: bool,
}

/// Everything that wakes the loop up.
enum Message {
    Event(JobIdx, JobEvent),
    Done(JobIdx, JobOutcome),
}

pub(super) struct Driver {
    spec: Arc<PipelineSpec>,
    state: RunState,
    context: RunContext,
    parameters: ResolvedParameters,
    executor: Arc<ShellExecutor>,
    parallel: usize,
    run_id: String,
    printer: report::LogPrinter,
    /// Jobs the scheduler queued that wait for a free slot, in order.
    waiting: VecDeque<JobIdx>,
    /// Running jobs and the token that stops them.
    running: HashMap<JobIdx, CancellationToken>,
    tx: mpsc::Sender<Message>,
    rx: mpsc::Receiver<Message>,
}

impl Driver {
    pub(super) fn new(config: DriverConfig) -> Driver {
        let (tx, rx) = mpsc::channel(1024);
        let printer = report::LogPrinter::new(&config.spec, config.quiet);
        Driver {
            spec: Arc::new(config.spec),
            state: config.state,
            context: config.context,
            parameters: config.parameters,
            executor: Arc::new(config.executor),
            parallel: config.parallel,
            run_id: config.run_id,
            printer,
            waiting: VecDeque::new(),
            running: HashMap::new(),
            tx,
            rx,
        }
    }

    /// Runs to a final status and prints the summary.
    pub(super) async fn run(mut self) -> anyhow::Result<RunStatus> {
        let started = std::time::Instant::now();
        // Listen before any job starts, so an early Ctrl-C or SIGTERM is never missed.
        let mut interrupt =
            signal(SignalKind::interrupt()).context("while installing the Ctrl-C handler")?;
        let mut terminate =
            signal(SignalKind::terminate()).context("while installing the SIGTERM handler")?;
        self.state.start(now()).context("while starting the run")?;
        let mut interrupts = 0u32;
        loop {
            self.step_scheduler()?;
            self.dispatch()?;
            if self.state.status().is_final() {
                break;
            }
            tokio::select! {
                message = self.rx.recv() => {
                    let message = message.context("every job task ended without reporting")?;
                    self.handle(message)?;
                }
                _ = async { tokio::select! { _ = interrupt.recv() => {}, _ = terminate.recv() => {} } } => {
                    interrupts += 1;
                    if interrupts > 1 {
                        eprintln!("runnel: interrupted twice, exiting without waiting for jobs to stop");
                        std::process::exit(130);
                    }
                    eprintln!("runnel: stopping the run (Ctrl-C again to quit at once)");
                    self.cancel()?;
                }
            }
        }
        report::print_summary(&self.spec, &self.state, started.elapsed());
        Ok(self.state.status())
    }

    /// Lets the scheduler act until it has nothing left to do.
    fn step_scheduler(&mut self) -> anyhow::Result<()> {
        loop {
            let actions =
                advance(&self.spec, &mut self.state, &self.context, now()).context("scheduler")?;
            let mut stopped = false;
            for action in actions {
                match action {
                    Action::QueueJob(job) => self.waiting.push_back(job),
                    Action::AwaitAdmission(stage) => {
                        let stage = self.spec.stage(stage);
                        eprintln!(
                            "runnel: stage `{}` waits for a manual start; `runnel exec` cannot give one (use `runnel serve`), stopping the run",
                            stage.name
                        );
                        self.cancel()?;
                        stopped = true;
                    }
                    Action::SkipJob { job, reason } => {
                        self.printer.note(&self.spec, job, &reason.message())
                    }
                    _ => {}
                }
            }
            // Stopping changes what the scheduler has to do (cancelled stages, the run's end).
            if !stopped {
                return Ok(());
            }
        }
    }

    fn dispatch(&mut self) -> anyhow::Result<()> {
        while self.running.len() < self.parallel {
            let Some(job) = self.waiting.pop_front() else {
                break;
            };
            if self.state.job(job).status() != JobStatus::Queued {
                continue;
            }
            self.start(job)?;
        }
        Ok(())
    }

    fn start(&mut self, job: JobIdx) -> anyhow::Result<()> {
        self.state.start_job(&self.spec, job, now())?;
        let prepared = match prepare_job(
            &self.spec,
            &self.state,
            job,
            &self.parameters,
            &self.context,
        ) {
            Ok(prepared) => prepared,
            Err(err) => {
                self.printer.note(&self.spec, job, &err.to_string());
                self.state.finish_job(
                    &self.spec,
                    job,
                    JobStatus::Failed,
                    Some(err.to_string()),
                    now(),
                )?;
                return Ok(());
            }
        };
        let cancel = CancellationToken::new();
        self.running.insert(job, cancel.clone());
        let tx = self.tx.clone();
        if self.spec.job(job).exec == ExecKind::Agentless {
            tokio::spawn(run_agentless(job, prepared, tx, cancel));
            return Ok(());
        }
        let task = job_task(&self.run_id, &self.spec.job(job).identifier, prepared);
        let executor = Arc::clone(&self.executor);
        tokio::spawn(async move {
            let (events_tx, mut events_rx) = mpsc::channel(256);
            let forward = async {
                while let Some(event) = events_rx.recv().await {
                    if tx.send(Message::Event(job, event)).await.is_err() {
                        break;
                    }
                }
            };
            let (outcome, ()) = tokio::join!(
                run_job(executor.as_ref(), &task, events_tx, cancel),
                forward
            );
            let _ = tx.send(Message::Done(job, outcome)).await;
        });
        Ok(())
    }

    fn handle(&mut self, message: Message) -> anyhow::Result<()> {
        match message {
            Message::Event(job, JobEvent::StepStarted { step, at }) => {
                self.state.set_step(
                    &self.spec,
                    job,
                    step,
                    StepUpdate::status(StepStatus::Running),
                    at,
                )?;
            }
            Message::Event(job, JobEvent::Log(chunk)) => {
                self.printer.print(&self.spec, job, &chunk)
            }
            Message::Event(job, JobEvent::StepFinished { step, result }) => {
                let update = StepUpdate {
                    status: result.status,
                    exit_code: result.exit_code,
                    message: result.message.clone(),
                };
                self.state
                    .set_step(&self.spec, job, step, update, result.finished_at)?;
            }
            Message::Done(job, outcome) => {
                self.running.remove(&job);
                let outputs = outcome
                    .steps
                    .iter()
                    .flat_map(|step| step.outputs.iter().cloned())
                    .collect::<Vec<_>>();
                self.state.add_job_outputs(job, outputs);
                if self.state.job(job).status() == JobStatus::Running
                    || self.state.job(job).status() == JobStatus::Paused
                {
                    self.state.finish_job(
                        &self.spec,
                        job,
                        outcome.status,
                        outcome.message,
                        now(),
                    )?;
                }
            }
        }
        Ok(())
    }

    fn cancel(&mut self) -> anyhow::Result<()> {
        if self.state.is_cancel_requested() || self.state.status().is_final() {
            return Ok(());
        }
        for job in self.state.request_cancel(&self.spec, now())? {
            if let Some(token) = self.running.get(&job) {
                token.cancel();
            }
        }
        self.waiting.clear();
        Ok(())
    }
}

/// Maps a prepared job onto the executor's input.
fn job_task(run_id: &str, identifier: &str, prepared: PreparedJob) -> JobTask {
    let steps = prepared
        .steps
        .into_iter()
        .map(|step| StepTask {
            identifier: step.identifier,
            name: step.name,
            action: match step.kind {
                PreparedStepKind::Shell { script } => StepAction::Shell { script },
                PreparedStepKind::Disabled => StepAction::Disabled,
                PreparedStepKind::Unsupported { task } => StepAction::Unsupported { task },
                // Compilation keeps review and delay steps out of executor jobs.
                PreparedStepKind::Checkpoint(_) => StepAction::Unsupported {
                    task: "official_devcloud_checkpoint".to_owned(),
                },
                PreparedStepKind::Delay(_) => StepAction::Unsupported {
                    task: "official_devcloud_delay".to_owned(),
                },
            },
            env: step.env,
        })
        .collect();
    JobTask {
        job_key: format!("{run_id}-{identifier}"),
        env: prepared.env,
        secrets: prepared.secrets,
        steps,
        timeout: Some(prepared.timeout),
    }
}

/// Agentless jobs in a local run: delays wait; a manual review cannot be answered without a server.
async fn run_agentless(
    job: JobIdx,
    prepared: PreparedJob,
    tx: mpsc::Sender<Message>,
    cancel: CancellationToken,
) {
    let mut results = Vec::new();
    let mut status = JobStatus::Completed;
    let mut message = None;
    for (index, step) in prepared.steps.iter().enumerate() {
        let started = now();
        let (step_status, step_message) = if status != JobStatus::Completed {
            (StepStatus::Skipped, None)
        } else {
            match &step.kind {
                PreparedStepKind::Disabled => (StepStatus::Skipped, None),
                PreparedStepKind::Delay(duration) => {
                    let _ = tx
                        .send(Message::Event(
                            job,
                            JobEvent::StepStarted {
                                step: index,
                                at: started,
                            },
                        ))
                        .await;
                    tokio::select! {
                        _ = tokio::time::sleep(*duration) => (StepStatus::Completed, None),
                        _ = cancel.cancelled() => {
                            status = JobStatus::Canceled;
                            (StepStatus::Canceled, None)
                        }
                    }
                }
                PreparedStepKind::Checkpoint(_) => {
                    let text = "a manual review needs a server to answer it (`runnel serve`); `runnel exec` fails it".to_owned();
                    status = JobStatus::Failed;
                    message = Some(text.clone());
                    (StepStatus::Failed, Some(text))
                }
                other => {
                    let text = format!("step kind {other:?} cannot run in an agentless job");
                    status = JobStatus::Failed;
                    message = Some(text.clone());
                    (StepStatus::Failed, Some(text))
                }
            }
        };
        let result = StepResult {
            status: step_status,
            exit_code: None,
            message: step_message,
            started_at: Some(started),
            finished_at: now(),
            outputs: Vec::new(),
        };
        let _ = tx
            .send(Message::Event(
                job,
                JobEvent::StepFinished {
                    step: index,
                    result: result.clone(),
                },
            ))
            .await;
        results.push(result);
    }
    let _ = tx
        .send(Message::Done(
            job,
            JobOutcome {
                status,
                message,
                steps: results,
            },
        ))
        .await;
}
