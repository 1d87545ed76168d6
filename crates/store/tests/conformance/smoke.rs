//! A first pass through every aggregate.

use crate::fixtures::*;
use runnel_store::*;

conformance! {
    async fn opening_creates_the_schema_and_a_run_can_be_created(db) {
        let store = db.open().await;
        assert_eq!(store.schema_version().await.unwrap(), store.known_schema_version());
        let tenant = tenant(&store, "acme").await;
        let pipeline = pipeline(&store, &tenant, "demo").await;
        let (run, jobs) = queued_run(&store, &pipeline.id, &RunShape::default(), None, T0).await;
        assert_eq!(run.run_number, 1);
        let lease = store.claim(claim_request("w1", None, at(1), 3000)).await.unwrap().expect("a job");
        assert_eq!(lease.job_run_id, jobs[0]);
        let detail = store.run_detail(&run.id).await.unwrap().expect("detail");
        assert_eq!(detail.stages[0].jobs[0].status, runnel_domain::status::JobStatus::Running);
        let step = detail.stages[0].jobs[0].steps[0].id.clone();
        store.append(&lease.token, &step, 0, b"hello\n".to_vec(), at(2)).await.unwrap();
        let page = store.read_log(&step, None, LogRead::Asc { start: 0, limit: 100 }).await.unwrap();
        assert_eq!(page.data, b"hello\n");
        let done = store
            .complete(&lease.token, JobOutcome { status: runnel_domain::status::JobStatus::Completed, message: None }, at(3))
            .await
            .unwrap();
        assert!(!done.is_replay);
        let list = store.list_runs(&pipeline.id, &RunQuery::default()).await.unwrap();
        assert_eq!(list.total, 1);
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bench_smoke() {
    let dir = tempfile::tempdir().unwrap();
    let config = runnel_store::bench::BenchConfig {
        sqlite_dir: Some(dir.path().to_owned()),
        postgres_url: None,
        workers: 4,
        queue_jobs: 2000,
        log_bytes: 64 << 20,
        append_bytes: 65536,
        log_streams: 2,
        line_appends: 50,
        tail_reads: 10,
        list_runs: 100,
        list_reads: 10,
    };
    let started = std::time::Instant::now();
    let report = runnel_store::bench::run(config).await;
    println!("{report:#} in {:?}", started.elapsed());
    assert!(report["sqlite"].get("error").is_none(), "{report}");
    assert_eq!(
        report["sqlite"]["log_append"]["line_by_line"]["appends"], 50,
        "{report}"
    );
}
