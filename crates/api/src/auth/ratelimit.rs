//! In-memory token buckets limiting `POST /v3/auth/tokens` per source IP and per user (S6).
//!
//! Each key owns a bucket of `burst` tokens refilled at `per_minute` per minute; an attempt
//! takes one token or is refused with 429. Buckets live in memory only: a restart forgives
//! everybody, and several server replicas each keep their own. The map is bounded: when it is
//! full, buckets that refilled completely (idle keys) are dropped; if every bucket is still
//! in use the map is cleared (failing open, so a flood of addresses cannot lock everyone out).

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;

/// A token-bucket rate: `burst` attempts at once, refilled at `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    pub burst: u32,
    pub per_minute: u32,
}

/// The most keys remembered at once.
const MAX_KEYS: usize = 10_000;

pub(crate) struct Limiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated_ms: i64,
}

impl Limiter {
    pub(crate) fn new(limit: RateLimit) -> Limiter {
        Limiter {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token of `key`'s bucket at `now_ms`; `false` when there is none left.
    pub(crate) fn try_acquire(&self, key: &str, now_ms: i64) -> bool {
        let burst = f64::from(self.limit.burst);
        if burst < 1.0 {
            return false;
        }
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !buckets.contains_key(key) && buckets.len() >= MAX_KEYS {
            buckets.retain(|_, bucket| self.refilled(*bucket, now_ms) < burst);
            if buckets.len() >= MAX_KEYS {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: burst,
            updated_ms: now_ms,
        });
        bucket.tokens = self.refilled(*bucket, now_ms);
        bucket.updated_ms = bucket.updated_ms.max(now_ms);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn refilled(&self, bucket: Bucket, now_ms: i64) -> f64 {
        let elapsed_ms = (now_ms - bucket.updated_ms).max(0) as f64;
        let rate_per_ms = f64::from(self.limit.per_minute) / 60_000.0;
        (bucket.tokens + elapsed_ms * rate_per_ms).min(f64::from(self.limit.burst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_refused_until_refilled() {
        let limiter = Limiter::new(RateLimit {
            burst: 3,
            per_minute: 6,
        });
        for _ in 0..3 {
            assert!(limiter.try_acquire("ip", 0));
        }
        assert!(!limiter.try_acquire("ip", 0));
        assert!(limiter.try_acquire("other", 0), "keys are independent");
        assert!(!limiter.try_acquire("ip", 9_999));
        assert!(limiter.try_acquire("ip", 10_000), "one token every 10 s");
        assert!(!limiter.try_acquire("ip", 10_000));
    }

    #[test]
    fn the_map_stays_bounded() {
        let limiter = Limiter::new(RateLimit {
            burst: 1,
            per_minute: 1,
        });
        for index in 0..(MAX_KEYS + 10) {
            assert!(limiter.try_acquire(&format!("key-{index}"), 0));
        }
        let size = limiter.buckets.lock().expect("lock").len();
        assert!(size <= MAX_KEYS, "{size}");
    }
}
