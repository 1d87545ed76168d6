//! Small helpers shared by the SQL code: row decoding, flags, timestamps, JSON columns, statuses, pages.

use crate::error::StoreError;
use runnel_domain::Timestamp;
use sqlx::Row;
use sqlx::any::AnyRow;
use std::str::FromStr;

/// A page of a longer list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// Matching items in total (all pages).
    pub total: i64,
    pub items: Vec<T>,
}

/// Which end of a sorted list comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortDir {
    Asc,
    #[default]
    Desc,
}

pub(crate) fn text(row: &AnyRow, column: &str) -> Result<String, StoreError> {
    Ok(row.try_get::<String, _>(column)?)
}

pub(crate) fn opt_text(row: &AnyRow, column: &str) -> Result<Option<String>, StoreError> {
    Ok(row.try_get::<Option<String>, _>(column)?)
}

pub(crate) fn int(row: &AnyRow, column: &str) -> Result<i64, StoreError> {
    Ok(row.try_get::<i64, _>(column)?)
}

pub(crate) fn opt_int(row: &AnyRow, column: &str) -> Result<Option<i64>, StoreError> {
    Ok(row.try_get::<Option<i64>, _>(column)?)
}

pub(crate) fn flag(row: &AnyRow, column: &str) -> Result<bool, StoreError> {
    Ok(row.try_get::<i64, _>(column)? != 0)
}

pub(crate) fn bytes(row: &AnyRow, column: &str) -> Result<Vec<u8>, StoreError> {
    Ok(row.try_get::<Vec<u8>, _>(column)?)
}

pub(crate) fn opt_bytes(row: &AnyRow, column: &str) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(row.try_get::<Option<Vec<u8>>, _>(column)?)
}

pub(crate) fn ts(row: &AnyRow, column: &str) -> Result<Timestamp, StoreError> {
    Ok(Timestamp::from_millis(int(row, column)?))
}

pub(crate) fn opt_ts(row: &AnyRow, column: &str) -> Result<Option<Timestamp>, StoreError> {
    Ok(opt_int(row, column)?.map(Timestamp::from_millis))
}

/// A TEXT column holding JSON.
pub(crate) fn json(row: &AnyRow, column: &str) -> Result<serde_json::Value, StoreError> {
    let raw = text(row, column)?;
    serde_json::from_str(&raw).map_err(|err| StoreError::corrupt(format!("{column}: {err}")))
}

/// A TEXT column holding a JSON array of strings.
pub(crate) fn string_list(row: &AnyRow, column: &str) -> Result<Vec<String>, StoreError> {
    let raw = text(row, column)?;
    serde_json::from_str(&raw).map_err(|err| StoreError::corrupt(format!("{column}: {err}")))
}

/// A status (or other wire enum) column.
pub(crate) fn status<T>(row: &AnyRow, column: &str) -> Result<T, StoreError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let raw = text(row, column)?;
    raw.parse::<T>().map_err(StoreError::corrupt)
}

pub(crate) fn to_json(value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|err| StoreError::Invalid(format!("not serializable: {err}")))
}

pub(crate) fn flag_value(value: bool) -> i64 {
    i64::from(value)
}

pub(crate) fn millis(value: Timestamp) -> i64 {
    value.as_millis()
}

pub(crate) fn opt_millis(value: Option<Timestamp>) -> Option<i64> {
    value.map(Timestamp::as_millis)
}

/// A page window: `limit` clamped to 1..=max, `offset` ≥ 0.
pub(crate) fn window(offset: i64, limit: i64, max: i64) -> (i64, i64) {
    (offset.max(0), limit.clamp(1, max))
}

/// A bound value of a query assembled at run time.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
}

/// Assembles SQL from static fragments and `$n` placeholders; values are only ever bound.
/// (sqlx's `QueryBuilder` writes `?` placeholders for the `Any` driver, which PostgreSQL rejects.)
#[derive(Debug, Default)]
pub(crate) struct SqlBuilder {
    sql: String,
    args: Vec<Arg>,
}

impl SqlBuilder {
    pub(crate) fn new(start: &'static str) -> Self {
        SqlBuilder {
            sql: start.to_owned(),
            args: Vec::new(),
        }
    }

    /// Appends a fragment of SQL text; only ever called with string literals.
    pub(crate) fn push(&mut self, fragment: &'static str) -> &mut Self {
        self.sql.push_str(fragment);
        self
    }

    /// Appends a placeholder bound to `arg`.
    pub(crate) fn bind(&mut self, arg: Arg) -> &mut Self {
        self.args.push(arg);
        self.sql.push('$');
        self.sql.push_str(&self.args.len().to_string());
        self
    }

    /// Appends `(p1, p2, …)` bound to `args` (at least one: callers check for empty lists).
    pub(crate) fn bind_list(&mut self, args: impl IntoIterator<Item = Arg>) -> &mut Self {
        self.sql.push('(');
        for (index, arg) in args.into_iter().enumerate() {
            if index > 0 {
                self.sql.push_str(", ");
            }
            self.bind(arg);
        }
        self.sql.push(')');
        self
    }

    pub(crate) fn query(&self) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments> {
        // Safe: the text holds only literals pushed by this crate and numbered placeholders.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(self.sql.clone()));
        for arg in &self.args {
            query = match arg {
                Arg::Text(text) => query.bind(text.clone()),
                Arg::Int(value) => query.bind(*value),
            };
        }
        query
    }
}
