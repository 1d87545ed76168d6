//! Phase two: raw pipeline → validated [`PipelineSpec`], or every diagnostic at once.
//!
//! Rules (spec §11.10 plus ours): every stage has a name; every job a name and at least one
//! step; every step a task; identifiers are 1–128 of `[A-Za-z0-9_-]` and unique in the whole
//! definition (missing ones are derived from the name, or from the position); `depends_on`
//! names existing stages/jobs, job dependencies stay within their stage, no cycles (the path is
//! reported); conditions and `${{ … }}` inputs parse; `resource` is JSON; a job does not mix
//! agentless plugins (review, delay) with executor steps; sizes stay within the limits below.

mod graph;
mod steps;

pub use steps::{CHECKPOINT_TASK, DELAY_TASK};

use crate::definition::reader::ObjectReader;
use crate::definition::{Format, RawJob, RawPipeline, RawStage, read_pipeline};
use crate::diagnostic::{Diagnostic, DiagnosticCode, path_join};
use crate::expr::{Condition, parse_condition};
use crate::params::parse_variables;
use crate::spec::{
    Admission, ConcurrencySpec, ExceedAction, ExecKind, GateKind, GateStep, JobIdx, JobSpec,
    PipelineSpec, SelectStrategy, StageIdx, StageSpec,
};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// At most this many stages in a pipeline.
pub const MAX_STAGES: usize = 200;
/// At most this many jobs in a pipeline.
pub const MAX_JOBS: usize = 1_000;
/// At most this many steps in one job.
pub const MAX_STEPS_PER_JOB: usize = 200;
/// At most this many steps in a pipeline.
pub const MAX_STEPS: usize = 10_000;
/// At most this many diagnostics are returned; a last one says how many more there were.
pub const MAX_DIAGNOSTICS: usize = 100;
/// A job without a timeout may run this long (CodeArts: 6 hours).
pub const DEFAULT_JOB_TIMEOUT: Duration = Duration::from_secs(6 * 3600);
/// The longest job timeout accepted.
pub const MAX_JOB_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// Parses and compiles a pipeline file in one go.
pub fn compile_text(text: &str, format: Format) -> Result<PipelineSpec, Vec<Diagnostic>> {
    let mut diagnostics = Vec::new();
    let Some(raw) = read_pipeline(text, format, &mut diagnostics) else {
        return Err(diagnostics);
    };
    match compile(&raw) {
        Ok(spec) if diagnostics.is_empty() => Ok(spec),
        Ok(_) => Err(cap(diagnostics)),
        Err(more) => {
            diagnostics.extend(more);
            Err(cap(diagnostics))
        }
    }
}

/// Compiles a raw pipeline. Returns the spec, or every problem found (capped at [`MAX_DIAGNOSTICS`]).
pub fn compile(raw: &RawPipeline) -> Result<PipelineSpec, Vec<Diagnostic>> {
    let mut compiler = Compiler::default();
    let spec = compiler.run(raw);
    for diagnostic in &mut compiler.diagnostics {
        diagnostic.path = raw.path_rewrites.apply(&diagnostic.path);
    }
    if compiler.diagnostics.is_empty() {
        Ok(spec)
    } else {
        Err(cap(compiler.diagnostics))
    }
}

fn cap(mut diagnostics: Vec<Diagnostic>) -> Vec<Diagnostic> {
    if diagnostics.len() > MAX_DIAGNOSTICS {
        let more = diagnostics.len() - MAX_DIAGNOSTICS;
        diagnostics.truncate(MAX_DIAGNOSTICS);
        diagnostics.push(Diagnostic::new(
            DiagnosticCode::TooLarge,
            "",
            format!("{more} more problems not shown"),
        ));
    }
    diagnostics
}

#[derive(Default)]
struct Compiler {
    diagnostics: Vec<Diagnostic>,
    /// Every identifier seen so far, per kind → the path that claimed it.
    identifiers: HashMap<(IdentifierKind, String), String>,
}

/// Identifiers are unique per kind: stage, job and step identifiers live in separate namespaces
/// (`choose_stages` and `choose_jobs` are separate lists, and `depends_on` never mixes kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum IdentifierKind {
    Stage,
    Job,
    Step,
}

impl Compiler {
    pub(crate) fn push(
        &mut self,
        code: DiagnosticCode,
        path: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.diagnostics.push(Diagnostic::new(code, path, message));
    }

    fn run(&mut self, raw: &RawPipeline) -> PipelineSpec {
        let variables = match &raw.variables {
            Some(value) => parse_variables(value, "variables", &mut self.diagnostics),
            None => Vec::new(),
        };
        let concurrency = self.concurrency(raw.concurrency.as_ref());
        let mut spec = PipelineSpec {
            name: raw.name.clone(),
            description: raw.description.clone(),
            stages: Vec::new(),
            jobs: Vec::new(),
            variables,
            concurrency,
            definition: raw.definition_value.clone(),
        };
        if !self.within_limits(raw) {
            return spec;
        }
        self.register_written_identifiers(raw);

        // Stages in execution order: by `sequence`, ties (and missing sequences) in written order.
        let mut order: Vec<usize> = (0..raw.definition.stages.len()).collect();
        order.sort_by_key(|&index| {
            (
                raw.definition.stages[index]
                    .sequence
                    .unwrap_or(index as i64),
                index,
            )
        });

        let mut job_paths: Vec<String> = Vec::new();
        let mut job_depends: Vec<Vec<String>> = Vec::new();
        for (position, &raw_index) in order.iter().enumerate() {
            let raw_stage = &raw.definition.stages[raw_index];
            let stage_index = StageIdx::new(position);
            let mut stage = self.stage(raw_stage, position);
            for (job_position, raw_job) in raw_stage.jobs.iter().enumerate() {
                let job_index = JobIdx::new(spec.jobs.len());
                let job = self.job(raw_job, stage_index, position, job_position);
                stage.jobs.push(job_index);
                job_paths.push(raw_job.path.clone());
                job_depends.push(raw_job.depends_on.clone());
                spec.jobs.push(job);
            }
            spec.stages.push(stage);
        }
        let stage_paths: Vec<&RawStage> = order
            .iter()
            .map(|&index| &raw.definition.stages[index])
            .collect();
        self.link_stages(&mut spec, &stage_paths);
        self.link_jobs(&mut spec, &job_paths, &job_depends);
        if self.diagnostics.is_empty() {
            compute_upstream(&mut spec);
            write_identifiers(&mut spec, &order);
        }
        spec
    }

    fn within_limits(&mut self, raw: &RawPipeline) -> bool {
        let stages = &raw.definition.stages;
        let job_count: usize = stages.iter().map(|stage| stage.jobs.len()).sum();
        let step_count: usize = stages
            .iter()
            .flat_map(|stage| &stage.jobs)
            .map(|job| job.steps.len())
            .sum();
        let mut ok = true;
        if stages.len() > MAX_STAGES {
            self.push(
                DiagnosticCode::TooLarge,
                "stages",
                format!("{} stages; at most {MAX_STAGES} are allowed", stages.len()),
            );
            ok = false;
        }
        if job_count > MAX_JOBS {
            self.push(
                DiagnosticCode::TooLarge,
                "stages",
                format!("{job_count} jobs; at most {MAX_JOBS} are allowed"),
            );
            ok = false;
        }
        if step_count > MAX_STEPS {
            self.push(
                DiagnosticCode::TooLarge,
                "stages",
                format!("{step_count} steps; at most {MAX_STEPS} are allowed"),
            );
            ok = false;
        }
        for job in stages.iter().flat_map(|stage| &stage.jobs) {
            if job.steps.len() > MAX_STEPS_PER_JOB {
                self.push(
                    DiagnosticCode::TooLarge,
                    path_join(&job.path, "steps"),
                    format!(
                        "{} steps; at most {MAX_STEPS_PER_JOB} are allowed in one job",
                        job.steps.len()
                    ),
                );
                ok = false;
            }
        }
        ok
    }

    fn concurrency(&mut self, value: Option<&Value>) -> ConcurrencySpec {
        let mut spec = ConcurrencySpec::default();
        let Some(value) = value else { return spec };
        let Some(mut reader) = ObjectReader::new(
            value,
            "concurrency_control",
            "concurrency_control",
            &mut self.diagnostics,
        ) else {
            return spec;
        };
        spec.enabled = reader
            .boolean("enable", &mut self.diagnostics)
            .unwrap_or(true);
        if let Some(count) = reader.integer("concurrency_number", &mut self.diagnostics) {
            match u32::try_from(count) {
                Ok(count) if (1..=1000).contains(&count) => spec.max_runs = count,
                _ => self.push(
                    DiagnosticCode::OutOfRange,
                    "concurrency_control.concurrency_number",
                    "concurrency_number must be a whole number from 1 to 1000",
                ),
            }
        }
        match reader
            .string("exceed_action", &mut self.diagnostics)
            .as_deref()
        {
            None => {}
            Some(action) if action.eq_ignore_ascii_case("QUEUE") => {
                spec.exceed_action = ExceedAction::Queue
            }
            Some(action) if action.eq_ignore_ascii_case("ABORT") => {
                spec.exceed_action = ExceedAction::Abort
            }
            Some(other) => self.push(
                DiagnosticCode::OutOfRange,
                "concurrency_control.exceed_action",
                format!("exceed_action must be QUEUE or ABORT, not `{other}`"),
            ),
        }
        spec
    }

    fn stage(&mut self, raw: &RawStage, position: usize) -> StageSpec {
        let name = self.required_name(raw.name.as_deref(), &raw.path, "stage");
        let identifier = self.identifier(
            IdentifierKind::Stage,
            raw.identifier.as_deref(),
            &name,
            &format!("stage_{position}"),
            &raw.path,
        );
        let run_condition = self.condition(
            raw.run_condition.as_deref(),
            &path_join(&raw.path, "run_condition"),
        );
        let pre = self.gates(&raw.pre, &identifier, "pre");
        let post = self.gates(&raw.post, &identifier, "post");
        let admission = match pre.first() {
            Some(gate) if gate.kind == GateKind::ManualTrigger => Admission::Manual,
            _ => Admission::Automatic,
        };
        StageSpec {
            identifier,
            name,
            sequence: raw.sequence.unwrap_or(position as i64),
            prerequisites: Vec::new(),
            upstream: Vec::new(),
            run_always: raw.run_always,
            parallel: raw.parallel,
            run_condition,
            run_condition_text: raw
                .run_condition
                .clone()
                .filter(|text| !text.trim().is_empty()),
            admission,
            pre,
            post,
            jobs: Vec::new(),
        }
    }

    fn gates(
        &mut self,
        raw: &[crate::definition::RawStep],
        stage_id: &str,
        kind: &str,
    ) -> Vec<GateStep> {
        raw.iter()
            .enumerate()
            .map(|(index, step)| {
                let task = step.task.clone().unwrap_or_default();
                if task.is_empty() {
                    self.push(
                        DiagnosticCode::Missing,
                        path_join(&step.path, "task"),
                        "a gate step needs a `task`",
                    );
                }
                let fallback = format!("{stage_id}-{kind}-{index}");
                // Gate identifiers may be null in CodeArts definitions and are not referenced by
                // anything: derive one without claiming uniqueness.
                let identifier = match step.identifier.as_deref().map(str::trim) {
                    Some(given) if !given.is_empty() => given.to_owned(),
                    _ => fallback,
                };
                let gate_kind = match task.as_str() {
                    "official_devcloud_autoTrigger" => GateKind::AutoTrigger,
                    "official_devcloud_manualTrigger" => GateKind::ManualTrigger,
                    _ => GateKind::Unsupported,
                };
                GateStep {
                    identifier,
                    name: step.name.clone(),
                    task,
                    sequence: step.sequence.unwrap_or(index as i64),
                    kind: gate_kind,
                }
            })
            .collect()
    }

    fn job(
        &mut self,
        raw: &RawJob,
        stage: StageIdx,
        stage_position: usize,
        position: usize,
    ) -> JobSpec {
        let name = self.required_name(raw.name.as_deref(), &raw.path, "job");
        let fallback = format!("job_{stage_position}_{position}");
        let identifier = self.identifier(
            IdentifierKind::Job,
            raw.identifier.as_deref(),
            &name,
            &fallback,
            &raw.path,
        );
        let condition =
            self.condition(raw.condition.as_deref(), &path_join(&raw.path, "condition"));
        let select = match raw
            .select_strategy
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("") | Some("selected") => SelectStrategy::Selected,
            Some("never") => SelectStrategy::Never,
            Some("always") => SelectStrategy::Always,
            Some(other) => {
                self.push(
                    DiagnosticCode::OutOfRange,
                    path_join(&raw.path, "strategy.select_strategy"),
                    format!("select_strategy must be selected, never or always, not `{other}`"),
                );
                SelectStrategy::Selected
            }
        };
        let timeout = self.timeout(raw);
        if raw.steps.is_empty() {
            self.push(
                DiagnosticCode::Missing,
                path_join(&raw.path, "steps"),
                "a job needs at least one step",
            );
        }
        let steps: Vec<_> = raw
            .steps
            .iter()
            .enumerate()
            .map(|(index, step)| steps::compile_step(self, step, &identifier, index))
            .collect();
        let agentless = steps
            .iter()
            .filter(|step| step.action.is_agentless())
            .count();
        let exec = match raw.exec_type.as_deref() {
            Some("AGENTLESS_JOB") => ExecKind::Agentless,
            Some("OCTOPUS_JOB") => ExecKind::Agent,
            _ if agentless > 0 && agentless == steps.len() => ExecKind::Agentless,
            _ => ExecKind::Agent,
        };
        if agentless > 0 && agentless < steps.len() {
            self.push(
                DiagnosticCode::InvalidValue,
                path_join(&raw.path, "steps"),
                "a job cannot mix manual review or delay steps with executor steps; put them in a job of their own",
            );
        } else if exec == ExecKind::Agentless && agentless < steps.len() {
            self.push(
                DiagnosticCode::InvalidValue,
                path_join(&raw.path, "exec_type"),
                "an AGENTLESS_JOB may only hold manual review and delay steps",
            );
        }
        JobSpec {
            identifier,
            name,
            stage,
            sequence: raw.sequence.unwrap_or(position as i64),
            needs: Vec::new(),
            upstream: Vec::new(),
            condition,
            condition_text: raw.condition.clone().filter(|text| !text.trim().is_empty()),
            select,
            timeout,
            resource: raw.resource.clone(),
            exec,
            is_async: raw.is_async,
            steps,
        }
    }

    fn timeout(&mut self, raw: &RawJob) -> Duration {
        let path = path_join(&raw.path, "timeout");
        let amount = match raw.timeout.as_deref().map(str::trim) {
            None | Some("") => return DEFAULT_JOB_TIMEOUT,
            Some(text) => match text.parse::<u64>() {
                Ok(amount) if amount > 0 => amount,
                _ => {
                    self.push(
                        DiagnosticCode::InvalidValue,
                        path,
                        format!(
                            "timeout `{text}` is not a positive whole number of `timeout_unit` (H, M or S); \
                             in YAML a number with s, m or h also works, like 90s, 10m or 2h"
                        ),
                    );
                    return DEFAULT_JOB_TIMEOUT;
                }
            },
        };
        // A timeout without a unit is in minutes: the shorter reading is the safer one.
        let seconds_per_unit = match raw
            .timeout_unit
            .as_deref()
            .map(|unit| unit.trim().to_ascii_uppercase())
            .as_deref()
        {
            None | Some("") | Some("M") | Some("MIN") | Some("MINUTE") | Some("MINUTES") => 60,
            Some("H") | Some("HOUR") | Some("HOURS") => 3600,
            Some("S") | Some("SEC") | Some("SECOND") | Some("SECONDS") => 1,
            Some(_) => {
                let written = raw.timeout_unit.as_deref().unwrap_or_default().trim();
                self.push(
                    DiagnosticCode::OutOfRange,
                    path_join(&raw.path, "timeout_unit"),
                    format!("timeout_unit must be H, M or S, not `{written}`"),
                );
                return DEFAULT_JOB_TIMEOUT;
            }
        };
        let timeout = Duration::from_secs(amount.saturating_mul(seconds_per_unit));
        if timeout > MAX_JOB_TIMEOUT {
            self.push(
                DiagnosticCode::OutOfRange,
                path,
                "a job timeout may be at most 7 days",
            );
            return MAX_JOB_TIMEOUT;
        }
        timeout
    }

    fn required_name(&mut self, name: Option<&str>, path: &str, what: &str) -> String {
        match name.map(str::trim) {
            Some(name) if !name.is_empty() => {
                if name.chars().count() > 128 {
                    self.push(
                        DiagnosticCode::OutOfRange,
                        path_join(path, "name"),
                        format!("a {what} name may be at most 128 characters"),
                    );
                }
                name.to_owned()
            }
            _ => {
                self.push(
                    DiagnosticCode::Missing,
                    path_join(path, "name"),
                    format!("a {what} needs a `name`"),
                );
                String::new()
            }
        }
    }

    /// Validates a written identifier, or derives one (from the name when it is a valid, unused
    /// identifier, else `fallback`). Records it for the uniqueness check.
    /// Registers every identifier the author wrote, before any is derived, so a derived one never
    /// takes a written one's name and duplicates are reported where the author wrote them.
    fn register_written_identifiers(&mut self, raw: &RawPipeline) {
        for stage in &raw.definition.stages {
            self.register_written(
                IdentifierKind::Stage,
                stage.identifier.as_deref(),
                &stage.path,
            );
            for job in &stage.jobs {
                self.register_written(IdentifierKind::Job, job.identifier.as_deref(), &job.path);
                for step in &job.steps {
                    self.register_written(
                        IdentifierKind::Step,
                        step.identifier.as_deref(),
                        &step.path,
                    );
                }
            }
        }
    }

    fn register_written(&mut self, kind: IdentifierKind, given: Option<&str>, path: &str) {
        let Some(given) = given.map(str::trim).filter(|given| !given.is_empty()) else {
            return;
        };
        let field = path_join(path, "identifier");
        if !is_valid_identifier(given) {
            self.push(
                DiagnosticCode::InvalidValue,
                field.clone(),
                format!(
                    "identifier `{given}` must be 1–128 characters of letters, digits, `_` and `-`"
                ),
            );
        }
        let key = (kind, given.to_owned());
        if let Some(first) = self.identifiers.get(&key) {
            let message = format!("identifier `{given}` is already used at {first}");
            self.push(DiagnosticCode::Duplicate, field, message);
        } else {
            self.identifiers.insert(key, path.to_owned());
        }
    }

    /// The written identifier (already registered), or a derived one: the name when it is a
    /// valid identifier not yet taken, else `fallback`, with `-2`, `-3`, … added until unused.
    pub(crate) fn identifier(
        &mut self,
        kind: IdentifierKind,
        given: Option<&str>,
        name: &str,
        fallback: &str,
        path: &str,
    ) -> String {
        if let Some(given) = given.map(str::trim).filter(|given| !given.is_empty()) {
            return given.to_owned();
        }
        let slug = slugify(name);
        let base = if is_valid_identifier(&slug)
            && !self.identifiers.contains_key(&(kind, slug.clone()))
        {
            slug
        } else {
            fallback.to_owned()
        };
        let mut candidate = base.clone();
        let mut counter = 2;
        while self.identifiers.contains_key(&(kind, candidate.clone())) {
            candidate = format!("{base}-{counter}");
            counter += 1;
        }
        self.identifiers
            .insert((kind, candidate.clone()), path.to_owned());
        candidate
    }

    pub(crate) fn condition(&mut self, text: Option<&str>, path: &str) -> Condition {
        match parse_condition(text.unwrap_or("")) {
            Ok(condition) => condition,
            Err(err) => {
                self.push(
                    DiagnosticCode::BadExpression,
                    path,
                    format!("bad expression: {err}"),
                );
                parse_condition("").expect("the empty condition always parses")
            }
        }
    }

    fn link_stages(&mut self, spec: &mut PipelineSpec, raw_stages: &[&RawStage]) {
        let by_identifier: HashMap<String, usize> = spec
            .stages
            .iter()
            .enumerate()
            .map(|(index, stage)| (stage.identifier.clone(), index))
            .collect();
        let mut edges = Vec::new();
        for (index, raw) in raw_stages.iter().enumerate() {
            let mut prerequisites = Vec::new();
            if raw.depends_on.is_empty() {
                if index > 0 {
                    prerequisites = if spec.stages[index].parallel {
                        spec.stages[index - 1].prerequisites.clone()
                    } else {
                        vec![StageIdx::new(index - 1)]
                    };
                }
            } else {
                for (position, reference) in raw.depends_on.iter().enumerate() {
                    let path = format!("{}.depends_on[{position}]", raw.path);
                    match by_identifier.get(reference) {
                        Some(&target) => prerequisites.push(StageIdx::new(target)),
                        None if spec.job_by_identifier(reference).is_some() => self.push(
                            DiagnosticCode::CrossStageDependency,
                            path,
                            format!("`{reference}` is a job; a stage may depend only on stages"),
                        ),
                        None => self.push(
                            DiagnosticCode::UnknownReference,
                            path,
                            format!("no stage has identifier `{reference}`"),
                        ),
                    }
                }
            }
            prerequisites.sort();
            prerequisites.dedup();
            edges.extend(
                prerequisites
                    .iter()
                    .map(|prerequisite| (prerequisite.index(), index)),
            );
            spec.stages[index].prerequisites = prerequisites;
        }
        for cycle in graph::find_cycles(spec.stages.len(), &edges) {
            let names: Vec<&str> = cycle
                .iter()
                .map(|&index| spec.stages[index].identifier.as_str())
                .collect();
            self.push(
                DiagnosticCode::Cycle,
                path_join(&raw_stages[cycle[0]].path, "depends_on"),
                format!(
                    "stages depend on each other in a cycle: {}",
                    names.join(" → ")
                ),
            );
        }
    }

    fn link_jobs(&mut self, spec: &mut PipelineSpec, paths: &[String], depends: &[Vec<String>]) {
        let by_identifier: HashMap<String, usize> = spec
            .jobs
            .iter()
            .enumerate()
            .map(|(index, job)| (job.identifier.clone(), index))
            .collect();
        let mut edges = Vec::new();
        for index in 0..spec.jobs.len() {
            let mut needs = Vec::new();
            let mut seen = HashSet::new();
            for (position, reference) in depends[index].iter().enumerate() {
                let path = format!("{}.depends_on[{position}]", paths[index]);
                match by_identifier.get(reference) {
                    Some(&target) if spec.jobs[target].stage != spec.jobs[index].stage => self.push(
                        DiagnosticCode::CrossStageDependency,
                        path,
                        format!(
                            "job `{reference}` is in stage `{}`; a job may depend only on jobs of its own stage (order stages instead)",
                            spec.stages[spec.jobs[target].stage.index()].identifier
                        ),
                    ),
                    Some(&target) => {
                        if seen.insert(target) {
                            needs.push(JobIdx::new(target));
                            edges.push((target, index));
                        }
                    }
                    None => self.push(DiagnosticCode::UnknownReference, path, format!("no job has identifier `{reference}`")),
                }
            }
            spec.jobs[index].needs = needs;
        }
        for cycle in graph::find_cycles(spec.jobs.len(), &edges) {
            let names: Vec<&str> = cycle
                .iter()
                .map(|&index| spec.jobs[index].identifier.as_str())
                .collect();
            self.push(
                DiagnosticCode::Cycle,
                path_join(&paths[cycle[0]], "depends_on"),
                format!(
                    "jobs depend on each other in a cycle: {}",
                    names.join(" → ")
                ),
            );
        }
    }
}

/// Writes derived identifiers into the stored definition, so that what is stored names every
/// stage, job and step the way runs and `depends_on` will (spec §11.3: "generate if missing").
/// `order[position]` is the written index of the stage at `position`.
fn write_identifiers(spec: &mut PipelineSpec, order: &[usize]) {
    let PipelineSpec {
        stages,
        jobs,
        definition,
        ..
    } = spec;
    let Some(Value::Array(written_stages)) = definition.get_mut("stages") else {
        return;
    };
    for (position, stage) in stages.iter().enumerate() {
        let Some(Value::Object(written_stage)) = written_stages.get_mut(order[position]) else {
            continue;
        };
        set_identifier(written_stage, &stage.identifier);
        let Some(Value::Array(written_jobs)) = written_stage.get_mut("jobs") else {
            continue;
        };
        for (job_position, job_index) in stage.jobs.iter().enumerate() {
            let job = &jobs[job_index.index()];
            let Some(Value::Object(written_job)) = written_jobs.get_mut(job_position) else {
                continue;
            };
            set_identifier(written_job, &job.identifier);
            let Some(Value::Array(written_steps)) = written_job.get_mut("steps") else {
                continue;
            };
            for (step, written_step) in job.steps.iter().zip(written_steps.iter_mut()) {
                if let Value::Object(written_step) = written_step {
                    set_identifier(written_step, &step.identifier);
                }
            }
        }
    }
}

fn set_identifier(object: &mut serde_json::Map<String, Value>, identifier: &str) {
    let missing = match object.get("identifier") {
        None | Some(Value::Null) => true,
        Some(Value::String(text)) => text.trim().is_empty(),
        Some(_) => false,
    };
    if missing {
        object.insert(
            "identifier".to_owned(),
            Value::String(identifier.to_owned()),
        );
    }
}

/// Fills the transitive `upstream` sets. Only called on an acyclic spec.
fn compute_upstream(spec: &mut PipelineSpec) {
    fn closure(direct: &[Vec<usize>]) -> Vec<Vec<usize>> {
        (0..direct.len())
            .map(|start| {
                let mut seen = std::collections::BTreeSet::new();
                let mut stack: Vec<usize> = direct[start].clone();
                while let Some(node) = stack.pop() {
                    if seen.insert(node) {
                        stack.extend(direct[node].iter().copied());
                    }
                }
                seen.into_iter().collect()
            })
            .collect()
    }
    let stage_direct: Vec<Vec<usize>> = spec
        .stages
        .iter()
        .map(|stage| {
            stage
                .prerequisites
                .iter()
                .map(|index| index.index())
                .collect()
        })
        .collect();
    for (stage, upstream) in spec.stages.iter_mut().zip(closure(&stage_direct)) {
        stage.upstream = upstream.into_iter().map(StageIdx::new).collect();
    }
    let job_direct: Vec<Vec<usize>> = spec
        .jobs
        .iter()
        .map(|job| job.needs.iter().map(|index| index.index()).collect())
        .collect();
    for (job, upstream) in spec.jobs.iter_mut().zip(closure(&job_direct)) {
        job.upstream = upstream.into_iter().map(JobIdx::new).collect();
    }
}

/// 1–128 characters of `[A-Za-z0-9_-]` (spec §11.6).
pub fn is_valid_identifier(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 128
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
}

fn slugify(name: &str) -> String {
    let slug: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if slug.chars().all(|c| c == '_') {
        String::new()
    } else {
        slug
    }
}
