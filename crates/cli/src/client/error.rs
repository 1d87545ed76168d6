//! What can go wrong in a client command, what it prints, and its exit status.

use std::fmt;
use std::process::ExitCode;

/// A failure of a client command. `Display` says what happened and what to do about it.
#[derive(Debug)]
pub(crate) enum ClientError {
    /// The server answered with an error status and body.
    Refused {
        status: u16,
        code: String,
        message: String,
        request_id: Option<String>,
    },
    /// The server could not be reached, or did not answer HTTP.
    Unreachable { endpoint: String, cause: String },
    /// An answer that is not what the API documents.
    Protocol(String),
    /// No token saved and no access key given.
    NotLoggedIn,
    /// Wrong input on the command line or in a file (nothing was sent, or the input is the
    /// problem).
    Invalid(String),
    /// A run waited for did not end COMPLETED.
    RunNotCompleted { status: String },
}

impl ClientError {
    /// 1: refused or failed; 2: invalid input; 3: authentication; 4: server unreachable or
    /// failing (documented in `docs/cli.md`).
    pub(crate) fn exit_code(&self) -> ExitCode {
        match self {
            ClientError::Refused { status: 401, .. } | ClientError::NotLoggedIn => {
                ExitCode::from(3)
            }
            ClientError::Refused { status, .. } if *status >= 500 => ExitCode::from(4),
            ClientError::Unreachable { .. } | ClientError::Protocol(_) => ExitCode::from(4),
            ClientError::Invalid(_) => ExitCode::from(2),
            ClientError::Refused { .. } | ClientError::RunNotCompleted { .. } => ExitCode::from(1),
        }
    }

    /// What to do about it, when there is something useful to say.
    fn hint(&self) -> Option<&'static str> {
        let ClientError::Refused { status, code, .. } = self else {
            return match self {
                ClientError::NotLoggedIn => Some(
                    "run `runnel login`, or set RUNNEL_AK and RUNNEL_SK (with RUNNEL_ENDPOINT) to sign requests",
                ),
                ClientError::Unreachable { .. } => Some(
                    "check --endpoint (or RUNNEL_ENDPOINT) and that `runnel serve` is running there",
                ),
                _ => None,
            };
        };
        Some(match (code.as_str(), *status) {
            ("DEV.00000001", _) => "run `runnel login`, or set RUNNEL_AK and RUNNEL_SK",
            ("APIGW.0301", _) => {
                "log in again with `runnel login` (tokens last 24 hours and may be revoked), or check RUNNEL_AK/RUNNEL_SK and this machine's clock"
            }
            ("APIGW.0308", _) => "wait a minute before trying again",
            ("DEVPIPE.00011412", _) => {
                "check --project (or RUNNEL_PROJECT); `runnel project list` shows your projects"
            }
            ("DEVPIPE.00011405", _) => "ask an administrator for a role that allows this",
            ("DEVPIPE.00011401", _) => {
                "check the pipeline id; `runnel pipeline list` shows the project's pipelines"
            }
            ("DEVPIPE.00011402", _) => {
                "check the run id; `runnel run list PIPELINE` shows the runs"
            }
            ("DEVPIPE.00011403", _) => "check the step id; `runnel run show RUN` shows the steps",
            ("DEVPIPE.00011203", _) => {
                "check the template id; `runnel template list` shows the templates"
            }
            ("DEVPIPE.00011304", _) => "choose another name",
            ("DEVPIPE.00011404", _) => {
                "the run or pipeline is not in a state that allows this; `runnel run show` tells its state"
            }
            ("DEVPIPE.00010001" | "DEVPIPE.00010002", _) => "fix the field named above",
            ("APIGW.0101", _) => "this server does not offer that operation; check --endpoint",
            (_, status) if status >= 500 => {
                "the server failed; its log has the cause (search for the request id)"
            }
            _ => return None,
        })
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Refused {
                status,
                code,
                message,
                request_id,
            } => {
                write!(
                    f,
                    "the server refused the request: {code} ({status}): {message}"
                )?;
                if let Some(request_id) = request_id {
                    write!(f, " [request id {request_id}]")?;
                }
            }
            ClientError::Unreachable { endpoint, cause } => {
                write!(f, "cannot reach the server at {endpoint}: {cause}")?
            }
            ClientError::Protocol(message) => {
                write!(f, "unexpected answer from the server: {message}")?
            }
            ClientError::NotLoggedIn => write!(f, "not logged in")?,
            ClientError::Invalid(message) => write!(f, "{message}")?,
            ClientError::RunNotCompleted { status } => write!(f, "the run ended {status}")?,
        }
        if let Some(hint) = self.hint() {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ClientError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16, code: &str) -> ClientError {
        ClientError::Refused {
            status,
            code: code.to_owned(),
            message: "The pipeline does not exist.".to_owned(),
            request_id: Some("r-1".to_owned()),
        }
    }

    #[test]
    fn refusals_show_code_message_request_id_and_what_to_fix() {
        let text = refused(400, "DEVPIPE.00011401").to_string();
        assert!(
            text.contains("DEVPIPE.00011401 (400): The pipeline does not exist."),
            "{text}"
        );
        assert!(text.contains("[request id r-1]"), "{text}");
        assert!(text.contains("hint: check the pipeline id"), "{text}");
    }

    #[test]
    fn exit_codes_tell_the_kind_of_failure() {
        assert_eq!(refused(400, "X").exit_code(), ExitCode::from(1));
        assert_eq!(refused(401, "APIGW.0301").exit_code(), ExitCode::from(3));
        assert_eq!(
            refused(503, "DEVPIPE.00010003").exit_code(),
            ExitCode::from(4)
        );
        assert_eq!(
            ClientError::Invalid("x".into()).exit_code(),
            ExitCode::from(2)
        );
        assert_eq!(ClientError::NotLoggedIn.exit_code(), ExitCode::from(3));
    }
}
