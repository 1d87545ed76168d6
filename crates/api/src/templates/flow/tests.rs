//! The v3 graph translation: the seed's example, graph errors, and the round trip through a
//! template's `flow`/`states`.

use super::*;

/// The seed's request body (spec §2.1, doc example), with its typos.
pub(crate) fn seed_body() -> Value {
    json!({
      "flow": {
        "initial": {"state_3": "always"},
        "state_3": {"state_4": "always"},
        "state_4": {"state_5": "always", "Task_1": "always", "Task_2": "always"},
        "state_5": {"final": "always"}
      },
      "states": {
        "initial": {"type": "stage", "name": "initial", "module_or_template_id": null, "module_or_template_name": null,
          "display_name": "Initial", "dsl_method": "initial", "parameters": {"display": "hidden"}, "params": null,
          "is_manual_mxecution": false, "execution_mode": "parallel"},
        "state_3": {"type": "stage", "name": "state_3", "module_or_template_id": null, "module_or_template_name": null,
          "display_name": "Source", "dsl_method": "source", "parameters": null, "params": null,
          "is_manual_execution": false, "execution_mode": "parallel"},
        "Task_1": {"type": "task", "name": "Task_1", "module_or_template_id": "00012", "module_or_template_name": "Maven",
          "display_name": "Build_Task", "dsl_method": "buildJob",
          "parameters": {"__repository__": {"repo_name": "fdfdfdf", "url": "git@example.com:CloudPipelineTest-Copy00001/fdfdfdf.git"}},
          "params": null, "is_manual_execution": false, "execution_mode": null, "job_parameter_palidate": true,
          "is_show_code_hub_url": false, "is_execute": true, "job_id": "00012", "job_name": "Maven",
          "project_id": "4719b59466624abfbae0f83c3ce3a0dc"},
        "Task_2": {"type": "task", "name": "Task_2", "module_or_template_id": "d7dffaefb6d94c63a09cf141668356c7",
          "module_or_template_name": "codecheck_template", "display_name": "Code_Check_Task", "dsl_method": "codeCheck",
          "parameters": {"language": {"disable": null, "name": "Java", "display_name": "Java",
            "id": "782aade71ffb4ab780303555eb2e4825", "language": "java"}, "codeBranch": "master",
            "__repository__": {"repo_name": "fdfdfdf", "url": "git@example.com:CloudPipelineTest-Copy00001/fdfdfdf.git"}},
          "params": null, "is_manual_execution": false, "execution_mode": null, "job_parameter_palidate": true,
          "is_show_code_hub_url": false, "is_execute": true, "job_id": "d7dffaefb6d94c63a09cf141668356c7",
          "job_name": "codecheck_template", "project_id": "4719b59466624abfbae0f83c3ce3a0dc"},
        "state_4": {"type": "stage", "name": "state_4", "module_or_template_id": null, "module_or_template_name": null,
          "display_name": "Build_and_Check", "dsl_method": "build", "parameters": null, "params": null,
          "is_manual_mxecution": false, "execution_mode": "parallel"},
        "state_5": {"type": "stage", "name": "state_5", "module_or_template_id": null, "module_or_template_name": null,
          "display_name": "Release", "dsl_method": "release", "parameters": null, "params": null,
          "is_manual_mxecution": false, "execution_mode": "parallel"},
        "final": {"type": "stage", "name": "final", "module_or_template_id": null, "module_or_template_name": null,
          "display_name": "Final", "dsl_method": "final", "parameters": null, "params": null,
          "is_manual_mxecution": false, "execution_mode": "parallel"}
      },
      "workflow": {"name": "pipeline-123123", "project_id": "bc97c4d99c7d4f98bb6cd104a77fddd6"}
    })
}

fn translate(body: &Value, templates: &HashMap<String, Value>) -> Result<Value, ApiError> {
    let flow = body["flow"].as_object().expect("flow").clone();
    let states = parse_states(body["states"].as_object().expect("states"))?;
    to_definition(&flow, &states, templates)
}

fn error_of(body: &Value) -> String {
    translate(body, &HashMap::new())
        .expect_err("refused")
        .message()
}

fn names(definition: &Value, path: &str) -> Vec<String> {
    definition["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .flat_map(|stage| match path {
            "stages" => vec![stage["name"].as_str().expect("name").to_owned()],
            _ => stage["jobs"]
                .as_array()
                .expect("jobs")
                .iter()
                .map(|job| job["identifier"].as_str().expect("id").to_owned())
                .collect(),
        })
        .collect()
}

#[test]
fn the_seed_example_becomes_two_stages_with_two_parallel_jobs() {
    let definition = translate(&seed_body(), &HashMap::new()).expect("translates");
    assert_eq!(
        names(&definition, "stages"),
        ["Build_and_Check", "Release"],
        "empty initial, source and final dropped"
    );
    assert_eq!(names(&definition, "jobs"), ["Task_1", "Task_2"]);
    let build = &definition["stages"][0];
    assert_eq!(build["identifier"], "state_4");
    assert!(
        build.get("depends_on").is_none(),
        "follows the previous stage"
    );
    assert_eq!(build["pre"][0]["task"], "official_devcloud_autoTrigger");
    let task = &build["jobs"][0];
    assert_eq!(task["name"], "Build_Task");
    assert_eq!(task["depends_on"], json!([]));
    let step = &task["steps"][0];
    assert_eq!(step["task"], SHELL_TASK);
    assert_eq!(step["business_type"], "Build");
    assert_eq!(build["jobs"][1]["steps"][0]["business_type"], "Gate");
    // The module name reaches the script as an environment value, never as script text.
    assert!(
        !step["inputs"][0]["value"]
            .as_str()
            .expect("script")
            .contains("Maven")
    );
    assert!(
        step["env"]
            .as_array()
            .expect("env")
            .contains(&json!({"key": "V3_TASK_MODULE", "value": "Maven"}))
    );
    // And the whole thing compiles as a pipeline.
    crate::templates::check::check_definition(
        &definition.to_string(),
        None,
        None,
        runnel_domain::Timestamp::from_millis(0),
    )
    .expect("compiles");
}

#[test]
fn serial_stages_chain_their_jobs_and_task_edges_are_dependencies() {
    let mut body = seed_body();
    body["states"]["state_4"]["execution_mode"] = json!("serial");
    let definition = translate(&body, &HashMap::new()).expect("translates");
    assert_eq!(
        definition["stages"][0]["jobs"][1]["depends_on"],
        json!(["Task_1"])
    );

    let mut body = seed_body();
    body["flow"]["state_4"] = json!({"state_5": "always", "Task_1": "always"});
    body["flow"]["Task_1"] = json!({"Task_2": "always"});
    let definition = translate(&body, &HashMap::new()).expect("translates");
    assert_eq!(names(&definition, "jobs"), ["Task_1", "Task_2"]);
    assert_eq!(
        definition["stages"][0]["jobs"][1]["depends_on"],
        json!(["Task_1"])
    );
}

#[test]
fn graph_errors_name_the_state() {
    let mut body = seed_body();
    body["flow"]["state_4"]["Task_9"] = json!("always");
    assert!(
        error_of(&body).contains("flow.state_4.Task_9: names no state"),
        "{}",
        error_of(&body)
    );

    let mut body = seed_body();
    body["flow"]["state_5"] = json!({"state_4": "always"});
    assert!(
        error_of(&body).contains("cycle: state_4 → state_5 → state_4"),
        "{}",
        error_of(&body)
    );

    let mut body = seed_body();
    body["states"]["state_5"]["is_manual_execution"] = json!(true);
    body["states"]["state_5"]
        .as_object_mut()
        .expect("state")
        .remove("is_manual_mxecution");
    assert!(
        error_of(&body).contains(
            "states.state_5.is_manual_execution: templates do not support stage admission"
        ),
        "{}",
        error_of(&body)
    );

    let mut body = seed_body();
    body["flow"]["state_5"]["Task_1"] = json!("always");
    assert!(
        error_of(&body).contains("a task belongs to one stage"),
        "{}",
        error_of(&body)
    );

    let mut body = seed_body();
    body["states"]["orphan"] = json!({"type": "stage", "display_name": "Orphan"});
    assert!(
        error_of(&body).contains("flow.orphan: the state cannot be reached from initial"),
        "{}",
        error_of(&body)
    );

    let mut body = seed_body();
    body["states"]["Task_1"]["type"] = json!("job");
    assert!(error_of(&body).contains("states.Task_1.type: must be stage or task"));

    let mut body = seed_body();
    body["states"]["Task_1"]
        .as_object_mut()
        .expect("state")
        .remove("type");
    assert!(
        error_of(&body).contains("states.Task_1.type: is required"),
        "{}",
        error_of(&body)
    );

    let mut body = seed_body();
    body["states"]
        .as_object_mut()
        .expect("states")
        .remove("final");
    body["flow"]["state_5"] = json!({});
    assert!(error_of(&body).contains("states.final: is required"));
}

#[test]
fn a_templates_flow_and_states_come_back_as_its_own_jobs() {
    let template = json!({"stages": [
        {"name": "Build", "identifier": "build", "sequence": 0, "jobs": [
            {"name": "compile", "identifier": "compile", "steps": [
                {"name": "make", "identifier": "make-1", "task": SHELL_TASK, "business_type": "Build",
                 "inputs": [{"key": SHELL_INPUT, "value": "make"}]}]},
            {"name": "unit", "identifier": "unit", "depends_on": ["compile"], "steps": [
                {"name": "test", "identifier": "test-1", "task": SHELL_TASK, "business_type": "Test",
                 "inputs": [{"key": SHELL_INPUT, "value": "make test"}]}]},
            {"name": "lint", "identifier": "lint", "steps": [
                {"name": "lint", "identifier": "lint-1", "task": SHELL_TASK, "business_type": "Gate",
                 "inputs": [{"key": SHELL_INPUT, "value": "make lint"}]}]}
        ]},
        {"name": "Ship", "identifier": "ship", "sequence": 1, "jobs": [
            {"name": "deploy", "identifier": "deploy", "steps": [
                {"name": "deploy", "identifier": "deploy-1", "task": SHELL_TASK, "business_type": "Deploy",
                 "inputs": [{"key": SHELL_INPUT, "value": "./deploy.sh"}]}]}
        ]}
    ]});
    let (flow, states) = to_v3("tpl1", &template.to_string());
    assert_eq!(flow["initial"], json!({"state_1": "always"}));
    assert_eq!(
        flow["state_1"],
        json!({"Task_1": "always", "Task_3": "always", "state_2": "always"})
    );
    assert_eq!(flow["Task_1"], json!({"Task_2": "always"}));
    assert_eq!(
        flow["state_2"],
        json!({"Task_4": "always", "final": "always"})
    );
    assert_eq!(states["state_1"]["execution_mode"], "parallel");
    assert_eq!(states["Task_2"]["job_id"], "unit");
    assert_eq!(states["Task_2"]["dsl_method"], "apiTest");
    assert_eq!(states["Task_3"]["dsl_method"], "codeCheck");
    assert_eq!(states["state_2"]["dsl_method"], "release");

    let body = json!({"flow": flow, "states": states});
    let templates = HashMap::from([("tpl1".to_owned(), template.clone())]);
    let definition = translate(&body, &templates).expect("translates");
    assert_eq!(names(&definition, "stages"), ["Build", "Ship"]);
    assert_eq!(
        names(&definition, "jobs"),
        ["Task_1", "Task_3", "Task_2", "Task_4"],
        "breadth first"
    );
    let unit = &definition["stages"][0]["jobs"][2];
    assert_eq!(unit["depends_on"], json!(["Task_1"]));
    assert_eq!(
        unit["steps"][0]["inputs"],
        template["stages"][0]["jobs"][1]["steps"][0]["inputs"]
    );
    assert!(
        unit["steps"][0].get("identifier").is_none(),
        "fresh step identifiers"
    );

    // Two jobs chained one after the other read back as a serial stage.
    let serial = json!({"stages": [{"name": "Build", "jobs": [
        {"name": "a", "identifier": "a", "steps": [{"task": SHELL_TASK}]},
        {"name": "b", "identifier": "b", "depends_on": ["a"], "steps": [{"task": SHELL_TASK}]}
    ]}]});
    let (flow, states) = to_v3("tpl2", &serial.to_string());
    assert_eq!(states["state_1"]["execution_mode"], "serial");
    assert_eq!(
        flow["state_1"],
        json!({"Task_1": "always", "Task_2": "always", "final": "always"})
    );
}
