//! The store's behaviour, the same on both backends: each test below runs once on a
//! SQLite file and once on a PostgreSQL database of its own (see `util/postgres.rs`),
//! through the one `Store` interface the engine and the server use.
//!
//! See: issue 13 ("PostgreSQL").

use std::future::Future;
use std::time::Duration;

use agentos::kind::Kind;
use agentos::run::{AnyRun, RunOutput, RunRecord, RunStatus};
use agentos::store::backend::Notice;
use agentos::store::{
    CancelOutcome, JournalBatch, ProcessInfo, QueuedRun, RunListing, RunQuery, Session,
    SessionQuery, SessionSort, Store, StoreError,
};
use serde_json::{Value, json};

use crate::util::postgres::TestDb;

const MINUTE: Duration = Duration::from_secs(60);

/// Runs `test` on a fresh SQLite store and on a fresh PostgreSQL store.
fn on_both<F, Fut>(test: F)
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime")
    };
    let sqlite = Store::open(&dir.path().join("agentos.db")).expect("open SQLite");
    runtime().block_on(test(sqlite));
    let db = TestDb::create();
    let postgres = Store::open_postgres(&db.url, 4).expect("open PostgreSQL");
    let rt = runtime();
    rt.block_on(test(postgres));
    drop(rt);
}

fn session(id: &str, component: &str, user: Option<&str>, created_at: i64) -> Session {
    Session {
        session_id: id.into(),
        session_type: Kind::Agent,
        component_id: component.into(),
        user_id: user.map(str::to_string),
        session_name: None,
        session_state: json!({}),
        metadata: None,
        session_data: None,
        created_at,
        updated_at: created_at,
    }
}

fn run(session_id: &str, run_id: &str, input: &str, created_at: i64) -> RunOutput {
    serde_json::from_value(json!({
        "run_id": run_id, "agent_id": "writer", "agent_name": "Writer",
        "session_id": session_id, "content_type": "str", "model": "test",
        "model_provider": "Test", "session_state": {}, "created_at": created_at,
        "status": "RUNNING", "metrics": {}, "tools": [],
        "messages": [{"id": format!("{run_id}-u"), "role": "user", "content": input,
                      "created_at": created_at}],
        "input": {"input_content": input}
    }))
    .expect("a run object")
}

/// A background run of the agent `writer` waiting in the queue, accepted at `at`.
fn queued(id: &str, session_id: &str, at: f64) -> QueuedRun {
    QueuedRun {
        run_id: id.into(),
        kind: Kind::Agent,
        component_id: "writer".into(),
        session_id: session_id.into(),
        request: json!([["message", "hi"]]),
        accepted_by: None,
        accepted_at: at,
    }
}

/// `agentos runs list`'s query: up to 10 runs with one of `statuses` (any when empty).
async fn listed(store: &Store, statuses: Vec<RunStatus>, include_members: bool) -> Vec<RunListing> {
    store
        .list_all_runs(RunQuery {
            statuses,
            include_members,
            limit: 10,
        })
        .await
        .unwrap()
}

fn completed(mut r: RunOutput, answer: &str, tokens: u64) -> AnyRun {
    r.status = RunStatus::Completed;
    r.content = Some(Value::String(answer.into()));
    r.metrics.input_tokens = Some(tokens);
    r.metrics.output_tokens = Some(tokens);
    r.metrics.total_tokens = Some(2 * tokens);
    r.messages.push(
        serde_json::from_value(json!({"id": format!("{}-a", r.run_id), "role": "assistant",
            "content": answer, "created_at": r.created_at}))
        .unwrap(),
    );
    AnyRun::Agent(r)
}

async fn finish(store: &Store, s: &Session, run_id: &str, input: &str, at: i64) {
    let r = run(&s.session_id, run_id, input, at);
    store
        .begin_run(s.clone(), AnyRun::Agent(r.clone()), Kind::Agent)
        .await
        .unwrap();
    store
        .finish_run(
            completed(r, &format!("answer to {input}"), 10),
            vec![json!({"event": "RunCompleted", "content": format!("answer to {input}")})],
            json!({"turns": 1}),
        )
        .await
        .unwrap();
}

#[test]
fn sessions_are_created_found_listed_renamed_and_deleted() {
    on_both(async |store| {
        store
            .create_session(session("s1", "writer", Some("ada"), 100))
            .await
            .unwrap();
        assert!(matches!(
            store
                .create_session(session("s1", "writer", None, 100))
                .await,
            Err(StoreError::SessionExists(_))
        ));
        let s2 = session("s2", "writer", Some("bob"), 200);
        finish(&store, &s2, "r1", "Tell me about Robots", 200).await;
        let mut s3 = session("s3", "other", Some("ada"), 300);
        s3.session_type = Kind::Team;
        store.create_session(s3).await.unwrap();

        let got = store.get_session("s2").await.unwrap().unwrap();
        assert_eq!(
            got.session_state,
            json!({"turns": 1}),
            "finish_run stores the state"
        );
        assert_eq!(got.user_id.as_deref(), Some("bob"));
        let summary = store.session_summary("s2").await.unwrap().unwrap();
        assert_eq!(summary.display_name, "Tell me about Robots");
        assert_eq!((summary.run_count, summary.total_tokens), (1, 20));

        let page = |q: SessionQuery| {
            let store = store.clone();
            async move {
                let (rows, total) = store.list_sessions(q).await.unwrap();
                let ids: Vec<String> = rows.into_iter().map(|r| r.session.session_id).collect();
                (ids, total)
            }
        };
        assert_eq!(
            page(SessionQuery::default()).await,
            (vec!["s3".into(), "s2".into(), "s1".into()], 3)
        );
        let ada = SessionQuery {
            user_id: Some("ada".into()),
            descending: false,
            ..SessionQuery::default()
        };
        assert_eq!(page(ada).await, (vec!["s1".into(), "s3".into()], 2));
        let agents = SessionQuery {
            session_type: Some(Kind::Agent),
            component_id: Some("writer".into()),
            limit: 1,
            page: 2,
            ..SessionQuery::default()
        };
        assert_eq!(page(agents).await, (vec!["s1".into()], 2));
        let named = SessionQuery {
            session_name: Some("ROBOTS".into()),
            ..SessionQuery::default()
        };
        assert_eq!(page(named).await, (vec!["s2".into()], 1));
        let by_name = SessionQuery {
            sort_by: SessionSort::SessionName,
            descending: false,
            ..SessionQuery::default()
        };
        assert_eq!(
            page(by_name).await.0,
            ["s1", "s3", "s2"],
            "empty names first, then by name"
        );
        let far = SessionQuery {
            page: u32::MAX,
            ..SessionQuery::default()
        };
        assert_eq!(page(far).await, (Vec::new(), 3));

        assert!(store.rename_session("s1", "First").await.unwrap());
        assert!(!store.rename_session("nope", "x").await.unwrap());
        let updated = store
            .update_session("s1", None, Some(json!({"k": 1})), Some(json!({"tag": "x"})))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(updated.session_name.as_deref(), Some("First"));
        assert_eq!(updated.metadata, Some(json!({"tag": "x"})));
        assert!(
            store
                .update_session("nope", None, None, None)
                .await
                .unwrap()
                .is_none()
        );

        let (with_runs, _) = store
            .list_sessions_with_runs(SessionQuery::default())
            .await
            .unwrap();
        assert_eq!(with_runs[1].1.len(), 1, "s2 with its run");

        assert_eq!(
            store
                .delete_sessions(
                    vec!["s1".into(), "s3".into(), "gone".into()],
                    Some(vec![Kind::Team])
                )
                .await
                .unwrap(),
            1,
            "only the team session"
        );
        assert!(store.delete_session("s2").await.unwrap());
        assert!(
            store.get_run("r1").await.unwrap().is_none(),
            "runs go with their session"
        );
        assert!(!store.delete_session("s2").await.unwrap());
    });
}

#[test]
fn runs_are_begun_finished_moved_and_read_back() {
    on_both(async |store| {
        let s = session("s1", "writer", None, 100);
        let r = run("s1", "r1", "hello", 100);
        store
            .begin_run(s.clone(), AnyRun::Agent(r.clone()), Kind::Agent)
            .await
            .unwrap();
        assert!(matches!(
            store
                .begin_run(s.clone(), AnyRun::Agent(r.clone()), Kind::Agent)
                .await,
            Err(StoreError::RunExists(_))
        ));
        let stored = store.get_run("r1").await.unwrap().unwrap();
        assert_eq!(stored.run.status(), RunStatus::Running);
        assert_eq!(stored.session_type, Kind::Agent);

        // Compare and set: of two moves from RUNNING, one wins.
        assert!(
            store
                .transition_run("r1", RunStatus::Running, RunStatus::Paused, None)
                .await
                .unwrap()
        );
        assert!(
            !store
                .transition_run("r1", RunStatus::Running, RunStatus::Cancelled, None)
                .await
                .unwrap()
        );
        assert!(
            store
                .transition_run(
                    "r1",
                    RunStatus::Paused,
                    RunStatus::Cancelled,
                    Some("PAUSED")
                )
                .await
                .unwrap()
        );
        let stored = store.get_run("r1").await.unwrap().unwrap();
        let object = serde_json::to_value(&stored.run).unwrap();
        assert_eq!(object["status"], "CANCELLED");
        assert_eq!(object["cancellation_stage"], "PAUSED");
        let keys: Vec<&String> = object.as_object().unwrap().keys().collect();
        assert_eq!(keys[0], "run_id", "the object keeps its key order");
        assert!(
            store
                .update_run_status("r1", RunStatus::Error)
                .await
                .unwrap()
        );
        assert!(
            !store
                .update_run_status("nope", RunStatus::Error)
                .await
                .unwrap()
        );

        for (i, id) in ["r2", "r3", "r4"].iter().enumerate() {
            finish(&store, &s, id, &format!("q{i}"), 200 + i as i64).await;
        }
        let all = store.list_runs("s1").await.unwrap();
        let ids: Vec<&str> = all.iter().map(|r| r.run.run_id()).collect();
        assert_eq!(ids, ["r1", "r2", "r3", "r4"], "oldest first");
        let done = store
            .list_runs_filtered("s1", vec![RunStatus::Completed], Some(201), None)
            .await
            .unwrap();
        assert_eq!(done.len(), 2);
        assert_eq!(
            all[3].events[0]["content"], "answer to q2",
            "events read back whole"
        );

        let history = store.history("s1", 2, Some("r4")).await.unwrap();
        let ids: Vec<&str> = history.iter().map(|r| r.run_id()).collect();
        assert_eq!(ids, ["r2", "r3"]);
        let messages = store.history_messages("s1", 2, None).await.unwrap();
        let texts: Vec<&str> = messages
            .iter()
            .filter_map(|m| m.content.as_deref())
            .collect();
        assert_eq!(texts, ["q1", "answer to q1", "q2", "answer to q2"]);
        // Read again: from the history cache, the same.
        assert_eq!(
            store.history_messages("s1", 2, None).await.unwrap(),
            messages
        );
        let (session, runs) = store.session_with_runs("s1").await.unwrap().unwrap();
        assert_eq!((session.session_id.as_str(), runs.len()), ("s1", 4));
        assert!(matches!(
            store
                .finish_run(AnyRun::Agent(run("s1", "nope", "x", 1)), vec![], json!({}))
                .await,
            Err(StoreError::RunNotFound(_))
        ));
    });
}

fn process(id: &str, heartbeat_at: f64) -> ProcessInfo {
    ProcessInfo {
        process_id: id.into(),
        kind: "serve".into(),
        pid: 7,
        host: "box".into(),
        address: Some("127.0.0.1:7777".into()),
        started_at: 1,
        heartbeat_at,
    }
}

#[test]
fn owners_orphans_cancels_journals_and_the_queue() {
    on_both(async |store| {
        store
            .register_process(process("dead", 100.0))
            .await
            .unwrap();
        store.set_owner("dead").await.unwrap();
        let s = session("s1", "writer", None, 100);
        store
            .begin_run(
                s.clone(),
                AnyRun::Agent(run("s1", "r1", "hi", 100)),
                Kind::Agent,
            )
            .await
            .unwrap();
        store
            .append_journal(vec![JournalBatch {
                run_id: "r1".into(),
                first_seq: 0,
                count: 2,
                events: "{\"n\":0}\n{\"n\":1}".into(),
            }])
            .await
            .unwrap();
        let read = store.read_journal("r1", 1).await.unwrap();
        assert!(read.journaled);
        assert_eq!(read.status, Some(RunStatus::Running));
        assert_eq!(read.events, [(1, "{\"n\":1}".to_string())]);

        assert!(store.heartbeat("dead").await.unwrap());
        assert!(!store.heartbeat("unknown").await.unwrap());
        let running = listed(&store, vec![RunStatus::Running], false).await;
        assert_eq!(running.len(), 1);
        assert_eq!(running[0].owner.as_ref().unwrap().pid, 7);

        assert_eq!(
            store.request_cancel("r1").await.unwrap(),
            CancelOutcome::Requested {
                status: RunStatus::Running,
                owner: Some("dead".into())
            }
        );
        assert_eq!(store.cancel_requests("dead").await.unwrap(), ["r1"]);
        assert_eq!(
            store.request_cancel("nope").await.unwrap(),
            CancelOutcome::Unknown
        );

        // Within the timeout the owner lives and its runs are left alone; past it (a
        // timeout of zero), it is taken for dead.
        let (dead, orphans) = store.orphans("me", MINUTE).await.unwrap();
        assert!(dead.is_empty() && orphans.is_empty());
        let (dead, orphans) = store.orphans("me", Duration::ZERO).await.unwrap();
        assert_eq!(dead, ["dead"]);
        assert_eq!(orphans.len(), 1);
        assert_eq!(orphans[0].journal.len(), 2);
        let mut settled = orphans[0].run.clone();
        if let AnyRun::Agent(r) = &mut settled.run {
            r.status = RunStatus::Error;
        }
        // The write itself checks the owner's silence: an owner that heartbeated within
        // the settler's timeout keeps its run, whatever the settler read before.
        assert!(
            !store
                .settle_orphan(settled.clone(), vec![], Some("dead".into()), MINUTE)
                .await
                .unwrap(),
            "a live owner's run is never settled"
        );
        store
            .forget_silent_processes(dead.clone(), MINUTE)
            .await
            .unwrap();
        assert!(
            store.heartbeat("dead").await.unwrap(),
            "a process that heartbeated is not forgotten"
        );
        assert!(
            store
                .settle_orphan(
                    settled.clone(),
                    vec![json!({"event": "RunError"})],
                    Some("dead".into()),
                    Duration::ZERO
                )
                .await
                .unwrap()
        );
        assert!(
            !store
                .settle_orphan(settled, vec![], Some("dead".into()), Duration::ZERO)
                .await
                .unwrap(),
            "settled once"
        );
        store
            .forget_silent_processes(dead, Duration::ZERO)
            .await
            .unwrap();
        assert!(!store.heartbeat("dead").await.unwrap(), "forgotten");
        assert_eq!(
            store.request_cancel("r1").await.unwrap(),
            CancelOutcome::Ended(RunStatus::Error)
        );
        assert_eq!(store.clean_journals(i64::MAX).await.unwrap(), 1);
        assert!(!store.read_journal("r1", 0).await.unwrap().journaled);

        store.enqueue_run(queued("q2", "s9", 2.0)).await.unwrap();
        store.enqueue_run(queued("q1", "s9", 1.0)).await.unwrap();
        store.register_process(process("a", 1000.0)).await.unwrap();
        assert_eq!(
            store
                .claim_run("a", None, MINUTE)
                .await
                .unwrap()
                .unwrap()
                .run_id,
            "q1"
        );
        assert_eq!(
            store
                .claim_run("b", None, MINUTE)
                .await
                .unwrap()
                .unwrap()
                .run_id,
            "q2"
        );
        assert!(store.claim_run("b", None, MINUTE).await.unwrap().is_none());
        store.release_run("q2").await.unwrap();
        let again = store
            .claim_run("b", Some("q2"), MINUTE)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.request, json!([["message", "hi"]]));
        assert!(!store.dequeue_run("q2").await.unwrap());
        assert!(store.queued_run("q2").await.unwrap().is_none());
        assert!(store.queued_run("q1").await.unwrap().is_some());

        // A run queued already taken up by the live process that accepted it: no other
        // process takes it, unless that one falls silent.
        store.heartbeat("a").await.unwrap();
        let mut mine = queued("q3", "s9", 3.0);
        mine.accepted_by = Some("a".into());
        store.enqueue_claimed_run(mine).await.unwrap();
        assert!(store.queued_run("q3").await.unwrap().is_some());
        assert!(
            store
                .claim_run("b", Some("q3"), MINUTE)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            store
                .claim_run("b", Some("q3"), Duration::ZERO)
                .await
                .unwrap()
                .map(|q| q.run_id),
            Some("q3".to_string()),
            "a silent accepter's run is taken up elsewhere"
        );
    });
}

#[test]
fn heartbeats_are_stamped_by_the_store_and_settled_runs_stay_settled() {
    on_both(async |store| {
        // Processes whose own clocks are far behind and far ahead: the store stamps their
        // heartbeats with its own clock, so neither is taken for dead.
        store
            .register_process(process("behind", 1.0))
            .await
            .unwrap();
        store
            .register_process(process("ahead", 1e12))
            .await
            .unwrap();
        assert!(store.heartbeat("behind").await.unwrap());
        store.set_owner("behind").await.unwrap();
        let s = session("s1", "writer", None, 100);
        let r = run("s1", "r1", "hi", 100);
        store
            .begin_run(s.clone(), AnyRun::Agent(r.clone()), Kind::Agent)
            .await
            .unwrap();
        let (dead, orphans) = store.orphans("me", MINUTE).await.unwrap();
        assert!(dead.is_empty(), "{dead:?}");
        assert!(orphans.is_empty());
        let runs = listed(&store, vec![], false).await;
        let stamped = runs[0].owner.as_ref().unwrap().heartbeat_at;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!((stamped - now).abs() < 60.0, "{stamped} vs {now}");

        // Taken for dead (a stall past the timeout), its run is settled as interrupted;
        // when the stalled owner finishes the run afterwards, the settled run stays.
        let (_, orphans) = store.orphans("me", Duration::ZERO).await.unwrap();
        assert_eq!(orphans.len(), 1);
        let mut settled = orphans[0].run.clone();
        if let AnyRun::Agent(r) = &mut settled.run {
            r.status = RunStatus::Error;
            r.content = Some(json!("Run interrupted"));
        }
        assert!(
            store
                .settle_orphan(settled, vec![], Some("behind".into()), Duration::ZERO)
                .await
                .unwrap()
        );
        let late = store
            .finish_run(
                completed(r, "late answer", 1),
                vec![],
                json!({"late": true}),
            )
            .await;
        match late {
            Err(StoreError::NotLive { run_id, status }) => {
                assert_eq!((run_id.as_str(), status), ("r1", RunStatus::Error));
            }
            other => panic!("expected NotLive, got {other:?}"),
        }
        let stored = store.get_run("r1").await.unwrap().unwrap();
        assert_eq!(stored.run.status(), RunStatus::Error);
        assert_eq!(stored.run.content_text(), "Run interrupted");
        assert_eq!(
            store
                .get_session("s1")
                .await
                .unwrap()
                .unwrap()
                .session_state,
            json!({}),
            "nothing of the late outcome is written"
        );
    });
}

#[test]
fn a_cancel_of_a_queued_run_waits_on_its_queue_row() {
    on_both(async |store| {
        store.enqueue_run(queued("q1", "s1", 1.0)).await.unwrap();
        assert_eq!(
            store.request_cancel("q1").await.unwrap(),
            CancelOutcome::Queued
        );
        assert_eq!(
            store.request_cancel("q2").await.unwrap(),
            CancelOutcome::Unknown
        );
        // The process that takes it up learns of the cancel as it takes it out.
        let claimed = store.claim_run("p", None, MINUTE).await.unwrap().unwrap();
        assert_eq!(claimed.run_id, "q1");
        assert!(store.dequeue_run("q1").await.unwrap());
        assert!(!store.dequeue_run("q1").await.unwrap(), "gone");
        assert_eq!(
            store.request_cancel("q1").await.unwrap(),
            CancelOutcome::Unknown
        );
    });
}

#[test]
fn journals_are_reset_for_a_continued_run() {
    on_both(async |store| {
        let batch = |first: u64, events: &[&str]| JournalBatch {
            run_id: "r1".into(),
            first_seq: first,
            count: events.len() as u64,
            events: events.join("\n"),
        };
        store
            .append_journal(vec![
                batch(0, &["{\"n\":0}", "{\"n\":1}"]),
                batch(2, &["{\"n\":2}"]),
            ])
            .await
            .unwrap();
        // A batch written twice (a retried flush) is kept once.
        store
            .append_journal(vec![batch(2, &["{\"n\":2}"])])
            .await
            .unwrap();
        assert_eq!(store.read_journal("r1", 0).await.unwrap().events.len(), 3);
        store.reset_journal("r1").await.unwrap();
        let read = store.read_journal("r1", 0).await.unwrap();
        assert!(!read.journaled);
        assert!(read.events.is_empty());
        // The continued run's stream starts again at 0.
        store
            .append_journal(vec![batch(0, &["{\"again\":0}"])])
            .await
            .unwrap();
        let read = store.read_journal("r1", 0).await.unwrap();
        assert_eq!(read.events, [(0, "{\"again\":0}".to_string())]);
        store.reset_journal("no-such-run").await.unwrap();
    });
}

#[test]
fn history_holds_completed_top_level_runs_without_system_prompts() {
    on_both(async |store| {
        let s = session("s1", "writer", None, 100);
        finish(&store, &s, "r1", "one", 100).await;
        // A run with a system prompt and a message replayed from history: neither is
        // history again.
        let mut r = run("s1", "r2", "two", 101);
        store
            .begin_run(s.clone(), AnyRun::Agent(r.clone()), Kind::Agent)
            .await
            .unwrap();
        r.messages.insert(
            0,
            serde_json::from_value(json!({"id": "sys", "role": "system",
                "content": "You write.", "created_at": 101}))
            .unwrap(),
        );
        r.messages.insert(
            1,
            serde_json::from_value(json!({"id": "old", "role": "user", "content": "one",
                "created_at": 100, "from_history": true}))
            .unwrap(),
        );
        store
            .finish_run(completed(r, "answer to two", 1), vec![], json!({}))
            .await
            .unwrap();
        // A failed run, and a team member's run: not history.
        let failed = run("s1", "r3", "three", 102);
        store
            .begin_run(s.clone(), AnyRun::Agent(failed.clone()), Kind::Agent)
            .await
            .unwrap();
        let mut failed_end = failed;
        failed_end.status = RunStatus::Error;
        store
            .finish_run(AnyRun::Agent(failed_end), vec![], json!({}))
            .await
            .unwrap();
        let mut member = run("s1", "r4", "member", 103);
        member.parent_run_id = Some("r2".into());
        store
            .begin_run(s.clone(), AnyRun::Agent(member.clone()), Kind::Agent)
            .await
            .unwrap();
        store
            .finish_run(completed(member, "member answer", 1), vec![], json!({}))
            .await
            .unwrap();

        let texts = |messages: Vec<agentos::run::Message>| -> Vec<String> {
            messages.into_iter().filter_map(|m| m.content).collect()
        };
        let all = store.history_messages("s1", 10, None).await.unwrap();
        assert_eq!(texts(all), ["one", "answer to one", "two", "answer to two"]);
        // From the cache, a new run is read and the others are not read again.
        finish(&store, &s, "r5", "five", 104).await;
        let last_two = store.history_messages("s1", 2, None).await.unwrap();
        assert_eq!(
            texts(last_two),
            ["two", "answer to two", "five", "answer to five"]
        );
        let without = store.history_messages("s1", 2, Some("r5")).await.unwrap();
        assert_eq!(
            texts(without),
            ["one", "answer to one", "two", "answer to two"]
        );
        assert!(
            store
                .history_messages("s1", 0, None)
                .await
                .unwrap()
                .is_empty()
        );
    });
}

#[test]
fn deleting_a_session_drops_the_runs_queued_into_it() {
    on_both(async |store| {
        for (id, at) in [("s1", 100), ("s2", 101), ("s3", 102)] {
            finish(&store, &session(id, "writer", None, at), id, "hi", at).await;
        }
        for (run, session) in [("q1", "s1"), ("q2", "s2"), ("q3", "s3"), ("q4", "s4")] {
            store.enqueue_run(queued(run, session, 1.0)).await.unwrap();
        }
        assert!(store.delete_session("s1").await.unwrap());
        assert_eq!(
            store
                .delete_sessions(vec!["s2".into()], Some(vec![Kind::Agent]))
                .await
                .unwrap(),
            1
        );
        // A typed bulk delete that keeps s3 keeps its queued run too.
        assert_eq!(
            store
                .delete_sessions(vec!["s3".into()], Some(vec![Kind::Team]))
                .await
                .unwrap(),
            0
        );
        for (run, kept) in [("q1", false), ("q2", false), ("q3", true), ("q4", true)] {
            assert_eq!(
                store.queued_run(run).await.unwrap().is_some(),
                kept,
                "{run} on {}",
                store.describe()
            );
        }
    });
}

#[test]
fn queued_runs_are_listed_as_pending_until_they_begin() {
    on_both(async |store| {
        let mut team = queued("q1", "s-new", 2_000_000_000.5);
        team.kind = Kind::Team;
        team.component_id = "crew".into();
        store.enqueue_run(team).await.unwrap();
        finish(&store, &session("s1", "writer", None, 100), "r1", "hi", 100).await;
        let all = listed(&store, vec![], false).await;
        let ids: Vec<(&str, RunStatus, bool)> = all
            .iter()
            .map(|r| (r.run_id.as_str(), r.status, r.queued))
            .collect();
        assert_eq!(
            ids,
            [
                ("q1", RunStatus::Pending, true),
                ("r1", RunStatus::Completed, false)
            ]
        );
        assert_eq!(all[0].kind, Kind::Team);
        assert_eq!(all[0].component_id, "crew");
        assert_eq!(all[0].created_at, 2_000_000_000);
        assert_eq!(
            listed(&store, vec![RunStatus::Pending], false).await.len(),
            1
        );
        assert!(
            listed(&store, vec![RunStatus::Running], false)
                .await
                .is_empty()
        );
        // Once it has begun (its row exists, the queue row not yet gone) it is listed once.
        let mut begun = run("s-new", "q1", "hi", 2_000_000_000);
        begun.status = RunStatus::Running;
        store
            .begin_run(
                session("s-new", "writer", None, 2_000_000_000),
                AnyRun::Agent(begun),
                Kind::Agent,
            )
            .await
            .unwrap();
        let all = listed(&store, vec![], false).await;
        assert_eq!(
            all.iter().filter(|r| r.run_id == "q1").count(),
            1,
            "{all:?}"
        );
        assert!(!all[0].queued, "{all:?}");
    });
}

/// A team run object as the engine stores it; `parent` makes it a member run.
fn team_run(session_id: &str, run_id: &str, team: &str, parent: Option<&str>) -> AnyRun {
    AnyRun::Team(
        serde_json::from_value(json!({
            "run_id": run_id, "team_id": team, "team_name": team, "session_id": session_id,
            "parent_run_id": parent, "content_type": "str", "model": "test",
            "model_provider": "Test", "created_at": 100, "metrics": {}, "status": "RUNNING",
            "messages": [], "input": {"input_content": "hi"}
        }))
        .expect("a team run object"),
    )
}

#[test]
fn member_runs_are_listed_with_their_own_kind() {
    on_both(async |store| {
        let mut s = session("t1", "crew", None, 100);
        s.session_type = Kind::Team;
        store
            .begin_run(s.clone(), team_run("t1", "lead", "crew", None), Kind::Team)
            .await
            .unwrap();
        let mut member = run("t1", "agent-member", "hi", 101);
        member.parent_run_id = Some("lead".into());
        store
            .begin_run(s.clone(), AnyRun::Agent(member), Kind::Team)
            .await
            .unwrap();
        store
            .begin_run(
                s.clone(),
                team_run("t1", "team-member", "subteam", Some("lead")),
                Kind::Team,
            )
            .await
            .unwrap();
        let all = listed(&store, vec![], true).await;
        let kinds: Vec<(&str, Kind, &str)> = all
            .iter()
            .map(|r| (r.run_id.as_str(), r.kind, r.component_id.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("team-member", Kind::Team, "subteam"),
                ("agent-member", Kind::Agent, "writer"),
                ("lead", Kind::Team, "crew"),
            ]
        );
        let top = listed(&store, vec![], false).await;
        assert_eq!(top.len(), 1);
        assert_eq!(top[0].run_id, "lead");
    });
}

#[test]
fn postgres_pushes_notices_and_sqlite_is_polled() {
    on_both(async |store| {
        let Some(mut notices) = store.notices() else {
            assert!(
                store.describe().starts_with("SQLite"),
                "{}",
                store.describe()
            );
            return;
        };
        assert!(
            store.describe().starts_with("PostgreSQL"),
            "{}",
            store.describe()
        );
        let next = async |rx: &mut tokio::sync::broadcast::Receiver<_>| {
            tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("a notice within 10 s")
                .expect("the notice channel is open")
        };
        // The listener says when it listens: what was sent before is to be read again.
        assert_eq!(next(&mut notices).await, Notice::Resync);
        store.register_process(process("p", 1.0)).await.unwrap();
        store.set_owner("p").await.unwrap();
        let s = session("s1", "writer", None, 100);
        store
            .begin_run(s, AnyRun::Agent(run("s1", "r1", "hi", 100)), Kind::Agent)
            .await
            .unwrap();
        store.request_cancel("r1").await.unwrap();
        assert_eq!(next(&mut notices).await, Notice::Cancel("r1".into()));
        store
            .append_journal(vec![JournalBatch {
                run_id: "r1".into(),
                first_seq: 0,
                count: 1,
                events: "{}".into(),
            }])
            .await
            .unwrap();
        assert_eq!(next(&mut notices).await, Notice::Journal("r1".into()));
        store.enqueue_run(queued("q1", "s9", 1.0)).await.unwrap();
        assert_eq!(next(&mut notices).await, Notice::Queued("q1".into()));
    });
}
