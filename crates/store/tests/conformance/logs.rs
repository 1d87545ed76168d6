//! Step logs (G4, A2): random chunkings with duplicates, overlaps and gaps reassemble byte-exactly; gaps are refused; the cap.

use crate::fixtures::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use runnel_domain::status::JobStatus;
use runnel_store::*;

/// A run with one leased job; returns the lease and the job's step ids.
async fn leased_step(store: &Store) -> (Lease, Vec<String>, String) {
    let tenant = tenant(store, &new_id()).await;
    let pipeline = pipeline(store, &tenant, "logs").await;
    let pool = new_id();
    let (run, _) = queued_run(
        store,
        &pipeline.id,
        &RunShape {
            jobs_per_stage: vec![1],
            steps_per_job: 2,
        },
        Some(&pool),
        at(0),
    )
    .await;
    let lease = store
        .claim(claim_request("w", Some(&pool), at(1), 600_000))
        .await
        .unwrap()
        .unwrap();
    let detail = store.run_detail(&run.id).await.unwrap().unwrap();
    let steps = detail.stages[0].jobs[0]
        .steps
        .iter()
        .map(|step| step.id.clone())
        .collect();
    (lease, steps, run.id)
}

async fn read_all(store: &Store, step: &str, page: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let got = store
            .read_log(
                step,
                None,
                LogRead::Asc {
                    start: out.len() as u64,
                    limit: page,
                },
            )
            .await
            .unwrap();
        assert_eq!(got.start, out.len() as u64);
        if got.data.is_empty() {
            return out;
        }
        out.extend_from_slice(&got.data);
    }
}

async fn read_all_backwards(store: &Store, step: &str, page: u64) -> Vec<u8> {
    let mut pieces = Vec::new();
    let mut end = None;
    loop {
        let got = store
            .read_log(step, None, LogRead::Desc { end, limit: page })
            .await
            .unwrap();
        if got.data.is_empty() {
            break;
        }
        end = Some(got.start);
        pieces.push(got.data);
    }
    pieces.reverse();
    pieces.concat()
}

conformance! {
    async fn appends_at_the_wrong_offset_are_refused_and_retries_are_no_ops(db) {
        let store = db.open().await;
        let (lease, steps, _) = leased_step(&store).await;
        let step = &steps[0];
        let first = store.append(&lease.token, step, 0, b"hello ".to_vec(), at(1)).await.unwrap();
        assert_eq!(first, AppendOutcome { next_offset: 6, is_duplicate: false, is_truncated: false });
        // A gap: refused with the offset to send, nothing stored.
        let err = store.append(&lease.token, step, 9, b"gap".to_vec(), at(2)).await.unwrap_err();
        assert!(matches!(err, StoreError::OffsetMismatch { expected: 6 }), "{err:?}");
        // A retry of bytes already stored.
        let retry = store.append(&lease.token, step, 0, b"hello ".to_vec(), at(3)).await.unwrap();
        assert!(retry.is_duplicate);
        assert_eq!(retry.next_offset, 6);
        // Different bytes at a stored offset: a conflict, nothing stored.
        let err = store.append(&lease.token, step, 0, b"HELLO ".to_vec(), at(4)).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        // An overlapping append stores only its new suffix.
        let overlap = store.append(&lease.token, step, 3, b"lo world\n".to_vec(), at(5)).await.unwrap();
        assert_eq!(overlap.next_offset, 12);
        assert_eq!(read_all(&store, step, 4).await, b"hello world\n");
        // The other step's log is separate; a foreign step is not found.
        assert_eq!(store.append(&lease.token, &steps[1], 0, b"x".to_vec(), at(6)).await.unwrap().next_offset, 1);
        assert!(matches!(store.append(&lease.token, "nope", 0, b"x".to_vec(), at(7)).await, Err(StoreError::NotFound)));
        let info = store.log_info(step, None).await.unwrap().unwrap();
        assert_eq!((info.received, info.stored, info.is_truncated, info.attempt), (12, 12, false, 1));
        // Reading backwards from the end.
        let tail = store.read_log(step, None, LogRead::Desc { end: None, limit: 6 }).await.unwrap();
        assert_eq!((tail.start, tail.end, tail.data.as_slice()), (6, 12, b"world\n".as_slice()));
        store.complete(&lease.token, JobOutcome { status: JobStatus::Completed, message: None }, at(8)).await.unwrap();
    }
}

conformance! {
    async fn random_chunkings_with_duplicates_and_gaps_reassemble_byte_exactly(db) {
        let store = db.open().await;
        let cases = std::env::var("RUNNEL_LOG_CASES").ok().and_then(|value| value.parse().ok()).unwrap_or(24);
        // Inputs are generated up front (proptest's runner is synchronous); each case gets its own step.
        let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
        let strategy = (
            proptest::collection::vec(any::<u8>(), 0..200_000),
            proptest::collection::vec((1usize..40_000, 0u8..10), 1..60),
        );
        let mut inputs = Vec::new();
        for _ in 0..cases {
            inputs.push(strategy.new_tree(&mut runner).unwrap().current());
        }
        let (mut gaps, mut duplicates, mut overlaps) = (0, 0, 0);
        for (bytes, plan) in inputs {
            let (lease, steps, _) = leased_step(&store).await;
            let step = &steps[0];
            let mut sent = 0usize;
            let mut plan = plan.into_iter().cycle();
            let mut stalled = false;
            while sent < bytes.len() {
                let (size, mut action) = plan.next().unwrap();
                // Every other append makes progress, whatever the plan says.
                if stalled {
                    action = 9;
                }
                stalled = matches!(action, 0 | 1);
                let end = (sent + size).min(bytes.len());
                match action {
                    // A gap: starts past the end; refused, nothing changes.
                    0 => {
                        let start = sent + 1 + size % 7;
                        let piece = bytes.get(start.min(bytes.len())..end.max(start).min(bytes.len())).unwrap_or_default().to_vec();
                        let err = store.append(&lease.token, step, start as u64, piece, at(1)).await.unwrap_err();
                        assert!(matches!(err, StoreError::OffsetMismatch { expected } if expected == sent as u64), "{err:?}");
                        gaps += 1;
                    }
                    // A duplicate of something already stored.
                    1 if sent > 0 => {
                        let start = size % sent;
                        let stop = (start + size).min(sent);
                        let got = store.append(&lease.token, step, start as u64, bytes[start..stop].to_vec(), at(1)).await.unwrap();
                        assert!(got.is_duplicate);
                        duplicates += 1;
                    }
                    // Overlapping the end: only the suffix is new.
                    2 if sent > 0 => {
                        let start = sent - (size % sent).min(sent);
                        let got = store.append(&lease.token, step, start as u64, bytes[start..end].to_vec(), at(1)).await.unwrap();
                        assert_eq!(got.next_offset, end as u64);
                        sent = end;
                        overlaps += 1;
                    }
                    _ => {
                        let got = store.append(&lease.token, step, sent as u64, bytes[sent..end].to_vec(), at(1)).await.unwrap();
                        assert_eq!(got.next_offset, end as u64);
                        sent = end;
                    }
                }
            }
            assert_eq!(read_all(&store, step, 65_536).await, bytes, "ascending pages of 64 KiB");
            assert_eq!(read_all(&store, step, 7_777).await, bytes, "ascending pages of odd size");
            assert_eq!(read_all_backwards(&store, step, 10_000).await, bytes, "descending pages");
        }
        println!("G4 {:?}: {cases} logs reassembled byte-exactly; {gaps} gaps refused, {duplicates} duplicates, {overlaps} overlaps", db.kind);
    }
}

conformance! {
    async fn the_cap_stores_one_marker_and_acknowledges_later_bytes(db) {
        let store = db.open_with(|config| config.log_cap_bytes = 1000).await;
        let (lease, steps, _) = leased_step(&store).await;
        let step = &steps[0];
        let line = vec![b'a'; 300];
        let mut offset = 0;
        for _ in 0..3 {
            offset = store.append(&lease.token, step, offset, line.clone(), at(1)).await.unwrap().next_offset;
        }
        // This one crosses the cap: 100 bytes kept, the marker once.
        let crossing = store.append(&lease.token, step, offset, vec![b'b'; 300], at(2)).await.unwrap();
        assert!(crossing.is_truncated);
        assert_eq!(crossing.next_offset, 1200);
        // Later appends are acknowledged (the offset advances) and dropped.
        let later = store.append(&lease.token, step, 1200, vec![b'c'; 5000], at(3)).await.unwrap();
        assert_eq!((later.next_offset, later.is_truncated), (6200, true));
        // A retry past the cap is accepted too; a gap is still refused.
        assert!(store.append(&lease.token, step, 1200, vec![b'c'; 5000], at(4)).await.unwrap().is_duplicate);
        assert!(matches!(store.append(&lease.token, step, 7000, vec![b'd'], at(5)).await, Err(StoreError::OffsetMismatch { expected: 6200 })));
        let stored = read_all(&store, step, 333).await;
        let mut expected = vec![b'a'; 900];
        expected.extend_from_slice(&[b'b'; 100]);
        expected.extend_from_slice(TRUNCATION_MARKER.as_bytes());
        assert_eq!(stored, expected);
        let info = store.log_info(step, None).await.unwrap().unwrap();
        assert_eq!((info.received, info.stored, info.is_truncated), (6200, 1000 + TRUNCATION_MARKER.len() as u64, true));
    }
}

conformance! {
    async fn a_new_attempt_writes_a_new_log_and_the_old_one_stays_readable(db) {
        let store = db.open().await;
        let (lease, steps, _) = leased_step(&store).await;
        store.append(&lease.token, &steps[0], 0, b"first attempt\n".to_vec(), at(1)).await.unwrap();
        // The lease lapses; the job is queued again as attempt 2.
        store.expire_leases(at(10_000_000)).await.unwrap();
        assert!(store.queue_stats(at(10_000_001)).await.unwrap().queued >= 1);
        let old = store.read_log(&steps[0], Some(1), LogRead::Asc { start: 0, limit: 100 }).await.unwrap();
        assert_eq!(old.data, b"first attempt\n");
        let current = store.read_log(&steps[0], None, LogRead::Asc { start: 0, limit: 100 }).await.unwrap();
        assert!(current.data.is_empty(), "attempt 2 has no log yet");
        assert!(matches!(store.append(&lease.token, &steps[0], 14, b"late".to_vec(), at(2)).await, Err(StoreError::LeaseLost)));
    }
}

/// Bytes that are not valid UTF-8 and contain NULs, so a backend that treated them as text
/// anywhere (the in-place merge of small appends concatenates) would show.
fn binary_bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|index| (index as u8).wrapping_mul(31).wrapping_add(seed) ^ 0x80)
        .collect()
}

conformance! {
    async fn small_and_large_appends_in_any_order_read_back_exactly(db) {
        let store = db.open().await;
        let (lease, steps, _) = leased_step(&store).await;
        let step = &steps[0];
        // Sizes around the merge threshold (16 KiB) and the chunk size (64 KiB), in an order
        // that merges small appends, starts new chunks after large ones and splits one > 64 KiB.
        let sizes = [
            1, 0, 100, 16_383, 16_384, 7, 65_536, 3, 5, 70_000, 16_385, 1, 131_073, 2, 65_535, 9_000, 9_000,
        ];
        let mut expected = Vec::new();
        for (index, size) in sizes.into_iter().enumerate() {
            let piece = binary_bytes(size, index as u8);
            let got = store
                .append(&lease.token, step, expected.len() as u64, piece.clone(), at(index as i64))
                .await
                .unwrap();
            expected.extend_from_slice(&piece);
            assert_eq!(got.next_offset, expected.len() as u64, "append {index} of {size} bytes");
            assert!(!got.is_truncated);
            // A retry of the same append (the answer was lost) changes nothing.
            if size > 0 {
                let again = store
                    .append(&lease.token, step, (expected.len() - size) as u64, piece, at(index as i64))
                    .await
                    .unwrap();
                assert!(again.is_duplicate);
                assert_eq!(again.next_offset, expected.len() as u64);
            }
        }
        assert_eq!(read_all(&store, step, 65_536).await, expected);
        assert_eq!(read_all(&store, step, 1_000).await, expected);
        assert_eq!(read_all_backwards(&store, step, 65_536).await, expected);
        let info = store.log_info(step, None).await.unwrap().unwrap();
        assert_eq!((info.received, info.stored), (expected.len() as u64, expected.len() as u64));
        // Different bytes at a stored offset are a conflict; a gap is refused.
        assert!(matches!(
            store.append(&lease.token, step, 0, vec![0xff; 10], at(50)).await,
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            store.append(&lease.token, step, expected.len() as u64 + 1, vec![1; 20_000], at(51)).await,
            Err(StoreError::OffsetMismatch { expected: e }) if e == expected.len() as u64
        ));
        // Once the attempt is completed its token writes nothing, small or large.
        store
            .complete(&lease.token, JobOutcome { status: JobStatus::Completed, message: None }, at(60))
            .await
            .unwrap();
        for size in [10, 20_000] {
            let err = store
                .append(&lease.token, step, expected.len() as u64, vec![1; size], at(61))
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::LeaseLost), "{err:?}");
        }
        assert_eq!(read_all(&store, step, 65_536).await, expected);
    }
}

conformance! {
    async fn concurrent_streams_and_stale_writers_commit_together_byte_exactly(db) {
        let store = db.open().await;
        // Several jobs stream at once (their appends share commits on SQLite), while writers
        // holding a superseded token keep trying: they are refused and change nothing (G2).
        let mut streams = Vec::new();
        for _ in 0..4 {
            let (lease, steps, _) = leased_step(&store).await;
            streams.push((lease, steps[0].clone()));
        }
        let mut tasks = Vec::new();
        for (index, (lease, step)) in streams.iter().cloned().enumerate() {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut log = Vec::new();
                let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ index as u64;
                for round in 0..60 {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let size = match state % 4 {
                        0 => 1 + (state >> 8) as usize % 300,
                        1 => 1 + (state >> 8) as usize % 16_000,
                        2 => 16_384 + (state >> 8) as usize % 49_152,
                        _ => 65_536,
                    };
                    let piece = binary_bytes(size, round as u8);
                    let got = store
                        .append(&lease.token, &step, log.len() as u64, piece.clone(), at(round))
                        .await
                        .unwrap();
                    log.extend_from_slice(&piece);
                    assert_eq!(got.next_offset, log.len() as u64);
                }
                (step, log)
            }));
        }
        let stale = LeaseToken::new(new_id());
        let mut stale_tasks = Vec::new();
        for (_, step) in &streams {
            let store = store.clone();
            let stale = stale.clone();
            let step = step.clone();
            stale_tasks.push(tokio::spawn(async move {
                for round in 0..30 {
                    let size = if round % 2 == 0 { 100 } else { 40_000 };
                    let err = store.append(&stale, &step, 0, vec![7; size], at(round)).await.unwrap_err();
                    assert!(matches!(err, StoreError::LeaseLost), "{err:?}");
                    tokio::task::yield_now().await;
                }
            }));
        }
        for task in stale_tasks {
            task.await.unwrap();
        }
        for task in tasks {
            let (step, log) = task.await.unwrap();
            assert_eq!(read_all(&store, &step, 65_536).await, log);
            assert_eq!(read_all_backwards(&store, &step, 9_999).await, log);
        }
    }
}
