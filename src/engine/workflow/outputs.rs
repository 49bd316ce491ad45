//! What AgentOS derives from step outputs: a parallel step's summary text and metrics, the
//! workflow's `metrics.steps`, and the content a composite ends with.

use serde_json::{Map, Value, json};

use crate::run::{Metrics, MetricsDetails, StepOutput};

/// A parallel step's content: each child's outcome and content, in order.
pub(super) fn parallel_content(children: &[StepOutput]) -> String {
    let parts: Vec<String> = children
        .iter()
        .map(|child| {
            let mark = if child.success {
                "✅ SUCCESS"
            } else {
                "❌ FAILURE"
            };
            let text = child.content_text();
            let text = match text.trim() {
                "" => "*(No content)*",
                t => t,
            };
            format!("### {mark}: {}\n{text}", child.step_name)
        })
        .collect();
    format!("## Parallel Execution Results\n\n{}", parts.join("\n\n"))
        .trim()
        .to_string()
}

/// A parallel step's metrics: a single child's own; for several, their tokens added up
/// and their models listed, with the parallel step's wall time as `duration`.
pub(super) fn parallel_metrics(children: &[StepOutput], duration: f64) -> Option<Metrics> {
    if let [only] = children {
        return only.metrics.clone();
    }
    let mut total = Metrics::default();
    let add = |sum: &mut Option<u64>, v: Option<u64>| {
        if let Some(v) = v {
            *sum = Some(sum.unwrap_or(0) + v);
        }
    };
    for m in children.iter().filter_map(|c| c.metrics.as_ref()) {
        add(&mut total.input_tokens, m.input_tokens);
        add(&mut total.output_tokens, m.output_tokens);
        add(&mut total.total_tokens, m.total_tokens);
        if let Some(details) = &m.details {
            total
                .details
                .get_or_insert_with(MetricsDetails::default)
                .model
                .extend(details.model.iter().cloned());
        }
    }
    total.duration = Some(duration);
    Some(total)
}

/// `metrics.steps` of a workflow run: every agent and team step with metrics, depth
/// first, by step name (a step that ran several times, in a loop, keeps its last run's).
pub(super) fn step_metrics(outputs: &[StepOutput]) -> Map<String, Value> {
    fn walk(outputs: &[StepOutput], map: &mut Map<String, Value>) {
        for output in outputs {
            let executor = output.executor_type.as_deref();
            if matches!(executor, Some("agent" | "team"))
                && let Some(metrics) = &output.metrics
            {
                map.insert(
                    output.step_name.clone(),
                    json!({
                        "step_name": output.step_name,
                        "executor_type": executor,
                        "executor_name": output.executor_name,
                        "metrics": metrics,
                    }),
                );
            }
            walk(&output.steps, map);
        }
    }
    let mut map = Map::new();
    walk(outputs, &mut map);
    map
}

/// The output a list of outputs ends with: the last one, or for a composite the last of
/// its children, as deep as they go.
pub(super) fn deepest_last(outputs: &[StepOutput]) -> Option<&StepOutput> {
    let last = outputs.last()?;
    if last.steps.is_empty() {
        Some(last)
    } else {
        deepest_last(&last.steps)
    }
}

/// The content of each output and of their children, by step name (later ones win).
pub(super) fn collect_contents(outputs: &[StepOutput], map: &mut Map<String, Value>) {
    for output in outputs {
        map.insert(
            output.step_name.clone(),
            Value::String(output.content_text()),
        );
        collect_contents(&output.steps, map);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::ModelMetrics;

    fn leaf(name: &str, success: bool, content: &str, tokens: u64) -> StepOutput {
        StepOutput {
            content: Some(Value::String(content.into())),
            step_name: name.into(),
            step_type: "Step".into(),
            executor_type: Some("agent".into()),
            executor_name: Some(format!("Agent {name}")),
            metrics: Some(Metrics {
                input_tokens: Some(tokens),
                output_tokens: Some(1),
                total_tokens: Some(tokens + 1),
                details: Some(MetricsDetails {
                    model: vec![ModelMetrics {
                        id: "test".into(),
                        ..ModelMetrics::default()
                    }],
                }),
                ..Metrics::default()
            }),
            success,
            ..StepOutput::default()
        }
    }

    #[test]
    fn parallel_content_marks_each_child() {
        let children = [leaf("a", true, " alpha ", 1), leaf("b", false, "", 1)];
        assert_eq!(
            parallel_content(&children),
            "## Parallel Execution Results\n\n### ✅ SUCCESS: a\nalpha\n\n### ❌ FAILURE: b\n\
             *(No content)*"
        );
    }

    #[test]
    fn parallel_metrics_add_up_tokens() {
        let children = [leaf("a", true, "x", 3), leaf("b", true, "y", 4)];
        let m = parallel_metrics(&children, 0.5).unwrap();
        assert_eq!(
            (m.input_tokens, m.output_tokens, m.total_tokens),
            (Some(7), Some(2), Some(9))
        );
        assert_eq!(m.details.unwrap().model.len(), 2);
        assert_eq!(m.duration, Some(0.5));
        let one = parallel_metrics(&children[..1], 0.5).unwrap();
        assert_eq!(one, children[0].metrics.clone().unwrap());
    }

    #[test]
    fn step_metrics_are_flat_and_last_wins() {
        let mut outer = StepOutput {
            step_name: "loop".into(),
            step_type: "Loop".into(),
            steps: vec![leaf("edit", true, "1", 1), leaf("edit", true, "2", 2)],
            ..StepOutput::default()
        };
        outer.success = true;
        let map = step_metrics(&[leaf("first", true, "x", 5), outer.clone()]);
        let keys: Vec<&str> = map.keys().map(String::as_str).collect();
        assert_eq!(keys, ["first", "edit"]);
        assert_eq!(map["edit"]["metrics"]["input_tokens"], 2);
        assert_eq!(map["first"]["executor_name"], "Agent first");
        assert_eq!(deepest_last(&[outer]).unwrap().content_text(), "2");
    }
}
