//! A run's parameter snapshot as stored: ONE row per run (`run_parameter_sets`), its
//! parameters a JSON array in order. Until schema version 10 each parameter was a row of its
//! own; a run has a dozen or more (the predefined ones), and their inserts were about a tenth
//! of the server's instructions per trivial run. A secret's value is sealed on its own, bound
//! to the run and the parameter's name, exactly as the per-row layout sealed it, so migration
//! 10 moved the ciphertexts over without opening them.

use crate::crypto::SecretBox;
use crate::error::StoreError;
use crate::runs::RunParameter;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::HashSet;

/// One parameter in the stored array: `value` for a plain one, `sealed` (hex) for a secret.
#[derive(Debug, Serialize, Deserialize)]
struct Stored<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    value: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed: Option<String>,
    #[serde(borrow)]
    origin: Cow<'a, str>,
}

/// Associated data of a run parameter's ciphertext: binds it to its run and name.
fn context(run_id: &str, name: &str) -> String {
    format!("run_parameters:{run_id}:{name}")
}

/// The stored text of `parameters`, secrets sealed. Two parameters of one name are refused
/// (`Invalid`): a run's environment has one value per name.
pub(super) fn encode(
    secrets: &SecretBox,
    run_id: &str,
    parameters: &[RunParameter],
) -> Result<String, StoreError> {
    let mut names = HashSet::with_capacity(parameters.len());
    let mut stored = Vec::with_capacity(parameters.len());
    for parameter in parameters {
        if !names.insert(parameter.name.as_str()) {
            return Err(StoreError::Invalid(format!(
                "run parameter `{}` is given twice",
                parameter.name
            )));
        }
        let (value, sealed) = if parameter.is_secret {
            let context = context(run_id, &parameter.name);
            let ciphertext = secrets.seal_text(&context, &parameter.value)?;
            (None, Some(hex::encode(ciphertext)))
        } else {
            (Some(Cow::Borrowed(parameter.value.as_str())), None)
        };
        stored.push(Stored {
            name: Cow::Borrowed(&parameter.name),
            value,
            sealed,
            origin: Cow::Borrowed(&parameter.origin),
        });
    }
    serde_json::to_string(&stored)
        .map_err(|err| StoreError::corrupt(format!("run parameters: {err}")))
}

/// The parameters stored as `text` for run `run_id`, secrets opened.
pub(super) fn decode(
    secrets: &SecretBox,
    run_id: &str,
    text: &str,
) -> Result<Vec<RunParameter>, StoreError> {
    let stored: Vec<Stored<'_>> = serde_json::from_str(text)
        .map_err(|err| StoreError::corrupt(format!("parameters of run {run_id}: {err}")))?;
    stored
        .into_iter()
        .map(|parameter| {
            let (value, is_secret) = match (parameter.value, parameter.sealed) {
                (_, Some(sealed)) => {
                    let ciphertext = hex::decode(&sealed).map_err(|err| {
                        StoreError::corrupt(format!(
                            "parameter `{}` of run {run_id}: {err}",
                            parameter.name
                        ))
                    })?;
                    let context = context(run_id, &parameter.name);
                    (secrets.open_text(&context, &ciphertext)?, true)
                }
                (Some(value), None) => (value.into_owned(), false),
                (None, None) => {
                    return Err(StoreError::corrupt(format!(
                        "parameter `{}` of run {run_id} has no value",
                        parameter.name
                    )));
                }
            };
            Ok(RunParameter {
                name: parameter.name.into_owned(),
                value,
                is_secret,
                origin: parameter.origin.into_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretKey;

    fn parameter(name: &str, value: &str, is_secret: bool) -> RunParameter {
        RunParameter {
            name: name.to_owned(),
            value: value.to_owned(),
            is_secret,
            origin: "custom".to_owned(),
        }
    }

    #[test]
    fn parameters_come_back_in_order_with_secrets_sealed_to_their_run_and_name() {
        let secrets = SecretBox::new(&SecretKey::generate());
        let parameters = vec![
            parameter("B", "plain \"quoted\" ünïcode", false),
            parameter("TOKEN", "s3cr3t-value", true),
            parameter("A", "", false),
        ];
        let text = encode(&secrets, "run1", &parameters).unwrap();
        assert!(!text.contains("s3cr3t-value"), "{text}");
        assert_eq!(decode(&secrets, "run1", &text).unwrap(), parameters);
        // A secret copied into another run's row does not open there.
        assert!(decode(&secrets, "run2", &text).is_err());
        assert_eq!(decode(&secrets, "run1", "[]").unwrap(), Vec::new());
    }

    #[test]
    fn a_name_given_twice_is_refused_and_damaged_text_is_reported() {
        let secrets = SecretBox::new(&SecretKey::generate());
        let twice = [parameter("X", "1", false), parameter("X", "2", false)];
        assert!(
            matches!(encode(&secrets, "r", &twice), Err(StoreError::Invalid(message)) if message.contains("`X`"))
        );
        for damaged in [
            "{",
            "[{\"name\":\"X\",\"origin\":\"custom\"}]",
            "[{\"name\":\"X\",\"sealed\":\"zz\",\"origin\":\"c\"}]",
        ] {
            assert!(
                matches!(decode(&secrets, "r", damaged), Err(StoreError::Corrupt(_))),
                "{damaged}"
            );
        }
    }
}
