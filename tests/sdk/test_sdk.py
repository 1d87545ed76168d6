"""The official Python SDK (`huaweicloudsdkcodeartspipeline`) against `runnel serve`.

Everything goes through the SDK's own request and response models, signed with AK/SK by the SDK
itself: create a pipeline, run it with variables, poll the run to COMPLETED, list runs with
filters, page through a step log, stop a long run, retry a failed run, pass a manual review and
a manual stage, and errors with their `error_code`.
"""

import json
import time
import uuid

import pytest
from huaweicloudsdkcore.exceptions import exceptions
from huaweicloudsdkcodeartspipeline.v2 import (
    AcceptCheckpointRequest,
    AcceptManualReviewRequest,
    CreatePipelineNewRequest,
    CustomVariable,
    ListPipelineQuery,
    ListPipelineRunsQuery,
    ListPipelineRunsRequest,
    ListPipelinesRequest,
    LogQuery,
    PipelineDTO,
    RetryPipelineRequest,
    RetryPipelineRunRequest,
    RunPipelineDTO,
    RunPipelineDTOVariables,
    RunPipelineRequest,
    ShowPipelineDetailRequest,
    ShowPipelineLogRequest,
    ShowPipelineRunDetailRequest,
    StopPipelineRunRequest,
)

from conftest import make_client, wait_until

FINAL = {"COMPLETED", "FAILED", "CANCELED", "IGNORED"}


def shell(name, script):
    return {"name": name, "task": "official_shell_plugin",
            "inputs": [{"key": "OFFICIAL_SHELL_SCRIPT_INPUT", "value": script}]}


def one_job(script, job="JOB_main"):
    return {"stages": [{"name": "Build", "jobs": [
        {"name": "main", "identifier": job, "steps": [shell("script", script)]}]}]}


def create_pipeline(client, project_id, definition, variables=None, name=None):
    body = PipelineDTO(
        name=name or f"sdk-{uuid.uuid4().hex[:12]}",
        description="created by the SDK tests",
        is_publish=False,
        definition=json.dumps(definition),
        variables=variables or [],
    )
    response = client.create_pipeline_new(CreatePipelineNewRequest(project_id=project_id, body=body))
    assert len(response.pipeline_id) == 32
    return response.pipeline_id


def run(client, project_id, pipeline_id, variables=None):
    dto = RunPipelineDTO(
        description="started by the SDK tests",
        variables=[RunPipelineDTOVariables(name=name, value=value)
                   for name, value in (variables or {}).items()],
    )
    response = client.run_pipeline(RunPipelineRequest(project_id=project_id, pipeline_id=pipeline_id, body=dto))
    assert response.pipeline_run_id
    return response.pipeline_run_id


def detail(client, project_id, pipeline_id, run_id):
    return client.show_pipeline_run_detail(ShowPipelineRunDetailRequest(
        project_id=project_id, pipeline_id=pipeline_id, pipeline_run_id=run_id))


def wait_status(client, project_id, pipeline_id, run_id, status, timeout=90):
    def probe():
        current = detail(client, project_id, pipeline_id, run_id)
        if current.status == status:
            return current
        if current.status in FINAL:
            raise AssertionError(f"the run ended {current.status}, not {status}: {current}")
        return None
    return wait_until(f"run {run_id} to be {status}", probe, timeout=timeout)


def only_step(run_detail):
    job = run_detail.stages[0].jobs[0]
    return job, job.steps[0]


def test_create_run_with_variables_poll_list_and_page_through_the_log(client, project_id):
    lines = 40
    pipeline_id = create_pipeline(
        client, project_id,
        one_job(f'for i in $(seq 1 {lines}); do echo "line $i of {lines} for $TARGET"; done'),
        variables=[CustomVariable(name="TARGET", type="string", value="dev", is_runtime=True,
                                  sequence=1, description="where to deploy")],
    )
    shown = client.show_pipeline_detail(ShowPipelineDetailRequest(project_id=project_id, pipeline_id=pipeline_id))
    assert shown.id == pipeline_id
    assert [variable.name for variable in shown.variables] == ["TARGET"]
    assert json.loads(shown.definition)["stages"][0]["name"] == "Build"

    run_id = run(client, project_id, pipeline_id, {"TARGET": "prod"})
    done = wait_status(client, project_id, pipeline_id, run_id, "COMPLETED")
    assert done.id == run_id and done.run_number == 1
    assert done.end_time >= done.start_time > 0
    job, step = only_step(done)
    assert (job.status, step.status) == ("COMPLETED", "COMPLETED")

    # Run list with filters: the completed run, newest first; none that FAILED.
    listed = client.list_pipeline_runs(ListPipelineRunsRequest(
        project_id=project_id, pipeline_id=pipeline_id,
        body=ListPipelineRunsQuery(status=["COMPLETED"], offset=0, limit=10, sort_key="start_time",
                                   sort_dir="DESC", start_time=str(done.start_time - 60_000),
                                   end_time=str(done.start_time + 60_000))))
    assert listed.total == 1
    assert [item.pipeline_run_id for item in listed.pipeline_runs] == [run_id]
    assert listed.pipeline_runs[0].status == "COMPLETED"
    assert listed.pipeline_runs[0].stage_status_list[0].status == "COMPLETED"
    failed = client.list_pipeline_runs(ListPipelineRunsRequest(
        project_id=project_id, pipeline_id=pipeline_id, body=ListPipelineRunsQuery(status=["FAILED"])))
    assert failed.total == 0 and failed.pipeline_runs == []

    # The pipeline list knows the latest run.
    pipelines = client.list_pipelines(ListPipelinesRequest(
        project_id=project_id, body=ListPipelineQuery(offset=0, limit=100)))
    mine = [item for item in pipelines.pipelines if item.pipeline_id == pipeline_id]
    assert len(mine) == 1 and mine[0].latest_run.pipeline_run_id == run_id

    # Page through the step log, 7 lines at a time, feeding end_offset back as start_offset.
    text, offset, pages = "", 0, 0
    while True:
        page = client.show_pipeline_log(ShowPipelineLogRequest(
            project_id=project_id, pipeline_id=pipeline_id, pipeline_run_id=run_id,
            job_run_id=job.id, step_run_id=step.id,
            body=LogQuery(start_offset=offset, end_offset=0, limit=7, sort="asc")))
        pages += 1
        assert int(page.start_offset) == offset
        assert page.step_run_id == step.id
        text += page.log
        offset = int(page.end_offset)
        if not page.has_more:
            break
        assert pages < 100, "the log never ends"
    printed = [line for line in text.splitlines() if "line " in line]
    assert len(printed) == lines
    assert all(f"of {lines} for prod" in line for line in printed), printed[:3]
    assert [int(line.split("line ")[1].split(" ")[0]) for line in printed] == list(range(1, lines + 1))
    assert pages >= lines // 7


def test_stop_a_long_run(client, project_id):
    pipeline_id = create_pipeline(client, project_id, one_job("echo started; sleep 600"))
    run_id = run(client, project_id, pipeline_id)

    def running():
        current = detail(client, project_id, pipeline_id, run_id)
        return current if only_step(current)[1].status == "RUNNING" else None

    wait_until("the step to run", running)
    response = client.stop_pipeline_run(StopPipelineRunRequest(
        project_id=project_id, pipeline_id=pipeline_id, pipeline_run_id=run_id))
    assert response.success is True
    stopped = wait_status(client, project_id, pipeline_id, run_id, "CANCELED", timeout=60)
    assert only_step(stopped)[0].status == "CANCELED"
    assert stopped.end_time


def test_retry_a_failed_run(client, project_id, tmp_path):
    marker = tmp_path / f"retry-{uuid.uuid4().hex}"
    script = (f'if [ -e "{marker}" ]; then echo "second try"; '
              f'else touch "{marker}"; echo "first try"; exit 3; fi')
    pipeline_id = create_pipeline(client, project_id, one_job(script))
    run_id = run(client, project_id, pipeline_id)
    failed = wait_status(client, project_id, pipeline_id, run_id, "FAILED")
    job, _ = only_step(failed)
    assert job.status == "FAILED"

    response = client.retry_pipeline_run(RetryPipelineRunRequest(
        project_id=project_id, pipeline_id=pipeline_id, pipeline_run_id=run_id,
        body=RetryPipelineRequest(job_run_ids=[job.id])))
    assert response.success is True
    done = wait_status(client, project_id, pipeline_id, run_id, "COMPLETED")
    assert done.id == run_id and done.run_number == 1, "a retry reuses the run"
    job, step = only_step(done)
    page = client.show_pipeline_log(ShowPipelineLogRequest(
        project_id=project_id, pipeline_id=pipeline_id, pipeline_run_id=run_id,
        job_run_id=job.id, step_run_id=step.id, body=LogQuery(start_offset=0, limit=100, sort="asc")))
    assert "second try" in page.log


def test_pass_a_manual_review_and_a_manual_stage(client, project_id, server):
    approver = server.credentials["user_id"]
    definition = {"stages": [
        {"name": "Approve", "jobs": [{"name": "review", "identifier": "JOB_review", "steps": [
            {"name": "review", "task": "official_devcloud_checkpoint", "inputs": [
                {"key": "audit_source", "value": "members"}, {"key": "approvers", "value": approver},
                {"key": "check_strategy", "value": "all"}, {"key": "timeout_strategy", "value": "reject"},
                {"key": "timeout", "value": 3600}]}]}]},
        {"name": "Deploy", "pre": [{"task": "official_devcloud_manualTrigger", "sequence": 0}],
         "jobs": [{"name": "ship", "identifier": "JOB_ship", "steps": [shell("ship", "echo shipped")]}]},
    ]}
    pipeline_id = create_pipeline(client, project_id, definition)
    run_id = run(client, project_id, pipeline_id)
    paused = wait_status(client, project_id, pipeline_id, run_id, "PAUSED")
    review_job = paused.stages[0].jobs[0]
    response = client.accept_manual_review(AcceptManualReviewRequest(
        project_id=project_id, pipeline_id=pipeline_id, pipeline_run_id=run_id,
        job_run_id=review_job.id, step_run_id=review_job.steps[0].id,
        approval_description="LGTM, ship it"))
    assert response.success is True

    def waiting_at_the_gate():
        current = detail(client, project_id, pipeline_id, run_id)
        return current if current.stages[0].status == "COMPLETED" and current.stages[1].status == "PAUSED" else None

    gated = wait_until("the manual stage to wait", waiting_at_the_gate)
    gate = gated.stages[1].pre[0]
    response = client.accept_checkpoint(AcceptCheckpointRequest(
        project_id=project_id, pipeline_id=pipeline_id, pipeline_run_id=run_id, step_run_id=gate.id))
    assert response.success is True
    done = wait_status(client, project_id, pipeline_id, run_id, "COMPLETED")
    assert done.stages[1].jobs[0].status == "COMPLETED"


def test_errors_carry_their_codes(client, project_id, server):
    with pytest.raises(exceptions.ClientRequestException) as missing:
        client.show_pipeline_detail(ShowPipelineDetailRequest(project_id=project_id, pipeline_id="0" * 32))
    assert missing.value.status_code == 400
    assert missing.value.error_code == "DEVPIPE.00011401"
    assert missing.value.request_id, "the SDK reads X-Request-Id"

    with pytest.raises(exceptions.ClientRequestException) as invalid:
        client.create_pipeline_new(CreatePipelineNewRequest(project_id=project_id, body=PipelineDTO(
            name="sdk-bad-definition", is_publish=False, definition="{\"stages\": [{\"jobs\": 3}]}")))
    assert invalid.value.status_code == 400
    assert invalid.value.error_code == "DEVPIPE.00010001"
    assert "definition" in invalid.value.error_msg

    forged = make_client(server, sk="0" * 40)
    with pytest.raises(exceptions.ClientRequestException) as unsigned:
        forged.show_pipeline_detail(ShowPipelineDetailRequest(project_id=project_id, pipeline_id="0" * 32))
    assert unsigned.value.status_code == 401
    assert unsigned.value.error_code == "APIGW.0301"
