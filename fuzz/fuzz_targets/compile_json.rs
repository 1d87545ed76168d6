//! Fuzzes `compile_text` with JSON input: it must never panic, and what it accepts must be a
//! consistent spec.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runnel_domain::{Format, compile_text};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match compile_text(text, Format::Json) {
        Ok(spec) => {
            for job_index in spec.job_indices() {
                let job = spec.job(job_index);
                assert!(!job.upstream.contains(&job_index), "job cycle accepted");
                for need in &job.needs {
                    assert_eq!(
                        spec.job(*need).stage,
                        job.stage,
                        "cross-stage need accepted"
                    );
                }
            }
        }
        Err(diagnostics) => assert!(!diagnostics.is_empty(), "an error without diagnostics"),
    }
});
