//! Decisions inside a workflow: the variables CEL expressions read (AgentOS's names), and
//! which choice a router runs, by its expression or by asking a model.

use serde_json::{Map, Value, json};

use super::outputs;
use super::steps::Runner;
use crate::config::{RouteBy, StepDef};
use crate::model::ModelRequest;
use crate::run::{Message, Role, StepOutput, new_id, now_secs};
use crate::schema::OutputFormat;

/// A router's decision.
pub(super) enum Pick {
    /// The position of the choice to run.
    Chose(usize),
    /// No valid choice; why.
    Failed(String),
    /// The run was cancelled while a model was picking.
    Cancelled,
}

/// The longest piece of a model's answer quoted in an error.
const ANSWER_QUOTE_CHARS: usize = 200;

impl Runner<'_> {
    /// The variables of a condition's `when` and a router's `route`, for a step whose
    /// incoming content is `flow` (`None` before any step produced one).
    pub(super) fn step_variables(&self, flow: Option<&str>) -> Map<String, Value> {
        let previous = self
            .outputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut vars = Map::new();
        vars.insert("input".into(), Value::String(self.input.to_string()));
        vars.insert(
            "previous_step_content".into(),
            Value::String(flow.unwrap_or("").to_string()),
        );
        vars.insert("previous_step_outputs".into(), Value::Object(previous));
        vars.insert(
            "additional_data".into(),
            Value::Object(self.base.metadata.clone().unwrap_or_default()),
        );
        vars.insert("session_state".into(), self.session_state.clone());
        vars
    }

    /// The choice a router runs: the one its expression names, or the one its model picks.
    pub(super) async fn pick(
        &self,
        flow: Option<&str>,
        choices: &[StepDef],
        route: &RouteBy,
    ) -> Pick {
        let names: Vec<&str> = choices.iter().map(|c| c.name.as_str()).collect();
        let (picked, by) = match route {
            RouteBy::Expr(expr) => {
                let mut vars = self.step_variables(flow);
                vars.insert("step_choices".into(), json!(names));
                match expr.eval_string(&vars) {
                    Ok(name) => (name, "`route` gave"),
                    Err(e) => return Pick::Failed(format!("`route` failed: {e}")),
                }
            }
            RouteBy::Model { model, line } => {
                match self
                    .ask_model(model, *line, flow.unwrap_or(self.input), choices)
                    .await
                {
                    Ok(name) => (name, "the model picked"),
                    Err(pick) => return pick,
                }
            }
        };
        match names.iter().position(|n| *n == picked) {
            Some(k) => Pick::Chose(k),
            None => Pick::Failed(format!(
                "{by} \"{picked}\", which is not one of its choices: {}",
                quoted_list(&names)
            )),
        }
    }

    /// Asks the router's model which choice fits `input`, with a JSON schema that allows
    /// only the choices' names. Returns the name it gave.
    async fn ask_model(
        &self,
        spec: &str,
        line: usize,
        input: &str,
        choices: &[StepDef],
    ) -> Result<String, Pick> {
        let model = self
            .engine
            .model(spec, Some(line))
            .map_err(|e| Pick::Failed(format!("its model `{spec}` cannot be used: {e}")))?;
        let names: Vec<&str> = choices.iter().map(|c| c.name.as_str()).collect();
        let schema = json!({
            "type": "object",
            "properties": {"step": {"type": "string", "enum": names}},
            "required": ["step"],
            "additionalProperties": false,
        });
        let format = OutputFormat::JsonSchema {
            name: "RouteChoice".into(),
            description: None,
            schema,
            strict: true,
        };
        let now = now_secs();
        let messages = [
            Message {
                id: new_id(),
                content: Some(route_prompt(choices)),
                role: Role::System,
                created_at: now,
                ..Message::default()
            },
            Message {
                id: new_id(),
                content: Some(input.to_string()),
                role: Role::User,
                created_at: now,
                ..Message::default()
            },
        ];
        let request = ModelRequest {
            messages: &messages,
            temperature: None,
            max_tokens: None,
            output: Some(&format),
            stream: false,
            tools: &[],
            allow_tools: true,
            reasoning_budget: None,
            cache_prompt: false,
        };
        let answer = tokio::select! {
            biased;
            () = self.cancel.cancelled() => return Err(Pick::Cancelled),
            answer = crate::model::complete(model.as_ref(), request) => answer,
        };
        let response = match answer {
            Ok(response) => response,
            Err(e) => {
                return Err(Pick::Failed(format!(
                    "its model `{spec}` could not pick a choice: {e}"
                )));
            }
        };
        parse_choice(&response.content).ok_or_else(|| {
            Pick::Failed(format!(
                "the model's answer is not a JSON object with a `step` name: {}",
                quote(&response.content)
            ))
        })
    }
}

/// The router model's instructions: the choices, with their descriptions.
fn route_prompt(choices: &[StepDef]) -> String {
    let mut listing = String::new();
    for choice in choices {
        match &choice.description {
            Some(d) => listing.push_str(&format!("- {}: {d}\n", choice.name)),
            None => listing.push_str(&format!("- {}\n", choice.name)),
        }
    }
    format!(
        "You route a request to the one step of a workflow that should handle it. The \
         steps:\n{listing}\nAnswer with the name of the step that fits the request best, \
         exactly as written above, in the `step` field."
    )
}

/// The `step` of a JSON answer; a fenced code block around it is tolerated.
fn parse_choice(answer: &str) -> Option<String> {
    let text = answer.trim();
    let text = text
        .strip_prefix("```json")
        .or_else(|| text.strip_prefix("```"))
        .and_then(|t| t.strip_suffix("```"))
        .unwrap_or(text)
        .trim();
    let value: Value = serde_json::from_str(text).ok()?;
    value.get("step")?.as_str().map(str::to_string)
}

fn quote(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(ANSWER_QUOTE_CHARS) {
        Some((cut, _)) => format!("\"{}…\"", &text[..cut]),
        None => format!("\"{text}\""),
    }
}

fn quoted_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The variables of a loop's `until` after `iteration` (from 1) gave `results`.
pub(super) fn loop_variables(
    iteration: usize,
    max: usize,
    results: &[StepOutput],
) -> Map<String, Value> {
    let mut step_outputs = Map::new();
    outputs::collect_contents(results, &mut step_outputs);
    let last = outputs::deepest_last(results)
        .map(StepOutput::content_text)
        .unwrap_or_default();
    let mut vars = Map::new();
    vars.insert("current_iteration".into(), json!(iteration));
    vars.insert("max_iterations".into(), json!(max));
    vars.insert(
        "all_success".into(),
        json!(results.iter().all(|o| o.success)),
    );
    vars.insert("last_step_content".into(), Value::String(last));
    vars.insert("step_outputs".into(), Value::Object(step_outputs));
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_are_parsed_from_json_answers() {
        assert_eq!(parse_choice(r#"{"step":"a"}"#).as_deref(), Some("a"));
        assert_eq!(
            parse_choice("```json\n{\"step\": \"b\"}\n```").as_deref(),
            Some("b")
        );
        assert_eq!(parse_choice("b"), None);
        assert_eq!(parse_choice(r#"{"step": 3}"#), None);
    }

    #[test]
    fn the_prompt_lists_choices_with_descriptions() {
        let step = |name: &str, description: Option<&str>| StepDef {
            name: name.into(),
            description: description.map(str::to_string),
            kind: crate::config::StepKind::Agent {
                id: "x".into(),
                skip_on_failure: false,
            },
        };
        let prompt = route_prompt(&[step("code", Some("Writes code")), step("prose", None)]);
        assert!(
            prompt.contains("steps:\n- code: Writes code\n- prose\n\nAnswer"),
            "{prompt}"
        );
    }
}
