//! A scriptable fake executor (feature `fake`): exit codes, start failures, hangs, endless output.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio_util::sync::CancellationToken;

use crate::executor::{ExecError, Executor, StepEnd, StepExit, StepIo};
use crate::task::{JobTask, LogStream, StepTask};

/// What a fake step does, chosen by step identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeBehavior {
    /// Writes `stdout` (masked like real output) and exits with `code`, publishing `outputs`.
    Exit {
        code: i32,
        stdout: Vec<u8>,
        outputs: Vec<(String, String)>,
    },
    /// `run_step` fails with `ExecError::Spawn`.
    FailToStart,
    /// Runs until stopped.
    Hang,
    /// Writes lines until stopped.
    EndlessOutput,
}

/// Runs no process: each step follows its scripted `FakeBehavior` (default: exit 0, no output).
#[derive(Debug, Clone, Default)]
pub struct FakeExecutor {
    behaviors: HashMap<String, FakeBehavior>,
    fails_prepare: bool,
    counters: Arc<FakeCounters>,
}

/// How often each method was called, shared by clones of the executor.
#[derive(Debug, Default)]
pub struct FakeCounters {
    pub prepared: AtomicUsize,
    pub steps_run: AtomicUsize,
    pub cleaned_up: AtomicUsize,
}

#[derive(Debug)]
pub struct FakeWorkspace {
    pub job_key: String,
}

impl FakeExecutor {
    pub fn new() -> FakeExecutor {
        FakeExecutor::default()
    }

    /// Scripts the step with this identifier.
    pub fn with_step(mut self, identifier: &str, behavior: FakeBehavior) -> FakeExecutor {
        self.behaviors.insert(identifier.to_owned(), behavior);
        self
    }

    /// Makes `prepare` fail.
    pub fn failing_prepare(mut self) -> FakeExecutor {
        self.fails_prepare = true;
        self
    }

    pub fn counters(&self) -> &FakeCounters {
        &self.counters
    }
}

impl Executor for FakeExecutor {
    type Workspace = FakeWorkspace;

    async fn prepare(&self, job: &JobTask) -> Result<FakeWorkspace, ExecError> {
        if self.fails_prepare {
            return Err(ExecError::Io {
                context: "fake prepare".to_owned(),
                source: io::Error::other("disk full"),
            });
        }
        self.counters.prepared.fetch_add(1, Ordering::SeqCst);
        Ok(FakeWorkspace {
            job_key: job.job_key.clone(),
        })
    }

    async fn run_step(
        &self,
        _workspace: &mut FakeWorkspace,
        step: &StepTask,
        io: StepIo<'_>,
    ) -> Result<StepExit, ExecError> {
        self.counters.steps_run.fetch_add(1, Ordering::SeqCst);
        let no_stop = CancellationToken::new();
        match self.behaviors.get(&step.identifier) {
            None => Ok(StepExit {
                end: StepEnd::Exited(0),
                outputs: Vec::new(),
            }),
            Some(FakeBehavior::Exit {
                code,
                stdout,
                outputs,
            }) => {
                io.capture(stdout.as_slice(), LogStream::Stdout, &no_stop)
                    .await
                    .map_err(ExecError::Spawn)?;
                let outputs = outputs
                    .iter()
                    .map(|(key, value)| (io.masker.mask_str(key), io.masker.mask_str(value)))
                    .collect();
                Ok(StepExit {
                    end: StepEnd::Exited(*code),
                    outputs,
                })
            }
            Some(FakeBehavior::FailToStart) => {
                Err(ExecError::Spawn(io::Error::from(io::ErrorKind::NotFound)))
            }
            Some(FakeBehavior::Hang) => {
                io.stop.cancelled().await;
                Ok(StepExit {
                    end: StepEnd::Stopped,
                    outputs: Vec::new(),
                })
            }
            Some(FakeBehavior::EndlessOutput) => {
                while !io.stop.is_cancelled() {
                    io.capture(&b"tick\n"[..], LogStream::Stdout, &no_stop)
                        .await
                        .map_err(ExecError::Spawn)?;
                    tokio::task::yield_now().await;
                }
                Ok(StepExit {
                    end: StepEnd::Stopped,
                    outputs: Vec::new(),
                })
            }
        }
    }

    async fn cleanup(&self, _workspace: &mut FakeWorkspace) -> Result<(), ExecError> {
        self.counters.cleaned_up.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}
