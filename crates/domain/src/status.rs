//! CodeArts statuses of runs, stages, jobs and steps (spec §12.1–12.2), with their wire names.

use std::fmt;
use std::str::FromStr;

/// Declares a status enum with its exact wire spelling, `as_str`, `FromStr` and `Display`.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The exact spelling used on the wire and in the database.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }
        }

        impl FromStr for $name {
            type Err = UnknownStatus;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $($wire => Ok($name::$variant),)+
                    _ => Err(UnknownStatus { kind: stringify!($name), value: text.to_owned() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

/// A status text that is not one of the known values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`")]
pub struct UnknownStatus {
    pub kind: &'static str,
    pub value: String,
}

wire_enum! {
    /// Status of a whole pipeline run (spec §12.1).
    RunStatus {
        Init => "INIT",
        Queued => "QUEUED",
        Running => "RUNNING",
        Paused => "PAUSED",
        Suspend => "SUSPEND",
        Completed => "COMPLETED",
        Failed => "FAILED",
        Canceled => "CANCELED",
        Ignored => "IGNORED",
    }
}

wire_enum! {
    /// Status of a stage or a job (spec §12.2). Stages and jobs share the CodeArts vocabulary.
    JobStatus {
        Init => "INIT",
        Queued => "QUEUED",
        Running => "RUNNING",
        Canceled => "CANCELED",
        Completed => "COMPLETED",
        Failed => "FAILED",
        Skipped => "SKIPPED",
        Ignored => "IGNORED",
        Paused => "PAUSED",
        Suspend => "SUSPEND",
        AsyncRunning => "ASYNC_RUNNING",
        AsyncFailed => "ASYNC_FAILED",
        Unselected => "UNSELECTED",
        Redispatch => "REDISPATCH",
    }
}

/// Stages use the same statuses as jobs.
pub type StageStatus = JobStatus;

wire_enum! {
    /// Status of a step (spec §12.2 plus the inferred INIT, QUEUED, PAUSED, SKIPPED).
    #[derive(Default)]
    StepStatus {
        #[default]
        Init => "INIT",
        Queued => "QUEUED",
        Running => "RUNNING",
        Paused => "PAUSED",
        Completed => "COMPLETED",
        Failed => "FAILED",
        Canceled => "CANCELED",
        Skipped => "SKIPPED",
    }
}

impl RunStatus {
    /// Terminal run states: COMPLETED, FAILED, CANCELED, IGNORED.
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Failed | Self::Canceled | Self::Ignored
        )
    }
}

impl JobStatus {
    /// A job or stage in one of these states will not change again within this attempt of the run.
    /// (Only an explicit retry of the run resets FAILED/CANCELED/SKIPPED jobs.)
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            Self::Completed
                | Self::Failed
                | Self::Canceled
                | Self::Skipped
                | Self::Ignored
                | Self::Unselected
                | Self::AsyncFailed
        )
    }

    /// Counts as success in the roll-up of spec §11.8 (SKIPPED and UNSELECTED count as success).
    pub const fn counts_as_success(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Skipped | Self::Unselected | Self::Ignored
        )
    }
}

impl StepStatus {
    /// A step in one of these states will not change again within this attempt of its job.
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Failed | Self::Canceled | Self::Skipped
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_wire_name() {
        for status in RunStatus::ALL {
            assert_eq!(status.as_str().parse::<RunStatus>(), Ok(*status));
        }
        for status in JobStatus::ALL {
            assert_eq!(status.as_str().parse::<JobStatus>(), Ok(*status));
        }
        for status in StepStatus::ALL {
            assert_eq!(status.as_str().parse::<StepStatus>(), Ok(*status));
        }
    }

    #[test]
    fn unknown_status_names_are_refused_with_the_value() {
        let err = "CANCELLED".parse::<RunStatus>().unwrap_err();
        assert_eq!(err.to_string(), "unknown RunStatus `CANCELLED`");
    }
}
