-- `job_attempts_job (job_run_id)` repeated the leading column of the unique
-- (job_run_id, attempt) index, which serves every lookup by job run as well; each attempt
-- paid for the second index on insert (and in the WAL pages of every commit).
DROP INDEX IF EXISTS job_attempts_job;
