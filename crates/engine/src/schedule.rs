//! Schedules (spec §13 `PipelineSchedule`): when they fire, and the loop that fires them.
//!
//! Kinds:
//! * `fixed`: at `start_time` (`HH:mm`) on `days_of_week` (1 = Sunday … 7 = Saturday; none
//!   given: every day) in `time_zone`.
//! * `periodic`: every `interval_time` `interval_unit` (`s`, `m`, `h`; default seconds) from
//!   `start_time` to `end_time` (default the whole day) on `days_of_week`, in `time_zone`.
//! * `cron` (a Runnel extension): a cron expression in `cron`, five fields (minutes) or six
//!   (seconds first), in `time_zone`.
//!
//! `time_zone` takes the Windows names CodeArts uses ("China Standard Time", "GMT Standard
//! Time" = Europe/London with its summer time, …, see [`windows_zone`]), IANA names
//! ("Europe/Berlin") and `UTC`; without one, UTC. A time that does not exist on a day because
//! the clocks jump forward fires at the jump (as cron does); a repeated time fires once (the
//! first). Periodic schedules skip firings inside the jump.
//!
//! Firing (several servers on one database): each server's [`spawn_scheduler`] loop leases the
//! due schedules (`TriggerStore::claim_due_schedules`), so one server handles a firing; the run
//! is created with the idempotency key `schedule:<schedule id>` / `<fire time in ms>`, so even a
//! firing handled twice (a lease that expired mid-way) creates one run (G6).
//!
//! Missed firings (the server was down, or slower than the firing): when a schedule is found
//! due, the LATEST firing time not after now is run, once, if it is at most
//! [`SchedulerConfig::catch_up`] old (default one hour); older missed firings are skipped with a
//! warning. Then the schedule waits for its next firing after now.

use crate::config::EngineError;
use crate::{Engine, TriggerRequest};
use chrono::{DateTime, Datelike, Duration as ChronoDuration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use runnel_domain::Timestamp;
use runnel_store::{IdempotencyKey, IdentityStore, PipelineStore, ScheduleRecord, TriggerStore};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A parsed schedule: when it fires.
#[derive(Debug, Clone)]
pub struct Schedule {
    zone: Tz,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Cron(Box<Cron>),
    Periodic {
        /// Sunday = 0 … Saturday = 6.
        days: [bool; 7],
        start: NaiveTime,
        end: NaiveTime,
        every: ChronoDuration,
    },
}

impl Schedule {
    /// Reads a schedule as the API receives it; the error names the field.
    pub fn parse(value: &Value) -> Result<Schedule, String> {
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::trim);
        let zone = match text("time_zone").filter(|zone| !zone.is_empty()) {
            None => Tz::UTC,
            Some(name) => {
                parse_zone(name).ok_or_else(|| format!("time_zone: unknown time zone `{name}`"))?
            }
        };
        let kind = text("type").unwrap_or("fixed");
        if !["fixed", "periodic", "cron"].contains(&kind) {
            return Err(format!("type: `{kind}` is not fixed, periodic or cron"));
        }
        if kind == "cron" || (value.get("cron").is_some() && kind != "periodic") {
            let pattern = text("cron")
                .filter(|pattern| !pattern.is_empty())
                .ok_or("cron: a cron expression is required")?;
            let cron = CronParser::builder()
                .seconds(Seconds::Optional)
                .build()
                .parse(pattern)
                .map_err(|err| format!("cron: `{pattern}` is not a cron expression: {err}"))?;
            return Ok(Schedule {
                zone,
                kind: Kind::Cron(Box::new(cron)),
            });
        }
        let days = parse_days(value.get("days_of_week"))?;
        let start = match text("start_time").or_else(|| text("time")) {
            Some(time) => {
                parse_time(time).ok_or_else(|| format!("start_time: `{time}` is not HH:mm"))?
            }
            None if kind == "periodic" => NaiveTime::MIN,
            None => return Err("start_time: the time of day (HH:mm) is required".to_owned()),
        };
        match kind {
            "fixed" => {
                let dows: Vec<String> = (0..7)
                    .filter(|day| days[*day])
                    .map(|day| day.to_string())
                    .collect();
                let pattern = format!(
                    "0 {} {} * * {}",
                    start.format("%M"),
                    start.format("%H"),
                    dows.join(",")
                );
                let cron = CronParser::builder()
                    .seconds(Seconds::Required)
                    .build()
                    .parse(&pattern)
                    .map_err(|err| format!("schedule: {err}"))?;
                Ok(Schedule {
                    zone,
                    kind: Kind::Cron(Box::new(cron)),
                })
            }
            // "periodic"
            _ => {
                let end = match text("end_time") {
                    Some(time) => parse_time(time)
                        .ok_or_else(|| format!("end_time: `{time}` is not HH:mm"))?,
                    None => NaiveTime::from_hms_opt(23, 59, 59).unwrap_or(NaiveTime::MIN),
                };
                if end < start {
                    return Err("end_time: must not be before start_time".to_owned());
                }
                let amount: i64 = match value.get("interval_time") {
                    Some(Value::Number(number)) => number.as_i64().unwrap_or(0),
                    Some(Value::String(text)) => text.trim().parse().unwrap_or(0),
                    _ => 0,
                };
                let unit = match text("interval_unit").unwrap_or("s") {
                    "" | "s" | "S" => 1,
                    "m" | "M" | "min" => 60,
                    "h" | "H" => 3600,
                    other => return Err(format!("interval_unit: `{other}` is not s, m or h")),
                };
                let seconds = amount.saturating_mul(unit);
                if !(60..=7 * 24 * 3600).contains(&seconds) {
                    return Err(
                        "interval_time: the period must be from one minute to a week".to_owned(),
                    );
                }
                Ok(Schedule {
                    zone,
                    kind: Kind::Periodic {
                        days,
                        start,
                        end,
                        every: ChronoDuration::seconds(seconds),
                    },
                })
            }
        }
    }

    /// The first firing strictly after `after`; `None` when there is none (within ten years).
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let after_utc = DateTime::<Utc>::from_timestamp_millis(after.as_millis())?;
        let local = after_utc.with_timezone(&self.zone);
        match &self.kind {
            Kind::Cron(cron) => {
                let next = cron.find_next_occurrence(&local, false).ok()?;
                Some(Timestamp::from_millis(next.timestamp_millis()))
            }
            Kind::Periodic {
                days,
                start,
                end,
                every,
            } => {
                let today = local.date_naive();
                for offset in 0..8 {
                    let date = today.checked_add_signed(ChronoDuration::days(offset))?;
                    let weekday = date.weekday().num_days_from_sunday() as usize;
                    if !days[weekday] {
                        continue;
                    }
                    if let Some(found) = self.periodic_on(date, *start, *end, *every, after) {
                        return Some(found);
                    }
                }
                None
            }
        }
    }

    /// The latest firing in `(after, until]`.
    pub fn latest_between(&self, after: Timestamp, until: Timestamp) -> Option<Timestamp> {
        let mut latest = None;
        let mut cursor = after;
        // Bounded: a catch-up window of one hour holds 3600 firings of a per-second schedule.
        for _ in 0..100_000 {
            match self.next_after(cursor) {
                Some(next) if next <= until => {
                    latest = Some(next);
                    cursor = next;
                }
                _ => break,
            }
        }
        latest
    }

    fn periodic_on(
        &self,
        date: NaiveDate,
        start: NaiveTime,
        end: NaiveTime,
        every: ChronoDuration,
        after: Timestamp,
    ) -> Option<Timestamp> {
        let mut time = date.and_time(start);
        let last = date.and_time(end);
        while time <= last {
            if let Some(at) = self.zone.from_local_datetime(&time).earliest() {
                let at = Timestamp::from_millis(at.timestamp_millis());
                if at > after {
                    return Some(at);
                }
            }
            time = time.checked_add_signed(every)?;
        }
        None
    }
}

fn parse_days(value: Option<&Value>) -> Result<[bool; 7], String> {
    let mut days = [false; 7];
    let items = match value {
        None | Some(Value::Null) => return Ok([true; 7]),
        Some(Value::Array(items)) => items,
        Some(_) => return Err("days_of_week: expected a list of 1 (Sunday) to 7".to_owned()),
    };
    if items.is_empty() {
        return Ok([true; 7]);
    }
    for item in items {
        let day = match item {
            Value::Number(number) => number.as_i64(),
            Value::String(text) => text.trim().parse().ok(),
            _ => None,
        };
        match day {
            // CodeArts: 1 = Sunday … 7 = Saturday.
            Some(day @ 1..=7) => days[usize::try_from(day - 1).unwrap_or(0)] = true,
            _ => {
                return Err(format!(
                    "days_of_week: `{item}` is not 1 (Sunday) to 7 (Saturday)"
                ));
            }
        }
    }
    Ok(days)
}

fn parse_time(text: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(text, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M:%S"))
        .ok()
}

/// A Windows time-zone name, an IANA name, or `UTC`.
pub fn parse_zone(name: &str) -> Option<Tz> {
    windows_zone(name).or_else(|| name.parse::<Tz>().ok())
}

/// Windows time-zone names (the form CodeArts schedules use) to IANA zones. Covers the zones
/// the CodeArts console offers and the common Windows zones.
pub fn windows_zone(name: &str) -> Option<Tz> {
    use chrono_tz::*;
    Some(match name {
        // The zones of spec §12.8.
        "China Standard Time" => Asia::Shanghai,
        "GMT Standard Time" => Europe::London,
        "South Africa Standard Time" => Africa::Johannesburg,
        "Russian Standard Time" => Europe::Moscow,
        "SE Asia Standard Time" => Asia::Bangkok,
        "Singapore Standard Time" => Asia::Singapore,
        "Pacific SA Standard Time" => America::Santiago,
        "E. South America Standard Time" => America::Sao_Paulo,
        "Central Standard Time (Mexico)" => America::Mexico_City,
        "Egypt Standard Time" => Africa::Cairo,
        "Saudi Arabia Standard Time" | "Arab Standard Time" => Asia::Riyadh,
        // Other common Windows zones.
        "UTC" | "Coordinated Universal Time" => UTC,
        "Greenwich Standard Time" => Atlantic::Reykjavik,
        "W. Europe Standard Time" => Europe::Berlin,
        "Romance Standard Time" => Europe::Paris,
        "Central Europe Standard Time" => Europe::Budapest,
        "Central European Standard Time" => Europe::Warsaw,
        "E. Europe Standard Time" => Europe::Chisinau,
        "FLE Standard Time" => Europe::Kiev,
        "GTB Standard Time" => Europe::Bucharest,
        "Turkey Standard Time" => Europe::Istanbul,
        "Israel Standard Time" => Asia::Jerusalem,
        "Arabian Standard Time" => Asia::Dubai,
        "Iran Standard Time" => Asia::Tehran,
        "Pakistan Standard Time" => Asia::Karachi,
        "India Standard Time" => Asia::Kolkata,
        "Bangladesh Standard Time" => Asia::Dhaka,
        "Tokyo Standard Time" => Asia::Tokyo,
        "Korea Standard Time" => Asia::Seoul,
        "Taipei Standard Time" => Asia::Taipei,
        "W. Australia Standard Time" => Australia::Perth,
        "AUS Eastern Standard Time" => Australia::Sydney,
        "New Zealand Standard Time" => Pacific::Auckland,
        "Hawaiian Standard Time" => Pacific::Honolulu,
        "Alaskan Standard Time" => America::Anchorage,
        "Pacific Standard Time" => America::Los_Angeles,
        "Mountain Standard Time" => America::Denver,
        "US Mountain Standard Time" => America::Phoenix,
        "Central Standard Time" => America::Chicago,
        "Eastern Standard Time" => America::New_York,
        "Atlantic Standard Time" => America::Halifax,
        "Argentina Standard Time" => America::Argentina::Buenos_Aires,
        "W. Central Africa Standard Time" => Africa::Lagos,
        "E. Africa Standard Time" => Africa::Nairobi,
        _ => return None,
    })
}

/// How the schedule loop runs.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Names this server in schedule leases.
    pub owner: String,
    /// How often due schedules are looked for (the firing precision).
    pub poll: Duration,
    /// How long a claimed schedule is this server's (a crash frees it after this).
    pub lease: Duration,
    /// Missed firings older than this are skipped (module docs).
    pub catch_up: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            owner: format!("scheduler-{}", runnel_store::new_id()),
            poll: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            catch_up: Duration::from_secs(3600),
        }
    }
}

/// The running schedule loop; stop it with [`SchedulerTask::shutdown`].
pub struct SchedulerTask {
    handle: JoinHandle<()>,
    stop: CancellationToken,
}

impl SchedulerTask {
    pub async fn shutdown(self) {
        self.stop.cancel();
        if let Err(err) = self.handle.await {
            tracing::error!(error = %err, "schedule loop ended abnormally");
        }
    }
}

/// Starts the loop that fires due schedules of every pipeline (reading the engine's clock).
pub fn spawn_scheduler(engine: Engine, config: SchedulerConfig) -> SchedulerTask {
    let stop = CancellationToken::new();
    let handle = spawn_scheduler_until(engine, config, stop.clone());
    SchedulerTask { handle, stop }
}

/// [`spawn_scheduler`], stopping when `stop` fires (a firing under way completes first).
pub fn spawn_scheduler_until(
    engine: Engine,
    config: SchedulerConfig,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if stop.is_cancelled() {
                return;
            }
            if let Err(err) = fire_due(&engine, &config).await {
                tracing::warn!(error = %err, "schedule check failed");
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(config.poll) => {}
            }
        }
    })
}

/// Fires every schedule due now; returns the runs created.
pub async fn fire_due(
    engine: &Engine,
    config: &SchedulerConfig,
) -> Result<Vec<String>, EngineError> {
    let now = engine.now();
    let due = engine
        .store()
        .claim_due_schedules(&config.owner, now, config.lease, 50)
        .await?;
    let mut runs = Vec::new();
    for schedule in due {
        match fire(engine, config, &schedule, now).await {
            Ok(Some(run_id)) => runs.push(run_id),
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(schedule_id = %schedule.id, pipeline_id = %schedule.pipeline_id, error = %err, "schedule not fired")
            }
        }
    }
    Ok(runs)
}

/// Fires one claimed schedule (the latest due firing, once) and moves it to its next firing.
async fn fire(
    engine: &Engine,
    config: &SchedulerConfig,
    record: &ScheduleRecord,
    now: Timestamp,
) -> Result<Option<String>, EngineError> {
    let store = engine.store();
    let parsed = match Schedule::parse(&record.spec) {
        Ok(parsed) => parsed,
        Err(why) => {
            tracing::warn!(schedule_id = %record.id, error = %why, "stored schedule is invalid; disabled");
            store
                .schedule_fired(&record.id, &config.owner, now, None)
                .await?;
            return Ok(None);
        }
    };
    let next = parsed.next_after(now);
    let due = record.next_fire_at.unwrap_or(now);
    let firing = parsed
        .latest_between(Timestamp::from_millis(due.as_millis() - 1), now)
        .filter(|at| now.since(*at) <= config.catch_up);
    let mut created = None;
    match firing {
        None => {
            tracing::warn!(schedule_id = %record.id, due = due.as_millis(), "missed firing older than the catch-up window: skipped");
        }
        Some(at) => match start_run(engine, record, at).await {
            Ok(run_id) => created = Some(run_id),
            // The pipeline was deleted: its schedules stop.
            Err(EngineError::NotFound(what)) => {
                tracing::info!(schedule_id = %record.id, missing = %what, "schedule of a deleted pipeline: disabled");
                store
                    .schedule_fired(&record.id, &config.owner, now, None)
                    .await?;
                return Ok(None);
            }
            // A disabled or deleted pipeline, a concurrency limit: this firing is over.
            Err(
                err @ (EngineError::Banned
                | EngineError::ConcurrencyLimit { .. }
                | EngineError::Invalid(_)),
            ) => {
                tracing::warn!(schedule_id = %record.id, pipeline_id = %record.pipeline_id, error = %err, "scheduled run not started");
            }
            Err(err) => return Err(err),
        },
    }
    store
        .schedule_fired(&record.id, &config.owner, now, next)
        .await?;
    Ok(created)
}

async fn start_run(
    engine: &Engine,
    record: &ScheduleRecord,
    at: Timestamp,
) -> Result<String, EngineError> {
    let store = engine.store();
    let pipeline = store
        .pipeline_by_id(&record.pipeline_id)
        .await?
        .ok_or_else(|| EngineError::NotFound(format!("pipeline {}", record.pipeline_id)))?;
    let user_name = store
        .user(&pipeline.creator_id)
        .await?
        .map(|user| user.name)
        .unwrap_or_else(|| "scheduler".to_owned());
    // Each code source runs its default branch (spec §13 PipelineSchedule).
    let sources: Vec<Value> = pipeline
        .sources
        .as_array()
        .into_iter()
        .flatten()
        .map(|source| {
            let mut source = source.clone();
            if let Some(params) = source.get_mut("params").and_then(Value::as_object_mut) {
                let branch = params.get("default_branch").cloned().unwrap_or(Value::Null);
                params.insert(
                    "build_params".to_owned(),
                    json!({"build_type": "branch", "event_type": "Scheduler", "target_branch": branch}),
                );
            }
            source
        })
        .collect();
    let build_params = sources
        .first()
        .and_then(|source| source.get("params"))
        .map(|params| {
            let mut build = params["build_params"].clone();
            build["git_url"] = params.get("git_url").cloned().unwrap_or(Value::Null);
            build["codehub_id"] = params.get("codehub_id").cloned().unwrap_or(Value::Null);
            build
        })
        .unwrap_or_else(|| json!({"event_type": "Scheduler"}));
    let triggered = engine
        .trigger(TriggerRequest {
            pipeline_id: pipeline.id.clone(),
            user_id: pipeline.creator_id.clone(),
            user_name,
            trigger_type: "Scheduler".to_owned(),
            description: format!("schedule {}", record.name),
            build_params,
            sources: Value::Array(sources),
            idempotency: Some(IdempotencyKey {
                scope: format!("schedule:{}", record.id),
                key: at.as_millis().to_string(),
            }),
            ..TriggerRequest::default()
        })
        .await?;
    if triggered.is_replay {
        tracing::info!(schedule_id = %record.id, run_id = %triggered.run_id, "firing already handled");
    } else {
        tracing::info!(schedule_id = %record.id, run_id = %triggered.run_id, fire_at = at.as_millis(), "scheduled run started");
    }
    Ok(triggered.run_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        let at = DateTime::parse_from_rfc3339(text).expect("rfc3339");
        Timestamp::from_millis(at.timestamp_millis())
    }

    #[test]
    fn fixed_schedules_use_codearts_weekdays_and_windows_zones() {
        // 2026-11-26 is a Thursday (CodeArts day 5). 18:51 China Standard Time = 10:51 UTC.
        let schedule = Schedule::parse(
            &json!({"type": "fixed", "days_of_week": [5], "start_time": "18:51",
            "time_zone": "China Standard Time"}),
        )
        .expect("valid");
        assert_eq!(
            schedule.next_after(ts("2026-11-26T00:00:00Z")),
            Some(ts("2026-11-26T10:51:00Z"))
        );
        assert_eq!(
            schedule.next_after(ts("2026-11-26T10:51:00Z")),
            Some(ts("2026-12-03T10:51:00Z")),
            "strictly after, next Thursday"
        );
        // Sunday = 1.
        let sunday =
            Schedule::parse(&json!({"days_of_week": [1], "start_time": "00:00"})).expect("valid");
        assert_eq!(
            sunday.next_after(ts("2026-11-26T00:00:00Z")),
            Some(ts("2026-11-29T00:00:00Z"))
        );
    }

    #[test]
    fn gmt_standard_time_is_london_with_summer_time() {
        let schedule =
            Schedule::parse(&json!({"start_time": "09:00", "time_zone": "GMT Standard Time"}))
                .expect("valid");
        assert_eq!(
            schedule.next_after(ts("2026-07-01T00:00:00Z")),
            Some(ts("2026-07-01T08:00:00Z"))
        );
        assert_eq!(
            schedule.next_after(ts("2026-12-01T00:00:00Z")),
            Some(ts("2026-12-01T09:00:00Z"))
        );
    }

    #[test]
    fn a_time_skipped_by_a_clock_change_fires_once_at_the_jump_and_a_repeated_one_fires_once() {
        // London springs forward on 2026-03-29 at 01:00 UTC: 01:30 local does not exist; the
        // firing happens when the clocks jump (02:00 local), as cron does, and once.
        let gap = Schedule::parse(&json!({"start_time": "01:30", "time_zone": "Europe/London"}))
            .expect("valid");
        let next = gap.next_after(ts("2026-03-29T00:00:00Z")).expect("fires");
        assert_eq!(next, ts("2026-03-29T01:00:00Z"), "at the jump");
        assert_eq!(
            gap.next_after(next),
            Some(ts("2026-03-30T00:30:00Z")),
            "then the next day, once"
        );
        // Falls back on 2026-10-25: 01:30 local happens twice; it fires once.
        let fold = Schedule::parse(&json!({"start_time": "01:30", "time_zone": "Europe/London"}))
            .expect("valid");
        let first = fold.next_after(ts("2026-10-25T00:00:00Z")).expect("fires");
        let second = fold.next_after(first).expect("fires");
        assert_eq!(
            second.as_millis() - first.as_millis(),
            24 * 3600 * 1000 + 3600 * 1000
        );
    }

    #[test]
    fn cron_and_periodic_schedules() {
        let every_second =
            Schedule::parse(&json!({"type": "cron", "cron": "* * * * * *"})).expect("valid");
        assert_eq!(
            every_second.next_after(ts("2026-01-01T00:00:00.500Z")),
            Some(ts("2026-01-01T00:00:01Z"))
        );
        let periodic = Schedule::parse(
            &json!({"type": "periodic", "start_time": "09:00", "end_time": "10:00",
            "interval_time": "1800", "interval_unit": "s"}),
        )
        .expect("valid");
        assert_eq!(
            periodic.next_after(ts("2026-01-01T09:10:00Z")),
            Some(ts("2026-01-01T09:30:00Z"))
        );
        assert_eq!(
            periodic.next_after(ts("2026-01-01T10:00:00Z")),
            Some(ts("2026-01-02T09:00:00Z"))
        );
        assert_eq!(
            periodic.latest_between(ts("2026-01-01T08:00:00Z"), ts("2026-01-01T09:45:00Z")),
            Some(ts("2026-01-01T09:30:00Z"))
        );
    }

    #[test]
    fn bad_schedules_name_their_field() {
        for (bad, field) in [
            (json!({"start_time": "25:00"}), "start_time"),
            (
                json!({"start_time": "10:00", "time_zone": "Mars Standard Time"}),
                "time_zone",
            ),
            (
                json!({"start_time": "10:00", "days_of_week": [0]}),
                "days_of_week",
            ),
            (json!({"type": "cron", "cron": "not cron"}), "cron"),
            (
                json!({"type": "periodic", "interval_time": "5"}),
                "interval_time",
            ),
            (json!({"type": "weekly"}), "type"),
        ] {
            let err = Schedule::parse(&bad).expect_err("invalid");
            assert!(err.starts_with(field), "{err}");
        }
    }
}
