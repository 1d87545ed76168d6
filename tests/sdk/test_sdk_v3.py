"""The SDK's v3 template and legacy pipeline operations against `runnel serve` (issue 6): the
seed document's `create_pipeline_by_template` body, its task status, the v3 template list and
detail, `list_pipeline_simple_info` with filters, paging and its limits, start / status / stop /
build results / delete — each through the SDK's own request and response models.
"""

import datetime
import json
import pathlib
import uuid

import pytest
from huaweicloudsdkcore.exceptions import exceptions
from huaweicloudsdkcodeartspipeline.v2 import (
    CreatePipelineByTemplateRequest,
    ListPipelineSimpleInfoRequest,
    ListPipelineSimpleInfoRequestBody,
    ListPipleineBuildResultRequest,
    ListTemplatesRequest,
    PipelineParam,
    RemovePipelineRequest,
    ShowInstanceStatusRequest,
    ShowPipleineStatusRequest,
    ShowTemplateDetailRequest,
    Source,
    StartNewPipelineRequest,
    StartPipelineBuildParams,
    StartPipelineParameters,
    StopPipelineNewRequest,
    TemplateCddl,
    TemplateState,
    Workflow,
)

from conftest import wait_until
from test_sdk import create_pipeline, one_job

SEED = pathlib.Path(__file__).with_name("seed_template_task.json")


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def seed_task(project_id, name):
    """The seed document's request example, as the SDK's models (the SDK sends its own spellings:
    `param_type`, `is_static`, `codehub_name`, …), with this server's project and a fresh name."""
    seed = json.loads(SEED.read_text())
    state_fields = set(TemplateState.openapi_types)
    states = {key: TemplateState(**{field: value for field, value in state.items() if field in state_fields})
              for key, state in seed["states"].items()}
    workflow = seed["workflow"]
    parameters = [PipelineParam(name=p["name"], value=p["value"], description=p["description"],
                                param_type=p["paramtype"], is_static=p["isStatic"], is_default=p["isDefault"])
                  for p in workflow["parameter"]]
    sources = [Source(codehub_name=s["codeHubName"], branches=s["branches"], scm_type=s["scmType"],
                      hook_flag=s["hookFlag"], branch=s["branch"], git_url=s["gitUrl"], codehub_id=s["codeHubId"],
                      web_url=s["webUrl"], branch_list=s["branchList"])
               for s in workflow["source"]]
    return TemplateCddl(flow=seed["flow"], states=states, workflow=Workflow(
        parameter=parameters, source=sources, name=name, project_id=project_id,
        project_name=workflow["project_name"]))


def v3_status(client, pipeline_id, build_id):
    return client.show_pipleine_status(ShowPipleineStatusRequest(pipeline_id=pipeline_id, build_id=build_id))


def wait_v3_status(client, pipeline_id, build_id, status, timeout=90):
    def probe():
        current = v3_status(client, pipeline_id, build_id)
        return current if current.status == status else None
    return wait_until(f"v3 build {build_id} to be {status}", probe, timeout=timeout)


def test_the_seed_body_creates_a_pipeline_through_a_task(client, project_id):
    name = unique("sdk-seed")
    created = client.create_pipeline_by_template(CreatePipelineByTemplateRequest(body=seed_task(project_id, name)))
    assert len(created.task_id) == 32
    task = client.show_instance_status(ShowInstanceStatusRequest(task_id=created.task_id))
    assert task.task_status == "succeeded"
    assert task.pipeline_name == name and len(task.pipeline_id) == 32

    # Its run completes: the seed's Maven and code-check tasks name no template of this server,
    # so each becomes a shell step saying the CodeArts job kind has no equivalent here.
    build = client.start_new_pipeline(StartNewPipelineRequest(pipeline_id=task.pipeline_id,
                                                              body=StartPipelineParameters()))
    finished = wait_until("the seed pipeline's run to end", lambda: (
        lambda current: current if current.status == "completed" else None)(
        v3_status(client, task.pipeline_id, build.build_id)), timeout=120)
    assert finished.outcome == "success", finished

    # The same name again is refused at once, with an error code.
    with pytest.raises(exceptions.ClientRequestException) as again:
        client.create_pipeline_by_template(CreatePipelineByTemplateRequest(body=seed_task(project_id, name)))
    assert again.value.status_code == 400 and again.value.error_code == "DEVPIPE.00011304"


def test_v3_template_list_and_detail(client):
    listed = client.list_templates(ListTemplatesRequest(template_type="pipeline", is_build_in=True, offset=0, limit=20))
    names = [template.template_name if hasattr(template, "template_name") else template.name
             for template in listed.content]
    assert listed.total >= 8, listed
    assert len(names) == min(listed.total, 20)
    first = listed.content[0]
    template_id = getattr(first, "template_id", None) or first.id
    shown = client.show_template_detail(ShowTemplateDetailRequest(template_id=template_id, template_type="pipeline"))
    assert (getattr(shown, "template_id", None) or shown.id) == template_id


def test_start_status_stop_list_build_results_and_remove(client, project_id):
    long = create_pipeline(client, project_id, one_job("for i in $(seq 600); do sleep 0.1; done"),
                           name=unique("sdk-v3-long"))
    quick = create_pipeline(client, project_id, one_job('echo "version $version"'), name=unique("sdk-v3-quick"),
                            variables=[{"name": "version", "type": "string", "value": "1.0.0", "is_runtime": True}])

    started = client.start_new_pipeline(StartNewPipelineRequest(pipeline_id=quick, body=StartPipelineParameters(
        build_params=[StartPipelineBuildParams(name="version", value="2.0.0")])))
    assert started.pipeline_id == quick and started.build_id
    done = wait_v3_status(client, quick, started.build_id, "completed")
    assert done.outcome == "success"
    assert [(p.name, p.value) for p in done.parameters] == [("version", "2.0.0")]

    long_build = client.start_new_pipeline(StartNewPipelineRequest(pipeline_id=long, body=StartPipelineParameters()))
    wait_v3_status(client, long, long_build.build_id, "running")
    stopped = client.stop_pipeline_new(StopPipelineNewRequest(pipeline_id=long, build_id=long_build.build_id))
    assert stopped.pipeline_id == long
    aborted = wait_v3_status(client, long, long_build.build_id, "completed")
    assert aborted.outcome == "aborted"

    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    results = client.list_pipleine_build_result(ListPipleineBuildResultRequest(
        project_id=project_id, start_date=today, end_date=today, offset=0, limit=50))
    outcomes = {result.pipeline_id: result.outcome for result in results.build_results}
    assert outcomes.get(quick) == "success" and outcomes.get(long) == "aborted", outcomes

    removed = client.remove_pipeline(RemovePipelineRequest(pipeline_id=long))
    assert removed.pipeline_id == long
    with pytest.raises(exceptions.ClientRequestException) as gone:
        v3_status(client, long, long_build.build_id)
    assert gone.value.status_code in (400, 404) and gone.value.error_code


def test_list_pipeline_simple_info_filters_pages_and_limits(client, project_id):
    prefix = unique("sdk-simple")
    ids = [create_pipeline(client, project_id, one_job("true"), name=f"{prefix}-{n}") for n in range(12)]

    def page(offset, limit=10, **filters):
        return client.list_pipeline_simple_info(ListPipelineSimpleInfoRequest(body=ListPipelineSimpleInfoRequestBody(
            pipeline_name=prefix, project_ids=project_id, offset=offset, limit=limit, sort_key="pipeline_name",
            sort_dir="asc", **filters)))

    first, second = page(0), page(10)
    assert first.total == 12 and second.total == 12
    names = [p.pipeline_name for p in first.result] + [p.pipeline_name for p in second.result]
    assert names == sorted(f"{prefix}-{n}" for n in range(12))
    assert {p.pipeline_id for p in first.result + second.result} == set(ids)

    for limit in (9, 51):
        with pytest.raises(exceptions.ClientRequestException) as refused:
            page(0, limit=limit)
        assert refused.value.status_code == 400 and refused.value.error_code, limit
    eleven = ",".join(uuid.uuid4().hex for _ in range(11))
    with pytest.raises(exceptions.ClientRequestException) as too_many:
        client.list_pipeline_simple_info(ListPipelineSimpleInfoRequest(body=ListPipelineSimpleInfoRequestBody(
            project_ids=eleven, offset=0, limit=10)))
    assert too_many.value.status_code == 400 and too_many.value.error_code
