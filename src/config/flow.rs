//! `[[teams]]` and `[[workflows]]`: agents combined into teams led by a model, and steps
//! run in order, in parallel, conditionally, in a loop or by routing.
//!
//! Like the rest of the agents file, they are read into `Raw*` structs that reject unknown
//! keys, then validated: every member and step reference resolves, team nesting has no
//! cycle, and every CEL expression compiles and uses only the variables its step provides.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use serde_json::Value;
use toml::Spanned;

use super::{
    Config, ConfigError, Ids, ModelOptions, ProviderDef, RawModelKeys, RawThinking, Validator,
    line_of, parse_model_spec,
};
use crate::expr::Expr;
use crate::template;

/// One `[[teams]]` entry, with defaults applied.
#[derive(Clone, Debug, PartialEq)]
pub struct TeamDef {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// The leader's model: `provider:model`, or `test`.
    pub model: String,
    /// 1-based line of the team's `model` key, for errors found when the model is resolved.
    pub model_line: usize,
    /// The leader's instruction lines, joined with newlines into its system prompt.
    pub instructions: Vec<String>,
    /// In the order the `members` list names them; never empty.
    pub members: Vec<MemberRef>,
    pub mode: TeamMode,
    pub markdown: bool,
    pub add_history_to_context: bool,
    pub num_history_runs: usize,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
    /// Default values for `{placeholders}`; a run's own `dependencies` override them.
    pub dependencies: serde_json::Map<String, Value>,
    /// Upper bound on the tool calls one run of the leader makes, delegations included.
    pub tool_call_limit: usize,
    /// The longest answer the leader's run keeps, in bytes.
    pub max_answer_bytes: usize,
    /// The leader's fallbacks, extended thinking and prompt caching.
    pub model_options: ModelOptions,
}

/// A team member: an agent or another team (never the team itself, directly or not).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberRef {
    Agent(String),
    Team(String),
}

impl MemberRef {
    /// The agent or team id.
    pub fn id(&self) -> &str {
        match self {
            MemberRef::Agent(id) | MemberRef::Team(id) => id,
        }
    }
}

/// How a team's leader works with its members.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TeamMode {
    /// The leader delegates tasks to members and puts their answers together.
    #[default]
    Coordinate,
    /// The leader picks one member, whose answer is the team's.
    Route,
    /// The leader gives the task to every member and puts their answers together.
    Broadcast,
}

impl TeamMode {
    /// The `mode` value naming this mode.
    pub fn as_str(self) -> &'static str {
        match self {
            TeamMode::Coordinate => "coordinate",
            TeamMode::Route => "route",
            TeamMode::Broadcast => "broadcast",
        }
    }
}

impl std::fmt::Display for TeamMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `[[workflows]]` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkflowDef {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// Run in order; never empty.
    pub steps: Vec<StepDef>,
}

/// A workflow step. Step names are unique within their workflow, at every nesting level.
#[derive(Clone, Debug, PartialEq)]
pub struct StepDef {
    pub name: String,
    pub description: Option<String>,
    pub kind: StepKind,
}

/// What a step does. Every list of nested steps is non-empty.
#[derive(Clone, Debug, PartialEq)]
pub enum StepKind {
    /// Runs the agent. A failure fails the workflow unless `skip_on_failure`.
    Agent { id: String, skip_on_failure: bool },
    /// Runs the team. A failure fails the workflow unless `skip_on_failure`.
    Team { id: String, skip_on_failure: bool },
    /// Runs the steps at the same time.
    Parallel(Vec<StepDef>),
    /// Runs `steps` when `when` is true, else `else_steps` (which may be empty).
    /// `when` reads the [`STEP_INPUT_VARIABLES`].
    Condition {
        when: Expr,
        steps: Vec<StepDef>,
        else_steps: Vec<StepDef>,
    },
    /// Runs the steps again and again: `max_iterations` times at most, and only until
    /// `until` (checked after each iteration, reading the [`LOOP_VARIABLES`]) is true.
    Loop {
        steps: Vec<StepDef>,
        max_iterations: usize,
        until: Option<Expr>,
    },
    /// Runs exactly one of the choices, picked by `route`.
    Router {
        choices: Vec<StepDef>,
        route: RouteBy,
    },
}

/// How a router picks its choice.
#[derive(Clone, Debug, PartialEq)]
pub enum RouteBy {
    /// A CEL expression giving the name of a choice; it reads the [`STEP_INPUT_VARIABLES`]
    /// and [`ROUTER_CHOICES_VARIABLE`].
    Expr(Expr),
    /// A model asked to pick one of the choices. `line` is the line of the `model` key.
    Model { model: String, line: usize },
}

/// The variables of a condition's `when` and a router's `route`: the workflow input (a
/// string), the previous step's content (a string), a map from the names of the steps run so
/// far to their content, the run's additional data and its session state (maps).
pub const STEP_INPUT_VARIABLES: [&str; 5] = [
    "input",
    "previous_step_content",
    "previous_step_outputs",
    "additional_data",
    "session_state",
];
/// The variable a router's `route` has besides [`STEP_INPUT_VARIABLES`]: the list of its
/// choices' names.
pub const ROUTER_CHOICES_VARIABLE: &str = "step_choices";
/// The variables of a loop's `until`: the iteration just finished (from 1), the loop's
/// `max_iterations`, whether every step of the iteration succeeded, the content of its last
/// step, and a map from its steps' names to their content.
pub const LOOP_VARIABLES: [&str; 5] = [
    "current_iteration",
    "max_iterations",
    "all_success",
    "last_step_content",
    "step_outputs",
];
pub const DEFAULT_MAX_ITERATIONS: usize = 3;
pub const MAX_ITERATIONS_LIMIT: usize = 100;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, expecting = "a team table")]
pub(super) struct RawTeam {
    id: Spanned<String>,
    name: Option<String>,
    description: Option<String>,
    model: Spanned<String>,
    instructions: Option<Spanned<toml::Value>>,
    members: Spanned<Vec<Spanned<String>>>,
    mode: Option<Spanned<String>>,
    #[serde(default)]
    markdown: bool,
    #[serde(default)]
    add_history_to_context: bool,
    num_history_runs: Option<Spanned<i64>>,
    temperature: Option<Spanned<f64>>,
    max_tokens: Option<Spanned<i64>>,
    dependencies: Option<Spanned<toml::Table>>,
    tool_call_limit: Option<Spanned<i64>>,
    max_answer_bytes: Option<Spanned<i64>>,
    fallback_models: Option<Spanned<Vec<Spanned<String>>>>,
    thinking: Option<Spanned<RawThinking>>,
    cache_prompt: Option<Spanned<bool>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, expecting = "a workflow table")]
pub(super) struct RawWorkflow {
    id: Spanned<String>,
    name: Option<String>,
    description: Option<String>,
    steps: Spanned<Vec<RawStep>>,
}

/// Every key any step type takes; which belong to a step depends on its `type`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, expecting = "a step table")]
struct RawStep {
    name: Spanned<String>,
    description: Option<String>,
    #[serde(rename = "type")]
    kind: Option<Spanned<String>>,
    agent: Option<Spanned<String>>,
    team: Option<Spanned<String>>,
    skip_on_failure: Option<Spanned<bool>>,
    steps: Option<Spanned<Vec<RawStep>>>,
    when: Option<Spanned<String>>,
    #[serde(rename = "else")]
    else_steps: Option<Spanned<Vec<RawStep>>>,
    max_iterations: Option<Spanned<i64>>,
    until: Option<Spanned<String>>,
    route: Option<Spanned<String>>,
    model: Option<Spanned<String>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum StepType {
    Step,
    Parallel,
    Condition,
    Loop,
    Router,
}

impl StepType {
    fn parse(name: &str) -> Option<StepType> {
        Some(match name {
            "step" => StepType::Step,
            "parallel" => StepType::Parallel,
            "condition" => StepType::Condition,
            "loop" => StepType::Loop,
            "router" => StepType::Router,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            StepType::Step => "step",
            StepType::Parallel => "parallel",
            StepType::Condition => "condition",
            StepType::Loop => "loop",
            StepType::Router => "router",
        }
    }

    /// The keys this type takes besides `name`, `description` and `type`.
    fn keys(self) -> &'static [&'static str] {
        match self {
            StepType::Step => &["agent", "team", "skip_on_failure"],
            StepType::Parallel => &["steps"],
            StepType::Condition => &["when", "steps", "else"],
            StepType::Loop => &["steps", "max_iterations", "until"],
            StepType::Router => &["steps", "route", "model"],
        }
    }
}

impl RawStep {
    /// The type-specific keys present, with the spans of their values, in a fixed order.
    fn present_keys(&self) -> Vec<(&'static str, Range<usize>)> {
        let keys = [
            ("agent", self.agent.as_ref().map(Spanned::span)),
            ("team", self.team.as_ref().map(Spanned::span)),
            (
                "skip_on_failure",
                self.skip_on_failure.as_ref().map(Spanned::span),
            ),
            ("steps", self.steps.as_ref().map(Spanned::span)),
            ("when", self.when.as_ref().map(Spanned::span)),
            ("else", self.else_steps.as_ref().map(Spanned::span)),
            (
                "max_iterations",
                self.max_iterations.as_ref().map(Spanned::span),
            ),
            ("until", self.until.as_ref().map(Spanned::span)),
            ("route", self.route.as_ref().map(Spanned::span)),
            ("model", self.model.as_ref().map(Spanned::span)),
        ];
        keys.into_iter()
            .filter_map(|(key, span)| span.map(|span| (key, span)))
            .collect()
    }
}

/// What a workflow's steps are checked against.
struct StepContext<'a> {
    ids: &'a Ids,
    providers: &'a BTreeMap<String, ProviderDef>,
    /// Step names used so far in the workflow, with their lines.
    names: BTreeMap<String, usize>,
}

impl Validator<'_> {
    /// The `[[teams]]` entries. `ids` holds the agents' ids; the teams' are added.
    pub(super) fn teams(
        &self,
        raw: Vec<RawTeam>,
        ids: &mut Ids,
        providers: &BTreeMap<String, ProviderDef>,
    ) -> Result<Vec<TeamDef>, ConfigError> {
        // Members may name teams defined further down, so every id is claimed first.
        for (index, team) in raw.iter().enumerate() {
            let table = format!("teams[{index}]");
            self.id(&team.id, &table)?;
            self.claim_id(ids, &team.id, "team", format!("{table}.id"))?;
        }
        let mut teams = Vec::with_capacity(raw.len());
        let mut member_spans: Vec<Vec<Range<usize>>> = Vec::with_capacity(raw.len());
        for (index, team) in raw.into_iter().enumerate() {
            member_spans.push(team.members.get_ref().iter().map(Spanned::span).collect());
            teams.push(self.team(index, team, ids, providers)?);
        }
        if let Some((index, member, path)) = team_cycle(&teams) {
            return Err(self.error(
                member_spans[index][member].clone(),
                format!("teams[{index}].members[{member}]"),
                format!(
                    "team `{}` contains itself: {}",
                    teams[index].id,
                    path.join(" -> ")
                ),
            ));
        }
        Ok(teams)
    }

    fn team(
        &self,
        index: usize,
        raw: RawTeam,
        ids: &Ids,
        providers: &BTreeMap<String, ProviderDef>,
    ) -> Result<TeamDef, ConfigError> {
        let table = format!("teams[{index}]");
        let key = |field: &str| format!("{table}.{field}");
        self.model(&raw.model, &table, providers)?;
        let instructions = self.instructions(raw.instructions.as_ref(), &table)?;

        let mode = match &raw.mode {
            None => TeamMode::default(),
            Some(mode) => match mode.get_ref().as_str() {
                "coordinate" => TeamMode::Coordinate,
                "route" => TeamMode::Route,
                "broadcast" => TeamMode::Broadcast,
                other => {
                    return Err(self.error(
                        mode.span(),
                        key("mode"),
                        format!(
                            "unknown mode `{other}`: expected \"coordinate\", \"route\" or \
                             \"broadcast\""
                        ),
                    ));
                }
            },
        };

        if raw.members.get_ref().is_empty() {
            return Err(self.error(
                raw.members.span(),
                key("members"),
                "must not be empty: list the ids of the agents and teams in the team".into(),
            ));
        }
        let mut members: Vec<MemberRef> = Vec::new();
        for (i, entry) in raw.members.get_ref().iter().enumerate() {
            let member_key = key(&format!("members[{i}]"));
            let id = entry.get_ref();
            let member = match ids.get(id) {
                Some(("agent", _)) => MemberRef::Agent(id.clone()),
                Some(("team", _)) => MemberRef::Team(id.clone()),
                _ => {
                    return Err(self.error(
                        entry.span(),
                        member_key,
                        format!("unknown member `{id}`: {}", known(ids, &["agent", "team"])),
                    ));
                }
            };
            if members.contains(&member) {
                return Err(self.error(
                    entry.span(),
                    member_key,
                    format!("`{id}` is listed twice"),
                ));
            }
            members.push(member);
        }

        let id = raw.id.get_ref();
        Ok(TeamDef {
            id: id.clone(),
            name: raw.name.unwrap_or_else(|| id.clone()),
            description: raw.description,
            model: raw.model.get_ref().clone(),
            model_line: line_of(self.text, raw.model.span().start),
            instructions,
            members,
            mode,
            markdown: raw.markdown,
            add_history_to_context: raw.add_history_to_context,
            num_history_runs: self.num_history_runs(raw.num_history_runs.as_ref(), &table)?,
            temperature: self.temperature(raw.temperature.as_ref(), &table)?,
            max_tokens: self.max_tokens(raw.max_tokens.as_ref(), &table)?,
            dependencies: self.dependencies(raw.dependencies.as_ref(), &table)?,
            tool_call_limit: self.tool_call_limit(raw.tool_call_limit.as_ref(), &table)?,
            max_answer_bytes: self.max_answer_bytes(raw.max_answer_bytes.as_ref(), &table)?,
            model_options: self.model_options(
                RawModelKeys {
                    model: &raw.model,
                    temperature: raw.temperature.as_ref(),
                    max_tokens: raw.max_tokens.as_ref(),
                    fallback_models: raw.fallback_models.as_ref(),
                    thinking: raw.thinking.as_ref(),
                    cache_prompt: raw.cache_prompt.as_ref(),
                },
                &table,
                providers,
            )?,
        })
    }

    /// The `[[workflows]]` entries. `ids` holds the agents' and teams' ids; the workflows'
    /// are added.
    pub(super) fn workflows(
        &self,
        raw: Vec<RawWorkflow>,
        ids: &mut Ids,
        providers: &BTreeMap<String, ProviderDef>,
    ) -> Result<Vec<WorkflowDef>, ConfigError> {
        let mut workflows = Vec::with_capacity(raw.len());
        for (index, workflow) in raw.into_iter().enumerate() {
            let table = format!("workflows[{index}]");
            self.id(&workflow.id, &table)?;
            self.claim_id(ids, &workflow.id, "workflow", format!("{table}.id"))?;
            let mut context = StepContext {
                ids,
                providers,
                names: BTreeMap::new(),
            };
            let steps = self.steps(workflow.steps, &format!("{table}.steps"), &mut context)?;
            let id = workflow.id.into_inner();
            workflows.push(WorkflowDef {
                name: workflow.name.unwrap_or_else(|| id.clone()),
                id,
                description: workflow.description,
                steps,
            });
        }
        Ok(workflows)
    }

    /// A non-empty list of steps; `key` is its path, e.g. `workflows[0].steps[2].else`.
    fn steps(
        &self,
        raw: Spanned<Vec<RawStep>>,
        key: &str,
        context: &mut StepContext<'_>,
    ) -> Result<Vec<StepDef>, ConfigError> {
        if raw.get_ref().is_empty() {
            return Err(self.error(
                raw.span(),
                key.to_string(),
                "must not be empty: list at least one step".into(),
            ));
        }
        raw.into_inner()
            .into_iter()
            .enumerate()
            .map(|(i, step)| self.step(step, &format!("{key}[{i}]"), context))
            .collect()
    }

    fn step(
        &self,
        raw: RawStep,
        table: &str,
        context: &mut StepContext<'_>,
    ) -> Result<StepDef, ConfigError> {
        let key = |field: &str| format!("{table}.{field}");
        let name = raw.name.get_ref();
        if name.trim().is_empty() {
            return Err(self.error(raw.name.span(), key("name"), "must not be empty".into()));
        }
        if let Some(first) = context.names.get(name) {
            return Err(self.error(
                raw.name.span(),
                key("name"),
                format!(
                    "duplicate step name `{name}` (first used on line {first}): step names are \
                     unique within a workflow"
                ),
            ));
        }
        context
            .names
            .insert(name.clone(), line_of(self.text, raw.name.span().start));

        let step_type = match &raw.kind {
            None => StepType::Step,
            Some(kind) => StepType::parse(kind.get_ref()).ok_or_else(|| {
                self.error(
                    kind.span(),
                    key("type"),
                    format!(
                        "unknown step type `{}`: expected \"step\", \"parallel\", \
                         \"condition\", \"loop\" or \"router\"",
                        kind.get_ref()
                    ),
                )
            })?,
        };
        for (field, span) in raw.present_keys() {
            if !step_type.keys().contains(&field) {
                let message = if raw.kind.is_none() {
                    let owner = match field {
                        "when" | "else" => "a condition step: add `type = \"condition\"`",
                        "max_iterations" | "until" => "a loop step: add `type = \"loop\"`",
                        "route" | "model" => "a router step: add `type = \"router\"`",
                        _ => {
                            "a parallel, condition, loop or router step: add a `type` \
                             (\"parallel\", \"condition\", \"loop\" or \"router\")"
                        }
                    };
                    format!("`{field}` belongs to {owner}")
                } else {
                    let takes: Vec<String> =
                        step_type.keys().iter().map(|k| format!("`{k}`")).collect();
                    format!(
                        "`{field}` does not apply to a {} step, which takes {}",
                        step_type.name(),
                        join_and(&takes)
                    )
                };
                return Err(self.error(span, key(field), message));
            }
        }

        let missing = |field: &str, what: &str| {
            self.error(
                raw.name.span(),
                key(field),
                format!("missing: a {} step needs {what}", step_type.name()),
            )
        };
        let nested = |steps: Option<Spanned<Vec<RawStep>>>, context: &mut StepContext<'_>| {
            let steps = steps.ok_or_else(|| missing("steps", "`steps`, the steps it runs"))?;
            self.steps(steps, &key("steps"), context)
        };
        let kind = match step_type {
            StepType::Step => self.plain_step(&raw, table, context)?,
            StepType::Parallel => StepKind::Parallel(nested(raw.steps, context)?),
            StepType::Condition => {
                let when = raw.when.as_ref().ok_or_else(|| {
                    missing("when", "`when`, a CEL expression deciding whether it runs")
                })?;
                let when = self.expr(when, key("when"), &STEP_INPUT_VARIABLES, "`when`")?;
                let steps = nested(raw.steps, context)?;
                let else_steps = match raw.else_steps {
                    None => Vec::new(),
                    Some(steps) => self.steps(steps, &key("else"), context)?,
                };
                StepKind::Condition {
                    when,
                    steps,
                    else_steps,
                }
            }
            StepType::Loop => {
                let max_iterations = match &raw.max_iterations {
                    None => DEFAULT_MAX_ITERATIONS,
                    Some(n) => match usize::try_from(*n.get_ref()) {
                        Ok(n) if (1..=MAX_ITERATIONS_LIMIT).contains(&n) => n,
                        _ => {
                            return Err(self.error(
                                n.span(),
                                key("max_iterations"),
                                format!(
                                    "must be between 1 and {MAX_ITERATIONS_LIMIT}, found {}",
                                    n.get_ref()
                                ),
                            ));
                        }
                    },
                };
                let until = match &raw.until {
                    None => None,
                    Some(until) => {
                        Some(self.expr(until, key("until"), &LOOP_VARIABLES, "`until`")?)
                    }
                };
                StepKind::Loop {
                    steps: nested(raw.steps, context)?,
                    max_iterations,
                    until,
                }
            }
            StepType::Router => {
                let route = match (&raw.route, &raw.model) {
                    (Some(_), Some(model)) => {
                        return Err(self.error(
                            model.span(),
                            key("model"),
                            "a router picks its choice by `route` or by `model`, not both".into(),
                        ));
                    }
                    (None, None) => {
                        return Err(missing(
                            "route",
                            "`route`, a CEL expression giving the name of a choice, or \
                             `model`, a model that picks one",
                        ));
                    }
                    (Some(route), None) => {
                        let mut variables = STEP_INPUT_VARIABLES.to_vec();
                        variables.push(ROUTER_CHOICES_VARIABLE);
                        RouteBy::Expr(self.expr(route, key("route"), &variables, "`route`")?)
                    }
                    (None, Some(model)) => {
                        self.model(model, table, context.providers)?;
                        RouteBy::Model {
                            model: model.get_ref().clone(),
                            line: line_of(self.text, model.span().start),
                        }
                    }
                };
                StepKind::Router {
                    choices: nested(raw.steps, context)?,
                    route,
                }
            }
        };
        Ok(StepDef {
            name: raw.name.into_inner(),
            description: raw.description,
            kind,
        })
    }

    /// A step that runs an agent or a team.
    fn plain_step(
        &self,
        raw: &RawStep,
        table: &str,
        context: &StepContext<'_>,
    ) -> Result<StepKind, ConfigError> {
        let skip_on_failure = raw.skip_on_failure.as_ref().is_some_and(|s| *s.get_ref());
        let (field, target, kind) = match (&raw.agent, &raw.team) {
            (Some(_), Some(team)) => {
                return Err(self.error(
                    team.span(),
                    format!("{table}.team"),
                    "a step runs an `agent` or a `team`, not both".into(),
                ));
            }
            (Some(agent), None) => ("agent", agent, "agent"),
            (None, Some(team)) => ("team", team, "team"),
            (None, None) => {
                return Err(self.error(
                    raw.name.span(),
                    format!("{table}.agent"),
                    "missing: a step needs an `agent` or a `team` to run, or a `type` \
                     (\"parallel\", \"condition\", \"loop\" or \"router\") and nested `steps`"
                        .into(),
                ));
            }
        };
        let id = target.get_ref();
        match context.ids.get(id) {
            Some((found, _)) if *found == kind => {}
            Some(("agent" | "team", _)) => {
                let other = if kind == "agent" { "team" } else { "agent" };
                return Err(self.error(
                    target.span(),
                    format!("{table}.{field}"),
                    format!(
                        "`{id}` is {} {other}: write `{other} = \"{id}\"`",
                        article(other)
                    ),
                ));
            }
            _ => {
                return Err(self.error(
                    target.span(),
                    format!("{table}.{field}"),
                    format!("unknown {kind} `{id}`: {}", known(context.ids, &[kind])),
                ));
            }
        }
        Ok(match kind {
            "agent" => StepKind::Agent {
                id: id.clone(),
                skip_on_failure,
            },
            _ => StepKind::Team {
                id: id.clone(),
                skip_on_failure,
            },
        })
    }

    /// Compiles a CEL expression that may read only `variables`; `what` names the key in
    /// messages.
    fn expr(
        &self,
        source: &Spanned<String>,
        key: String,
        variables: &[&str],
        what: &str,
    ) -> Result<Expr, ConfigError> {
        let expr = Expr::compile(source.get_ref())
            .map_err(|message| self.error(source.span(), key.clone(), message))?;
        if let Some(unknown) = expr
            .variables()
            .iter()
            .find(|v| !variables.contains(&v.as_str()))
        {
            let names: Vec<String> = variables.iter().map(|v| format!("`{v}`")).collect();
            return Err(self.error(
                source.span(),
                key,
                format!(
                    "unknown variable `{unknown}`: {what} can use {}",
                    join_and(&names)
                ),
            ));
        }
        Ok(expr)
    }
}

/// A team that contains itself, directly or through other teams, as (index of the team,
/// index of its member entry that starts the cycle, the cycle's ids from that team back to
/// it). The cycle is reported from its team defined first.
fn team_cycle(teams: &[TeamDef]) -> Option<(usize, usize, Vec<String>)> {
    let index: BTreeMap<&str, usize> = teams
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();
    const NEW: u8 = 0;
    const OPEN: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![NEW; teams.len()];
    for start in 0..teams.len() {
        if state[start] != NEW {
            continue;
        }
        // Depth-first, without recursion: (team, next member entry to look at).
        let mut stack = vec![(start, 0)];
        state[start] = OPEN;
        while let Some(&mut (team, ref mut next)) = stack.last_mut() {
            let members = &teams[team].members;
            let Some(offset) = members[*next..]
                .iter()
                .position(|m| matches!(m, MemberRef::Team(_)))
            else {
                state[team] = DONE;
                stack.pop();
                continue;
            };
            let entry = *next + offset;
            *next = entry + 1;
            let child = index[members[entry].id()];
            match state[child] {
                NEW => {
                    state[child] = OPEN;
                    stack.push((child, 0));
                }
                OPEN => {
                    // The open teams from `child` up form the cycle; each is at the member
                    // entry (`next - 1`) leading to the one after it.
                    let from = stack.iter().position(|&(t, _)| t == child)?;
                    let cycle: Vec<(usize, usize)> =
                        stack[from..].iter().map(|&(t, n)| (t, n - 1)).collect();
                    let first = (0..cycle.len()).min_by_key(|&i| cycle[i].0)?;
                    let path: Vec<String> = (0..=cycle.len())
                        .map(|i| teams[cycle[(first + i) % cycle.len()].0].id.clone())
                        .collect();
                    let (team, entry) = cycle[first];
                    return Some((team, entry, path));
                }
                _ => {}
            }
        }
    }
    None
}

/// "known agents are `a`, `b`; known teams are `t`", for the kinds given.
fn known(ids: &Ids, kinds: &[&str]) -> String {
    let parts: Vec<String> = kinds
        .iter()
        .map(|kind| {
            let names: Vec<String> = ids
                .iter()
                .filter(|(_, (k, _))| k == kind)
                .map(|(id, _)| format!("`{id}`"))
                .collect();
            if names.is_empty() {
                format!("no {kind}s are defined")
            } else {
                format!("known {kind}s are {}", names.join(", "))
            }
        })
        .collect();
    parts.join("; ")
}

/// `a`, `a and b`, `a, b and c`.
fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

impl Config {
    /// The teams and workflows part of [`Config::check_report`]. Adds the providers their
    /// models use to `used`.
    pub(super) fn flow_report<'a>(
        &'a self,
        out: &mut String,
        warnings: &mut Vec<String>,
        used: &mut BTreeSet<&'a str>,
    ) {
        if !self.teams.is_empty() {
            out.push_str("teams:\n");
        }
        let id_width = self.teams.iter().map(|t| t.id.len()).max().unwrap_or(0);
        let model_width = self.teams.iter().map(|t| t.model.len()).max().unwrap_or(0);
        for team in &self.teams {
            let line = format!(
                "  {:id_width$}  {:model_width$}  {:10}  {}",
                team.id,
                team.model,
                team.mode.as_str(),
                team.description.as_deref().unwrap_or("")
            );
            out.push_str(line.trim_end());
            out.push('\n');
            let members: Vec<&str> = team.members.iter().map(MemberRef::id).collect();
            out.push_str(&format!(
                "  {:id_width$}  members: {}\n",
                "",
                members.join(", ")
            ));
            warnings.extend(self.check_model(&team.model, team.model_line, used, || {
                format!("team `{}`", team.id)
            }));
            let options = &team.model_options;
            if !options.fallback_models.is_empty() {
                out.push_str(&format!(
                    "  {:id_width$}  fallbacks: {}\n",
                    "",
                    options.fallback_models.join(", ")
                ));
            }
            for spec in &options.fallback_models {
                warnings.extend(self.check_model(spec, options.fallback_line, used, || {
                    format!("team `{}`: fallback", team.id)
                }));
            }
            let mut seen = BTreeSet::new();
            for name in team
                .instructions
                .iter()
                .flat_map(|i| template::placeholders(i))
            {
                if name != "user_id"
                    && !team.dependencies.contains_key(&name)
                    && seen.insert(name.clone())
                {
                    warnings.push(format!(
                        "team `{}`: placeholder {{{name}}} must come from session_state, \
                         dependencies or metadata at run time",
                        team.id
                    ));
                }
            }
        }

        if !self.workflows.is_empty() {
            out.push_str("workflows:\n");
        }
        let id_width = self.workflows.iter().map(|w| w.id.len()).max().unwrap_or(0);
        for workflow in &self.workflows {
            let line = format!(
                "  {:id_width$}  {}",
                workflow.id,
                workflow.description.as_deref().unwrap_or("")
            );
            out.push_str(line.trim_end());
            out.push('\n');
            out.push_str(&format!(
                "  {:id_width$}  steps: {}\n",
                "",
                steps_summary(&workflow.steps)
            ));
            for_each_step(&workflow.steps, &mut |step| {
                if let StepKind::Router {
                    route: RouteBy::Model { model, line },
                    ..
                } = &step.kind
                {
                    warnings.extend(self.check_model(model, *line, used, || {
                        format!("workflow `{}`, step `{}`", workflow.id, step.name)
                    }));
                }
            });
        }
    }

    /// Notes the provider of `model` as used, and gives a warning when it cannot be resolved.
    fn check_model<'a>(
        &self,
        model: &'a str,
        line: usize,
        used: &mut BTreeSet<&'a str>,
        owner: impl FnOnce() -> String,
    ) -> Option<String> {
        if let Ok((provider, _)) = parse_model_spec(model) {
            used.insert(provider);
        }
        self.resolve_model(model, Some(line))
            .err()
            .map(|e| format!("{}: {e}", owner()))
    }
}

/// Calls `f` on every step, nested ones included, parents first.
pub fn for_each_step<'a>(steps: &'a [StepDef], f: &mut impl FnMut(&'a StepDef)) {
    for step in steps {
        f(step);
        match &step.kind {
            StepKind::Agent { .. } | StepKind::Team { .. } => {}
            StepKind::Parallel(steps) | StepKind::Loop { steps, .. } => for_each_step(steps, f),
            StepKind::Condition {
                steps, else_steps, ..
            } => {
                for_each_step(steps, f);
                for_each_step(else_steps, f);
            }
            StepKind::Router { choices, .. } => for_each_step(choices, f),
        }
    }
}

/// One line describing a sequence of steps:
/// `outline -> drafts (parallel: short, long) -> review (loop: edit -> check)`.
pub fn steps_summary(steps: &[StepDef]) -> String {
    join_steps(steps, " -> ")
}

fn join_steps(steps: &[StepDef], separator: &str) -> String {
    steps
        .iter()
        .map(step_summary)
        .collect::<Vec<_>>()
        .join(separator)
}

fn step_summary(step: &StepDef) -> String {
    let name = &step.name;
    match &step.kind {
        StepKind::Agent { .. } | StepKind::Team { .. } => name.clone(),
        StepKind::Parallel(steps) => format!("{name} (parallel: {})", join_steps(steps, ", ")),
        StepKind::Condition {
            steps, else_steps, ..
        } if else_steps.is_empty() => format!("{name} (condition: {})", steps_summary(steps)),
        StepKind::Condition {
            steps, else_steps, ..
        } => format!(
            "{name} (condition: {}; else: {})",
            steps_summary(steps),
            steps_summary(else_steps)
        ),
        StepKind::Loop { steps, .. } => format!("{name} (loop: {})", steps_summary(steps)),
        StepKind::Router { choices, .. } => {
            format!("{name} (router: {})", join_steps(choices, ", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str(text, Path::new("agents.toml"))
    }

    /// The error for `text`, as (line, key, message).
    fn error(text: &str) -> (Option<usize>, Option<String>, String) {
        match parse(text) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(e) => (e.line, e.key, e.message),
        }
    }

    /// Checks each (text, line, key, part of the message).
    #[track_caller]
    fn errors(cases: &[(String, usize, &str, &str)]) {
        for (text, line, key, needle) in cases {
            let (got_line, got_key, message) = error(text);
            assert_eq!(
                (got_line, got_key.as_deref()),
                (Some(*line), Some(*key)),
                "{text}\n{message}"
            );
            assert!(message.contains(needle), "{text}\n{message}");
        }
    }

    /// Agents `a` and `b`, on lines 1 to 6.
    const AGENTS: &str = "[[agents]]\nid = \"a\"\nmodel = \"test\"\n\
                          [[agents]]\nid = \"b\"\nmodel = \"test\"\n";

    fn expr(source: &str) -> Expr {
        Expr::compile(source).unwrap()
    }

    fn agent_step(name: &str, id: &str) -> StepDef {
        StepDef {
            name: name.into(),
            description: None,
            kind: StepKind::Agent {
                id: id.into(),
                skip_on_failure: false,
            },
        }
    }

    #[test]
    fn parses_teams() {
        let text = format!(
            r#"{AGENTS}
[[teams]]
id = "outer"
name = "Outer"
description = "d"
model = "ollama:llama3.2"
instructions = ["one", "two"]
members = ["a", "inner", "b"]
mode = "broadcast"
markdown = true
add_history_to_context = true
num_history_runs = 5
temperature = 0.5
max_tokens = 100
dependencies = {{ topic = "rust" }}
tool_call_limit = 4

[[teams]]
id = "inner"
model = "test"
instructions = "lead"
members = ["a"]
mode = "route"
"#
        );
        let config = parse(&text).unwrap();
        assert_eq!(
            config.team("outer").unwrap(),
            &TeamDef {
                id: "outer".into(),
                name: "Outer".into(),
                description: Some("d".into()),
                model: "ollama:llama3.2".into(),
                model_line: 12,
                instructions: vec!["one".into(), "two".into()],
                members: vec![
                    MemberRef::Agent("a".into()),
                    MemberRef::Team("inner".into()),
                    MemberRef::Agent("b".into()),
                ],
                mode: TeamMode::Broadcast,
                markdown: true,
                add_history_to_context: true,
                num_history_runs: 5,
                temperature: Some(0.5),
                max_tokens: Some(100),
                dependencies: serde_json::json!({"topic": "rust"})
                    .as_object()
                    .unwrap()
                    .clone(),
                tool_call_limit: 4,
                max_answer_bytes: crate::limits::DEFAULT_MAX_ANSWER_BYTES,
                model_options: ModelOptions::default(),
            }
        );
        let inner = config.team("inner").unwrap();
        assert_eq!(inner.name, "inner");
        assert_eq!(inner.instructions, ["lead"]);
        assert_eq!(inner.mode, TeamMode::Route);
        assert!(!inner.markdown && !inner.add_history_to_context);
        assert_eq!(inner.num_history_runs, 3);
        assert_eq!(inner.temperature, None);
        assert_eq!(inner.max_tokens, None);
        assert!(inner.dependencies.is_empty());
        assert_eq!(inner.tool_call_limit, 10);
        assert_eq!(config.teams.len(), 2);
        assert!(config.team("a").is_none());
        assert_eq!(MemberRef::Team("x".into()).id(), "x");

        let text = format!("{AGENTS}[[teams]]\nid = \"t\"\nmodel = \"test\"\nmembers = [\"a\"]\n");
        assert_eq!(parse(&text).unwrap().teams[0].mode, TeamMode::Coordinate);
        assert_eq!(TeamMode::Broadcast.to_string(), "broadcast");
    }

    #[test]
    fn parses_every_step_kind() {
        let text = format!(
            r#"{AGENTS}
[[teams]]
id = "t"
model = "test"
members = ["a", "b"]

[[workflows]]
id = "w"
name = "W"
description = "All kinds"

[[workflows.steps]]
name = "outline"
description = "First"
agent = "a"

[[workflows.steps]]
name = "review"
type = "step"
team = "t"
skip_on_failure = true

[[workflows.steps]]
name = "both"
type = "parallel"
steps = [
  {{ name = "p1", agent = "a" }},
  {{ name = "p2", type = "loop", steps = [{{ name = "p2a", agent = "b" }}] }},
]

[[workflows.steps]]
name = "maybe"
type = "condition"
when = 'input.contains("urgent")'
steps = [{{ name = "yes", agent = "a" }}]
else = [{{ name = "no", agent = "b" }}]

[[workflows.steps]]
name = "only-if"
type = "condition"
when = "previous_step_outputs['outline'].size() > session_state.min"
steps = [{{ name = "then", agent = "a" }}]

[[workflows.steps]]
name = "refine"
type = "loop"
max_iterations = 100
until = "last_step_content.size() > 100 && all_success"
steps = [{{ name = "edit", agent = "a" }}]

[[workflows.steps]]
name = "pick"
type = "router"
route = 'input.contains("code") || "coder" in step_choices ? "coder" : "writer"'
steps = [{{ name = "coder", agent = "a" }}, {{ name = "writer", team = "t" }}]

[[workflows.steps]]
name = "ask"
type = "router"
model = "ollama:llama3.2"
steps = [{{ name = "x", agent = "a" }}, {{ name = "y", agent = "b" }}]

[[workflows]]
id = "w2"
steps = [{{ name = "outline", agent = "b" }}]
"#
        );
        let config = parse(&text).unwrap();
        let ask_model_line = 1 + text
            .lines()
            .position(|l| l == "model = \"ollama:llama3.2\"")
            .unwrap();
        let w = config.workflow("w").unwrap();
        assert_eq!((w.id.as_str(), w.name.as_str()), ("w", "W"));
        assert_eq!(w.description.as_deref(), Some("All kinds"));
        let expected = vec![
            StepDef {
                description: Some("First".into()),
                ..agent_step("outline", "a")
            },
            StepDef {
                name: "review".into(),
                description: None,
                kind: StepKind::Team {
                    id: "t".into(),
                    skip_on_failure: true,
                },
            },
            StepDef {
                name: "both".into(),
                description: None,
                kind: StepKind::Parallel(vec![
                    agent_step("p1", "a"),
                    StepDef {
                        name: "p2".into(),
                        description: None,
                        kind: StepKind::Loop {
                            steps: vec![agent_step("p2a", "b")],
                            max_iterations: 3,
                            until: None,
                        },
                    },
                ]),
            },
            StepDef {
                name: "maybe".into(),
                description: None,
                kind: StepKind::Condition {
                    when: expr("input.contains(\"urgent\")"),
                    steps: vec![agent_step("yes", "a")],
                    else_steps: vec![agent_step("no", "b")],
                },
            },
            StepDef {
                name: "only-if".into(),
                description: None,
                kind: StepKind::Condition {
                    when: expr("previous_step_outputs['outline'].size() > session_state.min"),
                    steps: vec![agent_step("then", "a")],
                    else_steps: vec![],
                },
            },
            StepDef {
                name: "refine".into(),
                description: None,
                kind: StepKind::Loop {
                    steps: vec![agent_step("edit", "a")],
                    max_iterations: 100,
                    until: Some(expr("last_step_content.size() > 100 && all_success")),
                },
            },
            StepDef {
                name: "pick".into(),
                description: None,
                kind: StepKind::Router {
                    choices: vec![
                        agent_step("coder", "a"),
                        StepDef {
                            name: "writer".into(),
                            description: None,
                            kind: StepKind::Team {
                                id: "t".into(),
                                skip_on_failure: false,
                            },
                        },
                    ],
                    route: RouteBy::Expr(expr(
                        "input.contains(\"code\") || \"coder\" in step_choices ? \"coder\" : \
                         \"writer\"",
                    )),
                },
            },
            StepDef {
                name: "ask".into(),
                description: None,
                kind: StepKind::Router {
                    choices: vec![agent_step("x", "a"), agent_step("y", "b")],
                    route: RouteBy::Model {
                        model: "ollama:llama3.2".into(),
                        line: ask_model_line,
                    },
                },
            },
        ];
        assert_eq!(w.steps, expected);
        // Step names are only unique within their workflow.
        assert_eq!(config.workflow("w2").unwrap().steps[0].name, "outline");
        assert_eq!(config.workflow("w2").unwrap().name, "w2");
        assert!(config.workflow("t").is_none());

        let mut names = Vec::new();
        for_each_step(&w.steps, &mut |step| names.push(step.name.as_str()));
        assert_eq!(
            names,
            [
                "outline", "review", "both", "p1", "p2", "p2a", "maybe", "yes", "no", "only-if",
                "then", "refine", "edit", "pick", "coder", "writer", "ask", "x", "y"
            ]
        );
        assert_eq!(
            steps_summary(&w.steps),
            "outline -> review -> both (parallel: p1, p2 (loop: p2a)) -> maybe (condition: \
             yes; else: no) -> only-if (condition: then) -> refine (loop: edit) -> pick \
             (router: coder, writer) -> ask (router: x, y)"
        );
    }

    #[test]
    fn nested_steps_as_tables() {
        let text = format!(
            r#"{AGENTS}
[[workflows]]
id = "w"

[[workflows.steps]]
name = "check"
type = "condition"
when = "true"

[[workflows.steps.steps]]
name = "then"
agent = "a"

[[workflows.steps.else]]
name = "otherwise"
type = "parallel"

[[workflows.steps.else.steps]]
name = "deep"
agent = "b"
"#
        );
        let config = parse(&text).unwrap();
        assert_eq!(
            config.workflows[0].steps[0].kind,
            StepKind::Condition {
                when: expr("true"),
                steps: vec![agent_step("then", "a")],
                else_steps: vec![StepDef {
                    name: "otherwise".into(),
                    description: None,
                    kind: StepKind::Parallel(vec![agent_step("deep", "b")]),
                }],
            }
        );
    }

    #[test]
    fn team_errors() {
        // The team's keys start on line 9.
        let team = |body: &str| format!("{AGENTS}[[teams]]\nid = \"t\"\n{body}\n");
        errors(&[
            (
                team("model = \"test\"\nmembers = []"),
                10,
                "teams[0].members",
                "must not be empty",
            ),
            (
                team("model = \"test\""),
                7,
                "teams[0].members",
                "missing field `members`",
            ),
            (
                team("members = [\"a\"]"),
                7,
                "teams[0].model",
                "missing field `model`",
            ),
            (
                team("model = \"test\"\nmembers = \"a\""),
                10,
                "teams[0].members",
                "expected a sequence",
            ),
            (
                team("model = \"test\"\nmembers = [\n  \"a\",\n  \"nope\",\n]"),
                12,
                "teams[0].members[1]",
                "unknown member `nope`: known agents are `a`, `b`; known teams are `t`",
            ),
            (
                team("model = \"test\"\nmembers = [\"a\", \"b\", \"a\"]"),
                10,
                "teams[0].members[2]",
                "`a` is listed twice",
            ),
            (
                team("model = \"test\"\nmembers = [\"a\"]\nmode = \"chaos\""),
                11,
                "teams[0].mode",
                "unknown mode `chaos`: expected \"coordinate\", \"route\" or \"broadcast\"",
            ),
            (
                team("model = \"gpt-4o\"\nmembers = [\"a\"]"),
                9,
                "teams[0].model",
                "`gpt-4o` is not a model reference",
            ),
            (
                team("model = \"nope:x\"\nmembers = [\"a\"]"),
                9,
                "teams[0].model",
                "unknown provider `nope`",
            ),
            (
                team("model = \"test\"\nmembers = [\"a\"]\ntemperature = 3"),
                11,
                "teams[0].temperature",
                "between 0 and 2",
            ),
            (
                team("model = \"test\"\nmembers = [\"a\"]\nmax_tokens = 0"),
                11,
                "teams[0].max_tokens",
                "positive whole number",
            ),
            (
                team("model = \"test\"\nmembers = [\"a\"]\nnum_history_runs = -1"),
                11,
                "teams[0].num_history_runs",
                "0 or more",
            ),
            (
                team("model = \"test\"\nmembers = [\"a\"]\ntool_call_limit = 0"),
                11,
                "teams[0].tool_call_limit",
                "1 or more",
            ),
            (
                team("model = \"test\"\nmembers = [\"a\"]\ninstructions = 1"),
                11,
                "teams[0].instructions",
                "string or an array of strings",
            ),
            (
                team("model = \"test\"\nmembers = [\"a\"]\ntools = []"),
                11,
                "teams[0].tools",
                "unknown field `tools`",
            ),
            (
                format!("{AGENTS}[[teams]]\nid = \"a\"\nmodel = \"test\"\nmembers = [\"b\"]\n"),
                8,
                "teams[0].id",
                "`a` is already the id of the agent on line 2: agents, teams and workflows need \
                 distinct ids",
            ),
            (
                format!(
                    "{AGENTS}[[teams]]\nid = \"t\"\nmodel = \"test\"\nmembers = [\"b\"]\n\
                     [[teams]]\nid = \"t\"\nmodel = \"test\"\nmembers = [\"a\"]\n"
                ),
                12,
                "teams[1].id",
                "duplicate team id `t` (first defined on line 8)",
            ),
            (
                format!("{AGENTS}[[teams]]\nid = \"a b\"\nmodel = \"test\"\nmembers = [\"b\"]\n"),
                8,
                "teams[0].id",
                "not a valid id",
            ),
        ]);
        let (_, _, message) = error("[[teams]]\nid = \"t\"\nmodel = \"test\"\nmembers = [\"x\"]\n");
        assert_eq!(
            message,
            "unknown member `x`: no agents are defined; known teams are `t`"
        );
    }

    #[test]
    fn team_cycles() {
        let teams = |list: &[(&str, &str)]| {
            let mut text = AGENTS.to_string();
            for (id, members) in list {
                text.push_str(&format!(
                    "[[teams]]\nid = \"{id}\"\nmodel = \"test\"\nmembers = [{members}]\n"
                ));
            }
            text
        };
        // Team `i` (from 0) has its `members` on line 10 + 4 * i.
        errors(&[
            (
                teams(&[("t", "\"a\", \"t\"")]),
                10,
                "teams[0].members[1]",
                "team `t` contains itself: t -> t",
            ),
            (
                teams(&[("t1", "\"a\", \"t2\""), ("t2", "\"t1\"")]),
                10,
                "teams[0].members[1]",
                "team `t1` contains itself: t1 -> t2 -> t1",
            ),
            (
                teams(&[("t0", "\"t2\""), ("t1", "\"t0\""), ("t2", "\"b\", \"t1\"")]),
                10,
                "teams[0].members[0]",
                "team `t0` contains itself: t0 -> t2 -> t1 -> t0",
            ),
            // Found from `s`, which is not on the cycle, entering it at `c`; reported from
            // `m`, the cycle's team defined first.
            (
                teams(&[("s", "\"c\""), ("m", "\"c\""), ("c", "\"a\", \"m\"")]),
                14,
                "teams[1].members[0]",
                "team `m` contains itself: m -> c -> m",
            ),
        ]);
        // Shared members are no cycle.
        let text = teams(&[
            ("t1", "\"t2\", \"t3\""),
            ("t2", "\"t3\""),
            ("t3", "\"a\""),
            ("t4", "\"t1\", \"t3\""),
        ]);
        let config = parse(&text).unwrap();
        assert_eq!(
            config.team("t4").unwrap().members,
            [MemberRef::Team("t1".into()), MemberRef::Team("t3".into())]
        );
    }

    #[test]
    fn workflow_errors() {
        // A team `t` on lines 7 to 10, then the workflow `w`, whose steps start on line 13.
        let head = format!(
            "{AGENTS}[[teams]]\nid = \"t\"\nmodel = \"test\"\nmembers = [\"a\"]\n\
             [[workflows]]\nid = \"w\"\n"
        );
        let wf = |body: &str| format!("{head}{body}\n");
        let step = |body: &str| format!("{head}[[workflows.steps]]\n{body}\n");
        // With `step`, the step's keys start on line 14.
        errors(&[
            // Ids.
            (
                format!(
                    "{head}steps = [{{ name = \"s\", agent = \"a\" }}]\n[[workflows]]\nid = \"w\"\n\
                     steps = [{{ name = \"s\", agent = \"a\" }}]\n"
                ),
                15,
                "workflows[1].id",
                "duplicate workflow id `w` (first defined on line 12)",
            ),
            (
                format!(
                    "{AGENTS}[[workflows]]\nid = \"b\"\nsteps = [{{ name = \"s\", agent = \"a\" }}]\n"
                ),
                8,
                "workflows[0].id",
                "`b` is already the id of the agent on line 5",
            ),
            (
                format!(
                    "{head}steps = [{{ name = \"s\", agent = \"a\" }}]\n[[workflows]]\nid = \"t\"\n\
                     steps = [{{ name = \"s\", agent = \"a\" }}]\n"
                ),
                15,
                "workflows[1].id",
                "`t` is already the id of the team on line 8",
            ),
            (
                format!(
                    "{AGENTS}[[workflows]]\nid = \"\"\nsteps = [{{ name = \"s\", agent = \"a\" }}]\n"
                ),
                8,
                "workflows[0].id",
                "must not be empty",
            ),
            // Steps lists.
            (
                wf("steps = []"),
                13,
                "workflows[0].steps",
                "must not be empty",
            ),
            (wf(""), 11, "workflows[0].steps", "missing field `steps`"),
            (
                wf("[[workflows.steps]]\nname = \"p\"\ntype = \"parallel\"\nsteps = []"),
                16,
                "workflows[0].steps[0].steps",
                "must not be empty: list at least one step",
            ),
            (
                step(
                    "name = \"c\"\ntype = \"condition\"\nwhen = \"true\"\nsteps = [{ name = \"x\", agent = \"a\" }]\nelse = []",
                ),
                18,
                "workflows[0].steps[0].else",
                "must not be empty",
            ),
            (
                step(
                    "name = \"c\"\ntype = \"condition\"\nwhen = \"true\"\nsteps = [{ name = \"x\", type = \"parallel\", steps = [] }]",
                ),
                17,
                "workflows[0].steps[0].steps[0].steps",
                "must not be empty",
            ),
            // Names.
            (
                step("agent = \"a\""),
                13,
                "workflows[0].steps[0].name",
                "missing field `name`",
            ),
            (
                step("name = \" \"\nagent = \"a\""),
                14,
                "workflows[0].steps[0].name",
                "must not be empty",
            ),
            (
                wf(
                    "steps = [\n  { name = \"x\", agent = \"a\" },\n  { name = \"p\", type = \"parallel\", steps = [\n    { name = \"x\", agent = \"b\" },\n  ] },\n]",
                ),
                16,
                "workflows[0].steps[1].steps[0].name",
                "duplicate step name `x` (first used on line 14): step names are unique within a \
                 workflow",
            ),
            (
                step(
                    "name = \"c\"\ntype = \"condition\"\nwhen = \"true\"\nsteps = [{ name = \"c\", agent = \"a\" }]",
                ),
                17,
                "workflows[0].steps[0].steps[0].name",
                "duplicate step name `c` (first used on line 14)",
            ),
            // Plain steps.
            (
                step("name = \"s\"\nagent = \"nope\""),
                15,
                "workflows[0].steps[0].agent",
                "unknown agent `nope`: known agents are `a`, `b`",
            ),
            (
                step("name = \"s\"\nteam = \"nope\""),
                15,
                "workflows[0].steps[0].team",
                "unknown team `nope`: known teams are `t`",
            ),
            (
                step("name = \"s\"\nagent = \"t\""),
                15,
                "workflows[0].steps[0].agent",
                "`t` is a team: write `team = \"t\"`",
            ),
            (
                step("name = \"s\"\nteam = \"a\""),
                15,
                "workflows[0].steps[0].team",
                "`a` is an agent: write `agent = \"a\"`",
            ),
            (
                step("name = \"s\"\nagent = \"a\"\nteam = \"t\""),
                16,
                "workflows[0].steps[0].team",
                "a step runs an `agent` or a `team`, not both",
            ),
            (
                step("name = \"s\""),
                14,
                "workflows[0].steps[0].agent",
                "missing: a step needs an `agent` or a `team` to run",
            ),
            (
                step("name = \"s\"\nagent = \"a\"\nskip_on_failure = \"yes\""),
                16,
                "workflows[0].steps[0].skip_on_failure",
                "expected a boolean",
            ),
            (
                step("name = \"s\"\nagnet = \"a\""),
                15,
                "workflows[0].steps[0].agnet",
                "unknown field `agnet`",
            ),
            // Types and their keys.
            (
                step("name = \"s\"\ntype = \"serial\"\nagent = \"a\""),
                15,
                "workflows[0].steps[0].type",
                "unknown step type `serial`: expected \"step\", \"parallel\", \"condition\", \
                 \"loop\" or \"router\"",
            ),
            (
                step("name = \"s\"\ntype = 1"),
                15,
                "workflows[0].steps[0].type",
                "expected a string",
            ),
            (
                step(
                    "name = \"l\"\ntype = \"loop\"\nwhen = \"true\"\nsteps = [{ name = \"x\", agent = \"a\" }]",
                ),
                16,
                "workflows[0].steps[0].when",
                "`when` does not apply to a loop step, which takes `steps`, `max_iterations` and \
                 `until`",
            ),
            (
                step(
                    "name = \"p\"\ntype = \"parallel\"\nagent = \"a\"\nsteps = [{ name = \"x\", agent = \"a\" }]",
                ),
                16,
                "workflows[0].steps[0].agent",
                "`agent` does not apply to a parallel step, which takes `steps`",
            ),
            (
                step(
                    "name = \"r\"\ntype = \"router\"\nroute = \"'x'\"\nskip_on_failure = true\nsteps = [{ name = \"x\", agent = \"a\" }]",
                ),
                17,
                "workflows[0].steps[0].skip_on_failure",
                "does not apply to a router step, which takes `steps`, `route` and `model`",
            ),
            (
                step(
                    "name = \"c\"\ntype = \"condition\"\nwhen = \"true\"\nmax_iterations = 2\nsteps = [{ name = \"x\", agent = \"a\" }]",
                ),
                17,
                "workflows[0].steps[0].max_iterations",
                "does not apply to a condition step, which takes `when`, `steps` and `else`",
            ),
            (
                step("name = \"s\"\nagent = \"a\"\nsteps = [{ name = \"x\", agent = \"a\" }]"),
                16,
                "workflows[0].steps[0].steps",
                "`steps` belongs to a parallel, condition, loop or router step: add a `type`",
            ),
            (
                step("name = \"s\"\nwhen = \"true\""),
                15,
                "workflows[0].steps[0].when",
                "`when` belongs to a condition step: add `type = \"condition\"`",
            ),
            (
                step("name = \"s\"\nuntil = \"true\""),
                15,
                "workflows[0].steps[0].until",
                "`until` belongs to a loop step: add `type = \"loop\"`",
            ),
            (
                step("name = \"s\"\nmodel = \"test\""),
                15,
                "workflows[0].steps[0].model",
                "`model` belongs to a router step: add `type = \"router\"`",
            ),
            // Parallel, condition and loop.
            (
                step("name = \"p\"\ntype = \"parallel\""),
                14,
                "workflows[0].steps[0].steps",
                "missing: a parallel step needs `steps`",
            ),
            (
                step(
                    "name = \"c\"\ntype = \"condition\"\nsteps = [{ name = \"x\", agent = \"a\" }]",
                ),
                14,
                "workflows[0].steps[0].when",
                "missing: a condition step needs `when`",
            ),
            (
                step("name = \"c\"\ntype = \"condition\"\nwhen = \"true\""),
                14,
                "workflows[0].steps[0].steps",
                "missing: a condition step needs `steps`",
            ),
            (
                step(
                    "name = \"l\"\ntype = \"loop\"\nmax_iterations = 0\nsteps = [{ name = \"x\", agent = \"a\" }]",
                ),
                16,
                "workflows[0].steps[0].max_iterations",
                "must be between 1 and 100, found 0",
            ),
            (
                step(
                    "name = \"l\"\ntype = \"loop\"\nmax_iterations = 101\nsteps = [{ name = \"x\", agent = \"a\" }]",
                ),
                16,
                "workflows[0].steps[0].max_iterations",
                "must be between 1 and 100, found 101",
            ),
            (
                step(
                    "name = \"l\"\ntype = \"loop\"\nmax_iterations = -1\nsteps = [{ name = \"x\", agent = \"a\" }]",
                ),
                16,
                "workflows[0].steps[0].max_iterations",
                "must be between 1 and 100",
            ),
            // Routers.
            (
                step(
                    "name = \"r\"\ntype = \"router\"\nroute = \"'x'\"\nmodel = \"test\"\nsteps = [{ name = \"x\", agent = \"a\" }]",
                ),
                17,
                "workflows[0].steps[0].model",
                "a router picks its choice by `route` or by `model`, not both",
            ),
            (
                step("name = \"r\"\ntype = \"router\"\nsteps = [{ name = \"x\", agent = \"a\" }]"),
                14,
                "workflows[0].steps[0].route",
                "missing: a router step needs `route`, a CEL expression giving the name of a \
                 choice, or `model`",
            ),
            (
                step(
                    "name = \"r\"\ntype = \"router\"\nmodel = \"nope:x\"\nsteps = [{ name = \"x\", agent = \"a\" }]",
                ),
                16,
                "workflows[0].steps[0].model",
                "unknown provider `nope`",
            ),
            (
                step(
                    "name = \"r\"\ntype = \"router\"\nmodel = \"gpt\"\nsteps = [{ name = \"x\", agent = \"a\" }]",
                ),
                16,
                "workflows[0].steps[0].model",
                "not a model reference",
            ),
            (
                step("name = \"r\"\ntype = \"router\"\nroute = \"'x'\""),
                14,
                "workflows[0].steps[0].steps",
                "missing: a router step needs `steps`",
            ),
        ]);
    }

    #[test]
    fn expression_errors() {
        let head = format!("{AGENTS}[[workflows]]\nid = \"w\"\n[[workflows.steps]]\n");
        // The step's keys start on line 10.
        let condition = |when: &str| {
            format!(
                "{head}name = \"c\"\ntype = \"condition\"\nwhen = {when}\n\
                 steps = [{{ name = \"x\", agent = \"a\" }}]\n"
            )
        };
        let looped = |until: &str| {
            format!(
                "{head}name = \"l\"\ntype = \"loop\"\nuntil = {until}\n\
                 steps = [{{ name = \"x\", agent = \"a\" }}]\n"
            )
        };
        let router = |route: &str| {
            format!(
                "{head}name = \"r\"\ntype = \"router\"\nroute = {route}\n\
                 steps = [{{ name = \"x\", agent = \"a\" }}]\n"
            )
        };
        errors(&[
            (
                condition("'input.contains(\"a\") &&'"),
                12,
                "workflows[0].steps[0].when",
                "invalid expression at column 23: mismatched input the end of the expression",
            ),
            (
                condition("'''\ninput.contains(\"a\") &&\n  (b'''"),
                12,
                "workflows[0].steps[0].when",
                "invalid expression at line 2, column 5: missing ')'",
            ),
            (
                condition("\"\""),
                12,
                "workflows[0].steps[0].when",
                "the expression is empty",
            ),
            (
                condition("'inptu == \"x\"'"),
                12,
                "workflows[0].steps[0].when",
                "unknown variable `inptu`: `when` can use `input`, `previous_step_content`, \
                 `previous_step_outputs`, `additional_data` and `session_state`",
            ),
            (
                condition("'step_choices.size() > 1'"),
                12,
                "workflows[0].steps[0].when",
                "unknown variable `step_choices`",
            ),
            (
                condition("1"),
                12,
                "workflows[0].steps[0].when",
                "expected a string",
            ),
            (
                looped("'input == \"\"'"),
                12,
                "workflows[0].steps[0].until",
                "unknown variable `input`: `until` can use `current_iteration`, \
                 `max_iterations`, `all_success`, `last_step_content` and `step_outputs`",
            ),
            (
                looped("'current_iteration >'"),
                12,
                "workflows[0].steps[0].until",
                "invalid expression at column 20",
            ),
            (
                router("'last_step_content'"),
                12,
                "workflows[0].steps[0].route",
                "unknown variable `last_step_content`: `route` can use `input`, \
                 `previous_step_content`, `previous_step_outputs`, `additional_data`, \
                 `session_state` and `step_choices`",
            ),
            (
                router("'(((((((((((((((((((((((((((((((((((1)))))))))))))))))))))))))))))))))))'"),
                12,
                "workflows[0].steps[0].route",
                "too deeply nested",
            ),
        ]);
        // Macro variables and types are not unknown variables.
        let text = condition("'session_state.tags.exists(t, t == input) && type(input) == string'");
        assert!(parse(&text).is_ok());
        let text = router("'step_choices.filter(c, input.contains(c))[0]'");
        assert!(parse(&text).is_ok());
        let text = looped(
            "'step_outputs.all(k, step_outputs[k] != \"\") || current_iteration == max_iterations'",
        );
        assert!(parse(&text).is_ok());
    }

    #[test]
    fn check_lists_teams_and_workflows() {
        let text = format!(
            r#"{AGENTS}
[[teams]]
id = "research"
description = "Finds things out"
model = "ollama:llama3.2"
instructions = "Research {{topic}} for {{user_id}}; cite {{style}}."
dependencies = {{ style = "APA" }}
members = ["a", "b"]

[[teams]]
id = "big"
model = "nope-provider-less:x"
members = ["research"]
mode = "route"

[[workflows]]
id = "w"
description = "Does it all"
steps = [
  {{ name = "one", agent = "a" }},
  {{ name = "pick", type = "router", model = "openai:gpt-4o", steps = [
    {{ name = "x", team = "research" }},
    {{ name = "y", agent = "b" }},
  ] }},
]
"#
        );
        // A model reference is checked against the providers at load; `big` names a provider
        // that does not exist.
        let (line, key, message) = error(&text);
        assert_eq!((line, key.as_deref()), (Some(18), Some("teams[1].model")));
        assert!(message.contains("unknown provider"), "{message}");

        let text = text.replace("nope-provider-less:x", "test");
        let config = parse(&text).unwrap();
        let pick_model_line = 1 + text
            .lines()
            .position(|l| l.contains("openai:gpt-4o"))
            .unwrap();
        let (report, warnings) = config.check_report();
        assert!(
            report.starts_with("agents.toml: 2 agents, 2 teams, 1 workflow\n"),
            "{report}"
        );
        assert!(
            report.contains(
                "teams:\n  \
                 research  ollama:llama3.2  coordinate  Finds things out\n            \
                 members: a, b\n  \
                 big       test             route\n            \
                 members: research\n\
                 workflows:\n  \
                 w  Does it all\n     \
                 steps: one -> pick (router: x, y)\n"
            ),
            "{report}"
        );
        assert!(
            report.contains("providers: ollama (http://localhost:11434/v1), openai ("),
            "{report}"
        );
        assert_eq!(
            warnings,
            [
                "team `research`: placeholder {topic} must come from session_state, dependencies \
              or metadata at run time"
                    .to_string()
            ]
            .into_iter()
            .chain(std::env::var("OPENAI_API_KEY").is_err().then(|| {
                format!(
                    "workflow `w`, step `pick`: agents.toml:{pick_model_line}: `model`: \
                             provider `openai` needs an API key: set OPENAI_API_KEY"
                )
            }))
            .collect::<Vec<_>>(),
        );
    }

    #[test]
    fn example_team_and_workflow() {
        let config = parse(super::super::EXAMPLE).unwrap();
        let team = config.team("story-team").unwrap();
        assert_eq!(team.mode, TeamMode::Coordinate);
        assert_eq!(
            team.members,
            [
                MemberRef::Agent("story-writer".into()),
                MemberRef::Agent("clock".into())
            ]
        );
        let workflow = config.workflow("story-workflow").unwrap();
        assert_eq!(
            workflow.steps,
            [
                agent_step("write", "story-writer"),
                agent_step("stamp", "clock")
            ]
        );
        // Offline: every model of the team and its members is the test model.
        for id in std::iter::once(&team.model).chain(
            team.members
                .iter()
                .map(|m| &config.agent(m.id()).unwrap().model),
        ) {
            assert_eq!(id, "test");
        }
    }
}
