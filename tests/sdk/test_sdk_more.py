"""More of the SDK's CodeArts Pipeline operations against `runnel serve`, each through the SDK's
own models: a client built from a region (IAM project lookup), update and delete, batch status,
step outputs and artifacts, a refused review, the tenant-level v5 templates, groups, tags and
variable groups.
"""

import json
import uuid

import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions import exceptions
from huaweicloudsdkcore.region.region import Region
from huaweicloudsdkcodeartspipeline.v2 import (
    CodeArtsPipelineClient,
    BatchShowPipelinesLatestStatusRequest,
    CreatePipelineByTemplateIdRequest,
    CreatePipelineGroupRequest,
    CreatePipelineTagRequest,
    CreatePipelineTemplateRequest,
    CreateTagReq,
    CreateVariableGroupReq,
    CreateVariableGroupReqVariables,
    CreateVariableGroupRequest,
    DeletePipelineGroupRequest,
    DeletePipelineRequest,
    DeletePipelineTagRequest,
    DeletePipelineTemplateRequest,
    DeleteVariableGroupRequest,
    ListPipelineQuery,
    ListPipelinesRequest,
    ListPipelineTagRequest,
    ListPipelineTemplatesQuery,
    ListPipelineTemplatesRequest,
    ListVariableGroupsReq,
    ListVariableGroupsRequest,
    PipelineByTemplateDTO,
    PipelineDTO,
    PipelineGroupCreateDTO,
    PipelineTemplateDTO,
    RejectManualReviewRequest,
    ShowPipelineArtifactsRequest,
    ShowPipelineDetailRequest,
    ShowPipelineGroupTreeRequest,
    ShowPipelineTemplateDetailRequest,
    ShowStepOutputsRequest,
    UpdatePipelineInfoRequest,
    UpdatePipelineTemplateRequest,
)

from test_sdk import create_pipeline, one_job, run, wait_status


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def items(body):
    """A top-level JSON array answer: the SDK makes an empty one `None`, whatever the server sent."""
    return body or []


def test_update_batch_status_outputs_artifacts_and_delete(client, project_id):
    pipeline_id = create_pipeline(client, project_id, one_job("echo one"))
    changed = PipelineDTO(name=unique("sdk-updated"), description="changed by the SDK", is_publish=False,
                          definition=json.dumps(one_job("echo two")))
    updated = client.update_pipeline_info(UpdatePipelineInfoRequest(
        project_id=project_id, pipeline_id=pipeline_id, body=changed))
    assert updated.pipeline_id == pipeline_id
    shown = client.show_pipeline_detail(ShowPipelineDetailRequest(project_id=project_id, pipeline_id=pipeline_id))
    assert shown.description == "changed by the SDK"
    assert "echo two" in shown.definition

    run_id = run(client, project_id, pipeline_id)
    wait_status(client, project_id, pipeline_id, run_id, "COMPLETED")
    latest = client.batch_show_pipelines_latest_status(BatchShowPipelinesLatestStatusRequest(
        project_id=project_id, body=[pipeline_id, "0" * 32]))
    assert [item.pipeline_run_id for item in items(latest.body)] == [run_id]
    assert latest.body[0].status == "COMPLETED"
    outputs = client.show_step_outputs(ShowStepOutputsRequest(
        project_id=project_id, pipeline_id=pipeline_id, pipeline_run_id=run_id))
    assert outputs.current_system_time > 0
    assert isinstance(outputs.step_outputs, list)
    artifacts = client.show_pipeline_artifacts(ShowPipelineArtifactsRequest(
        project_id=project_id, pipeline_id=pipeline_id, pipeline_run_id=run_id))
    assert artifacts.artifacts == []

    deleted = client.delete_pipeline(DeletePipelineRequest(project_id=project_id, pipeline_id=pipeline_id))
    assert deleted.pipeline_id == pipeline_id
    with pytest.raises(exceptions.ClientRequestException) as gone:
        client.show_pipeline_detail(ShowPipelineDetailRequest(project_id=project_id, pipeline_id=pipeline_id))
    assert gone.value.error_code == "DEVPIPE.00011401"


def test_a_refused_review_fails_the_run(client, project_id, server):
    approver = server.credentials["user_id"]
    definition = {"stages": [{"name": "Approve", "jobs": [{"name": "review", "identifier": "JOB_review", "steps": [
        {"name": "review", "task": "official_devcloud_checkpoint", "inputs": [
            {"key": "audit_source", "value": "members"}, {"key": "approvers", "value": approver},
            {"key": "check_strategy", "value": "any"}, {"key": "timeout_strategy", "value": "reject"},
            {"key": "timeout", "value": 3600}]}]}]}]}
    pipeline_id = create_pipeline(client, project_id, definition)
    run_id = run(client, project_id, pipeline_id)
    paused = wait_status(client, project_id, pipeline_id, run_id, "PAUSED")
    job = paused.stages[0].jobs[0]
    response = client.reject_manual_review(RejectManualReviewRequest(
        project_id=project_id, pipeline_id=pipeline_id, pipeline_run_id=run_id,
        job_run_id=job.id, step_run_id=job.steps[0].id, approval_description="not today"))
    assert response.success is True
    failed = wait_status(client, project_id, pipeline_id, run_id, "FAILED")
    assert failed.stages[0].jobs[0].status == "FAILED"


def test_templates_of_the_tenant_and_pipelines_made_from_them(client, project_id, server):
    domain_id = server.credentials["domain_id"]
    name = unique("sdk-template")
    created = client.create_pipeline_template(CreatePipelineTemplateRequest(tenant_id=domain_id, body=PipelineTemplateDTO(
        name=name, description="from the SDK", language="none", is_system=False, domain_id=domain_id,
        is_show_source=False, manifest_version="3.0", definition=json.dumps(one_job("echo from a template")))))
    template_id = created.template_id
    assert len(template_id) == 32
    listed = client.list_pipeline_templates(ListPipelineTemplatesRequest(
        tenant_id=domain_id, body=ListPipelineTemplatesQuery(name=name, is_system=False, offset=0, limit=10)))
    assert [template.id for template in listed.templates] == [template_id]
    detail = client.show_pipeline_template_detail(ShowPipelineTemplateDetailRequest(
        tenant_id=domain_id, template_id=template_id))
    assert detail.name == name and detail.is_system is False
    assert "echo from a template" in detail.definition

    renamed = unique("sdk-template-edited")
    updated = client.update_pipeline_template(UpdatePipelineTemplateRequest(
        tenant_id=domain_id, template_id=template_id, body=PipelineTemplateDTO(
            name=renamed, description="edited by the SDK", language="Python", is_system=False, domain_id=domain_id,
            is_show_source=False, manifest_version="3.0", definition=json.dumps(one_job("echo edited template")))))
    assert updated.template_id == template_id
    detail = client.show_pipeline_template_detail(ShowPipelineTemplateDetailRequest(
        tenant_id=domain_id, template_id=template_id))
    assert (detail.name, detail.description, detail.language) == (renamed, "edited by the SDK", "Python")
    assert "echo edited template" in detail.definition and "echo from a template" not in detail.definition

    made = client.create_pipeline_by_template_id(CreatePipelineByTemplateIdRequest(
        project_id=project_id, template_id=template_id,
        body=PipelineByTemplateDTO(name=unique("sdk-from-template"), is_publish=False, sources=[])))
    run_id = run(client, project_id, made.pipeline_id)
    wait_status(client, project_id, made.pipeline_id, run_id, "COMPLETED")

    removed = client.delete_pipeline_template(DeletePipelineTemplateRequest(tenant_id=domain_id, template_id=template_id))
    assert removed.template_id == template_id
    with pytest.raises(exceptions.ClientRequestException) as gone:
        client.show_pipeline_template_detail(ShowPipelineTemplateDetailRequest(tenant_id=domain_id, template_id=template_id))
    assert gone.value.error_code == "DEVPIPE.00011203"


def test_groups_tags_and_variable_groups(client, project_id):
    group = client.create_pipeline_group(CreatePipelineGroupRequest(
        project_id=project_id, body=PipelineGroupCreateDTO(name=unique("g"), project_id=project_id, parent_id="")))
    assert group.id
    tree = client.show_pipeline_group_tree(ShowPipelineGroupTreeRequest(project_id=project_id))
    assert group.id in [node.id for node in items(tree.body)]
    client.delete_pipeline_group(DeletePipelineGroupRequest(project_id=project_id, id=group.id))
    tree = client.show_pipeline_group_tree(ShowPipelineGroupTreeRequest(project_id=project_id))
    assert group.id not in [node.id for node in items(tree.body)]

    tag_name = unique("t")
    assert client.create_pipeline_tag(CreatePipelineTagRequest(
        project_id=project_id, body=CreateTagReq(name=tag_name, color="#00aa00"))).success is True
    tags = client.list_pipeline_tag(ListPipelineTagRequest(project_id=project_id, proj_id=project_id))
    tag = next(tag for tag in items(tags.body) if tag.name == tag_name)
    # `tagId` goes in the query with an upper-case letter; the SDK signs it as sent.
    client.delete_pipeline_tag(DeletePipelineTagRequest(project_id=project_id, tag_id=tag.tag_id))
    tags = client.list_pipeline_tag(ListPipelineTagRequest(project_id=project_id, proj_id=project_id))
    assert tag_name not in [tag.name for tag in items(tags.body)]

    group_name = unique("vg").replace("-", "_")
    created = client.create_variable_group(CreateVariableGroupRequest(project_id=project_id, body=CreateVariableGroupReq(
        name=group_name, description="shared values",
        variables=[CreateVariableGroupReqVariables(name="REGISTRY", value="registry.local", is_secret=False)])))
    variable_group_id = created.pipeline_variable_group_id
    assert variable_group_id
    listed = client.list_variable_groups(ListVariableGroupsRequest(
        project_id=project_id, body=ListVariableGroupsReq(offset=0, limit=100, name=group_name)))
    assert [item.name for item in listed.pipeline_variable_groups] == [group_name]
    client.delete_variable_group(DeleteVariableGroupRequest(project_id=project_id, id=variable_group_id))
    listed = client.list_variable_groups(ListVariableGroupsRequest(
        project_id=project_id, body=ListVariableGroupsReq(offset=0, limit=100, name=group_name)))
    assert listed.pipeline_variable_groups == []


def test_a_client_built_from_a_region_finds_its_iam_project(server, project_id, monkeypatch):
    # Without a project id the SDK asks IAM (`GET /v3/projects?name=<region>`, signed) first.
    monkeypatch.setenv("HUAWEICLOUD_SDK_IAM_ENDPOINT", server.endpoint)
    credentials = BasicCredentials(server.credentials["ak"], server.credentials["sk"])
    client = (CodeArtsPipelineClient.new_builder()
              .with_credentials(credentials)
              .with_region(Region("local-1", server.endpoint))
              .build())
    listed = client.list_pipelines(ListPipelinesRequest(
        project_id=project_id, body=ListPipelineQuery(offset=0, limit=1)))
    assert listed.total >= 0 and listed.limit == 1
    iam_project = credentials.project_id
    assert len(iam_project) == 32 and iam_project != project_id, "the IAM project is not the CodeArts one"
