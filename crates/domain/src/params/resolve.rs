//! The parameter set of a run (spec §12.5): predefined, custom and variable-group values merged by precedence.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::names::env_name_problem;
use super::variable::{VariableSpec, VariableType, enum_mismatch_message, value_problem};
use crate::diagnostic::{Diagnostic, DiagnosticCode, path_index, path_join};

/// A project-level set of variables that pipelines bind (spec §8).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VariableGroup {
    pub id: String,
    pub name: String,
    pub variables: Vec<GroupVariable>,
}

/// One variable of a [`VariableGroup`]. Group variables cannot be set at run time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupVariable {
    pub name: String,
    pub value: String,
    pub is_secret: bool,
}

/// A value given for a variable when a run starts (`variables` of spec §5.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuntimeValue {
    pub name: String,
    pub value: String,
}

/// Which definition supplied a resolved value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParameterOrigin {
    /// A system predefined parameter (spec §12.6).
    Predefined,
    /// A custom variable of the pipeline (its default, a run-time value or an auto-increment value).
    Custom,
    /// A bound variable group.
    Group { group_id: String },
}

/// One parameter of a run, as the run sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedParameter {
    pub name: String,
    pub value: String,
    /// Masked in logs and never returned by the API (S2).
    pub is_secret: bool,
    pub origin: ParameterOrigin,
}

/// The parameter snapshot of a run: predefined parameters, then custom variables in declaration
/// order, then variables only found in groups.
///
/// Invariant: names are unique, and `index` maps each name to its position in `parameters`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResolvedParameters {
    parameters: Vec<ResolvedParameter>,
    index: HashMap<String, usize>,
    ignored_runtime: Vec<String>,
}

/// Everything [`resolve`] merges.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResolveInput<'a> {
    /// From [`super::predefined_parameters`].
    pub predefined: &'a [(String, String)],
    /// The pipeline's custom variables, from [`super::parse_variables`].
    pub variables: &'a [VariableSpec],
    /// The bound groups, in binding order (the last bound wins).
    pub groups: &'a [VariableGroup],
    /// The run request's `variables`.
    pub runtime: &'a [RuntimeValue],
    /// `value_for_run` of each autoIncrement variable, by name, from
    /// [`super::auto_increment_for_run`] inside the run's transaction.
    pub auto_increment_values: &'a [(String, String)],
}

/// Resolves the parameter set of a run, collecting every problem.
///
/// Precedence when names collide: predefined > custom > variable groups; among groups the last
/// in `groups` wins. A value's secret-ness follows the definition that supplied it.
///
/// * A run-time value applies only to a custom variable declared `is_runtime = true` and not of
///   type autoIncrement. Values for other names (not runtime, autoIncrement, group-only or
///   unknown) are ignored and listed by [`ResolvedParameters::ignored_runtime_names`]; the
///   caller may warn about them. When a name is given twice, the last value counts.
/// * An applied run-time value must be at most 8192 characters without NUL, and for an enum one
///   of its `limits` (`OutOfRange`); problems are reported at `variables[i].value`, `i` being the
///   index in `runtime`.
/// * An autoIncrement variable takes its value from `auto_increment_values`; a missing entry
///   falls back to the declared value. The caller computes these with
///   [`super::auto_increment_for_run`]; to honour a run-time value for one, it passes a copy with
///   `value` set to it and `is_reset = true`.
/// * Names are checked again before they reach a step's environment (S4): a custom variable or
///   group variable with a refused name fails resolution (paths `pipeline.variables[i].name`,
///   `variable_groups[g].variables[k].name`), whatever the stored data says.
pub fn resolve(input: &ResolveInput<'_>) -> Result<ResolvedParameters, Vec<Diagnostic>> {
    let mut diagnostics = Vec::new();
    let mut resolved = ResolvedParameters::default();
    for (name, value) in input.predefined {
        let parameter = ResolvedParameter {
            name: name.clone(),
            value: value.clone(),
            is_secret: false,
            origin: ParameterOrigin::Predefined,
        };
        resolved.insert(parameter, Collision::KeepExisting);
    }

    let runtime_by_name = last_runtime_values(input.runtime);
    let mut applied_runtime: HashSet<&str> = HashSet::new();
    for (index, variable) in input.variables.iter().enumerate() {
        let name_path = path_join(&path_index("pipeline.variables", index), "name");
        if let Some(problem) = env_name_problem(&variable.name) {
            diagnostics.push(Diagnostic::new(problem.code, name_path, problem.message));
            continue;
        }
        if resolved.get(&variable.name).is_some() {
            // A predefined parameter (or an earlier variable of the same name) takes precedence.
            continue;
        }
        let runtime_value = runtime_by_name
            .get(variable.name.as_str())
            .filter(|_| variable.is_runtime && variable.var_type != VariableType::AutoIncrement);
        let value = match (variable.var_type, runtime_value) {
            (VariableType::AutoIncrement, _) => {
                auto_increment_value(input.auto_increment_values, variable)
            }
            (_, Some(&(runtime_index, runtime_value))) => {
                applied_runtime.insert(variable.name.as_str());
                check_runtime_value(variable, runtime_value, runtime_index, &mut diagnostics);
                runtime_value.to_owned()
            }
            (_, None) => variable.value.clone(),
        };
        let parameter = ResolvedParameter {
            name: variable.name.clone(),
            value,
            is_secret: variable.is_secret,
            origin: ParameterOrigin::Custom,
        };
        resolved.insert(parameter, Collision::KeepExisting);
    }

    let custom_names: HashSet<&str> = input
        .variables
        .iter()
        .map(|variable| variable.name.as_str())
        .collect();
    for (group_index, group) in input.groups.iter().enumerate() {
        for (variable_index, variable) in group.variables.iter().enumerate() {
            if let Some(problem) = env_name_problem(&variable.name) {
                let path = path_index(
                    &path_join(&path_index("variable_groups", group_index), "variables"),
                    variable_index,
                );
                let message = format!("in variable group `{}`: {}", group.name, problem.message);
                diagnostics.push(Diagnostic::new(
                    problem.code,
                    path_join(&path, "name"),
                    message,
                ));
                continue;
            }
            let is_predefined = matches!(
                resolved.get(&variable.name),
                Some(ResolvedParameter {
                    origin: ParameterOrigin::Predefined,
                    ..
                })
            );
            if is_predefined || custom_names.contains(variable.name.as_str()) {
                continue;
            }
            let parameter = ResolvedParameter {
                name: variable.name.clone(),
                value: variable.value.clone(),
                is_secret: variable.is_secret,
                origin: ParameterOrigin::Group {
                    group_id: group.id.clone(),
                },
            };
            resolved.insert(parameter, Collision::Replace);
        }
    }

    let mut ignored: Vec<String> = Vec::new();
    for runtime in input.runtime {
        if !applied_runtime.contains(runtime.name.as_str()) && !ignored.contains(&runtime.name) {
            ignored.push(runtime.name.clone());
        }
    }
    resolved.ignored_runtime = ignored;

    if diagnostics.is_empty() {
        Ok(resolved)
    } else {
        Err(diagnostics)
    }
}

impl ResolvedParameters {
    /// Rebuilds a snapshot (e.g. from storage), in the given order; of two parameters with the
    /// same name the first is kept.
    pub fn from_parameters(parameters: impl IntoIterator<Item = ResolvedParameter>) -> Self {
        let mut resolved = Self::default();
        for parameter in parameters {
            resolved.insert(parameter, Collision::KeepExisting);
        }
        resolved
    }

    pub fn get(&self, name: &str) -> Option<&ResolvedParameter> {
        self.index
            .get(name)
            .map(|&position| &self.parameters[position])
    }

    pub fn iter(&self) -> std::slice::Iter<'_, ResolvedParameter> {
        self.parameters.iter()
    }

    pub fn len(&self) -> usize {
        self.parameters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parameters.is_empty()
    }

    /// The values to mask in logs (S2): every non-empty secret value, once, in order.
    pub fn secret_values(&self) -> Vec<String> {
        let mut secrets: Vec<String> = Vec::new();
        for parameter in self
            .parameters
            .iter()
            .filter(|parameter| parameter.is_secret && !parameter.value.is_empty())
        {
            if !secrets.contains(&parameter.value) {
                secrets.push(parameter.value.clone());
            }
        }
        secrets
    }

    /// Every parameter as an environment variable of the run's steps, secrets included: a job is
    /// entitled to its secrets; they are masked in its output.
    pub fn env_pairs(&self) -> Vec<(String, String)> {
        self.parameters
            .iter()
            .map(|parameter| (parameter.name.clone(), parameter.value.clone()))
            .collect()
    }

    /// The `env` expression context (spec §12.7): custom and group values by name. Secrets are
    /// included — conditions may test them; they are masked at output, not hidden from logic.
    pub fn env_context(&self) -> Value {
        let context: Map<String, Value> = self
            .parameters
            .iter()
            .filter(|parameter| parameter.origin != ParameterOrigin::Predefined)
            .map(|parameter| {
                (
                    parameter.name.clone(),
                    Value::String(parameter.value.clone()),
                )
            })
            .collect();
        Value::Object(context)
    }

    /// Names of run-time values that were not applied (see [`resolve`]), once each, in request order.
    pub fn ignored_runtime_names(&self) -> &[String] {
        &self.ignored_runtime
    }

    fn insert(&mut self, parameter: ResolvedParameter, collision: Collision) {
        match (self.index.get(&parameter.name), collision) {
            (Some(_), Collision::KeepExisting) => {}
            (Some(&position), Collision::Replace) => self.parameters[position] = parameter,
            (None, _) => {
                self.index
                    .insert(parameter.name.clone(), self.parameters.len());
                self.parameters.push(parameter);
            }
        }
    }
}

impl<'a> IntoIterator for &'a ResolvedParameters {
    type Item = &'a ResolvedParameter;
    type IntoIter = std::slice::Iter<'a, ResolvedParameter>;

    fn into_iter(self) -> Self::IntoIter {
        self.parameters.iter()
    }
}

/// What [`ResolvedParameters::insert`] does when the name is already present.
#[derive(Debug, Clone, Copy)]
enum Collision {
    KeepExisting,
    Replace,
}

/// The last run-time value given for each name, with its index in the request.
fn last_runtime_values(runtime: &[RuntimeValue]) -> HashMap<&str, (usize, &str)> {
    runtime
        .iter()
        .enumerate()
        .map(|(index, value)| (value.name.as_str(), (index, value.value.as_str())))
        .collect()
}

fn auto_increment_value(
    auto_increment_values: &[(String, String)],
    variable: &VariableSpec,
) -> String {
    auto_increment_values
        .iter()
        .find(|(name, _)| *name == variable.name)
        .map_or_else(|| variable.value.clone(), |(_, value)| value.clone())
}

fn check_runtime_value(
    variable: &VariableSpec,
    value: &str,
    runtime_index: usize,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let path = path_join(&path_index("variables", runtime_index), "value");
    if let Some((code, message)) = value_problem(value) {
        diagnostics.push(Diagnostic::new(
            code,
            path,
            format!("run-time value of `{}`: {message}", variable.name),
        ));
    } else if variable.var_type == VariableType::Enum
        && !variable.limits.iter().any(|option| option == value)
    {
        diagnostics.push(Diagnostic::new(
            DiagnosticCode::OutOfRange,
            path,
            enum_mismatch_message(variable),
        ));
    }
}
